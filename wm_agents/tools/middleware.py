"""Drop-in "imagine before executing" for agents that already exist.

* :class:`ImagineToolCalls`: a wrapper for LangGraph's ``ToolNode(tools,
  wrap_tool_call=ImagineToolCalls(predictor))`` (``awrap_tool_call=guard.acall`` for async);
* :class:`ImagineToolCallsMiddleware`: the same as an ``AgentMiddleware`` for
  ``langchain.agents.create_agent(model, tools, middleware=[...])``.

Before the real call the outcome is imagined by the predictor and the :class:`ToolGate` decides:
``act`` runs the tool; ``ask`` pauses on ``interrupt()`` (needs a checkpointer; resume with
``Command(resume={"type": "approve" | "edit" | "reject", ...})``); ``refuse`` returns an error
``ToolMessage`` with the reason, which the agent's LLM reads.  After a real call the result is
recorded as experience (learning and calibration), and every decision is appended to
``trace`` (and put in the graph's Store when there is one).  Each step is the one tool guard
(:mod:`wm_agents.tools.guard`) that the tool-agent graph runs too, written once: the sync hook
runs it inline, the async hook awaits it.

On resume after ``ask`` LangGraph re-runs the tool node, so the call is imagined again (the
predictor's cache makes the repeat free in the same process); nothing is executed or recorded
before the person's answer.

At most once: with a Store (``request.runtime.store``) every real call is bracketed by an
intent and a result record (:mod:`wm_agents.tools.intents`), keyed by the run's thread id and
the tool call; a tool node re-run after a crash replays a finished call, re-runs an idempotent
one, and asks a person before running any other call a second time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain.agents.middleware import AgentMiddleware
from langchain_core.messages import ToolMessage
from langgraph.types import Command

from wm_agents.tools.gate import ToolGate
from wm_agents.tools.guard import (
    AwaitIO,
    GuardIO,
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
from wm_agents.tools.trace import TraceEntry, trace_entry

__all__ = ["ImagineToolCalls", "ImagineToolCallsMiddleware"]

logger = logging.getLogger(__name__)


def _thread_id() -> str | None:
    from langgraph.config import get_config

    try:
        return get_config().get("configurable", {}).get("thread_id")
    except RuntimeError:  # outside a graph run
        return None


class ImagineToolCalls:
    """A ``ToolNode(wrap_tool_call=...)`` wrapper: imagine, gate, run at most once, learn.

    Args:
        predictor: the world model over tool calls (``imagine``/``aimagine``/``learn``, e.g.
            :class:`~wm_agents.llm.LLMOutcomePredictor`).
        gate: the :class:`ToolGate` (default: no hints, default thresholds); hints a tool
            declares in ``metadata["wm_hints"]`` are picked up on its first call.
        situation: what the predictor should know besides the conversation.
        task: the task text; by default the first human message of the state.
        tools: the tools a person's edit may switch to (an edit that renames the call runs the
            tool it names); every tool seen in a request is added.
    """

    def __init__(
        self,
        predictor: Any,
        gate: ToolGate | None = None,
        *,
        situation: str = "",
        task: str | None = None,
        tools: Sequence[Any] = (),
    ) -> None:
        self.predictor = predictor
        self.gate = gate if gate is not None else ToolGate()
        self.situation = situation
        self.task = task
        self._tools: dict[str, Any] = {}
        for tool in tools:
            self._remember(tool)
        self.trace: list[TraceEntry] = []
        """Every decision made, with the real result once known."""
        self._lock = threading.Lock()

    def __call__(
        self, request: Any, execute: Callable[[Any], ToolMessage | Command]
    ) -> ToolMessage | Command:
        """The ``wrap_tool_call`` hook: ``(ToolCallRequest, execute) -> ToolMessage | Command``."""
        io = InlineIO(lambda call: execute(self._override(request, call)))
        return run_inline(self._guard(request, io))

    async def acall(
        self, request: Any, execute: Callable[[Any], Awaitable[ToolMessage | Command]]
    ) -> ToolMessage | Command:
        """The ``awrap_tool_call`` hook (async twin of :meth:`__call__`)."""
        return await self._guard(
            request, AwaitIO(lambda call: execute(self._override(request, call)))
        )

    # -- the one flow ------------------------------------------------------------------------

    def _remember(self, tool: Any) -> None:
        self.gate.register(tool)
        if getattr(tool, "name", None):
            self._tools[str(tool.name)] = tool

    async def _guard(self, request: Any, io: GuardIO) -> Any:
        if request.tool is not None:
            self._remember(request.tool)
        tc = request.tool_call
        call = {"name": tc["name"], "args": dict(tc.get("args") or {}), "id": tc.get("id")}
        situation = self._situation(request)
        [outcome] = await io.imagine(self.predictor, self.gate, situation, [call])
        decision = self.gate.decide([outcome])
        entry = trace_entry(0, [outcome], decision)
        if decision.verdict == "refuse":
            text = refuse_text(decision)
            self._record(entry.model_copy(update={"real_result": text}), request)
            return blocked_message(call, text, verdict="refuse")
        human = None
        to_run = call
        if decision.verdict == "ask":
            review = ask_for_review(call, decision, outcome.prediction)
            human, to_run = review.human, review.call
            entry = entry.model_copy(update={"human": human})
            if review.kind == "reject":
                text = reject_text(call, review.message)
                self._record(entry.model_copy(update={"real_result": text}), request)
                return blocked_message(call, text, verdict="reject")
            if to_run["name"] != call["name"] and to_run["name"] not in self._tools:
                known = ", ".join(sorted(self._tools)) or "none"
                text = (
                    f"The edit names the tool {to_run['name']!r}, which this guard does not "
                    f"know (known: {known}; pass tools=[...]); it was not run."
                )
                self._record(entry.model_copy(update={"real_result": text}), request)
                return blocked_message(call, text, verdict="reject")
        log = self._intent_log(request)
        ran = await arun_once(
            io, log, self._intent_key(request, call), to_run, self.gate, decision, human=human
        )
        if ran.call is None:  # a person declined to run it again after a crash
            return ran.message
        result, success = tool_result(ran.message)
        prediction = matching_prediction(outcome, ran.call)
        self._record(
            with_real_outcome(entry, ran.call, result, success, prediction, human=ran.human),
            request,
        )
        if not ran.replayed:
            try:
                await io.learn(
                    self.predictor,
                    [real_transition(situation, ran.call, result, success, prediction)],
                )
            except Exception:
                logger.exception("recording the outcome of %s failed", ran.call["name"])
        return ran.message

    # -- pieces ------------------------------------------------------------------------------

    def _situation(self, request: Any) -> dict[str, Any]:
        state = request.state
        messages = (
            state.get("messages", []) if isinstance(state, dict) else getattr(state, "messages", [])
        )
        out: dict[str, Any] = {"messages": list(messages or []), "context": self.situation}
        if self.task:
            out["task"] = self.task
        if request.tool is not None:
            out["tools"] = [request.tool]
        return out

    def _record(self, entry: TraceEntry, request: Any) -> None:
        with self._lock:
            entry = entry.model_copy(update={"id": str(len(self.trace)), "step": len(self.trace)})
            self.trace.append(entry)
        store = getattr(getattr(request, "runtime", None), "store", None)
        key = f"{entry.step:05d}-{(entry.executed or entry.candidates[0].call).get('name')}"
        put_decision(store, f"middleware-{_thread_id() or 'default'}", key, entry)

    @staticmethod
    def _intent_log(request: Any) -> IntentLog | None:
        store = getattr(getattr(request, "runtime", None), "store", None)
        if store is None:
            return None
        return IntentLog(store, f"middleware-{_thread_id() or 'default'}")

    @staticmethod
    def _intent_key(request: Any, call: dict[str, Any]) -> str:
        """The call's id, prefixed by the position of the message that asked for it: some
        models reuse ids (``call_0`` every turn), and a re-run after a crash sees the same
        conversation, so the position tells a new call from a re-run of the same one."""
        state = request.state
        messages = (
            state.get("messages", []) if isinstance(state, dict) else getattr(state, "messages", [])
        ) or []
        position = len(messages)
        for i in range(len(messages) - 1, -1, -1):
            calls = getattr(messages[i], "tool_calls", None) or []
            if any(c.get("id") == call["id"] for c in calls):
                position = i
                break
        return IntentLog.key(call, position)

    def _override(self, request: Any, call: dict[str, Any]) -> Any:
        """The request for the call to run: an edit may change its arguments, and its tool
        (the request carries the tool object, so a renamed call needs the other tool)."""
        if (
            call["args"] == request.tool_call.get("args")
            and call["name"] == request.tool_call["name"]
        ):
            return request
        overrides: dict[str, Any] = {
            "tool_call": {**request.tool_call, "name": call["name"], "args": call["args"]}
        }
        if call["name"] != request.tool_call["name"]:
            overrides["tool"] = self._tools[call["name"]]
        return request.override(**overrides)


class ImagineToolCallsMiddleware(AgentMiddleware):
    """``create_agent(model, tools, middleware=[ImagineToolCallsMiddleware(predictor)])``:
    every tool call is imagined and gated before it runs (see :class:`ImagineToolCalls`).

    Args:
        predictor: the world model over tool calls.
        gate: the :class:`ToolGate` (hints, per-tool thresholds).
        situation: what the predictor should know besides the conversation.
        tools: the agent's tools: their ``metadata["wm_hints"]`` are known up front, and a
            person's edit may switch a call to any of them.
    """

    def __init__(
        self,
        predictor: Any,
        gate: ToolGate | None = None,
        *,
        situation: str = "",
        tools: Sequence[Any] = (),
    ) -> None:
        super().__init__()
        self.guard = ImagineToolCalls(predictor, gate, situation=situation, tools=tools)

    @property
    def trace(self) -> list[TraceEntry]:
        """Every decision made, with the real result once known."""
        return self.guard.trace

    def wrap_tool_call(
        self, request: Any, handler: Callable[[Any], ToolMessage | Command]
    ) -> ToolMessage | Command:
        """Imagine and gate the call, then run it with ``handler`` (or not)."""
        return self.guard(request, handler)

    async def awrap_tool_call(
        self, request: Any, handler: Callable[[Any], Awaitable[ToolMessage | Command]]
    ) -> ToolMessage | Command:
        """Async :meth:`wrap_tool_call`."""
        return await self.guard.acall(request, handler)
