"""What the predictor sends: the prompt's shared prefix, and the request fields for a generic
OpenAI-compatible server versus llama.cpp (the embedded server).

The request tests run a real ``ChatOpenAI`` against an in-process fake server (an
``httpx.MockTransport``): every request body is recorded and answered; no network.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from wm_agents.llm.config import make_chat_openai
from wm_agents.llm.predictor import LLMOutcomePredictor, load_prompt
from wm_agents.llm.schemas import prediction_grammar
from wm_agents.llm.server import EMBEDDED_MODEL_ALIAS
from wm_agents.testing import ScriptedChatModel, prediction_reply

READ = {"name": "read_file", "args": {"path": "notes.txt"}}
MISSING = {"name": "read_file", "args": {"path": "missing.txt"}}
DIVIDE = {"name": "divide", "args": {"a": 1, "b": 0}}


def answer_json(p: float = 0.9) -> str:
    return json.dumps(prediction_reply(p >= 0.5, p).content, separators=(",", ":"))


class FakeOpenAIServer:
    """Answers ``/chat/completions`` with a valid prediction (or what ``reply(body)`` returns)
    and records every request body."""

    def __init__(self, reply: Any = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.reply = reply

    async def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        if self.reply is not None:
            return self.reply(body)
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": answer_json()},
            "finish_reason": "stop",
        }
        return httpx.Response(200, json=completion(body, [choice]))

    def model(self, name: str) -> Any:
        client = httpx.AsyncClient(transport=httpx.MockTransport(self.handle))
        return make_chat_openai(
            base_url="http://fake.invalid/v1",
            api_key="sk-test",
            model=name,
            http_async_client=client,
        )


def completion(body: dict[str, Any], choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": choices,
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


# -- the prompt ------------------------------------------------------------------------------


def test_user_template_ends_with_the_call():
    # The candidate-specific part must come last, or no two candidates share a prompt prefix.
    assert load_prompt("outcome_user.md").rstrip().endswith("$call")
    assert "$call" not in load_prompt("outcome_system.md")


def test_candidates_share_everything_but_the_last_line(make_predictor, state):
    predictor, model = make_predictor(prediction_reply(), samples=1)
    state = state | {"messages": [{"role": "user", "content": "please summarize"}]}
    predictor.imagine(state, [READ, MISSING, DIVIDE])
    assert len(model.calls) == 3
    assert len({c.system for c in model.calls}) == 1
    prefixes = {c.user.rsplit("\n", 1)[0] for c in model.calls}
    assert len(prefixes) == 1
    [prefix] = prefixes
    # The prefix lists every tool (name, parameters, description), then the situation.
    for text in (
        "- read_file(path): Read a text file",
        "- divide(a, b): Divide a by b.",
        "Summarize the notes.",
        "cwd has notes.txt only",
        "please summarize",
    ):
        assert text in prefix
    assert prefix.index("Tools:") < prefix.index("Task:") < prefix.index("Recent messages:")
    assert [c.user.rsplit("\n", 1)[1] for c in model.calls] == [
        'Call: read_file({"path":"notes.txt"})',
        'Call: read_file({"path":"missing.txt"})',
        'Call: divide({"a":1,"b":0})',
    ]


def test_optional_parameters_are_marked(state):
    tool = {
        "name": "list_files",
        "description": "List files.",
        "parameters": {"properties": {"path": {"type": "string"}, "deep": {}}, "required": []},
    }
    model = ScriptedChatModel(script=prediction_reply())
    LLMOutcomePredictor(model, tools=[tool], samples=1).imagine(state, [{"name": "list_files"}])
    assert "- list_files(path?, deep?): List files." in model.calls[0].user


# -- request fields ----------------------------------------------------------------------------


def test_a_generic_openai_server_gets_standard_fields_only(state, tools):
    server = FakeOpenAIServer()
    predictor = LLMOutcomePredictor(server.model("gpt-4o-mini"), tools=tools, samples=3, seed=5)
    [out] = predictor.imagine(state, [READ])
    assert out.status == "ok", out.reason
    assert len(server.bodies) == 3  # one request per sample
    assert sorted(b["seed"] for b in server.bodies) == [5, 6, 7]
    for body in server.bodies:
        assert body["response_format"]["type"] == "json_schema"
        assert body.get("n", 1) == 1
        assert not {"grammar", "cache_prompt", "n_probs", "id_slot"} & set(body)
    assert predictor.stats["calls"] == 3


def is_prime(body: dict[str, Any]) -> bool:
    return body.get("max_completion_tokens") == 1 and "grammar" not in body


def last_line(body: dict[str, Any]) -> str:
    return body["messages"][-1]["content"].rsplit("\n", 1)[-1]


def test_the_embedded_server_gets_llama_cpp_fields(state, tools):
    server = FakeOpenAIServer()
    model = server.model(EMBEDDED_MODEL_ALIAS)
    predictor = LLMOutcomePredictor(model, tools=tools, samples=3, seed=5, max_tokens=256)
    outs = predictor.imagine(state, [READ, DIVIDE])
    assert [o.status for o in outs] == ["ok", "ok"]
    samples = [b for b in server.bodies if not is_prime(b)]
    assert len(samples) == 6  # one request per sample
    assert sorted(b["seed"] for b in samples) == [5, 5, 6, 6, 7, 7]
    for body in samples:
        assert body["grammar"] == prediction_grammar()
        assert body["cache_prompt"] is True and body["id_slot"] == 0
        assert "response_format" not in body and body.get("n", 1) == 1
        assert body["temperature"] == 0.7 and body["max_completion_tokens"] == 256
    assert [s["seed"] for s in outs[0].prediction["samples"]] == [5, 6, 7]
    # One candidate at a time on the slot: its prompt is read in (primed), then its samples.
    turns = [("prime" if is_prime(b) else "sample", last_line(b)) for b in server.bodies]
    read, divide = 'Call: read_file({"path":"notes.txt"})', 'Call: divide({"a":1,"b":0})'
    assert (
        turns
        == [("prime", read)]
        + [("sample", read)] * 3
        + [("prime", divide)]
        + [("sample", divide)] * 3
    )
    assert all(b["id_slot"] == 0 and b["cache_prompt"] is True for b in server.bodies)
    # Cached samples need neither a request nor a priming.
    predictor.imagine(state, [READ])
    assert len(server.bodies) == 8


@pytest.mark.parametrize(
    ("name", "backend", "llama_cpp"),
    [
        (EMBEDDED_MODEL_ALIAS, "openai", False),
        ("my-llama", "llama.cpp", True),
        ("my-llama", "auto", False),
    ],
)
def test_backend_can_be_chosen(state, tools, name, backend, llama_cpp):
    server = FakeOpenAIServer()
    predictor = LLMOutcomePredictor(server.model(name), tools=tools, samples=2, backend=backend)
    [out] = predictor.imagine(state, [READ])
    assert out.status == "ok", out.reason
    samples = [b for b in server.bodies if not is_prime(b)]
    assert len(samples) == 2 and len(server.bodies) == (3 if llama_cpp else 2)
    assert all(("grammar" in b) == llama_cpp for b in samples)
    assert all(("response_format" in b) != llama_cpp for b in samples)


def test_slot_none_lets_the_server_choose(state, tools):
    server = FakeOpenAIServer()
    model = server.model(EMBEDDED_MODEL_ALIAS)
    LLMOutcomePredictor(model, tools=tools, samples=1, slot=None).imagine(state, [READ])
    assert len(server.bodies) == 1 and "id_slot" not in server.bodies[0]  # and no priming
    LLMOutcomePredictor(model, tools=tools, samples=1, slot=2, seed=1).imagine(state, [READ])
    assert [b["id_slot"] for b in server.bodies[1:]] == [2, 2]


def test_bad_options_for_llama_cpp_raise():
    with pytest.raises(ValueError, match=r"backend='llama\.cpp' needs"):
        LLMOutcomePredictor(ScriptedChatModel(script=prediction_reply()), backend="llama.cpp")
    with pytest.raises(ValueError, match="backend must be"):
        LLMOutcomePredictor(ScriptedChatModel(script=prediction_reply()), backend="vllm")
    with pytest.raises(ValueError, match="slot must be"):
        LLMOutcomePredictor(ScriptedChatModel(script=prediction_reply()), slot=-1)


def test_llama_cpp_answers_are_parsed_and_bad_ones_fail_alone(state, tools):
    def reply(body: dict[str, Any]) -> httpx.Response:
        content = {5: answer_json(0.9), 6: '{"success": tr', 7: answer_json(0.8)}[body["seed"]]
        finish = "length" if body["seed"] == 6 else "stop"
        choice = {"index": 0, "message": {"role": "assistant", "content": content}}
        return httpx.Response(200, json=completion(body, [choice | {"finish_reason": finish}]))

    server = FakeOpenAIServer(reply=reply)
    predictor = LLMOutcomePredictor(
        server.model(EMBEDDED_MODEL_ALIAS), tools=tools, samples=3, seed=5, max_tokens=64
    )
    [out] = predictor.imagine(state, [READ])
    assert out.status == "ok"
    assert "1/3 samples failed" in out.reason and "cut off by the token limit" in out.reason
    assert [("error" in s) for s in out.prediction["samples"]] == [False, True, False]
    assert out.prediction["llm_success_probability"] == pytest.approx(0.85)


def test_a_request_the_server_refuses_is_an_unknown_outcome(state, tools):
    def reply(body: dict[str, Any]) -> httpx.Response:
        message = "failed to parse grammar"
        return httpx.Response(400, json={"error": {"code": 400, "message": message}})

    server = FakeOpenAIServer(reply=reply)
    predictor = LLMOutcomePredictor(
        server.model(EMBEDDED_MODEL_ALIAS), tools=tools, samples=2, backoff_s=0.0
    )
    [out] = predictor.imagine(state, [READ])
    assert out.status == "unknown"
    assert "server error 400" in out.reason and "failed to parse grammar" in out.reason
    assert len(server.bodies) == 3  # the priming and 2 samples; a 400 is not retried
