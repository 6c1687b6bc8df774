"""The one tool guard: imagine a call, gate it, ask a person, run it at most once, learn.

Every place that guards real tool calls runs these functions and nothing else: the tool-agent
graph's nodes (:mod:`wm_agents.tools.graph`), the ``create_agent`` middleware hooks and the
``ToolNode`` wrapper (:mod:`wm_agents.tools.middleware`).  So the texts an agent reads when a
call is refused or rejected, the interrupt payload a person sees, the test "is the executed call
the predicted one" and the records kept in the Store are the same on every path.

Async first: the I/O of a guarded call (imagine, the intent records, executing the tool, learning)
goes through a :class:`GuardIO`.  :func:`arun_once` (execute at most once) is written once, as a
coroutine; async callers await it with real I/O, and sync callers pass a :class:`GuardIO` whose
methods do their work synchronously and drive the coroutine with :func:`run_inline`, in their
own thread, so LangGraph's ``interrupt()`` and ``get_config()`` keep working (a background event
loop would lose the run's context).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from langchain_core.messages import ToolMessage
from langgraph.types import Command, interrupt

from wm_agents.core import Decision, Outcome, Transition
from wm_agents.llm.schemas import message_text
from wm_agents.tools.gate import ToolGate, call_text, is_exact, not_simulated_outcome
from wm_agents.tools.intents import IntentLog, not_rerun_text, recovery, rerun_reason
from wm_agents.tools.summary import mark_human
from wm_agents.tools.trace import TraceEntry

__all__ = [
    "AwaitIO",
    "GatedModel",
    "GuardIO",
    "InlineIO",
    "Review",
    "RunOutcome",
    "aimagine_calls",
    "arun_once",
    "ask_for_review",
    "blocked_message",
    "exact_match",
    "imagine_calls",
    "matching_prediction",
    "parse_review",
    "put_decision",
    "real_transition",
    "refuse_text",
    "reject_text",
    "run_inline",
    "tool_result",
    "with_real_outcome",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DECISIONS_NAMESPACE = ("wm_agents", "tool_decisions")
"""Store namespace prefix of decision records (``+ (run scope,)``)."""


# -- texts the agent and the person read ------------------------------------------------------


def refuse_text(decision: Decision) -> str:
    """What the agent's LLM reads when the gate refused its call."""
    return decision.reason + " The call was not run; try something else or answer."


def reject_text(call: Mapping[str, Any], message: str = "") -> str:
    """What the agent's LLM reads when a person rejected its call."""
    text = f"A person rejected {call_text(call)}; it was not run."
    return text + (f" Reason: {message}" if message else "")


def blocked_message(call: Mapping[str, Any], text: str, *, verdict: str) -> ToolMessage:
    """The error ``ToolMessage`` for a call that did not run: ``refuse`` (the gate) or
    ``reject`` (a person), marked in ``additional_kwargs["wm_agents"]["verdict"]`` so summaries
    can tell it from the tool's own error."""
    return ToolMessage(
        content=text,
        name=call["name"],
        tool_call_id=call["id"],
        status="error",
        additional_kwargs={"wm_agents": {"verdict": verdict}},
    )


def tool_result(message: Any) -> tuple[str, bool]:
    """The text of a tool's result and whether it worked (``ToolMessage.status``)."""
    if isinstance(message, ToolMessage):
        return message_text(message), message.status != "error"
    if isinstance(message, Command):
        return f"command: {message.update!r:.300}", True
    return str(message), True


# -- imagine ----------------------------------------------------------------------------------


async def _imagine_core(
    gate: ToolGate,
    calls: Sequence[Mapping[str, Any]],
    imagine: Callable[[list[dict[str, Any]]], Awaitable[Sequence[Outcome]]],
) -> list[Outcome]:
    simulated = [dict(c) for c in calls if gate.simulate(str(c["name"]))]
    imagined: list[Outcome] = []
    if simulated:
        try:
            imagined = list(await imagine(simulated))
        except Exception as exc:  # a broken model must not take the agent down
            logger.exception("imagining tool calls failed")
            imagined = [
                Outcome.unknown(c, f"world model failed: {exc}", uncertainty=1.0) for c in simulated
            ]
        if len(imagined) != len(simulated):
            raise ValueError(
                f"the world model returned {len(imagined)} outcomes for {len(simulated)} calls"
            )
    it = iter(imagined)
    return [next(it) if gate.simulate(str(c["name"])) else not_simulated_outcome(c) for c in calls]


async def aimagine_calls(
    model: Any,
    gate: ToolGate,
    state: Any,
    calls: Sequence[Mapping[str, Any]],
    *,
    horizon: int = 1,
) -> list[Outcome]:
    """One outcome per call, in order: ``never_simulate`` tools get the not-simulated
    stand-in, the others are imagined together by ``model`` (its ``aimagine``, or its
    ``imagine`` in a worker thread when it has none).  A model that raises makes their
    outcomes unknown (never crashes the agent); one that returns the wrong number of outcomes
    is a bug and raises ``ValueError``."""

    async def imagine(simulated: list[dict[str, Any]]) -> Sequence[Outcome]:
        if hasattr(model, "aimagine"):
            return await model.aimagine(state, simulated, horizon=horizon)
        return await asyncio.to_thread(model.imagine, state, simulated, horizon=horizon)

    return await _imagine_core(gate, calls, imagine)


def imagine_calls(
    model: Any,
    gate: ToolGate,
    state: Any,
    calls: Sequence[Mapping[str, Any]],
    *,
    horizon: int = 1,
) -> list[Outcome]:
    """Sync :func:`aimagine_calls`: the same rules, with the model's own ``imagine``."""

    async def imagine(simulated: list[dict[str, Any]]) -> Sequence[Outcome]:
        return model.imagine(state, simulated, horizon=horizon)

    return run_inline(_imagine_core(gate, calls, imagine))


@dataclass(frozen=True)
class GatedModel:
    """A tool world model as the gate sees it, itself a :class:`~wm_agents.core.WorldModel`:
    ``never_simulate`` tools are not imagined, and a model that raises gives unknown outcomes
    (:func:`aimagine_calls`).  What the tool agent's imagine node calls."""

    model: Any
    gate: ToolGate

    def imagine(self, state: Any, candidates: Sequence[Any], *, horizon: int = 1) -> list[Outcome]:
        return imagine_calls(self.model, self.gate, state, candidates, horizon=horizon)

    async def aimagine(
        self, state: Any, candidates: Sequence[Any], *, horizon: int = 1
    ) -> list[Outcome]:
        return await aimagine_calls(self.model, self.gate, state, candidates, horizon=horizon)

    def learn(self, transitions: Sequence[Transition]) -> Any:
        return self.model.learn(transitions)


# -- ask --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Review:
    """A person's answer to an ``ask``: ``kind`` (approve / edit / reject), the call to run
    (the edited one after an edit) and their message."""

    kind: Literal["approve", "edit", "reject"]
    call: dict[str, Any]
    message: str = ""

    @property
    def human(self) -> str:
        """``kind`` or ``kind: message`` for the trace."""
        return self.kind if not self.message else f"{self.kind}: {self.message}"


def ask_for_review(
    call: Mapping[str, Any], decision: Decision, prediction: Mapping[str, Any]
) -> Review:
    """``interrupt()`` with what a person needs to judge ``call``; returns their answer.

    One payload shape on every path: ``{"type": "tool_approval", "tool_call", "reason",
    "predicted_result", "success_probability", "side_effects", "risk", "uncertainty",
    "allowed"}``.
    """
    answer = interrupt(
        {
            "type": "tool_approval",
            "tool_call": dict(call),
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


def parse_review(answer: Any, call: Mapping[str, Any]) -> Review:
    """Read a person's answer to an ``ask``.

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
        return Review(kind, {**call, "name": name, "args": args}, message)
    return Review(kind, dict(call), message)


# -- the I/O of a guarded call ---------------------------------------------------------------


class GuardIO(Protocol):
    """The I/O of guarding one call.  :class:`InlineIO` does it synchronously (drive the
    guard with :func:`run_inline`), :class:`AwaitIO` awaits it."""

    async def imagine(
        self, model: Any, gate: ToolGate, state: Any, calls: Sequence[Mapping[str, Any]]
    ) -> list[Outcome]:
        """:func:`aimagine_calls`."""
        ...

    async def execute(self, call: dict[str, Any]) -> Any:
        """Run the tool for real; returns its ``ToolMessage`` (or a ``Command``)."""
        ...

    async def learn(self, model: Any, transitions: Sequence[Transition]) -> Any:
        """``model.learn`` / ``model.alearn``."""
        ...

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking function (a Store read or write)."""
        ...


class InlineIO:
    """Synchronous I/O for sync callers (graph nodes, ``wrap_tool_call``): every method does
    its work at once, so a guard coroutine over it never suspends (:func:`run_inline`)."""

    def __init__(self, execute: Callable[[dict[str, Any]], Any]) -> None:
        self._execute = execute

    async def imagine(
        self, model: Any, gate: ToolGate, state: Any, calls: Sequence[Mapping[str, Any]]
    ) -> list[Outcome]:
        return imagine_calls(model, gate, state, calls)

    async def execute(self, call: dict[str, Any]) -> Any:
        return self._execute(call)

    async def learn(self, model: Any, transitions: Sequence[Transition]) -> Any:
        return model.learn(transitions)

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(*args)


class AwaitIO:
    """Asynchronous I/O for async callers (``awrap_tool_call``): models are awaited, Store
    calls run in a worker thread (an async store's sync methods work from any thread but its
    loop's; a sync-only store works anywhere)."""

    def __init__(self, execute: Callable[[dict[str, Any]], Awaitable[Any]]) -> None:
        self._execute = execute

    async def imagine(
        self, model: Any, gate: ToolGate, state: Any, calls: Sequence[Mapping[str, Any]]
    ) -> list[Outcome]:
        return await aimagine_calls(model, gate, state, calls)

    async def execute(self, call: dict[str, Any]) -> Any:
        return await self._execute(call)

    async def learn(self, model: Any, transitions: Sequence[Transition]) -> Any:
        alearn = getattr(model, "alearn", None)
        if alearn is not None:
            return await alearn(transitions)
        return await asyncio.to_thread(model.learn, transitions)

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)


def run_inline(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (its I/O is :class:`InlineIO`) to the end, in this
    thread, so the caller's context (LangGraph's config, ``interrupt()``) is kept.

    Raises:
        RuntimeError: the coroutine awaited real asynchronous I/O (a bug in the sync path).
    """
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("a sync guard path awaited asynchronous I/O; use the async path")


# -- run at most once -------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOutcome:
    """What :func:`arun_once` did: ``message`` is what the agent sees (the tool's answer, a
    replayed answer, or a blocked message); ``call`` is what ran (``None`` when nothing ran);
    ``human`` is a person's answer given on the way (approval, or the re-run question)."""

    message: Any
    call: dict[str, Any] | None
    human: str | None = None
    replayed: bool = False


async def arun_once(
    io: GuardIO,
    log: IntentLog | None,
    key: str,
    call: dict[str, Any],
    gate: ToolGate,
    decision: Decision,
    *,
    human: str | None = None,
) -> RunOutcome:
    """Run ``call`` at most once (see :mod:`wm_agents.tools.intents`): replay a call that
    finished before a crash, re-run an idempotent one, ask a person before running any other
    call a second time; write the intent before and the result after.  ``human``: the person's
    earlier answer (an approval), recorded on the tool's message."""
    intent = await io.blocking(log.get, key) if log is not None else None
    action = recovery(intent, gate.hints_for(call["name"]))
    if action == "replay":
        assert intent is not None
        logger.warning("replaying the recorded result of %s (it ran before a crash)", key)
        replayed = ToolMessage(
            content=intent.result or "",
            name=call["name"],
            tool_call_id=call["id"],
            status="success" if intent.success else "error",
        )
        return RunOutcome(replayed, dict(call), human, replayed=True)
    if action == "ask":
        assert intent is not None
        review = ask_for_review(
            call, decision.model_copy(update={"reason": rerun_reason(call, intent)}), {}
        )
        if review.kind == "reject":
            text = not_rerun_text(call, review.message)
            human = "reject (may already have run)" + (
                f": {review.message}" if review.message else ""
            )
            return RunOutcome(blocked_message(call, text, verdict="reject"), None, human)
        call = review.call
        human = "approve (may already have run)"
    if log is not None:
        # A store that cannot record the intent stops the call here: running without the
        # record would give up the guarantee silently.
        await io.blocking(log.start, key, call)
    raw = mark_human(await io.execute(call), human)
    if log is not None:
        await io.blocking(log.finish, key, call, *tool_result(raw))
    return RunOutcome(raw, dict(call), human)


# -- learn --------------------------------------------------------------------------------------


def matching_prediction(outcome: Outcome | None, call: Mapping[str, Any]) -> Outcome | None:
    """The prediction that was made for the call that really ran, or ``None``: a different
    call (an edit changed its name or arguments), a tool that was not imagined, or an outcome
    the model could not predict says nothing about this result."""
    if outcome is None or not isinstance(outcome.candidate, Mapping):
        return None
    same = outcome.candidate.get("name") == call.get("name") and (
        outcome.candidate.get("args") or {}
    ) == (call.get("args") or {})
    imagined = outcome.prediction.get("simulated") is not False and outcome.is_known
    return outcome if same and imagined else None


def with_real_outcome(
    entry: TraceEntry,
    call: Mapping[str, Any],
    result: str,
    success: bool,
    prediction: Outcome | None,
    *,
    human: str | None = None,
) -> TraceEntry:
    """The trace entry completed with what really happened (and the prediction's error)."""
    p = prediction.prediction.get("success_probability") if prediction is not None else None
    error = (
        abs(float(p) - (1.0 if success else 0.0))
        if isinstance(p, int | float) and math.isfinite(float(p))
        else None
    )
    update: dict[str, Any] = {
        "executed": dict(call),
        "real_result": result[:500],
        "real_success": success,
        "prediction_error": error,
        "exact_match": exact_match(prediction, result, success),
    }
    if human is not None:
        update["human"] = human
    return entry.model_copy(update=update)


def exact_match(prediction: Outcome | None, result: str, success: bool) -> bool | None:
    """For an exact (simulated) prediction, whether reality matched it: the same success and
    the same result (a tool error compared by its type and message, which ``ToolNode`` words
    differently).  ``None`` for guesses."""
    if prediction is None or not is_exact(prediction):
        return None
    from wm_agents.simulate import results_match

    predicted_success = bool(prediction.prediction.get("success"))
    text = str(prediction.prediction.get("predicted_result") or "")
    return predicted_success == success and results_match(text, predicted_success, result)


def real_transition(
    situation: Any, call: Mapping[str, Any], result: str, success: bool, prediction: Outcome | None
) -> Transition:
    """The experience a real call leaves, with the prediction made for it (if it was one)."""
    return Transition(
        state=situation,
        action={"name": call["name"], "args": call["args"]},
        result=result,
        success=success,
        prediction=prediction,
    )


def put_decision(store: Any, scope: str, key: str, entry: TraceEntry) -> None:
    """Keep a decision and its real outcome in the Store (inspect / replay); a store that
    fails is logged, never fatal."""
    if store is None:
        return
    from wm_agents.tools.intents import store_scope

    try:
        store.put(
            (*DECISIONS_NAMESPACE, store_scope(scope)),
            key,
            entry.model_dump(mode="json"),
            index=False,
        )
    except Exception:
        logger.exception("storing the decision record failed")
