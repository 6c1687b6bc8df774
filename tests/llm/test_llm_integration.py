"""The embedded LLM over real HTTP (openai client via ChatOpenAI): schema-valid predictions,
concurrent requests, a server killed mid-run, and the CLI starting the model itself.

These assert plumbing and validity, never the tiny model's wording or judgement.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import time

import pytest

from wm_agents.core import Outcome, Transition
from wm_agents.llm.predictor import LLMOutcomePredictor
from wm_agents.llm.schemas import RISK_LEVEL_HARM
from wm_agents.llm.server import EmbeddedLLMServer

pytestmark = pytest.mark.integration

STATE = {"task": "Compute the totals and read the notes.", "context": "cwd holds notes.txt"}
CALLS = [
    {"name": "read_file", "args": {"path": "notes.txt"}},
    {"name": "read_file", "args": {"path": "missing.txt"}},
    {"name": "divide", "args": {"a": 10, "b": 4}},
    {"name": "divide", "args": {"a": 1, "b": 0}},
]


def assert_valid(outcome: Outcome) -> None:
    """Every outcome is either a valid prediction or unknown with a reason."""
    if outcome.status == "unknown":
        assert outcome.reason
        assert outcome.uncertainty == 1.0 and outcome.risk == 1.0
        return
    p = outcome.prediction
    assert 0.0 <= p["success_probability"] <= 1.0
    assert 0.0 <= p["llm_success_probability"] <= 1.0
    assert 0.0 <= outcome.risk <= 1.0
    assert 0.0 <= outcome.uncertainty <= 1.0
    assert math.isfinite(outcome.value)
    assert p["risk_level"] in RISK_LEVEL_HARM
    assert isinstance(p["predicted_result"], str) and len(p["predicted_result"]) <= 200
    assert isinstance(p["side_effects"], str) and isinstance(p["reversible"], bool)
    assert 0.0 <= p["goal_progress"] <= 1.0
    json.dumps(outcome.model_dump())


def test_schema_valid_predictions_for_several_tool_calls_concurrently(embedded_server, tools):
    model = embedded_server.chat_model()
    predictor = LLMOutcomePredictor(model, tools=tools, samples=2, max_concurrency=4)
    start = time.perf_counter()
    outcomes = predictor.imagine(STATE, CALLS)
    wall = time.perf_counter() - start
    assert [o.candidate["name"] for o in outcomes] == [c["name"] for c in CALLS]
    for o in outcomes:
        assert_valid(o)
    # The grammar-constrained server answers in the schema: no sample may fail here.
    assert all(o.status == "ok" for o in outcomes), [o.reason for o in outcomes]
    assert predictor.stats["calls"] == 8 and predictor.stats["failures"] == 0
    assert wall < 600  # generous: a shared 2-core machine; BENCHMARKS.md has real timings
    # Cached on the second look; learning a failure flips an exact repeat.
    [again] = predictor.imagine(STATE, [CALLS[1]])
    assert predictor.stats["calls"] == 8
    predictor.learn(
        [
            Transition(
                state=STATE,
                action=CALLS[1],
                result="FileNotFoundError: missing.txt",
                success=False,
                prediction=again,
            )
        ]
    )
    [after] = predictor.imagine(STATE, [CALLS[1]])
    assert after.prediction["evidence"]["exact_repeat"] is True
    assert after.prediction["success_probability"] < 0.5
    assert after.prediction["predicted_result"] == "FileNotFoundError: missing.txt"


def test_sync_and_async_use_from_several_event_loops(embedded_server, tools):
    predictor = LLMOutcomePredictor(embedded_server.chat_model(), tools=tools, samples=1, seed=7)
    [a] = asyncio.run(predictor.aimagine(STATE, [CALLS[2]]))
    [b] = asyncio.run(predictor.aimagine(STATE, [CALLS[3]]))
    [c] = predictor.imagine(STATE, [{"name": "divide", "args": {"a": 3, "b": 3}}])
    for o in (a, b, c):
        assert o.status == "ok", o.reason
        assert_valid(o)


def test_server_killed_mid_run_marks_outcomes_unknown(tools):
    server = EmbeddedLLMServer(parallel=2).start()
    try:
        predictor = LLMOutcomePredictor(
            server.chat_model(timeout=30.0),
            tools=tools,
            samples=2,
            max_concurrency=2,
            timeout_s=30.0,
            max_retries=1,
            backoff_s=0.1,
        )
        candidates = [{"name": "divide", "args": {"a": i, "b": i % 3}} for i in range(5)]

        async def run() -> list[Outcome]:
            task = asyncio.ensure_future(predictor.aimagine(STATE, candidates))
            # Kill once the first answers are in and the next calls are in flight.
            while predictor.stats["calls"] < 3 and not task.done():
                await asyncio.sleep(0.05)
            server.kill()
            return await task

        outcomes = asyncio.run(run())
    finally:
        server.stop()
    assert len(outcomes) == len(candidates)
    for o in outcomes:
        assert_valid(o)
    unknown = [o for o in outcomes if o.status == "unknown"]
    assert unknown, "the kill came too late to affect any call"
    assert any("connection error" in o.reason for o in unknown)


def test_cli_predict_starts_the_embedded_model_itself(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.pop("WM_AGENTS_LLM_MODEL", None)
    cmd = [sys.executable, "-m", "wm_agents", "llm", "predict", "--tool", "read_file"]
    cmd += ["--args", '{"path": "missing.txt"}', "--context", "empty folder", "--json"]
    cmd += ["--samples", "1"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["status"] == "ok"
    assert {"predicted_result", "success_probability", "risk", "uncertainty", "reason"} <= set(
        summary
    )
    assert 0.0 <= summary["success_probability"] <= 1.0
    assert "embedded" in summary["model"]
    assert "Traceback" not in proc.stderr


def test_cli_serve_runs_until_interrupted(tmp_path):
    import signal
    import urllib.request

    from wm_agents.llm.server import find_free_port

    port = find_free_port()
    cmd = [sys.executable, "-m", "wm_agents", "llm", "serve", "--port", str(port)]
    cmd += ["--parallel", "1", "--ctx", "1024"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        healthy = False
        while time.monotonic() < deadline and proc.poll() is None and not healthy:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    healthy = r.status == 200
            except OSError:
                time.sleep(0.2)
        assert healthy
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert proc.wait(timeout=20) == 0
        out = proc.stdout.read().decode()
        assert f"127.0.0.1:{port}/v1" in out
        assert "Traceback" not in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_same_seed_gives_the_same_samples_twice(embedded_server, tools):
    """Samples are reproducible on the embedded server whatever is cached or decoded alongside:
    first both candidates together on prompts the server has not seen, then one at a time in
    the other order, with their prompts (and the shared prefix) already cached."""
    calls = [CALLS[1], CALLS[3]]

    def samples(outcomes: list[Outcome]) -> list[dict]:
        return [
            {k: s[k] for k in ("seed", "success_probability", "predicted_result", "side_effects")}
            for o in outcomes
            for s in o.prediction["samples"]
        ]

    state = STATE | {"context": "reproducibility run"}
    first = LLMOutcomePredictor(embedded_server.chat_model(), tools=tools, samples=2, seed=21)
    together = first.imagine(state, calls)
    second = LLMOutcomePredictor(embedded_server.chat_model(), tools=tools, samples=2, seed=21)
    apart = second.imagine(state, [calls[1]]) + second.imagine(state, [calls[0]])
    assert all(o.status == "ok" for o in together + apart), [o.reason for o in together + apart]
    assert second.stats["cache_hits"] == 0  # a new predictor: every sample came from the server
    assert samples(together) == samples([apart[1], apart[0]])
