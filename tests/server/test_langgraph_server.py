"""The LangGraph server end to end: ``langgraph dev`` with the project's langgraph.json (and
the Postgres variant) driven over HTTP with ``langgraph_sdk``, as Studio drives it."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from langgraph_sdk import get_sync_client

from tests.server.conftest import make_server
from tests.server.server_process import LangGraphServer

pytestmark = pytest.mark.server

BLOCKED = "will be blocked in a future version"
TASK = "Tidy the sandbox"


def _client(server: LangGraphServer) -> Any:
    return get_sync_client(url=server.url, timeout=300)


def _to_review(client: Any) -> str:
    """A new tool-agent thread run until it asks for review; returns its id."""
    thread = client.threads.create()["thread_id"]
    client.runs.wait(thread, "tool_agent", input={"task": TASK})
    state = client.threads.get_state(thread)
    assert state["next"] == ["ask"]
    (ask,) = state["interrupts"]
    assert ask["value"]["type"] == "tool_approval"
    assert ask["value"]["tool_call"]["name"] == "wipe_directory"
    return thread


def _tool_messages(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in values["messages"] if m["type"] == ToolMessage.model_fields["type"].default]


def test_cartpole_episode_over_http(sqlite_server):
    client = _client(sqlite_server)
    thread = client.threads.create()["thread_id"]
    out = client.runs.wait(thread, "cartpole", input={"seed": 0})
    assert out["done"] is True
    assert out["step"] > 20 and out["episode_return"] == float(out["step"])
    state = client.threads.get_state(thread)
    assert state["next"] == [] and state["values"]["step"] == out["step"]
    assert BLOCKED not in sqlite_server.output()


def test_tool_agent_review_approved_and_rejected_over_http(sqlite_server):
    client = _client(sqlite_server)
    # Both threads reach the review before either answer: they share the server's sandbox.
    approved, rejected = _to_review(client), _to_review(client)

    out = client.runs.wait(approved, "tool_agent", command={"resume": {"type": "approve"}})
    assert out["done"] is True
    assert "Approved by a person and ran: wipe_directory" in out["answer"]
    wipe = [m for m in _tool_messages(out) if m["name"] == "wipe_directory"]
    assert len(wipe) == 1 and wipe[0]["status"] == "success"

    out = client.runs.wait(
        rejected, "tool_agent", command={"resume": {"type": "reject", "message": "keep them"}}
    )
    assert out["done"] is True
    assert "Rejected by a person (not run): wipe_directory" in out["answer"]
    (wipe,) = [m for m in _tool_messages(out) if m["name"] == "wipe_directory"]
    assert "keep them" in wipe["content"]
    assert client.threads.get_state(rejected)["next"] == []
    assert BLOCKED not in sqlite_server.output()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_killed_while_waiting_for_review_resumes_without_running_a_tool_twice(
    backend, request, tmp_path
):
    """SIGKILL while the tool agent waits for review, restart, approve: the run goes on from
    its checkpoint, the calls made before the crash are not made again, the approved one runs
    once; and no start leaves a sandbox copy behind."""
    uri = request.getfixturevalue("postgres_uri") if backend == "postgres" else None
    server = make_server(tmp_path, backend, uri)
    server.start()
    try:
        client = _client(server)
        thread = _to_review(client)
        intents = ["wm_agents", "tool_intents", thread]
        before = {i["key"]: i["value"] for i in client.store.search_items(intents)["items"]}
        assert before and all(
            v["pid"] == server.proc.pid and v["finished_at"] for v in before.values()
        )
        first_pid = server.proc.pid

        server.kill()
        server.start()
        assert server.proc.pid != first_pid
        client = _client(server)
        # The dev server keeps its list of threads in memory (flushed every few seconds): a
        # thread made just before the crash may be missing from it, while its checkpoints are
        # in the database.  Creating it again with its id finds them.
        client.threads.create(thread_id=thread, if_exists="do_nothing", graph_id="tool_agent")
        assert client.threads.get_state(thread)["next"] == ["ask"]
        out = client.runs.wait(thread, "tool_agent", command={"resume": {"type": "approve"}})
        assert out["done"] is True
        assert "Approved by a person and ran: wipe_directory" in out["answer"]

        after = {i["key"]: i["value"] for i in client.store.search_items(intents)["items"]}
        assert {k: after[k] for k in before} == before  # not run again, not even started
        (new,) = set(after) - set(before)
        assert after[new]["call"]["name"] == "wipe_directory"
        assert after[new]["pid"] == server.proc.pid and after[new]["finished_at"]
        calls = Counter(m["tool_call_id"] for m in _tool_messages(out))
        assert calls and max(calls.values()) == 1
        assert BLOCKED not in server.output()
    finally:
        server.stop()
    api = tmp_path / ".langgraph_api"
    assert (api / "wm-agents-sandbox").is_dir()
    assert list((api / "wm-agents-sandbox.scratch").iterdir()) == []
    assert list((tmp_path / "tmp").iterdir()) == []
