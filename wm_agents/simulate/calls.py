"""Candidates of a simulator: one tool call, or a plan (a sequence of calls run in one copy).

``imagine(state, candidates, horizon=H)`` takes, per candidate, a tool call ``{"name", "args",
"id"?}`` (a plan of one step) or a list of 1..H calls.  This module turns them into
:class:`ToolCallCandidate` tuples (bad input raises ``ValueError`` saying how to fix it), runs
one call the way LangGraph's ``ToolNode`` does (so a simulated result reads like the real one),
and formats exceptions as ``TypeName: message``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from wm_agents.llm.schemas import ToolCallCandidate, message_text

__all__ = [
    "Plan",
    "StepResult",
    "error_text",
    "invoke_tool",
    "parse_plans",
    "plan_as_candidate",
    "value_text",
]

Plan = tuple[ToolCallCandidate, ...]


def parse_plans(candidates: Sequence[Any], horizon: int) -> list[Plan]:
    """One plan per candidate.

    Raises:
        ValueError: ``horizon < 1``, a candidate that is neither a tool call nor a list of
            them, an empty list, or a list longer than ``horizon``.
    """
    if not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon must be an int >= 1, got {horizon!r}")
    if isinstance(candidates, Mapping | str):
        raise ValueError("candidates must be a list of tool calls (or of lists of tool calls)")
    plans: list[Plan] = []
    for i, candidate in enumerate(candidates):
        if isinstance(candidate, Mapping | ToolCallCandidate):
            plans.append((ToolCallCandidate.from_any(candidate),))
            continue
        if isinstance(candidate, Sequence) and not isinstance(candidate, str | bytes):
            if not candidate:
                raise ValueError(f"candidate {i} is an empty plan; give at least one tool call")
            if len(candidate) > horizon:
                raise ValueError(
                    f"candidate {i} has {len(candidate)} calls but horizon={horizon}; "
                    f"pass horizon={len(candidate)} (or more) to imagine whole plans"
                )
            plans.append(tuple(ToolCallCandidate.from_any(c) for c in candidate))
            continue
        raise ValueError(
            f"candidate {i} must be a tool call {{'name', 'args'}} or a list of them, "
            f"got {candidate!r:.120}"
        )
    return plans


def plan_as_candidate(plan: Plan, original: Any) -> Any:
    """The candidate echoed in the Outcome: a dict for a single call given as a dict, else a
    list of dicts (JSON-serializable either way)."""
    if isinstance(original, Mapping | ToolCallCandidate):
        return plan[0].as_dict()
    return [c.as_dict() for c in plan]


def error_text(exc: BaseException) -> str:
    """``TypeName: message`` (the message as data, never formatted)."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


StepResult = dict[str, Any]
"""One executed step: ``{"tool", "success", "result", "error_type"?}`` (JSON)."""


def invoke_tool(tool: Any, call: ToolCallCandidate, index: int, max_chars: int) -> StepResult:
    """Run one call as ``ToolNode`` would (a ``ToolCall`` in, a ``ToolMessage`` out, so tools
    that handle their own errors report ``status="error"``); an exception is a failed step.

    Returns the step's JSON: ``tool``, ``success``, ``result`` (the message text, or
    ``TypeName: message`` of an exception, cut to ``max_chars``) and ``error_type``.
    """
    tool_call = {
        "name": call.name,
        "args": dict(call.args),
        "id": call.id or f"wm-sim-{index}",
        "type": "tool_call",
    }
    try:
        out = tool.invoke(tool_call)
    except Exception as exc:  # a tool's failure is the simulated outcome, not our error
        text = error_text(exc)
        return {
            "tool": call.name,
            "success": False,
            "result": text[:max_chars],
            "error_type": type(exc).__name__,
        }
    status = getattr(out, "status", "success")
    text = message_text(out) if hasattr(out, "content") else _as_text(out)
    step: StepResult = {"tool": call.name, "success": status != "error", "result": text[:max_chars]}
    if status == "error":
        step["error_type"] = "ToolError"
    return step


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def value_text(value: Any, max_chars: int) -> str:
    """A dry run's or tool's raw return value as text (JSON where it serializes)."""
    return _as_text(value)[:max_chars]
