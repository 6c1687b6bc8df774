"""The composite tool world model with a real folder simulator, through the three guarded
paths (the tool-agent graph, the ``create_agent`` middleware, the async ``ToolNode`` wrapper):
a sandbox call is simulated exactly and the gate reads its side effects (a lossy delete asks
with the numbers, a lossless write runs), a tool that cannot be simulated goes to the LLM, and
reality matches the simulation for every call that ran."""

from __future__ import annotations

import asyncio

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import StructuredTool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command

from wm_agents.simulate import FolderSimulator
from wm_agents.testing import ScriptedToolCallingModel, scripted_predictor
from wm_agents.tools import (
    FixedPlanProposer,
    ImagineToolCalls,
    ImagineToolCallsMiddleware,
    ToolAgentContext,
    ToolGate,
    create_tool_agent_graph,
    make_sandbox_tools,
)
from wm_agents.tools.composite import CompositeToolModel

PATHS = ("graph", "middleware", "toolnode-async")


@pytest.fixture
def world(tmp_path):
    """A sandbox with two files, its tools plus ``send_mail`` (not simulatable), and the
    composite model over a folder simulator and a scripted LLM."""
    root = tmp_path / "sandbox"
    root.mkdir()
    (root / "notes.txt").write_text("keep these notes\n")
    (root / "old.log").write_text("2024 log\n")
    sent: list[str] = []

    def send_mail(to: str) -> str:
        """Send an e-mail."""
        sent.append(to)
        return f"sent to {to}"

    tools = [*make_sandbox_tools(root), StructuredTool.from_function(send_mail)]
    llm = scripted_predictor({}, tools=tools)
    simulator = FolderSimulator(root, make_sandbox_tools, tools=tools)
    model = CompositeToolModel(simulators=[simulator], llm=llm)
    yield root, tools, model, sent
    model.close()


def drive(path: str, tools, model, calls, answer=None):
    """Run ``calls`` (one decision each) through a path; returns (tool messages, trace)."""
    gate = ToolGate(tools=tools)
    config = {"configurable": {"thread_id": path}}
    ai = [AIMessage("", tool_calls=[{**c, "id": f"call_{i}_0"}]) for i, c in enumerate(calls)]
    if path == "graph":
        ctx = ToolAgentContext(
            proposer=FixedPlanProposer([[c] for c in calls] + ["done"]),
            predictor=model,
            tools=tools,
            gate=gate,
        )
        app = create_tool_agent_graph().compile(checkpointer=InMemorySaver())

        def invoke(payload):
            return app.invoke(payload, config, context=ctx)

        first, trace = {"task": "tidy"}, None
    elif path == "middleware":
        middleware = ImagineToolCallsMiddleware(model, gate, tools=tools)
        agent = create_agent(
            ScriptedToolCallingModel(replies=[*ai, AIMessage("done")]),
            tools,
            middleware=[middleware],
            checkpointer=InMemorySaver(),
        )

        def invoke(payload):
            return agent.invoke(payload, config)

        first, trace = {"messages": [HumanMessage("tidy")]}, middleware.trace
    else:
        guard = ImagineToolCalls(model, gate, tools=tools)
        graph = StateGraph(MessagesState)
        graph.add_node("tools", ToolNode(tools, awrap_tool_call=guard.acall))
        graph.add_edge(START, "tools")
        app = graph.compile(checkpointer=InMemorySaver())

        def invoke(payload):
            return asyncio.run(app.ainvoke(payload, config))

        assert len(calls) == 1
        first, trace = {"messages": [HumanMessage("tidy"), *ai]}, guard.trace
    out = invoke(first)
    pending = [i.value for i in out.get("__interrupt__") or []]
    while out.get("__interrupt__"):
        out = invoke(Command(resume=answer))
    messages = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    return messages, pending, out.get("trace") if trace is None else trace


@pytest.mark.parametrize("path", PATHS)
def test_a_lossy_delete_is_asked_with_the_numbers_and_runs_as_simulated(world, path):
    root, tools, model, _ = world
    call = {"name": "delete_file", "args": {"path": "old.log"}}
    messages, pending, trace = drive(path, tools, model, [call], answer={"type": "approve"})
    [ask] = pending
    assert ask["reason"].startswith("the simulation shows: deleted 1 file (9 B")
    assert "lost for good" in ask["reason"]
    assert ask["side_effects"]["totals"]["files_deleted"] == 1
    assert not (root / "old.log").exists() and messages[-1].content == "deleted old.log"
    entry = trace[-1]
    assert entry.candidates[0].source == "simulated" and entry.exact_match is True


@pytest.mark.parametrize("path", PATHS)
def test_a_write_that_loses_nothing_runs_without_asking(world, path):
    root, tools, model, _ = world
    call = {"name": "write_file", "args": {"path": "summary.txt", "content": "short"}}
    _messages, pending, trace = drive(path, tools, model, [call])
    assert pending == [] and (root / "summary.txt").read_text() == "short"
    assert trace[-1].verdict == "act" and "nothing is lost" in trace[-1].reason
    assert trace[-1].exact_match is True


@pytest.mark.parametrize("path", PATHS)
def test_a_tool_that_cannot_be_simulated_goes_to_the_llm(world, path):
    _, tools, model, sent = world
    call = {"name": "send_mail", "args": {"to": "ada@example.com"}}
    _messages, _pending, trace = drive(path, tools, model, [call], answer={"type": "approve"})
    candidate = trace[-1].candidates[0]
    assert candidate.source == "llm" and trace[-1].exact_match is None
    assert sent == ["ada@example.com"]  # the scripted LLM predicts success: it runs


def test_the_real_folder_is_never_touched_by_imagination(world):
    root, _tools, model, _ = world
    before = {p.name: p.read_bytes() for p in root.iterdir()}
    plans = [
        [{"name": "delete_file", "args": {"path": "notes.txt"}}],
        [{"name": "wipe_directory", "args": {"path": "."}}],
        [
            {"name": "archive_files", "args": {"paths": ["old.log"], "archive": "b.zip"}},
            {"name": "delete_file", "args": {"path": "old.log"}},
        ],
    ]
    outcomes = model.imagine({"task": "t"}, plans, horizon=2)
    assert [o.prediction["reversible"] for o in outcomes] == [False, False, True]
    assert {p.name: p.read_bytes() for p in root.iterdir()} == before
