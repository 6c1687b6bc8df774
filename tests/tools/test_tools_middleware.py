"""Drop-in: the middleware inside ``create_agent`` and the ``ToolNode(wrap_tool_call=...)``
wrapper imagine each call first, block what is predicted to harm, let safe calls run, ask a
person (interrupt / resume), and record real outcomes for learning."""

from __future__ import annotations

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command

from wm_agents.testing import FAILS, HARMS, ScriptedToolCallingModel, scripted_predictor
from wm_agents.tools import ImagineToolCalls, ImagineToolCallsMiddleware, ToolGate


def calls(*pairs):
    return AIMessage(
        "", tool_calls=[{"name": n, "args": a, "id": f"c{i}"} for i, (n, a) in enumerate(pairs)]
    )


def test_middleware_blocks_a_harmful_call_and_lets_a_safe_one_run(counting_tools):
    tools, runs = counting_tools
    model = ScriptedToolCallingModel(
        replies=[
            calls(("send_mail", {"to": "everyone", "body": "x"}), ("read_note", {"name": "a"})),
            AIMessage("done"),
        ]
    )
    predictor = scripted_predictor({"everyone": HARMS}, tools=tools)
    middleware = ImagineToolCallsMiddleware(predictor)
    agent = create_agent(model, tools, middleware=[middleware])  # the one line
    out = agent.invoke({"messages": [HumanMessage("mail and read")]})
    assert runs == {"read_note": 1}
    by_id = {m.tool_call_id: m for m in out["messages"] if isinstance(m, ToolMessage)}
    assert by_id["c0"].status == "error" and "predicted to harm" in by_id["c0"].content
    assert "buy milk" in by_id["c1"].content
    verdicts = sorted(e.verdict for e in middleware.trace)
    assert verdicts == ["act", "refuse"]
    # The real result was recorded as experience (learning and calibration).
    assert predictor.calibration()["read_note"]["n"] == 1
    # The LLM saw the refusal as the tool's answer on its next turn.
    assert any("predicted to harm" in str(m.content) for m in model.prompts[1])


def test_middleware_asks_and_resumes_with_edit(counting_tools):
    tools, runs = counting_tools
    model = ScriptedToolCallingModel(
        replies=[calls(("drop_table", {"table": "users"})), AIMessage("ok")]
    )
    middleware = ImagineToolCallsMiddleware(scripted_predictor({}, tools=tools), tools=tools)
    agent = create_agent(model, tools, middleware=[middleware], checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "m"}}
    out = agent.invoke({"messages": [HumanMessage("drop it")]}, config)
    [intr] = out["__interrupt__"]
    assert intr.value["tool_call"]["args"] == {"table": "users"} and runs == {}
    out = agent.invoke(Command(resume={"type": "edit", "args": {"table": "tmp"}}), config)
    assert runs == {"drop_table": 1}
    [msg] = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert msg.content == "dropped tmp"
    assert middleware.trace[-1].human == "edit" and middleware.trace[-1].executed["args"] == {
        "table": "tmp"
    }


def test_toolnode_wrapper_refuses_a_failed_repeat_and_async_path_works(counting_tools):
    import asyncio

    tools, runs = counting_tools
    guard = ImagineToolCalls(scripted_predictor({}, tools=tools), ToolGate(tools=tools))
    node = ToolNode(
        tools, wrap_tool_call=guard, awrap_tool_call=guard.acall, handle_tool_errors=True
    )
    graph = StateGraph(MessagesState)
    graph.add_node("tools", node)
    graph.add_edge(START, "tools")
    app = graph.compile()
    task = HumanMessage("read the missing note")
    first = app.invoke({"messages": [task, calls(("read_note", {"name": "missing"}))]})
    assert runs == {"read_note": 1} and first["messages"][-1].status == "error"
    again = asyncio.run(
        app.ainvoke({"messages": [task, calls(("read_note", {"name": "missing"}))]})
    )
    assert runs == {"read_note": 1}
    assert "already failed" in again["messages"][-1].content
    assert [e.verdict for e in guard.trace] == ["act", "refuse"]


def test_wrapper_reject_and_failing_predictor(counting_tools):
    tools, runs = counting_tools

    class Broken:
        def imagine(self, state, candidates, *, horizon=1):
            raise RuntimeError("model down")

        def learn(self, transitions):
            raise RuntimeError("store down")

    guard = ImagineToolCalls(Broken())
    graph = StateGraph(MessagesState)
    graph.add_node("tools", ToolNode(tools, wrap_tool_call=guard))
    graph.add_edge(START, "tools")
    app = graph.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "w"}}
    out = app.invoke({"messages": [calls(("send_mail", {"to": "a", "body": "b"}))]}, config)
    assert "model down" in out["__interrupt__"][0].value["reason"]  # unknown -> ask
    out = app.invoke(Command(resume={"type": "reject", "message": "no"}), config)
    assert runs == {} and "rejected" in out["messages"][-1].content
    guard2 = ImagineToolCalls(scripted_predictor({"send_mail": FAILS}, tools=tools))
    out = guard2(
        type(
            "R",
            (),
            {
                "tool_call": {"name": "send_mail", "args": {"to": "a", "body": "b"}, "id": "1"},
                "tool": tools[1],
                "state": {"messages": []},
                "runtime": None,
            },
        )(),
        lambda req: ToolMessage("never", tool_call_id="1"),
    )
    assert out.status == "error" and "predicted to fail" in out.content
