"""LLMOutcomePredictor with a scripted fake chat model: aggregation, uncertainty, caching, the
call cap, concurrency, bounds, malformed output, timeouts and retries.  No network."""

from __future__ import annotations

import asyncio
import json
import math
from types import SimpleNamespace

import httpx
import openai
import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from wm_agents.core import Outcome, WorldModel
from wm_agents.llm.predictor import LLMOutcomePredictor, allocate_samples, load_prompt
from wm_agents.llm.schemas import RISK_LEVEL_HARM
from wm_agents.testing import Reply, prediction_reply

READ = {"name": "read_file", "args": {"path": "notes.txt"}}
DIVIDE = {"name": "divide", "args": {"a": 1, "b": 0}}


def by_seed(mapping):
    """A script answering by the sample's seed (sample i has seed 0 + i)."""
    return lambda call: mapping[call.seed]


def connection_error() -> openai.APIConnectionError:
    return openai.APIConnectionError(request=httpx.Request("POST", "http://127.0.0.1:9/v1"))


def test_is_a_world_model(make_predictor):
    predictor, _ = make_predictor(prediction_reply())
    assert isinstance(predictor, WorldModel)


def test_aggregation_of_agreeing_samples(make_predictor, state):
    predictor, model = make_predictor(
        prediction_reply(True, 0.8, goal_progress=0.5, predicted_result="buy milk"), samples=3
    )
    [out] = predictor.imagine(state, [READ])
    assert out.status == "ok" and out.reason is None
    p = out.prediction
    assert p["success_probability"] == pytest.approx(0.8)
    assert p["llm_success_probability"] == pytest.approx(0.8)
    assert out.uncertainty == pytest.approx(0.0)
    harm = RISK_LEVEL_HARM["low"]
    assert out.risk == pytest.approx(1 - 0.8 * (1 - harm))
    assert out.value == pytest.approx(0.5 * 0.8 - 0.5 * harm)
    assert out.member_values == pytest.approx([0.5 * 0.8 - 0.5 * harm] * 3)
    assert p["predicted_result"] == "buy milk"
    assert p["n_samples"] == 3 and p["n_failed"] == 0
    assert [s["seed"] for s in p["samples"]] == [0, 1, 2]
    assert len(model.calls) == 3
    assert {c.seed for c in model.calls} == {0, 1, 2}
    assert {c.temperature for c in model.calls} == {0.7}
    assert {c.max_tokens for c in model.calls} == {512}
    assert out.candidate == READ
    json.dumps(out.model_dump())  # the prediction is JSON-serializable


def test_disagreement_is_uncertainty(make_predictor, state):
    script = by_seed(
        {
            0: prediction_reply(True, 1.0, predicted_result="buy milk"),
            1: prediction_reply(
                False, 0.0, risk_level="high", predicted_result="FileNotFoundError"
            ),
        }
    )
    predictor, _ = make_predictor(script, samples=2)
    [out] = predictor.imagine(state, [READ])
    parts = out.prediction["uncertainty_parts"]
    assert parts["success"] == pytest.approx(1.0)  # 2 * std of {0, 1}
    assert parts["result"] == pytest.approx(1.0)  # no word in common
    assert out.uncertainty == pytest.approx(1.0)
    assert out.prediction["success_probability"] == pytest.approx(0.5)
    assert out.prediction["risk_level"] == "high"  # tie broken toward the more harmful level


def test_partial_failures_count_as_maximal_uncertainty(make_predictor, state):
    script = by_seed(
        {0: prediction_reply(True, 0.9), 1: Reply("not json"), 2: prediction_reply(True, 0.9)}
    )
    predictor, _ = make_predictor(script, samples=3)
    [out] = predictor.imagine(state, [READ])
    assert out.status == "ok"
    assert out.uncertainty == pytest.approx(1 / 3)
    assert "1/3 samples failed" in out.reason
    assert out.prediction["n_failed"] == 1


def test_cache_serves_identical_predictions(make_predictor, state):
    predictor, model = make_predictor(prediction_reply(), samples=2)
    first = predictor.imagine(state, [READ])
    second = predictor.imagine(state, [READ])
    assert len(model.calls) == 2
    assert predictor.stats["cache_hits"] == 2
    assert first[0].value == second[0].value
    assert all(s["cached"] for s in second[0].prediction["samples"])
    # A different situation is a different prompt: no cache hit.
    predictor.imagine({"task": "other"}, [READ])
    assert len(model.calls) == 4


def test_identical_candidates_in_one_decision_share_calls(make_predictor, state):
    predictor, model = make_predictor(prediction_reply(), samples=2)
    outs = predictor.imagine(state, [READ, READ, DIVIDE])
    assert len(outs) == 3
    assert len(model.calls) == 4
    assert outs[0].value == outs[1].value


def test_failures_are_not_cached(make_predictor, state):
    replies = [Reply("garbage"), prediction_reply()]
    predictor, model = make_predictor(replies, samples=1)
    assert predictor.imagine(state, [READ])[0].status == "unknown"
    assert predictor.imagine(state, [READ])[0].status == "ok"
    assert len(model.calls) == 2


@pytest.mark.parametrize(
    ("n", "k", "cap", "expected"),
    [
        (2, 3, 10, [3, 3]),
        (4, 3, 10, [3, 3, 2, 2]),
        (3, 3, 3, [1, 1, 1]),
        (5, 3, 3, [1, 1, 1, 0, 0]),
        (0, 3, 3, []),
    ],
)
def test_allocate_samples(n, k, cap, expected):
    got = allocate_samples(n, k, cap)
    assert got == expected
    assert sum(got) <= cap


def test_call_cap_reduces_samples_then_marks_unknown(make_predictor, state):
    predictor, model = make_predictor(prediction_reply(), samples=3, max_calls_per_decision=4)
    cands = [{"name": "divide", "args": {"a": i, "b": 1}} for i in range(3)]
    outs = predictor.imagine(state, cands)
    assert [o.prediction["n_samples"] for o in outs] == [2, 1, 1]
    assert len(model.calls) == 4
    cands = [{"name": "divide", "args": {"a": i, "b": 2}} for i in range(6)]
    outs = predictor.imagine(state, cands)
    assert [o.status for o in outs] == ["ok"] * 4 + ["unknown"] * 2
    assert "call cap reached" in outs[-1].reason
    assert len(model.calls) == 8


def test_concurrency_is_capped(make_predictor, state):
    predictor, model = make_predictor(prediction_reply(delay_s=0.02), samples=3, max_concurrency=2)
    cands = [{"name": "divide", "args": {"a": i, "b": 1}} for i in range(4)]
    predictor.imagine(state, cands)
    assert len(model.calls) == 12
    assert model.max_in_flight == 2


def test_concurrency_overlaps_calls(make_predictor, state):
    predictor, model = make_predictor(prediction_reply(delay_s=0.02), samples=3, max_concurrency=8)
    predictor.imagine(state, [{"name": "divide", "args": {"a": i, "b": 1}} for i in range(4)])
    assert model.max_in_flight == 8


@pytest.mark.parametrize(
    ("raw", "expected_p"),
    [(100, 1.0), (1e12, 1.0), (55, 0.55), (-2, 0.0)],
)
def test_out_of_range_numbers_are_bounded(make_predictor, state, raw, expected_p):
    success = expected_p >= 0.5
    predictor, _ = make_predictor(prediction_reply(success, raw, goal_progress=1e12), samples=1)
    [out] = predictor.imagine(state, [READ])
    assert out.status == "ok"
    assert out.prediction["success_probability"] == pytest.approx(expected_p)
    assert out.prediction["goal_progress"] == 1.0
    assert 0.0 <= out.risk <= 1.0
    assert math.isfinite(out.value)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply("this is not JSON"), "unparseable output"),
        (Reply('{"success": true, "success_prob'), "unparseable output"),
        (
            Reply('{"success": true, "success_prob', finish_reason="length"),
            "cut off by the token limit",
        ),
        (Reply(refusal="I cannot help with that"), "refused"),
        (Reply({"success": True}), "missing fields"),
        (Reply(json.dumps({"success": True, "success_probability": "NaN"})), "missing fields"),
        (prediction_reply(True, "lots"), "not a number"),
        (Reply(""), "unparseable output"),
    ],
)
def test_malformed_output_is_unknown_with_reason(make_predictor, state, reply, reason, caplog):
    predictor, _ = make_predictor(reply, samples=2)
    [out] = predictor.imagine(state, [READ])
    assert out.status == "unknown"
    assert reason in out.reason
    assert out.uncertainty == 1.0 and out.risk == 1.0 and out.value == -math.inf
    assert not out.is_known
    assert out.prediction["n_failed"] == 2
    assert "failed" in caplog.text


def test_non_finite_probability_is_unknown(make_predictor, state):
    # Python's json reads the non-standard NaN literal some servers emit.
    text = json.dumps(prediction_reply(True, 0.5).content).replace("0.5", "NaN", 1)
    predictor, _ = make_predictor(Reply(text), samples=1)
    [out] = predictor.imagine(state, [READ])
    assert out.status == "unknown"
    assert "not finite" in out.reason


def test_timeout_is_unknown_and_does_not_wait_for_the_model(make_predictor, state):
    predictor, _ = make_predictor(prediction_reply(delay_s=5.0), samples=2, timeout_s=0.05)
    loop = asyncio.new_event_loop()
    try:
        start = loop.time()
        [out] = loop.run_until_complete(predictor.aimagine(state, [READ]))
        elapsed = loop.time() - start
    finally:
        loop.close()
    assert out.status == "unknown"
    assert "timeout after 0.05s" in out.reason
    assert elapsed < 1.0


def test_connection_errors_are_retried_with_backoff(make_predictor, state):
    replies = [connection_error(), connection_error(), prediction_reply(True, 0.9)]
    predictor, model = make_predictor(replies, samples=1, max_retries=2, backoff_s=0.001)
    [out] = predictor.imagine(state, [READ])
    assert out.status == "ok"
    assert predictor.stats["retries"] == 2
    assert len(model.calls) == 3


def test_retries_are_bounded(make_predictor, state):
    predictor, model = make_predictor(connection_error(), samples=1, max_retries=1)
    [out] = predictor.imagine(state, [READ])
    assert out.status == "unknown"
    assert "connection error" in out.reason
    assert len(model.calls) == 2


def test_length_error_raised_by_the_client_is_a_truncation(make_predictor, state):
    predictor, _ = make_predictor(
        openai.LengthFinishReasonError(completion=SimpleNamespace(usage=None)), samples=1
    )
    [out] = predictor.imagine(state, [READ])
    assert out.status == "unknown"
    assert "cut off by the token limit" in out.reason


def test_other_exceptions_are_not_retried(make_predictor, state):
    predictor, model = make_predictor(RuntimeError("boom"), samples=1, max_retries=3)
    [out] = predictor.imagine(state, [READ])
    assert out.status == "unknown"
    assert "RuntimeError: boom" in out.reason
    assert len(model.calls) == 1


def test_unknown_tool_is_an_unknown_outcome_listing_valid_names(make_predictor, state):
    predictor, model = make_predictor(prediction_reply(), samples=1)
    outs = predictor.imagine(state, [{"name": "rm_rf", "args": {}}, READ])
    assert outs[0].status == "unknown"
    assert "valid tools: divide, read_file" in outs[0].reason
    assert outs[1].status == "ok"
    assert len(model.calls) == 1


def test_tools_can_come_with_the_state(state):
    from wm_agents.testing import ScriptedChatModel

    model = ScriptedChatModel(script=prediction_reply())
    predictor = LLMOutcomePredictor(model, samples=1)
    tool = {"name": "search", "description": "Search the web for a query.", "parameters": {}}
    [out] = predictor.imagine(state | {"tools": [tool]}, [{"name": "search", "args": {"q": "x"}}])
    assert out.status == "ok"
    assert "Search the web" in model.calls[0].user
    # Without any tool metadata every name is accepted.
    [out] = predictor.imagine(state, [{"name": "anything", "args": {}}])
    assert out.status == "ok"


def test_a_candidate_that_is_not_a_tool_call_raises(make_predictor, state):
    predictor, model = make_predictor(prediction_reply())
    with pytest.raises(ValueError, match="tool call"):
        predictor.imagine(state, [[0.1, 0.2]])
    assert model.calls == []


def test_bad_options_raise():
    with pytest.raises(ValueError):
        LLMOutcomePredictor(GenericFakeChatModel(messages=iter([])), samples=0)
    with pytest.raises(ValueError):
        LLMOutcomePredictor(GenericFakeChatModel(messages=iter([])), timeout_s=0)


def test_prompt_shows_task_context_messages_tool_and_arguments(make_predictor):
    predictor, model = make_predictor(prediction_reply(), samples=1)
    state = {
        "task": "Summarize the notes.",
        "context": "cwd has notes.txt only",
        "messages": [
            {"role": "user", "content": "please summarize"},
            AIMessage("", tool_calls=[{"name": "read_file", "args": {"path": "a"}, "id": "1"}]),
        ],
    }
    predictor.imagine(state, [READ])
    user = model.calls[0].user
    for text in (
        "Summarize the notes.",
        "cwd has notes.txt only",
        "please summarize",
        'read_file({"path":"a"})',
        "Read a text file",
        '{"path":"notes.txt"}',
    ):
        assert text in user
    assert "predict" in model.calls[0].system.lower()


def test_model_without_structured_output_falls_back_to_text(state):
    text = "Sure! " + json.dumps(prediction_reply(False, 0.1).content) + " done"
    model = GenericFakeChatModel(messages=iter([AIMessage(text)]))
    predictor = LLMOutcomePredictor(model, samples=1)
    [out] = predictor.imagine(state, [READ])
    assert out.status == "ok"
    assert out.prediction["success_probability"] == pytest.approx(0.1)


def test_imagine_inside_a_running_loop(make_predictor, state):
    predictor, _ = make_predictor(prediction_reply(), samples=1)

    async def agent_step():
        return predictor.imagine(state, [READ])

    [out] = asyncio.run(agent_step())
    assert out.status == "ok"


def test_aimagine_on_several_loops(make_predictor, state):
    predictor, _ = make_predictor(prediction_reply(), samples=1)
    for i in range(3):
        [out] = asyncio.run(
            predictor.aimagine(state, [{"name": "divide", "args": {"a": i, "b": 1}}])
        )
        assert out.status == "ok"


def test_reproducible_with_seeds(state):
    from wm_agents.testing import ScriptedChatModel

    def script(call):
        return prediction_reply(call.seed % 2 == 0, 0.9 if call.seed % 2 == 0 else 0.2)

    outs = []
    for _ in range(2):
        predictor = LLMOutcomePredictor(ScriptedChatModel(script=script), samples=3, seed=4)
        outs.append(predictor.imagine(state, [READ])[0])
    assert outs[0].model_dump() == outs[1].model_dump()
    assert [s["seed"] for s in outs[0].prediction["samples"]] == [4, 5, 6]


def test_unknown_outcome_serializes(make_predictor, state):
    predictor, _ = make_predictor(Reply("x"), samples=1)
    [out] = predictor.imagine(state, [READ])
    again = Outcome.model_validate_json(out.model_dump_json())
    assert again.status == "unknown" and again.value == -math.inf


def test_prompts_ship_inside_the_package():
    assert "predict" in load_prompt("outcome_system.md").lower()
    assert "$call" in load_prompt("outcome_user.md")
