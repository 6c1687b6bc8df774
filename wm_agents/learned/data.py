"""Training examples for the learned outcome model: a tool call, its situation, what really
happened, and the LLM's prior when one was asked.

Examples come from :class:`~wm_agents.core.Transition` s (what ``learn`` receives) or from the
records an :class:`~wm_agents.llm.ExperienceMemory` keeps in a LangGraph Store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wm_agents.core import Outcome, Transition
from wm_agents.llm.memory import ExperienceMemory
from wm_agents.llm.schemas import LLMState, ToolCallCandidate

__all__ = [
    "OutcomeExample",
    "aexamples_from_memory",
    "example_from_transition",
    "prior_from_outcome",
    "situation_of",
]

MAX_SITUATION_CHARS = 4000
"""Situation text kept per example (bounded: examples are saved with the model)."""


def situation_of(state: LLMState) -> str:
    """The text features are read from: the task, a newline, the context (lines kept: a
    listing's layout is information)."""
    return f"{state.task}\n{state.context}"[:MAX_SITUATION_CHARS]


def prior_from_outcome(outcome: Outcome | None) -> float | None:
    """The LLM's own success probability in an LLM predictor's outcome (before experience),
    or None when it has none."""
    if outcome is None or not outcome.is_known:
        return None
    p = outcome.prediction.get("llm_success_probability")
    if isinstance(p, int | float) and not isinstance(p, bool) and math.isfinite(p):
        return min(1.0, max(0.0, float(p)))
    return None


@dataclass(frozen=True)
class OutcomeExample:
    """One real outcome to learn from.

    Attributes:
        situation: task and context text (see :func:`situation_of`).
        tool: the tool's name.
        args: the call's arguments (JSON values).
        success: whether the call really worked.
        p_llm: the LLM's prior for this call, when it was asked before the call ran.
        group: what makes calls "the same situation" (calls of one situation stay in one
            calibration fold, so calibration measures generalisation to new situations).
    """

    situation: str
    tool: str
    args: dict[str, Any]
    success: bool
    p_llm: float | None = None
    group: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON form (saved with the model)."""
        return {
            "situation": self.situation,
            "tool": self.tool,
            "args": self.args,
            "success": self.success,
            "p_llm": self.p_llm,
            "group": self.group,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutcomeExample:
        """Inverse of :meth:`as_dict`; raises ``ValueError`` for a malformed one."""
        try:
            p = data.get("p_llm")
            if p is not None and not (isinstance(p, int | float) and 0.0 <= p <= 1.0):
                raise ValueError(f"p_llm must be in [0, 1] or null, got {p!r}")
            if not isinstance(data["args"], dict) or not isinstance(data["success"], bool):
                raise ValueError("args must be an object and success a boolean")
            return cls(
                situation=str(data["situation"])[:MAX_SITUATION_CHARS],
                tool=str(data["tool"]),
                args=dict(data["args"]),
                success=data["success"],
                p_llm=None if p is None else float(p),
                group=str(data.get("group", "")),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed example: {exc}") from exc


def example_from_transition(t: Transition) -> OutcomeExample:
    """An example from a tool-call transition (``state``, ``action``, ``success``; the LLM
    prior from ``t.prediction`` when it holds one).

    Raises:
        ValueError: no ``success``, or the action is not a tool call (programming errors).
    """
    if t.success is None:
        raise ValueError("a Transition for the learned outcome model needs success=True/False")
    state = LLMState.from_any(t.state)
    call = ToolCallCandidate.from_any(t.action)
    p = prior_from_outcome(t.prediction)
    if p is None and isinstance(t.info.get("p_llm"), int | float):
        p = min(1.0, max(0.0, float(t.info["p_llm"])))
    return OutcomeExample(
        situation=situation_of(state),
        tool=call.name,
        args=call.as_dict()["args"],
        success=bool(t.success),
        p_llm=p,
        group=state.situation_key(),
    )


def _example_from_record(rec: Mapping[str, Any]) -> OutcomeExample | None:
    tool, args, success = rec.get("tool"), rec.get("args"), rec.get("success")
    if not isinstance(tool, str) or not isinstance(args, dict) or not isinstance(success, bool):
        return None  # not a call record (or a damaged one): nothing to learn from
    if "task" in rec or "context" in rec:
        situation = f"{rec.get('task', '')}\n{rec.get('context', '')}"
    else:  # records written before task/context were kept apart: one line, cut at 500
        situation = str(rec.get("situation", ""))
    p = rec.get("p_llm")
    p_llm = float(p) if isinstance(p, int | float) and 0.0 <= p <= 1.0 else None
    return OutcomeExample(
        situation=situation[:MAX_SITUATION_CHARS],
        tool=tool,
        args=args,
        success=success,
        p_llm=p_llm,
        group=str(rec.get("situation_key", "")),
    )


async def aexamples_from_memory(
    memory: ExperienceMemory, *, limit: int = 100_000
) -> list[OutcomeExample]:
    """The newest ``limit`` call records ``memory`` keeps, oldest first, as examples."""
    records = await memory.arecords(limit=limit)
    return [ex for rec in records if (ex := _example_from_record(rec)) is not None]
