"""At most once: a process killed (SIGKILL) in the middle of a tool call, after its side
effect, does not make the call run again silently on resume, through the tool-agent graph and
through the ``create_agent`` middleware; an idempotent tool re-runs; a finished call whose
checkpoint was lost is replayed from its recorded result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("crash_agent.py")


def agent(db: Path, mode: str, tool: str, answer: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(db), mode, tool, answer],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CRASH_BLOCK": "0"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def start_and_kill_mid_call(db: Path, mode: str, tool: str) -> Path:
    """Start a run whose tool blocks after its side effect; SIGKILL it there."""
    marker = db.with_suffix(".marker")
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(db), mode, tool, "start"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "CRASH_BLOCK": "1"},
    )
    try:
        deadline = time.monotonic() + 90
        while not (marker.exists() and marker.read_text()):
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the tool never ran"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert marker.read_text().count("x") == 1
    return marker


@pytest.mark.parametrize("mode", ["graph", "middleware"])
def test_killed_mid_call_asks_before_running_again(tmp_path, mode):
    db = tmp_path / "run.sqlite"
    marker = start_and_kill_mid_call(db, mode, "append")

    resumed = agent(db, mode, "append", "resume")
    assert resumed["pending"] is not None and "may already have run" in resumed["pending"]
    assert marker.read_text().count("x") == 1  # not re-run silently

    rejected = agent(db, mode, "append", "reject")
    assert rejected["ended"] and marker.read_text().count("x") == 1


@pytest.mark.parametrize("mode", ["graph", "middleware"])
def test_killed_mid_call_runs_again_when_a_person_approves(tmp_path, mode):
    db = tmp_path / "run.sqlite"
    marker = start_and_kill_mid_call(db, mode, "append")
    assert agent(db, mode, "append", "resume")["pending"] is not None
    approved = agent(db, mode, "append", "approve")
    assert approved["ended"] and marker.read_text().count("x") == 2


@pytest.mark.parametrize("mode", ["graph", "middleware"])
def test_idempotent_tool_reruns_after_a_kill(tmp_path, mode):
    db = tmp_path / "run.sqlite"
    marker = start_and_kill_mid_call(db, mode, "append_idempotent")
    resumed = agent(db, mode, "append_idempotent", "resume")
    assert resumed["ended"] and resumed["pending"] is None
    assert marker.read_text().count("x") == 2


def test_finished_call_with_lost_checkpoint_is_replayed_not_rerun(tmp_path):
    """The call finished and its result was recorded, but the process died before the graph
    saved its step: on resume the recorded result is used and the tool does not run."""
    from crash_agent import make_tools
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.store.memory import InMemoryStore

    from wm_agents.testing import scripted_predictor
    from wm_agents.tools import FixedPlanProposer, ToolAgentContext, create_tool_agent_graph
    from wm_agents.tools.intents import IntentLog

    marker = tmp_path / "m.marker"
    tools = make_tools(marker)
    store = InMemoryStore()
    plan = [[{"name": "append", "args": {"text": "x"}}], "done"]
    ctx = ToolAgentContext(
        proposer=FixedPlanProposer(plan),
        predictor=scripted_predictor({}, tools=tools),
        tools=tools,
    )
    # What a crashed process left behind: the intent and the result of decision 0's call.
    log = IntentLog(store, "t")
    call = {"name": "append", "args": {"text": "x"}, "id": "call_0_0"}
    log.start(IntentLog.key(call, 0), call)
    log.finish(IntentLog.key(call, 0), call, "appended x", True)
    graph = create_tool_agent_graph().compile(checkpointer=InMemorySaver(), store=store)
    out = graph.invoke({"task": "t"}, {"configurable": {"thread_id": "t"}}, context=ctx)
    assert not marker.exists()  # replayed, not run
    assert out["trace"][0].real_result == "appended x" and out["trace"][0].real_success
