"""The env planning graph's ``ask`` and ``refuse`` nodes: risky steps go to a person or a fallback.

A gate with ``max_risk`` (:class:`~wm_agents.planning.AgreementGate`) does not act alone on a
candidate whose imagined risk passes the threshold; it says ``ask`` or ``refuse``, the verdicts
the tool gate gives too.  In an env graph built with ``ask=True`` / ``refuse=True``:

* ``ask`` pauses the run with LangGraph's ``interrupt`` (compile with a checkpointer) and shows
  the observation, the proposed action, its imagined risk, value and spread, and the gate's
  reason.  Resume with ``Command(resume=...)``: ``"approve"`` / ``{"type": "approve"}`` runs
  the proposed action; ``{"type": "edit", "action": [...]}`` runs the person's action
  (``source="person"``); ``"reject"`` / ``{"type": "reject"}`` refuses the step (to the
  ``refuse`` node when the graph has one, else the episode ends there).
* ``refuse`` hands the step to the context's ``fallback`` policy (``observation -> action``, a
  safe hand-written controller or a learned policy), whose action is executed and learned from
  like any other (``source="fallback"``, the verdict stays ``refuse`` in the step records); with
  no fallback the episode ends there, refused, with the reason.

Both keep the decision's verdict (``ask`` / ``refuse``), so the run's verdict counts say how
often a person or the fallback was needed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from langgraph.graph import END
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from wm_agents.core import Decision

__all__ = ["make_ask_node", "refuse_node", "review_answer"]


def review_answer(answer: Any, action_spec: Any) -> tuple[str, list[float] | None]:
    """A person's answer to an ``ask`` -> ``("approve" | "edit" | "reject", edited action)``.

    Raises:
        ValueError: an answer of another shape, or an edited action the env cannot take.
    """
    kind = answer if isinstance(answer, str) else None
    action = None
    if isinstance(answer, Mapping):
        kind, action = answer.get("type"), answer.get("action")
    if kind not in ("approve", "edit", "reject"):
        raise ValueError(
            "answer an env ask with 'approve', 'reject' or {'type': 'edit', 'action': [...]}, "
            f"got {answer!r}"
        )
    if kind != "edit":
        return kind, None
    try:
        seq = torch.as_tensor(np.asarray(action, dtype=np.float32).reshape(1, 1, -1))
    except (TypeError, ValueError) as err:
        raise ValueError(f"an edited action must be a list of numbers, got {action!r}") from err
    checked = action_spec.check_sequences(seq, name="the edited action")
    return kind, checked[0, 0].tolist()


def make_ask_node(*, refuse: bool) -> Callable[[dict[str, Any], Runtime[Any]], Command]:
    """The ``ask`` node; ``refuse``: whether the graph has a ``refuse`` node for rejected steps
    (else a rejection ends the episode)."""

    def ask(state: dict[str, Any], runtime: Runtime[Any]) -> Command:
        return _ask(state, runtime, to_refuse=refuse)

    return ask


def _ask(state: dict[str, Any], runtime: Runtime[Any], *, to_refuse: bool) -> Command:
    """Pause for a person on a risky step; route to ``act``, ``refuse`` or the end."""
    decision: Decision = state["decision"]
    ctx = runtime.context
    answer = interrupt(
        {
            "question": "the planner's next action is risky: approve, edit or reject it",
            "step": int(state.get("step") or 0),
            "observation": state["observation"],
            "action": decision.action,
            "risk": decision.risk,
            "value": decision.value,
            "uncertainty": decision.uncertainty,
            "reason": decision.reason,
        }
    )
    kind, action = review_answer(answer, ctx.actuator.action_spec)
    if kind == "approve":
        approved = decision.model_copy(update={"reason": f"{decision.reason}; a person approved"})
        return Command(goto="act", update={"decision": approved})
    if kind == "edit":
        edited = decision.model_copy(
            update={
                "action": action,
                "plan": None,  # the person's action is no plan to warm-start from
                "chosen": None,  # no imagined outcome to compare reality with
                "source": "person",
                "reason": f"{decision.reason}; a person chose {action}",
            }
        )
        return Command(goto="act", update={"decision": edited})
    rejected = decision.model_copy(
        update={"verdict": "refuse", "reason": f"{decision.reason}; a person rejected it"}
    )
    if to_refuse:
        return Command(goto="refuse", update={"decision": rejected})
    return _end_refused(rejected, ctx)


def refuse_node(state: dict[str, Any], runtime: Runtime[Any]) -> Command:
    """The fallback policy takes a refused step (to ``act``), or the episode ends refused."""
    decision: Decision = state["decision"]
    ctx = runtime.context
    if ctx.fallback is None:
        return _end_refused(decision, ctx)
    action = np.asarray(ctx.fallback(np.asarray(state["observation"], dtype=np.float32)))
    checked = ctx.actuator.action_spec.check_sequences(
        torch.as_tensor(action, dtype=torch.float32).reshape(1, 1, -1), name="the fallback action"
    )
    taken = decision.model_copy(
        update={
            "action": checked[0, 0].tolist(),
            "plan": None,
            "chosen": None,
            "source": "fallback",
            "reason": f"{decision.reason}; the fallback policy acts",
        }
    )
    return Command(goto="act", update={"decision": taken})


def _end_refused(decision: Decision, ctx: Any) -> Command:
    """End the episode on a refused step (nothing is executed); the learner's buffer marks the
    last real step as an episode end, as a run that stops there does."""
    if ctx.learner is not None:
        ctx.learner.mark_episode_end()
    ended = decision.model_copy(update={"reason": f"{decision.reason}; the episode ends here"})
    return Command(goto=END, update={"decision": ended, "done": True})
