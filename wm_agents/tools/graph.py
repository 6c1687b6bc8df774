"""The tool agent: the one planning graph with tool-call parts plugged in.

::

    propose ──> imagine ──> decide ──┬──> act ──> learn ──> propose ... (END when it answers)
    (agent LLM:  (world model,       ├──> ask     (interrupt: approve / edit / reject)
     N calls)     capped fan-out)    └──> refuse  (the reason, as a ToolMessage) ──> propose

Built by :func:`wm_agents.graph.builder.build_planning_graph`, the same builder as the CartPole
graph, with the public node factories (:func:`~wm_agents.graph.make_imagine_node`,
:func:`~wm_agents.graph.make_decide_node`); what happens to one call (the texts of a refusal
or rejection, the interrupt payload, at-most-once execution, what is learned) is the one tool
guard, :mod:`wm_agents.tools.guard`, shared with the middleware.  Heavy objects (proposer,
world model, tools, gate) travel in the runtime context (:class:`ToolAgentContext`); the
checkpointed state holds messages, candidates, outcomes, the decision and the trace.  Every
path that does not run a tool still answers the pending tool call with a ``ToolMessage``
(refused, rejected), so the LLM sees why and the conversation stays valid for native
tool-calling models.

Resume: compile with a checkpointer (``SqliteSaver``); an ``ask`` pauses on ``interrupt()`` and
continues with ``graph.invoke(Command(resume={"type": "approve"}), config, context=ctx)``
(``{"type": "edit", "args": {...}}``, ``{"type": "reject", "message": "..."}``, or the plain
strings ``"approve"``/``"reject"``).  A run killed between steps continues with
``graph.invoke(None, config, context=ctx)`` from its last checkpoint; a run killed during a
tool call does not run that call again unasked (:mod:`wm_agents.tools.intents`).
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from langgraph.runtime import Runtime
from langgraph.types import Command

from wm_agents.core import Decision, Outcome
from wm_agents.graph.builder import build_planning_graph
from wm_agents.graph.nodes import make_decide_node, make_imagine_node
from wm_agents.llm.schemas import ToolSpec, message_text
from wm_agents.tools.gate import ToolGate
from wm_agents.tools.guard import (
    GatedModel,
    InlineIO,
    arun_once,
    ask_for_review,
    blocked_message,
    matching_prediction,
    put_decision,
    real_transition,
    refuse_text,
    reject_text,
    run_inline,
    tool_result,
    with_real_outcome,
)
from wm_agents.tools.intents import IntentLog
from wm_agents.tools.propose import Proposer
from wm_agents.tools.trace import TraceEntry, merge_trace, trace_entry

__all__ = [
    "ToolAgentContext",
    "ToolAgentState",
    "create_tool_agent_graph",
]

logger = logging.getLogger(__name__)


class ToolAgentState(TypedDict, total=False):
    """Checkpointed state of one tool-agent run (small, serializable values only).

    Input: ``{"task": "..."}`` (becomes the first human message) and/or ``{"messages": [...]}``.
    """

    messages: Annotated[list[AnyMessage], add_messages]
    task: str
    context: str
    candidates: list[dict[str, Any]]
    outcomes: list[Outcome]
    decision: Decision | None
    trace: Annotated[list[TraceEntry], merge_trace]
    executed: dict[str, Any] | None
    human: str | None
    plan_searches: Annotated[list[dict[str, Any]], operator.add]
    step: int
    done: bool
    answer: str | None


@dataclass
class ToolAgentContext:
    """Heavy objects of the tool agent, passed as ``context=`` at invoke time.

    Attributes:
        proposer: proposes candidate tool calls (:class:`~wm_agents.tools.LLMProposer`, or any
            :class:`~wm_agents.tools.Proposer`).
        predictor: the world model over tool calls (:class:`~wm_agents.llm.LLMOutcomePredictor`).
        tools: the real tools (LangChain ``BaseTool``), run by a LangGraph ``ToolNode``.
        gate: the :class:`~wm_agents.tools.ToolGate` (hints and per-tool thresholds).
        n_candidates: candidates asked of the proposer per decision.
        max_steps: decisions per run before the agent is stopped.
        situation: what the predictor should know besides the task (e.g. "a sandbox folder");
            the state's ``context`` is added to it.
        on_decision: optional callback with each :class:`TraceEntry` (progress output).
    """

    proposer: Proposer
    predictor: Any
    tools: Sequence[Any]
    gate: ToolGate = field(default_factory=ToolGate)
    n_candidates: int = 3
    max_steps: int = 12
    situation: str = ""
    on_decision: Callable[[TraceEntry], None] | None = None
    _tool_node: ToolNode | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.n_candidates < 1 or self.max_steps < 1:
            raise ValueError("n_candidates and max_steps must be >= 1")
        for tool in self.tools:
            self.gate.register(tool)

    @property
    def world_model(self) -> GatedModel:
        """The predictor as the gate sees it (``never_simulate`` tools not imagined, a failing
        predictor's outcomes unknown): what the imagine node calls."""
        return GatedModel(self.predictor, self.gate)

    @property
    def tool_node(self) -> ToolNode:
        """The ``ToolNode`` that runs the real tools (tool errors become error messages)."""
        if self._tool_node is None:
            self._tool_node = ToolNode(list(self.tools), handle_tool_errors=True)
        return self._tool_node

    def tool_specs(self) -> list[ToolSpec]:
        return [ToolSpec.from_any(t) for t in self.tools]


def _llm_state(state: ToolAgentState, runtime: Runtime[ToolAgentContext]) -> dict[str, Any]:
    """What the world model knows of the run: task, messages, context and tools."""
    ctx = runtime.context
    context = " ".join(x for x in (ctx.situation, state.get("context") or "") if x)
    return {
        "task": state.get("task") or "",
        "messages": list(state.get("messages") or []),
        "context": context,
        "tools": list(ctx.tools),
    }


def _answer_call(call: dict[str, Any], text: str, *, verdict: str) -> list[AnyMessage]:
    """The tool call as the agent's message, answered by ``text`` (a blocked ToolMessage)."""
    return [
        AIMessage(
            content="", tool_calls=[{"name": call["name"], "args": call["args"], "id": call["id"]}]
        ),
        blocked_message(call, text, verdict=verdict),
    ]


# -- the nodes ---------------------------------------------------------------------------------


def _propose(state: ToolAgentState, runtime: Runtime[ToolAgentContext]) -> dict[str, Any]:
    ctx = runtime.context
    step = int(state.get("step") or 0)
    messages = list(state.get("messages") or [])
    update: dict[str, Any] = {"outcomes": [], "decision": None, "executed": None, "human": None}
    if not messages:
        if not state.get("task"):
            raise ValueError("the tool agent needs input {'task': ...} or {'messages': [...]}")
        first = HumanMessage(state["task"])
        messages = [first]
        update["messages"] = [first]
    if step >= ctx.max_steps:
        text = f"Stopped after {step} decisions (max_steps={ctx.max_steps})."
        return {
            **update,
            "messages": [AIMessage(text)],
            "candidates": [],
            "done": True,
            "answer": text,
        }
    proposal = ctx.proposer.propose(messages, ctx.tool_specs(), n=ctx.n_candidates, step=step)
    if proposal.search is not None:
        # The imagined plan tree of this decision, for the trace and Studio.
        update["plan_searches"] = [{"step": step, **proposal.search}]
    if proposal.candidates:
        return {**update, "candidates": proposal.candidates, "done": False}
    text = proposal.answer or f"I could not go on: {proposal.error}"
    new = [*update.get("messages", []), AIMessage(text)]
    return {**update, "messages": new, "candidates": [], "done": True, "answer": text}


_imagine = make_imagine_node(state_key=_llm_state)


def _trace_decision(
    state: ToolAgentState, runtime: Runtime[ToolAgentContext], decision: Decision
) -> dict[str, Any]:
    entry = trace_entry(int(state.get("step") or 0), state["outcomes"], decision)
    if runtime.context.on_decision is not None:
        runtime.context.on_decision(entry)
    return {"trace": [entry]}


_decide = make_decide_node(replans_key=None, extra=_trace_decision)


def _thread_id() -> str:
    from langgraph.config import get_config

    try:
        return str(get_config().get("configurable", {}).get("thread_id", "default"))
    except RuntimeError:  # called outside a graph run
        return "default"


def _chosen(state: ToolAgentState) -> Outcome | None:
    decision = state.get("decision")
    outcomes = state.get("outcomes") or []
    if decision is None or decision.chosen is None or decision.chosen >= len(outcomes):
        return None
    return outcomes[decision.chosen]


def _act(state: ToolAgentState, runtime: Runtime[ToolAgentContext]) -> dict[str, Any]:
    """Run the chosen (or approved / edited) call for real, at most once
    (:func:`~wm_agents.tools.guard.arun_once`)."""
    ctx = runtime.context
    decision = state["decision"]
    assert decision is not None and decision.action is not None  # routed here on act / approve
    call = state.get("executed") or decision.action
    step = int(state.get("step") or 0)
    store = getattr(runtime, "store", None)
    log = IntentLog(store, _thread_id()) if store is not None else None

    def execute(to_run: dict[str, Any]) -> Any:
        ai = _ai_call(to_run)
        out = ctx.tool_node.invoke({"messages": [ai]})
        results = out["messages"] if isinstance(out, dict) else out
        return next((m for m in results if isinstance(m, ToolMessage)), results[-1])

    ran = run_inline(
        arun_once(
            InlineIO(execute),
            log,
            IntentLog.key(call, step),
            call,
            ctx.gate,
            decision,
            human=state.get("human"),
        )
    )
    shown = ran.call or call
    update: dict[str, Any] = {
        "messages": [_ai_call(shown), ran.message],
        "executed": ran.call,
    }
    if ran.human is not None:
        update["human"] = ran.human
    return update


def _ai_call(call: dict[str, Any]) -> AIMessage:
    return AIMessage(
        content="", tool_calls=[{"name": call["name"], "args": call["args"], "id": call["id"]}]
    )


def _learn(state: ToolAgentState, runtime: Runtime[ToolAgentContext]) -> dict[str, Any]:
    """Record the real outcome as experience, compare it with the prediction, update the trace."""
    ctx = runtime.context
    step = int(state.get("step") or 0)
    call = state.get("executed")
    last = state["messages"][-1] if state.get("messages") else None
    entry = _current_entry(state, step)
    if call is None:
        # act did not run the call (a person declined to run it a second time after a
        # crash): nothing real happened, so there is nothing to learn.
        text = message_text(last) if last is not None else ""
        entry = entry.model_copy(update={"human": state.get("human"), "real_result": text[:500]})
    else:
        answer = next(
            (
                m
                for m in reversed(state["messages"])
                if isinstance(m, ToolMessage) and m.tool_call_id == call["id"]
            ),
            None,
        )
        result, success = tool_result(answer)
        prediction = matching_prediction(_chosen(state), call)
        try:
            ctx.predictor.learn(
                [real_transition(_llm_state(state, runtime), call, result, success, prediction)]
            )
        except Exception:  # experience is a bonus; a store hiccup must not lose the run
            logger.exception("recording the outcome of %s failed", call["name"])
        entry = with_real_outcome(
            entry, call, result, success, prediction, human=state.get("human")
        )
    put_decision(getattr(runtime, "store", None), _thread_id(), f"{step:05d}", entry)
    return {"step": step + 1, "done": False, "trace": [entry]}


def _current_entry(state: ToolAgentState, step: int) -> TraceEntry:
    for entry in reversed(state.get("trace") or []):
        if entry.id == str(step):
            return entry
    return TraceEntry(id=str(step), step=step, verdict="act")


def _ask(state: ToolAgentState, runtime: Runtime[ToolAgentContext]) -> Command:
    decision = state["decision"]
    assert decision is not None and decision.action is not None
    call = decision.action
    chosen = _chosen(state)
    review = ask_for_review(call, decision, chosen.prediction if chosen is not None else {})
    step = int(state.get("step") or 0)
    entry = _current_entry(state, step).model_copy(update={"human": review.human})
    if review.kind == "reject":
        text = reject_text(call, review.message)
        entry = entry.model_copy(update={"real_result": text})
        put_decision(getattr(runtime, "store", None), _thread_id(), f"{step:05d}", entry)
        return Command(
            goto="propose",
            update={
                "messages": _answer_call(call, text, verdict="reject"),
                "step": step + 1,
                "human": review.human,
                "trace": [entry],
            },
        )
    return Command(
        goto="act", update={"executed": review.call, "human": review.human, "trace": [entry]}
    )


def _refuse(state: ToolAgentState, runtime: Runtime[ToolAgentContext]) -> dict[str, Any]:
    decision = state["decision"]
    assert decision is not None
    candidates = state.get("candidates") or []
    call = decision.action or (candidates[0] if candidates else None)
    step = int(state.get("step") or 0)
    put_decision(
        getattr(runtime, "store", None), _thread_id(), f"{step:05d}", _current_entry(state, step)
    )
    update: dict[str, Any] = {"step": step + 1}
    if call is not None:
        update["messages"] = _answer_call(call, refuse_text(decision), verdict="refuse")
    return update


def create_tool_agent_graph(
    *, default_context: Callable[[], ToolAgentContext] | None = None
) -> Any:
    """The uncompiled tool-agent graph (``StateGraph``), built by ``build_planning_graph``.

    Compile it (``.compile(checkpointer=SqliteSaver(...), store=...)``; a checkpointer is
    needed for ``ask``) and invoke with ``{"task": ...}`` and ``context=ToolAgentContext(...)``.
    ``default_context`` builds a context (once, lazily) for runs that pass none, such as
    LangGraph Studio / ``langgraph dev``, whose clients can only send JSON.
    """
    return build_planning_graph(
        ToolAgentState,
        context_schema=ToolAgentContext,
        propose=_propose,
        imagine=_imagine,
        decide=_decide,
        act=_act,
        learn=_learn,
        ask=_ask,
        refuse=_refuse,
        after_refuse="propose",
        finish_from_propose=True,
        ask_destinations=("act", "propose"),
        default_context=default_context,
        context_hint="context=ToolAgentContext(proposer=..., predictor=..., tools=...) at invoke "
        "time",
    )
