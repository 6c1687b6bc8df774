"""Experience: real outcomes stored in a LangGraph store and weighed as evidence; calibration."""

from __future__ import annotations

import sqlite3

import pytest
from langgraph.store.memory import InMemoryStore
from langgraph.store.sqlite import SqliteStore

from wm_agents.core import Transition
from wm_agents.llm.memory import Evidence, ExperienceMemory, lexical_similarity
from wm_agents.testing import prediction_reply

MISSING = {"name": "read_file", "args": {"path": "missing.txt"}}


def test_lexical_similarity():
    same = lexical_similarity({"path": "a.txt"}, "task x", {"path": "a.txt"}, "task x")
    assert same == pytest.approx(1.0)
    near = lexical_similarity({"a": 1, "b": 0}, "t", {"a": 5, "b": 0}, "t")
    far = lexical_similarity({"a": 1, "b": 0}, "t", {"a": 6, "b": 3}, "t")
    assert 1.0 > near > far >= 0.25  # the situation part is shared
    other = lexical_similarity({"key": "paris"}, "find", {"key": "rome"}, "other words")
    assert other == pytest.approx(0.0)


def test_evidence_posterior_is_a_weighted_beta_mean():
    ev = Evidence(n_similar=2, n_exact=1, weight=9.0, weighted_success=1.0)
    p, share = ev.combine(0.9, prior_strength=2.0)
    assert p == pytest.approx((2 * 0.9 + 1.0) / (2 + 9))
    assert share == pytest.approx(9 / 11)
    assert Evidence().combine(0.3, 2.0) == (pytest.approx(0.3), 0.0)
    assert Evidence().observed_success_rate is None


def test_an_exact_repeat_of_a_failing_call_is_predicted_to_fail(make_predictor, state):
    predictor, model = make_predictor(
        prediction_reply(True, 0.95, predicted_result="content"), samples=2
    )
    [before] = predictor.imagine(state, [MISSING])
    assert before.prediction["success_probability"] > 0.9
    report = predictor.learn(
        [
            Transition(
                state=state,
                action=MISSING,
                result="FileNotFoundError: missing.txt",
                success=False,
                prediction=before,
            )
        ]
    )
    assert report.n_transitions == 1 and report.updated
    assert report.metrics["brier_llm"] == pytest.approx(
        before.prediction["llm_success_probability"] ** 2
    )
    [after] = predictor.imagine(state, [MISSING])
    ev = after.prediction["evidence"]
    assert ev["exact_repeat"] is True and ev["n_exact"] == 1
    assert ev["observed_success_rate"] == 0.0
    assert after.prediction["success_probability"] < 0.25
    assert after.prediction["predicted_result"] == "FileNotFoundError: missing.txt"
    assert after.risk > before.risk
    assert after.uncertainty < 0.3
    assert len(model.calls) == 2  # the LLM part came from the cache; experience is fresh


def test_same_call_in_another_situation_is_similar_not_exact(make_predictor, state):
    predictor, _ = make_predictor(prediction_reply(True, 0.9), samples=1)
    predictor.learn([Transition(state=state, action=MISSING, result="err", success=False)])
    [out] = predictor.imagine({"task": "another task", "context": "elsewhere"}, [MISSING])
    ev = out.prediction["evidence"]
    assert ev["exact_repeat"] is False and ev["n_similar"] == 1
    assert 0.5 < out.prediction["success_probability"] < 0.9  # pulled down, not overruled


def test_similar_calls_weigh_by_similarity_and_dissimilar_ones_not(make_predictor, state):
    predictor, _ = make_predictor(prediction_reply(True, 0.9), samples=1)
    predictor.learn(
        [
            Transition(
                state=state,
                action={"name": "divide", "args": {"a": 1, "b": 0}},
                result="ZeroDivisionError",
                success=False,
            ),
            Transition(
                state=state,
                action={"name": "read_file", "args": {"path": "x"}},
                result="err",
                success=False,
            ),
        ]
    )
    near, far = predictor.imagine(
        state,
        [
            {"name": "divide", "args": {"a": 5, "b": 0}},
            {"name": "divide", "args": {"a": 7, "b": 3}},
        ],
    )
    assert near.prediction["evidence"]["n_similar"] == 1
    assert far.prediction["evidence"]["n_similar"] == 0  # below min_similarity
    assert (
        near.prediction["success_probability"]
        < far.prediction["success_probability"]
        == pytest.approx(0.9)
    )


def test_experience_is_per_tool(state):
    memory = ExperienceMemory()
    memory_ev = memory.evidence(state, MISSING)
    assert memory_ev.n_similar == 0
    from wm_agents.llm.schemas import LLMState, ToolCallCandidate
    from wm_agents.llm.sync import run_sync

    run_sync(
        memory.arecord(
            LLMState.from_any(state),
            ToolCallCandidate.from_any({"name": "other", "args": {"path": "missing.txt"}}),
            result="x",
            success=True,
        )
    )
    assert memory.evidence(state, MISSING).n_similar == 0


def test_calibration_per_tool_before_and_after_experience(make_predictor, state):
    predictor, _ = make_predictor(prediction_reply(True, 0.8), samples=1)
    for _ in range(3):
        [out] = predictor.imagine(state, [MISSING])
        predictor.learn(
            [Transition(state=state, action=MISSING, result="err", success=False, prediction=out)]
        )
    cal = predictor.calibration()["read_file"]
    assert cal["n"] == 3
    assert cal["accuracy_llm"] == 0.0
    assert cal["brier_llm"] == pytest.approx(0.64)
    assert cal["accuracy"] == pytest.approx(2 / 3)  # wrong once, right once experience existed
    assert cal["brier"] < cal["brier_llm"]


def test_learn_without_success_raises(make_predictor, state):
    predictor, _ = make_predictor(prediction_reply())
    with pytest.raises(ValueError, match="success"):
        predictor.learn([Transition(state=state, action=MISSING, result="x")])


def test_learn_metrics_only_over_scored_transitions(make_predictor, state):
    predictor, _ = make_predictor(prediction_reply())
    report = predictor.learn([Transition(state=state, action=MISSING, result="x", success=True)])
    assert report.metrics == {"n_scored": 0.0}


def test_sqlite_store_keeps_experience_across_predictors(make_predictor, state, tmp_path):
    conn = sqlite3.connect(tmp_path / "exp.db", check_same_thread=False, isolation_level=None)
    store = SqliteStore(conn)
    store.setup()
    first, _ = make_predictor(prediction_reply(True, 0.9), samples=1, store=store)
    first.learn(
        [Transition(state=state, action=MISSING, result="FileNotFoundError", success=False)]
    )
    second, _ = make_predictor(prediction_reply(True, 0.9), samples=1, store=store)
    [out] = second.imagine(state, [MISSING])
    assert out.prediction["evidence"]["exact_repeat"] is True
    assert out.prediction["success_probability"] < 0.5
    conn.close()


def test_custom_similarity_and_namespace(state):
    store = InMemoryStore()
    memory = ExperienceMemory(store, namespace=("me",), similarity=lambda *_: 1.0)
    from wm_agents.llm.schemas import LLMState, ToolCallCandidate
    from wm_agents.llm.sync import run_sync

    s = LLMState.from_any(state)
    run_sync(
        memory.arecord(
            s, ToolCallCandidate(name="read_file", args={"path": "zzz"}), result="r", success=True
        )
    )
    ev = memory.evidence({"task": "t"}, MISSING)
    assert ev.n_similar == 1 and ev.weight == pytest.approx(1.0)
    assert store.search(("me", "calls", "read_file"))


def test_bad_memory_options_raise():
    with pytest.raises(ValueError):
        ExperienceMemory(exact_weight=0)


def test_a_failing_store_does_not_break_predictions(make_predictor, state, caplog):
    class BrokenStore(InMemoryStore):
        async def asearch(self, *args, **kwargs):
            raise OSError("database is down")

    predictor, _ = make_predictor(prediction_reply(True, 0.9), samples=1, store=BrokenStore())
    [out] = predictor.imagine(state, [MISSING])
    assert out.status == "ok"
    assert out.prediction["evidence"]["n_similar"] == 0
    assert "database is down" in caplog.text
