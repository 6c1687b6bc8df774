"""The tool agent through the one planning graph: routing of every verdict, interrupts resumed
with a checkpointer (approve / edit / reject), proposing, and resuming a killed run from SQLite
with no tool executed twice."""

from __future__ import annotations

import json
import sqlite3

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command

import wm_agents.graph.builder as builder_module
from wm_agents.serialization import checkpoint_serializer
from wm_agents.testing import (
    FAILS,
    HARMS,
    SAFE,
    Reply,
    ScriptedChatModel,
    ScriptedToolCallingModel,
    scripted_predictor,
)
from wm_agents.tools import (
    FixedPlanProposer,
    LLMProposer,
    ToolAgentContext,
    create_tool_agent_graph,
    proposal_json_schema,
    trace_table,
)
from wm_agents.tools.persistence import open_sqlite


def make(tools, plan, rules=None, **ctx):
    predictor = scripted_predictor(rules or {}, tools=tools)
    return ToolAgentContext(
        proposer=FixedPlanProposer(plan), predictor=predictor, tools=tools, **ctx
    )


def run(graph, ctx, thread="t", payload=None):
    config = {"configurable": {"thread_id": thread}}
    return graph.invoke(payload if payload is not None else {"task": "do it"}, config, context=ctx)


def tool_messages(state):
    return [m for m in state["messages"] if isinstance(m, ToolMessage)]


def test_act_runs_the_tool_learns_and_answers(counting_tools):
    tools, runs = counting_tools
    ctx = make(tools, [[{"name": "read_note", "args": {"name": "a"}}], "all done"])
    out = run(create_tool_agent_graph().compile(), ctx)
    assert runs == {"read_note": 1}
    assert out["answer"] == "all done" and out["done"] is True
    assert [e.verdict for e in out["trace"]] == ["act"]
    entry = out["trace"][0]
    assert entry.real_success is True and "buy milk" in entry.real_result
    assert entry.prediction_error == pytest.approx(abs(entry.candidates[0].success_probability - 1))
    assert isinstance(out["messages"][-1], AIMessage)
    # Learned: the real outcome is experience now.
    ev = ctx.predictor.memory.evidence(
        {"task": "do it"}, {"name": "read_note", "args": {"name": "a"}}
    )
    assert ev.n_exact == 1


def test_refuse_explains_to_the_llm_and_the_agent_goes_on(counting_tools):
    tools, runs = counting_tools
    plan = [[{"name": "send_mail", "args": {"to": "x", "body": "y"}}], "gave up"]
    ctx = make(tools, plan, {"send_mail": FAILS})
    out = run(create_tool_agent_graph().compile(), ctx)
    assert runs == {}
    [msg] = tool_messages(out)
    assert msg.status == "error" and "Refused before running" in msg.content
    assert msg.tool_call_id == "call_0_0" and out["answer"] == "gave up"
    assert [e.verdict for e in out["trace"]] == ["refuse"]


def test_harmful_call_refused_but_safe_alternative_runs(counting_tools):
    tools, runs = counting_tools
    plan = [
        [
            {"name": "send_mail", "args": {"to": "all", "body": "x"}},
            {"name": "read_note", "args": {"name": "a"}},
        ],
        "ok",
    ]
    ctx = make(tools, plan, {"all": HARMS})
    out = run(create_tool_agent_graph().compile(), ctx)
    assert runs == {"read_note": 1}
    assert out["trace"][0].verdict == "act" and out["trace"][0].chosen == 1


def test_failed_call_is_refused_when_retried_from_experience(counting_tools):
    tools, runs = counting_tools
    missing = [{"name": "read_note", "args": {"name": "missing"}}]
    ctx = make(tools, [missing, missing, "done"])  # the LLM keeps predicting success
    out = run(create_tool_agent_graph().compile(), ctx)
    assert runs == {"read_note": 1}
    assert [e.verdict for e in out["trace"]] == ["act", "refuse"]
    assert out["trace"][0].real_success is False
    assert "already failed" in out["trace"][1].reason


@pytest.mark.parametrize(
    ("answer", "runs_expected", "human"),
    [
        ({"type": "approve"}, {"drop_table": 1}, "approve"),
        ("approve", {"drop_table": 1}, "approve"),
        ({"type": "edit", "args": {"table": "tmp"}}, {"drop_table": 1}, "edit"),
        ({"type": "reject", "message": "never"}, {}, "reject: never"),
    ],
)
def test_ask_interrupts_and_resumes_with_the_persons_answer(
    counting_tools, answer, runs_expected, human
):
    tools, runs = counting_tools
    ctx = make(tools, [[{"name": "drop_table", "args": {"table": "users"}}], "finished"])
    graph = create_tool_agent_graph().compile(checkpointer=InMemorySaver())
    out = run(graph, ctx)
    [intr] = out["__interrupt__"]
    assert intr.value["tool_call"]["name"] == "drop_table"
    assert "destructive" in intr.value["reason"] and runs == {}
    out = run(graph, ctx, payload=Command(resume=answer))
    assert runs == runs_expected and out["answer"] == "finished"
    entry = out["trace"][0]
    assert entry.verdict == "ask" and entry.human == human
    [msg] = tool_messages(out)
    if "reject" in human:
        assert msg.status == "error" and "rejected" in msg.content and "never" in msg.content
    elif human == "edit":
        assert msg.content == "dropped tmp" and entry.executed["args"] == {"table": "tmp"}
        assert entry.prediction_error is None  # the prediction was for another call
    else:
        assert msg.content == "dropped users"


def test_bad_resume_value_is_a_loud_error(counting_tools):
    tools, _ = counting_tools
    ctx = make(tools, [[{"name": "drop_table", "args": {"table": "t"}}]])
    graph = create_tool_agent_graph().compile(checkpointer=InMemorySaver())
    run(graph, ctx)
    with pytest.raises(ValueError, match="resume with"):
        run(graph, ctx, payload=Command(resume={"type": "maybe"}))


def test_unknown_prediction_asks_and_never_crashes(counting_tools):
    tools, runs = counting_tools
    ctx = make(
        tools,
        [[{"name": "send_mail", "args": {"to": "a", "body": "b"}}]],
        {"send_mail": Reply("not json")},
    )
    graph = create_tool_agent_graph().compile(checkpointer=InMemorySaver())
    out = run(graph, ctx)
    assert out["trace"][0].candidates[0].status == "unknown"
    assert "could not be predicted" in out["__interrupt__"][0].value["reason"]
    assert runs == {}


def test_never_simulated_tool_runs_without_imagining(counting_tools):
    tools, runs = counting_tools
    ctx = make(tools, [[{"name": "ping", "args": {}}], "pong received"])
    out = run(create_tool_agent_graph().compile(), ctx)
    assert runs == {"ping": 1} and ctx.predictor.stats["calls"] == 0
    assert out["trace"][0].candidates[0].status == "not simulated"


def test_max_steps_stops_the_agent(counting_tools):
    tools, runs = counting_tools
    ctx = make(tools, [[{"name": "ping", "args": {}}]] * 5, max_steps=2)
    out = run(create_tool_agent_graph().compile(), ctx)
    assert runs == {"ping": 2} and "max_steps=2" in out["answer"]


def test_structured_proposer_schema_and_run(counting_tools):
    tools, runs = counting_tools
    schema = proposal_json_schema([t for t in ctx_specs(tools)], 3)
    variants = schema["properties"]["tool_calls"]["items"]["anyOf"]
    assert [v["properties"]["name"]["enum"] for v in variants] == [
        ["read_note"],
        ["send_mail"],
        ["drop_table"],
        ["ping"],
    ]
    assert variants[0]["properties"]["args"]["properties"]["name"]["type"] == "string"
    assert schema["properties"]["tool_calls"]["maxItems"] == 3
    proposals = [
        {
            "tool_calls": [
                {"name": "read_note", "args": {"name": "a"}},
                {"name": "nope", "args": {}},
            ],
            "answer": "",
        },
        {"tool_calls": [], "answer": "the note says buy milk"},
    ]
    agent = ScriptedChatModel(script=[Reply(p) for p in proposals])
    ctx = ToolAgentContext(
        proposer=LLMProposer(agent), predictor=scripted_predictor({}, tools=tools), tools=tools
    )
    assert ctx.proposer.mode == "structured"
    out = run(create_tool_agent_graph().compile(), ctx)
    assert runs == {"read_note": 1} and out["answer"] == "the note says buy milk"
    assert out["candidates"] == [] and len(out["trace"][0].candidates) == 1
    # The second prompt shows the tool turn as text (no tool-call protocol needed).
    assert "buy milk" in agent.calls[1].user


def ctx_specs(tools):
    from wm_agents.llm.schemas import ToolSpec

    return [ToolSpec.from_any(t) for t in tools]


def test_native_proposer_and_model_faults_end_the_run_politely(counting_tools):
    tools, runs = counting_tools
    agent = ScriptedToolCallingModel(
        replies=[
            AIMessage("", tool_calls=[{"name": "read_note", "args": {"name": "a"}, "id": "c1"}]),
            AIMessage("finished natively"),
        ]
    )
    ctx = ToolAgentContext(
        proposer=LLMProposer(agent), predictor=scripted_predictor({}, tools=tools), tools=tools
    )
    assert ctx.proposer.mode == "native"
    out = run(create_tool_agent_graph().compile(), ctx)
    assert runs == {"read_note": 1} and out["answer"] == "finished natively"
    broken = ScriptedChatModel(script=Reply("{not json"))
    ctx = ToolAgentContext(
        proposer=LLMProposer(broken), predictor=scripted_predictor({}, tools=tools), tools=tools
    )
    out = run(create_tool_agent_graph().compile(), ctx)
    assert out["done"] and out["answer"].startswith("I could not go on")


def test_cartpole_and_tool_graphs_come_from_the_same_builder(monkeypatch):
    calls = []
    real = builder_module.build_planning_graph

    def spy(*args, **kwargs):
        calls.append(args[0].__name__)
        return real(*args, **kwargs)

    import wm_agents.graph.env_graph as env_graph
    import wm_agents.tools.graph as tool_graph

    monkeypatch.setattr(env_graph, "build_planning_graph", spy)
    monkeypatch.setattr(tool_graph, "build_planning_graph", spy)
    env = env_graph.create_env_planning_graph()
    tool = tool_graph.create_tool_agent_graph()
    assert calls == ["EnvPlanningState", "ToolAgentState"]
    core = {"propose", "imagine", "decide", "act", "learn"}
    assert core <= set(env.nodes) and core | {"ask", "refuse"} <= set(tool.nodes)


def test_missing_context_is_a_clear_error():
    with pytest.raises(ValueError, match="ToolAgentContext"):
        create_tool_agent_graph().compile().invoke({"task": "x"})


class CrashOnce:
    """A proposer that dies (like a killed process) the first time it reaches ``step``."""

    def __init__(self, plan, step):
        self.inner = FixedPlanProposer(plan)
        self.step = step
        self.crashed = False

    def propose(self, messages, tools, *, n, step):
        if step == self.step and not self.crashed:
            self.crashed = True
            raise RuntimeError("killed")
        return self.inner.propose(messages, tools, n=n, step=step)


def test_killed_run_resumes_from_sqlite_without_running_a_tool_twice(counting_tools, tmp_path):
    tools, runs = counting_tools
    plan = [
        [{"name": "read_note", "args": {"name": "a"}}],
        [{"name": "send_mail", "args": {"to": "b", "body": "c"}}],
        "done",
    ]
    db = tmp_path / "runs.sqlite"
    config = {"configurable": {"thread_id": "k"}}
    proposer = CrashOnce(plan, step=1)
    saver, store = open_sqlite(db)
    ctx = make(tools, plan)
    ctx.proposer = proposer
    graph = create_tool_agent_graph().compile(checkpointer=saver, store=store)
    with pytest.raises(RuntimeError, match="killed"):
        graph.invoke({"task": "do it"}, config, context=ctx)
    saver.conn.close()
    store.conn.close()
    assert runs == {"read_note": 1}

    # A new process: new connections, new graph, same file; continue from the checkpoint.
    saver, store = open_sqlite(db)
    graph = create_tool_agent_graph().compile(checkpointer=saver, store=store)
    out = graph.invoke(None, config, context=ctx)
    assert runs == {"read_note": 1, "send_mail": 1} and out["answer"] == "done"
    assert [e.verdict for e in out["trace"]] == ["act", "act"]
    # Decisions with their real outcomes are in the Store, for inspection and replay.
    items = store.search(("wm_agents", "tool_decisions", "k"))
    assert sorted(i.key for i in items) == ["00000", "00001"]
    assert items[0].value["real_result"]
    saver.conn.close()
    store.conn.close()


def test_run_stopped_after_act_resumes_at_learn(counting_tools, tmp_path):
    tools, runs = counting_tools
    db = str(tmp_path / "cp.sqlite")
    ctx = make(tools, [[{"name": "send_mail", "args": {"to": "b", "body": "c"}}], "sent"])
    config = {"configurable": {"thread_id": "x"}}
    conn = sqlite3.connect(db, check_same_thread=False)
    graph = create_tool_agent_graph().compile(
        checkpointer=SqliteSaver(conn, serde=checkpoint_serializer()), interrupt_after=["act"]
    )
    graph.invoke({"task": "mail"}, config, context=ctx)
    assert graph.get_state(config).next == ("learn",)
    conn.close()
    conn = sqlite3.connect(db, check_same_thread=False)
    graph = create_tool_agent_graph().compile(
        checkpointer=SqliteSaver(conn, serde=checkpoint_serializer())
    )
    out = graph.invoke(None, config, context=ctx)
    conn.close()
    assert runs == {"send_mail": 1} and out["answer"] == "sent"
    assert out["trace"][0].real_result == "sent to b"


def test_trace_is_a_table_and_json_rows(counting_tools):
    from rich.console import Console

    from wm_agents.tools import trace_rows

    tools, _ = counting_tools
    plan = [
        [
            {"name": "read_note", "args": {"name": "a"}},
            {"name": "send_mail", "args": {"to": "x", "body": "y"}},
        ],
        "ok",
    ]
    ctx = make(tools, plan, {"send_mail": FAILS})
    out = run(create_tool_agent_graph().compile(), ctx)
    console = Console(record=True, width=160)
    console.print(trace_table(out["trace"]))
    text = console.export_text()
    assert "read_note" in text and "act" in text and "buy milk" in text
    rows = trace_rows(out["trace"])
    assert [r["chosen"] for r in rows] == [True, False]
    json.dumps(rows, allow_nan=False)
    assert SAFE  # the default reply of the scripted predictor
