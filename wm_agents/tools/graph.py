"""The tool agent: the one planning graph with tool-call parts plugged in.

::

    propose ──> imagine ──> decide ──┬──> act ──> learn ──> propose ... (END when it answers)
    (agent LLM:  (LLM predictor,     ├──> ask     (interrupt: approve / edit / reject)
     N calls)     capped fan-out)    └──> refuse  (the reason, as a ToolMessage) ──> propose

Built by :func:`wm_agents.graph.builder.build_planning_graph`, the same builder as the CartPole
graph.  Heavy objects (proposer, predictor, tools, gate) travel in the runtime context
(:class:`ToolAgentContext`); the checkpointed state holds messages, candidates, outcomes, the
decision and the trace.  Every path that does not run a tool still answers the pending tool
call with a ``ToolMessage`` (refused, rejected), so the LLM sees why and the conversation stays
valid for native tool-calling models.

Resume: compile with a checkpointer (``SqliteSaver``); an ``ask`` pauses on ``interrupt()`` and
continues with ``graph.invoke(Command(resume={"type": "approve"}), config, context=ctx)``
(``{"type": "edit", "args": {...}}``, ``{"type": "reject", "message": "..."}``, or the plain
strings ``"approve"``/``"reject"``).  A run killed between steps continues with
``graph.invoke(None, config, context=ctx)`` from its last checkpoint; a finished ``act`` is
never run again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from wm_agents.core import Decision, Outcome, Transition
from wm_agents.graph.builder import build_planning_graph
from wm_agents.graph.nodes import make_decide_node
from wm_agents.llm.schemas import ToolSpec, message_text
from wm_agents.tools.gate import ToolGate, call_text, not_simulated_outcome
from wm_agents.tools.intents import (
    IntentLog,
    not_rerun_text,
    recovery,
    rerun_reason,
    store_scope,
)
from wm_agents.tools.propose import Proposer
from wm_agents.tools.summary import mark_human
from wm_agents.tools.trace import TraceEntry, merge_trace, trace_entry

__all__ = [
    "ToolAgentContext",
    "ToolAgentState",
    "ask_for_review",
    "blocked_message",
    "create_tool_agent_graph",
    "parse_review",
    "tool_result",
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
    def world_model(self) -> Any:
        return self.predictor

    @property
    def tool_node(self) -> ToolNode:
        """The ``ToolNode`` that runs the real tools (tool errors become error messages)."""
        if self._tool_node is None:
            self._tool_node = ToolNode(list(self.tools), handle_tool_errors=True)
        return self._tool_node

    def tool_specs(self) -> list[ToolSpec]:
        return [ToolSpec.from_any(t) for t in self.tools]


def tool_result(message: Any) -> tuple[str, bool]:
    """The text of a tool's result and whether it worked (``ToolMessage.status``)."""
    if isinstance(message, ToolMessage):
        return message_text(message), message.status != "error"
    if isinstance(message, Command):
        return f"command: {message.update!r:.300}", True
    return str(message), True


def ask_for_review(
    call: dict[str, Any], decision: Decision, prediction: dict[str, Any]
) -> tuple[str, dict[str, Any], str]:
    """``interrupt()`` with what a person needs to judge ``call``; returns the parsed answer.

    The graph's ask node and the middleware both ask through here, so a person (or a UI) sees
    one payload shape: ``{"type": "tool_approval", "tool_call", "reason", "predicted_result",
    "success_probability", "side_effects", "risk", "uncertainty", "allowed"}``.
    """
    answer = interrupt(
        {
            "type": "tool_approval",
            "tool_call": call,
            "reason": decision.reason,
            "predicted_result": prediction.get("predicted_result"),
            "success_probability": prediction.get("success_probability"),
            "side_effects": prediction.get("side_effects"),
            "risk": decision.risk,
            "uncertainty": decision.uncertainty,
            "allowed": ["approve", "edit", "reject"],
        }
    )
    return parse_review(answer, call)


def parse_review(answer: Any, call: dict[str, Any]) -> tuple[str, dict[str, Any], str]:
    """Read a person's answer to an ``ask``: ``(kind, call_to_run, message)``.

    Accepts ``"approve"``/``"reject"``, ``{"type": "approve"}``, ``{"type": "edit", "args":
    {...}}`` (or ``"edited_action": {"name", "args"}``), ``{"type": "reject", "message": ...}``.

    Raises:
        ValueError: for any other answer (a client bug, not a model mistake).
    """
    if isinstance(answer, str):
        answer = {"type": answer.strip().lower()}
    if not isinstance(answer, dict) or answer.get("type") not in ("approve", "edit", "reject"):
        raise ValueError(
            "resume with Command(resume={'type': 'approve'|'edit'|'reject', ...}), got "
            f"{answer!r:.200}"
        )
    kind = answer["type"]
    message = str(answer.get("message") or "")
    if kind == "edit":
        edited = answer.get("edited_action") or {}
        args = answer.get("args", edited.get("args"))
        if not isinstance(args, dict):
            raise ValueError("an edit needs 'args': {...} (or 'edited_action': {'name', 'args'})")
        name = edited.get("name") or call["name"]
        return kind, {**call, "name": name, "args": args}, message
    return kind, dict(call), message


def _llm_state(state: ToolAgentState, ctx: ToolAgentContext) -> dict[str, Any]:
    context = " ".join(x for x in (ctx.situation, state.get("context") or "") if x)
    return {
        "task": state.get("task") or "",
        "messages": list(state.get("messages") or []),
        "context": context,
        "tools": list(ctx.tools),
    }


def _answer_call(call: dict[str, Any], text: str, *, verdict: str) -> list[AnyMessage]:
    """The tool call as the agent's message, answered by ``text`` (an error ToolMessage that
    says, in ``additional_kwargs["wm_agents"]["verdict"]``, why it did not run)."""
    return [
        AIMessage(
            content="", tool_calls=[{"name": call["name"], "args": call["args"], "id": call["id"]}]
        ),
        blocked_message(call, text, verdict=verdict),
    ]


def blocked_message(call: dict[str, Any], text: str, *, verdict: str) -> ToolMessage:
    """The error ``ToolMessage`` for a call that did not run: ``refuse`` (the gate) or
    ``reject`` (a person), marked so summaries can tell it from a tool's own error."""
    return ToolMessage(
        content=text,
        name=call["name"],
        tool_call_id=call["id"],
        status="error",
        additional_kwargs={"wm_agents": {"verdict": verdict}},
    )


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
    if proposal.candidates:
        return {**update, "candidates": proposal.candidates, "done": False}
    text = proposal.answer or f"I could not go on: {proposal.error}"
    new = [*update.get("messages", []), AIMessage(text)]
    return {**update, "messages": new, "candidates": [], "done": True, "answer": text}


def _imagine(state: ToolAgentState, runtime: Runtime[ToolAgentContext]) -> dict[str, Any]:
    ctx = runtime.context
    candidates = list(state.get("candidates") or [])
    simulated = [c for c in candidates if ctx.gate.simulate(c["name"])]
    imagined: list[Outcome] = []
    if simulated:
        try:
            imagined = list(ctx.predictor.imagine(_llm_state(state, ctx), simulated))
        except Exception as exc:  # a broken predictor must not take the agent down
            logger.exception("imagining tool calls failed")
            imagined = [
                Outcome.unknown(c, f"predictor failed: {exc}", uncertainty=1.0) for c in simulated
            ]
        if len(imagined) != len(simulated):
            raise ValueError(
                f"the predictor returned {len(imagined)} outcomes for {len(simulated)} candidates"
            )
    it = iter(imagined)
    outcomes = [
        next(it) if ctx.gate.simulate(c["name"]) else not_simulated_outcome(c) for c in candidates
    ]
    return {"outcomes": outcomes}


_gate_decide = make_decide_node(replans_key=None)


def _decide(state: ToolAgentState, runtime: Runtime[ToolAgentContext]) -> dict[str, Any]:
    update = _gate_decide(state, runtime)
    entry = trace_entry(int(state.get("step") or 0), state["outcomes"], update["decision"])
    if runtime.context.on_decision is not None:
        runtime.context.on_decision(entry)
    return {**update, "trace": [entry]}


def _thread_id() -> str:
    from langgraph.config import get_config

    try:
        return str(get_config().get("configurable", {}).get("thread_id", "default"))
    except RuntimeError:  # called outside a graph run
        return "default"


def _act(state: ToolAgentState, runtime: Runtime[ToolAgentContext]) -> dict[str, Any]:
    """Run the chosen (or approved / edited) call for real, at most once (see
    :mod:`wm_agents.tools.intents`): an intent is written to the Store before the tool runs
    and its result after; a re-run of this node after a crash replays a finished call, re-runs
    an idempotent one, and asks a person before running any other call a second time."""
    ctx = runtime.context
    decision = state["decision"]
    assert decision is not None and decision.action is not None  # routed here on act / approve
    call = state.get("executed") or decision.action
    step = int(state.get("step") or 0)
    store = getattr(runtime, "store", None)
    log = IntentLog(store, _thread_id()) if store is not None else None
    key = IntentLog.key(call, step)
    intent = log.get(key) if log is not None else None
    ai = AIMessage(
        content="", tool_calls=[{"name": call["name"], "args": call["args"], "id": call["id"]}]
    )
    action = recovery(intent, ctx.gate.hints_for(call["name"]))
    if action == "replay":
        assert intent is not None and intent.result is not None
        logger.warning("replaying the recorded result of %s (it ran before a crash)", key)
        replayed = ToolMessage(
            content=intent.result,
            name=call["name"],
            tool_call_id=call["id"],
            status="success" if intent.success else "error",
        )
        return {"messages": [ai, replayed], "executed": call}
    if action == "ask":
        assert intent is not None
        kind, to_run, message = ask_for_review(
            call, decision.model_copy(update={"reason": rerun_reason(call, intent)}), {}
        )
        if kind == "reject":
            return {
                "messages": _answer_call(call, not_rerun_text(call, message), verdict="reject"),
                "executed": None,
                "human": f"reject (may already have run){': ' + message if message else ''}",
            }
        call = to_run
        ai = AIMessage(
            content="",
            tool_calls=[{"name": call["name"], "args": call["args"], "id": call["id"]}],
        )
    if log is not None:
        log.start(key, call)  # a store that cannot record the intent stops the call here
    out = ctx.tool_node.invoke({"messages": [ai]})
    human = state.get("human") if action == "run" else "approve (may already have run)"
    results = [mark_human(m, human) for m in (out["messages"] if isinstance(out, dict) else out)]
    if log is not None:
        last = next((m for m in results if isinstance(m, ToolMessage)), None)
        result, success = tool_result(last)
        log.finish(key, call, result, success)
    update: dict[str, Any] = {"messages": [ai, *results], "executed": call}
    if action == "ask":
        update["human"] = human
    return update


def _learn(state: ToolAgentState, runtime: Runtime[ToolAgentContext]) -> dict[str, Any]:
    """Record the real outcome as experience, compare it with the prediction, update the trace."""
    ctx = runtime.context
    step = int(state.get("step") or 0)
    decision = state["decision"]
    call = state.get("executed")
    assert decision is not None
    if call is None:
        # act did not run the call (a person declined to run it a second time after a
        # crash): nothing real happened, so there is nothing to learn.
        text = message_text(state["messages"][-1]) if state.get("messages") else ""
        entry = _current_entry(state, step).model_copy(
            update={"human": state.get("human"), "real_result": text[:500]}
        )
        _store_record(runtime, entry)
        return {"step": step + 1, "done": False, "trace": [entry]}
    last = next(
        (
            m
            for m in reversed(state["messages"])
            if isinstance(m, ToolMessage) and m.tool_call_id == call["id"]
        ),
        None,
    )
    result, success = tool_result(last)
    outcomes = state.get("outcomes") or []
    prediction = None
    if decision.chosen is not None and decision.chosen < len(outcomes):
        chosen = outcomes[decision.chosen]
        # An edited call is a different call: its prediction says nothing about this result.
        if (
            chosen.candidate.get("args") == call["args"]
            and chosen.candidate.get("name") == call["name"]
        ):
            prediction = chosen
    try:
        ctx.predictor.learn(
            [
                Transition(
                    state=_llm_state(state, ctx),
                    action={"name": call["name"], "args": call["args"]},
                    result=result,
                    success=success,
                    prediction=prediction
                    if prediction is not None
                    and prediction.prediction.get("simulated") is not False
                    else None,
                )
            ]
        )
    except Exception:  # experience is a bonus; a store hiccup must not lose the run
        logger.exception("recording the outcome of %s failed", call["name"])
    p = prediction.prediction.get("success_probability") if prediction is not None else None
    error = abs(float(p) - (1.0 if success else 0.0)) if isinstance(p, int | float) else None
    entry = _current_entry(state, step).model_copy(
        update={
            "executed": call,
            "human": state.get("human"),
            "real_result": result[:500],
            "real_success": success,
            "prediction_error": error,
        }
    )
    _store_record(runtime, entry)
    return {"step": step + 1, "done": False, "trace": [entry]}


def _current_entry(state: ToolAgentState, step: int) -> TraceEntry:
    for entry in reversed(state.get("trace") or []):
        if entry.id == str(step):
            return entry
    return TraceEntry(id=str(step), step=step, verdict="act")


def _store_record(runtime: Runtime[Any], entry: TraceEntry) -> None:
    """Keep the decision and its real outcome in the graph's Store (inspect / replay)."""
    store = getattr(runtime, "store", None)
    if store is None:
        return
    try:
        store.put(
            ("wm_agents", "tool_decisions", store_scope(_thread_id())),
            f"{entry.step:05d}",
            entry.model_dump(mode="json"),
            index=False,
        )
    except Exception:
        logger.exception("storing the decision record failed")


def _ask(state: ToolAgentState, runtime: Runtime[ToolAgentContext]) -> Command:
    decision = state["decision"]
    assert decision is not None and decision.action is not None
    call = decision.action
    outcomes = state.get("outcomes") or []
    pred = (
        outcomes[decision.chosen].prediction
        if decision.chosen is not None and decision.chosen < len(outcomes)
        else {}
    )
    kind, to_run, message = ask_for_review(call, decision, pred)
    step = int(state.get("step") or 0)
    human = kind if not message else f"{kind}: {message}"
    entry = _current_entry(state, step).model_copy(update={"human": human})
    if kind == "reject":
        text = f"A person rejected {call_text(call)}; it was not run." + (
            f" Reason: {message}" if message else ""
        )
        entry = entry.model_copy(update={"real_result": text})
        _store_record(runtime, entry)
        return Command(
            goto="propose",
            update={
                "messages": _answer_call(call, text, verdict="reject"),
                "step": step + 1,
                "human": human,
                "trace": [entry],
            },
        )
    return Command(goto="act", update={"executed": to_run, "human": human, "trace": [entry]})


def _refuse(state: ToolAgentState, runtime: Runtime[ToolAgentContext]) -> dict[str, Any]:
    decision = state["decision"]
    assert decision is not None
    candidates = state.get("candidates") or []
    call = decision.action or (candidates[0] if candidates else None)
    step = int(state.get("step") or 0)
    entry = _current_entry(state, step)
    _store_record(runtime, entry)
    update: dict[str, Any] = {"step": step + 1}
    if call is not None:
        update["messages"] = _answer_call(
            call,
            decision.reason + " The call was not run; try something else or answer.",
            verdict="refuse",
        )
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
