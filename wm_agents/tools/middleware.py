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
``trace`` (and put in the graph's Store when there is one).

On resume after ``ask`` LangGraph re-runs the tool node, so the call is imagined again (the
predictor's cache makes the repeat free in the same process); nothing is executed or recorded
before the person's answer.

At most once: with a Store (``request.runtime.store``) every real call is bracketed by an
intent and a result record (:mod:`wm_agents.tools.intents`), keyed by the run's thread id and
the tool call id; a tool node re-run after a crash replays a finished call, re-runs an
idempotent one, and asks a person before running any other call a second time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain.agents.middleware import AgentMiddleware
from langchain_core.messages import ToolMessage
from langgraph.types import Command

from wm_agents.core import Decision, Outcome, Transition
from wm_agents.tools.gate import ToolGate, call_text, not_simulated_outcome
from wm_agents.tools.graph import ask_for_review, blocked_message, tool_result
from wm_agents.tools.intents import Intent, IntentLog, not_rerun_text, recovery, rerun_reason
from wm_agents.tools.summary import mark_human
from wm_agents.tools.trace import TraceEntry, trace_entry

__all__ = ["ImagineToolCalls", "ImagineToolCallsMiddleware"]

logger = logging.getLogger(__name__)


class ImagineToolCalls:
    """A ``ToolNode(wrap_tool_call=...)`` wrapper: imagine, gate, run, learn.

    Args:
        predictor: the world model over tool calls (``imagine``/``aimagine``/``learn``/
            ``alearn``, e.g. :class:`~wm_agents.llm.LLMOutcomePredictor`).
        gate: the :class:`ToolGate` (default: no hints, default thresholds); hints a tool
            declares in ``metadata["wm_hints"]`` are picked up on its first call.
        situation: what the predictor should know besides the conversation.
        task: the task text; by default the first human message of the state.
    """

    def __init__(
        self,
        predictor: Any,
        gate: ToolGate | None = None,
        *,
        situation: str = "",
        task: str | None = None,
    ) -> None:
        self.predictor = predictor
        self.gate = gate if gate is not None else ToolGate()
        self.situation = situation
        self.task = task
        self.trace: list[TraceEntry] = []
        """Every decision made, with the real result once known."""
        self._lock = threading.Lock()

    # -- shared pieces (sync and async differ only in how they imagine, execute and learn) ----

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

    def _call(self, request: Any) -> dict[str, Any]:
        if request.tool is not None:
            self.gate.register(request.tool)
        tc = request.tool_call
        return {"name": tc["name"], "args": dict(tc.get("args") or {}), "id": tc.get("id")}

    def _review(
        self, call: dict[str, Any], outcome: Outcome, decision: Decision
    ) -> tuple[str, dict[str, Any], str]:
        return ask_for_review(call, decision, outcome.prediction)

    def _blocked(self, call: dict[str, Any], text: str, verdict: str = "refuse") -> ToolMessage:
        return blocked_message(call, text, verdict=verdict)

    @staticmethod
    def _intent_log(request: Any) -> IntentLog | None:
        store = getattr(getattr(request, "runtime", None), "store", None)
        if store is None:
            return None
        from langgraph.config import get_config

        try:
            thread = get_config().get("configurable", {}).get("thread_id")
        except RuntimeError:
            thread = None
        return IntentLog(store, f"middleware-{thread or 'default'}")

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

    def _recover(
        self, call: dict[str, Any], intent: Intent | None, decision: Decision
    ) -> tuple[dict[str, Any] | None, ToolMessage | None]:
        """After a crash: ``(call_to_run, None)``, or ``(None, message)`` to return instead of
        running (a replayed result, or a person's refusal to run it again)."""
        action = recovery(intent, self.gate.hints_for(call["name"]))
        if action == "run":
            return call, None
        assert intent is not None
        if action == "replay":
            logger.warning("replaying the recorded result of %s (it ran before a crash)", call)
            return None, ToolMessage(
                content=intent.result or "",
                name=call["name"],
                tool_call_id=call["id"],
                status="success" if intent.success else "error",
            )
        kind, to_run, message = ask_for_review(
            call, decision.model_copy(update={"reason": rerun_reason(call, intent)}), {}
        )
        if kind == "reject":
            return None, self._blocked(call, not_rerun_text(call, message), "reject")
        return to_run, None

    def _record(self, entry: TraceEntry, request: Any) -> None:
        with self._lock:
            entry = entry.model_copy(update={"id": str(len(self.trace)), "step": len(self.trace)})
            self.trace.append(entry)
        store = getattr(getattr(request, "runtime", None), "store", None)
        if store is not None:
            try:
                store.put(
                    ("wm_agents", "tool_decisions", "middleware"),
                    f"{entry.step:05d}-{call_text(entry.executed or {}, 40)}",
                    entry.model_dump(mode="json"),
                    index=False,
                )
            except Exception:
                logger.exception("storing the decision record failed")

    def _transition(
        self, request: Any, call: dict[str, Any], outcome: Outcome, result: str, success: bool
    ) -> Transition:
        same = (
            outcome.candidate.get("args") == call["args"]
            and outcome.prediction.get("simulated") is not False
        )
        return Transition(
            state=self._situation(request),
            action={"name": call["name"], "args": call["args"]},
            result=result,
            success=success,
            prediction=outcome if same and outcome.is_known else None,
        )

    def _plan(self, outcome: Outcome) -> tuple[Decision, TraceEntry]:
        decision = self.gate.decide([outcome])
        return decision, trace_entry(0, [outcome], decision)

    def _gate(
        self,
        request: Any,
        call: dict[str, Any],
        outcome: Outcome,
        decision: Decision,
        entry: TraceEntry,
    ) -> tuple[dict[str, Any] | None, TraceEntry, ToolMessage | None]:
        """What to run after the gate (and a person) spoke: ``(call, entry, blocked_message)``."""
        if decision.verdict == "refuse":
            text = decision.reason + " The call was not run; try something else or answer."
            return None, entry.model_copy(update={"real_result": text}), self._blocked(call, text)
        if decision.verdict == "ask":
            kind, to_run, message = self._review(call, outcome, decision)
            human = kind if not message else f"{kind}: {message}"
            entry = entry.model_copy(update={"human": human})
            if kind == "reject":
                text = f"A person rejected {call_text(call)}; it was not run." + (
                    f" Reason: {message}" if message else ""
                )
                return (
                    None,
                    entry.model_copy(update={"real_result": text}),
                    self._blocked(call, text, "reject"),
                )
            return to_run, entry, None
        return call, entry, None

    def _finish(
        self, request: Any, call: dict[str, Any], outcome: Outcome, entry: TraceEntry, raw: Any
    ) -> Transition:
        result, success = tool_result(raw)
        p = outcome.prediction.get("success_probability")
        entry = entry.model_copy(
            update={
                "executed": call,
                "real_result": result[:500],
                "real_success": success,
                "prediction_error": abs(float(p) - float(success))
                if isinstance(p, int | float)
                else None,
            }
        )
        self._record(entry, request)
        return self._transition(request, call, outcome, result, success)

    @staticmethod
    def _override(request: Any, call: dict[str, Any]) -> Any:
        if (
            call["args"] == request.tool_call.get("args")
            and call["name"] == request.tool_call["name"]
        ):
            return request
        return request.override(
            tool_call={**request.tool_call, "name": call["name"], "args": call["args"]}
        )

    # -- sync ------------------------------------------------------------------------------

    def _imagine(self, request: Any, call: dict[str, Any]) -> Outcome:
        if not self.gate.simulate(call["name"]):
            return not_simulated_outcome(call)
        try:
            return self.predictor.imagine(self._situation(request), [call])[0]
        except Exception as exc:  # never crash the agent on a bad prediction
            logger.exception("imagining %s failed", call["name"])
            return Outcome.unknown(call, f"predictor failed: {exc}", uncertainty=1.0)

    def __call__(
        self, request: Any, execute: Callable[[Any], ToolMessage | Command]
    ) -> ToolMessage | Command:
        """The ``wrap_tool_call`` hook: ``(ToolCallRequest, execute) -> ToolMessage | Command``."""
        call = self._call(request)
        outcome = self._imagine(request, call)
        decision, entry = self._plan(outcome)
        to_run, entry, blocked = self._gate(request, call, outcome, decision, entry)
        if blocked is not None or to_run is None:
            self._record(entry, request)
            return blocked  # type: ignore[return-value]
        log = self._intent_log(request)
        key = self._intent_key(request, call)
        if log is not None:
            to_run, instead = self._recover(to_run, log.get(key), decision)
            if instead is not None or to_run is None:
                return instead  # type: ignore[return-value]
            log.start(key, to_run)
        raw = mark_human(execute(self._override(request, to_run)), entry.human)
        if log is not None:
            log.finish(key, to_run, *tool_result(raw))
        transition = self._finish(request, to_run, outcome, entry, raw)
        try:
            self.predictor.learn([transition])
        except Exception:
            logger.exception("recording the outcome of %s failed", to_run["name"])
        return raw

    # -- async -----------------------------------------------------------------------------

    async def _aimagine(self, request: Any, call: dict[str, Any]) -> Outcome:
        if not self.gate.simulate(call["name"]):
            return not_simulated_outcome(call)
        try:
            return (await self.predictor.aimagine(self._situation(request), [call]))[0]
        except Exception as exc:
            logger.exception("imagining %s failed", call["name"])
            return Outcome.unknown(call, f"predictor failed: {exc}", uncertainty=1.0)

    async def acall(
        self, request: Any, execute: Callable[[Any], Awaitable[ToolMessage | Command]]
    ) -> ToolMessage | Command:
        """The ``awrap_tool_call`` hook (async twin of :meth:`__call__`)."""
        call = self._call(request)
        outcome = await self._aimagine(request, call)
        decision, entry = self._plan(outcome)
        to_run, entry, blocked = self._gate(request, call, outcome, decision, entry)
        if blocked is not None or to_run is None:
            self._record(entry, request)
            return blocked  # type: ignore[return-value]
        log = self._intent_log(request)
        key = self._intent_key(request, call)
        if log is not None:
            to_run, instead = self._recover(to_run, await log.aget(key), decision)
            if instead is not None or to_run is None:
                return instead  # type: ignore[return-value]
            await log.astart(key, to_run)
        raw = mark_human(await execute(self._override(request, to_run)), entry.human)
        if log is not None:
            await log.afinish(key, to_run, *tool_result(raw))
        transition = self._finish(request, to_run, outcome, entry, raw)
        try:
            await self.predictor.alearn([transition])
        except Exception:
            logger.exception("recording the outcome of %s failed", to_run["name"])
        return raw


class ImagineToolCallsMiddleware(AgentMiddleware):
    """``create_agent(model, tools, middleware=[ImagineToolCallsMiddleware(predictor)])``:
    every tool call is imagined and gated before it runs (see :class:`ImagineToolCalls`).

    Args:
        predictor: the world model over tool calls.
        gate: the :class:`ToolGate` (hints, per-tool thresholds).
        situation: what the predictor should know besides the conversation.
        tools: tools whose ``metadata["wm_hints"]`` the gate should know up front.
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
        self.guard = ImagineToolCalls(predictor, gate, situation=situation)
        for tool in tools:
            self.guard.gate.register(tool)

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
