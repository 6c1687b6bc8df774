"""The :class:`~wm_agents.core.Outcome` of a simulated call: exact, or unknown with a reason.

A simulation is not a guess, so an exact outcome has ``uncertainty = 0``, one member
(``member_values = [value]``) and a success probability of 1.0 or 0.0 taken from what really
happened in the copy.  Risk and value use the LLM predictor's formulas, so outcomes from both
rank on one scale:

* ``harm``: 1.0 when the call loses data for good (a deleted or overwritten byte that exists
  nowhere after the call, a row or table gone, commits no ref reaches any more), else 0.0.
  Binary because a simulation knows *whether* data is lost, not how much it mattered;
* ``risk = 1 - p_success * (1 - harm)``: probability of failure or harm (0 or 1 here);
* ``value = goal_progress * p_success - risk_penalty * harm``.  A simulator cannot tell how far
  a call advances the task, so ``goal_progress`` is a constant (default 0.5, the middle of the
  predictor's 0..1 scale): success beats failure, and harm costs ``risk_penalty``.  A plan
  search supplies its own goal check.

``prediction`` holds ``source`` (``"simulated"`` or ``"dry_run"``), ``predicted_result`` (the
real result text, or ``TypeName: message`` of the exception), ``success``,
``success_probability``, ``side_effects`` (structured, see each simulator), ``reversible``,
``harm``, ``goal_progress``, ``steps`` (one per executed call) and simulator facts
(``strategy``; ``child_ms``: the simulating process's wall time; ``candidate_ms``: the whole
candidate, copy comparison and restore included).  The ``tool`` is the call's name, or the list
of names of a plan.

An unknown outcome's ``prediction["cause"]`` says why in one word: ``not_simulatable``
(another model should predict it), ``unknown_tool``, ``timeout``, ``size_budget``, ``denied``
(the tool reached outside its copy), ``crashed``, ``error``, ``breach``, ``chained_dry_run``.
"""

from __future__ import annotations

import math
from typing import Any

from wm_agents.core import Outcome

__all__ = ["UNKNOWN_UNCERTAINTY", "exact_outcome", "unknown_outcome"]

UNKNOWN_UNCERTAINTY = 1.0
"""Tool-side models report uncertainty in [0, 1] (the LLM predictor does too); unknown is 1."""


def exact_outcome(
    candidate: Any,
    *,
    success: bool,
    result: str,
    steps: list[dict[str, Any]],
    side_effects: Any,
    reversible: bool | None,
    harm: float,
    goal_progress: float,
    risk_penalty: float,
    source: str = "simulated",
    extra: dict[str, Any] | None = None,
) -> Outcome:
    """An exact outcome (see the module docstring for the formulas)."""
    p = 1.0 if success else 0.0
    risk = min(1.0, max(0.0, 1.0 - p * (1.0 - harm)))
    value = goal_progress * p - risk_penalty * harm
    tools = [s.get("tool") for s in steps]
    prediction: dict[str, Any] = {
        "source": source,
        "simulated": True,
        "tool": tools[0] if len(tools) == 1 else tools,
        "predicted_result": result,
        "success": success,
        "success_probability": p,
        "side_effects": side_effects,
        "reversible": reversible,
        "harm": harm,
        "risk_level": "high" if harm >= 0.5 else "low",
        "goal_progress": goal_progress,
        "steps": steps,
    }
    if extra:
        prediction.update(extra)
    return Outcome(
        candidate=candidate,
        prediction=prediction,
        value=value,
        uncertainty=0.0,
        risk=risk,
        member_values=[value],
        status="ok",
    )


def unknown_outcome(candidate: Any, reason: str, *, cause: str, **facts: Any) -> Outcome:
    """An outcome the simulator could not produce: value ``-inf``, risk 1, uncertainty 1."""
    return Outcome(
        candidate=candidate,
        prediction={"source": "simulated", "cause": cause, **facts},
        value=-math.inf,
        uncertainty=UNKNOWN_UNCERTAINTY,
        risk=1.0,
        member_values=[],
        status="unknown",
        reason=reason,
    )
