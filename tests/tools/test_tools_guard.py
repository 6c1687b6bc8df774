"""One tool guard: the tool-agent graph, the ``create_agent`` middleware (sync) and the
``ToolNode`` wrapper (async) refuse, ask, reject and run with the same texts, the same
interrupt payload and the same learning, because they run the same code
(:mod:`wm_agents.tools.guard`)."""

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

from wm_agents.testing import FAILS, ScriptedToolCallingModel, scripted_predictor
from wm_agents.tools import (
    FixedPlanProposer,
    ImagineToolCalls,
    ImagineToolCallsMiddleware,
    ToolAgentContext,
    ToolGate,
    create_tool_agent_graph,
)

PATHS = ("graph", "middleware", "toolnode-async")


class Runner:
    """Drive one tool call through one of the three paths; returns the ToolMessage the agent
    saw for it, and the pending interrupt payload (if any)."""

    def __init__(self, path: str, tools, predictor, call: dict) -> None:
        self.path, self.call = path, {**call, "id": "call_0_0"}
        self.config = {"configurable": {"thread_id": path}}
        gate = ToolGate(tools=tools)
        if path == "graph":
            plan = [[{"name": call["name"], "args": call["args"]}], "done"]
            self.ctx = ToolAgentContext(
                proposer=FixedPlanProposer(plan), predictor=predictor, tools=tools, gate=gate
            )
            self.app = create_tool_agent_graph().compile(checkpointer=InMemorySaver())
            self.first = {"task": "t"}
        elif path == "middleware":
            model = ScriptedToolCallingModel(
                replies=[AIMessage("", tool_calls=[self.call]), AIMessage("done")]
            )
            middleware = ImagineToolCallsMiddleware(predictor, gate, tools=tools)
            self.app = create_agent(
                model, tools, middleware=[middleware], checkpointer=InMemorySaver()
            )
            self.first = {"messages": [HumanMessage("t")]}
        else:
            guard = ImagineToolCalls(predictor, gate, tools=tools)
            graph = StateGraph(MessagesState)
            graph.add_node("tools", ToolNode(tools, awrap_tool_call=guard.acall))
            graph.add_edge(START, "tools")
            self.app = graph.compile(checkpointer=InMemorySaver())
            self.first = {"messages": [HumanMessage("t"), AIMessage("", tool_calls=[self.call])]}

    def invoke(self, payload) -> dict:
        kwargs = {"context": self.ctx} if self.path == "graph" else {}
        if self.path == "toolnode-async":
            return asyncio.run(self.app.ainvoke(payload, self.config, **kwargs))
        return self.app.invoke(payload, self.config, **kwargs)

    def start(self) -> tuple[ToolMessage | None, dict | None]:
        return self._seen(self.invoke(self.first))

    def resume(self, answer) -> tuple[ToolMessage | None, dict | None]:
        return self._seen(self.invoke(Command(resume=answer)))

    @staticmethod
    def _seen(out: dict) -> tuple[ToolMessage | None, dict | None]:
        interrupts = out.get("__interrupt__") or []
        tool_messages = [m for m in out["messages"] if isinstance(m, ToolMessage)]
        return (tool_messages[-1] if tool_messages else None), (
            interrupts[0].value if interrupts else None
        )


@pytest.mark.parametrize("path", PATHS)
def test_refused_call_reads_the_same_on_every_path(counting_tools, path):
    tools, runs = counting_tools
    predictor = scripted_predictor({"send_mail": FAILS}, tools=tools)
    runner = Runner(path, tools, predictor, {"name": "send_mail", "args": {"to": "a", "body": "b"}})
    message, pending = runner.start()
    assert pending is None and runs == {}
    assert message.status == "error"
    assert message.additional_kwargs["wm_agents"]["verdict"] == "refuse"
    assert message.content.startswith("Refused before running: every candidate")
    assert message.content.endswith("The call was not run; try something else or answer.")


@pytest.mark.parametrize("path", PATHS)
def test_ask_payload_and_rejection_read_the_same_on_every_path(counting_tools, path):
    tools, runs = counting_tools
    predictor = scripted_predictor({}, tools=tools)
    runner = Runner(path, tools, predictor, {"name": "drop_table", "args": {"table": "users"}})
    _, pending = runner.start()
    assert set(pending) == {
        "type",
        "tool_call",
        "reason",
        "predicted_result",
        "success_probability",
        "side_effects",
        "risk",
        "uncertainty",
        "allowed",
    }
    assert pending["type"] == "tool_approval" and "declared destructive" in pending["reason"]
    assert pending["tool_call"]["args"] == {"table": "users"}
    message, pending = runner.resume({"type": "reject", "message": "not today"})
    assert pending is None and runs == {}
    assert message.content == (
        'A person rejected drop_table({"table": "users"}); it was not run. Reason: not today'
    )
    assert message.additional_kwargs["wm_agents"]["verdict"] == "reject"


@pytest.mark.parametrize("path", PATHS)
def test_approved_call_runs_once_and_is_learned_on_every_path(counting_tools, path):
    tools, runs = counting_tools
    predictor = scripted_predictor({}, tools=tools)
    runner = Runner(path, tools, predictor, {"name": "drop_table", "args": {"table": "tmp"}})
    runner.start()
    message, pending = runner.resume({"type": "approve"})
    assert pending is None and runs == {"drop_table": 1}
    assert message.status == "success" and message.content == "dropped tmp"
    assert message.additional_kwargs["wm_agents"]["human"] == "approve"
    assert predictor.calibration()["drop_table"]["n"] == 1  # prediction vs reality scored


@pytest.mark.parametrize("path", PATHS)
def test_an_edit_that_renames_the_tool_does_not_inherit_the_old_prediction(path):
    """The prediction was for ``delete(path=a)``; the person ran ``archive(path=a)``: same
    arguments, another tool.  Its real outcome is experience, but not a score of the delete's
    prediction (the middleware used to compare the arguments only)."""
    runs: list[str] = []

    def delete(path: str) -> str:
        """Delete a file."""
        runs.append("delete")
        return f"deleted {path}"

    def archive(path: str) -> str:
        """Archive a file."""
        runs.append("archive")
        return f"archived {path}"

    tools = [
        StructuredTool.from_function(delete, metadata={"wm_hints": {"destructive": True}}),
        StructuredTool.from_function(archive),
    ]
    predictor = scripted_predictor({}, tools=tools)
    runner = Runner(path, tools, predictor, {"name": "delete", "args": {"path": "a"}})
    runner.start()
    edit = {"type": "edit", "edited_action": {"name": "archive", "args": {"path": "a"}}}
    message, _ = runner.resume(edit)
    assert runs == ["archive"] and message.content == "archived a"
    assert "archive" not in predictor.calibration()  # no prediction was made for it
    evidence = predictor.memory.evidence({"task": "t"}, {"name": "archive", "args": {"path": "a"}})
    assert evidence.n_similar >= 1  # but the real outcome is kept as experience


def test_an_edit_to_a_tool_the_wrapper_does_not_know_is_not_run(counting_tools):
    tools, runs = counting_tools
    guard = ImagineToolCalls(scripted_predictor({}, tools=tools))  # no tools given up front
    graph = StateGraph(MessagesState)
    graph.add_node("tools", ToolNode(tools, wrap_tool_call=guard))
    graph.add_edge(START, "tools")
    app = graph.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "u"}}
    call = {"name": "drop_table", "args": {"table": "x"}, "id": "c0"}
    app.invoke({"messages": [AIMessage("", tool_calls=[call])]}, config)
    edit = {"type": "edit", "edited_action": {"name": "read_note", "args": {"name": "x"}}}
    out = app.invoke(Command(resume=edit), config)
    assert runs == {} and "does not know" in out["messages"][-1].content
