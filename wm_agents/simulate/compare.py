"""Simulation against reality: did the real call do what its simulation said?

A simulator needs no training, but every real outcome is a check of it: a mismatch means the
tool is not deterministic (time, randomness, the network) or the copy differed from the real
workspace.  :func:`compare_transitions` counts them for ``learn``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from wm_agents.core import Transition
from wm_agents.llm.schemas import ToolCallCandidate, message_text

__all__ = ["compare_transitions", "results_match"]


def results_match(predicted: str, success: bool, real: Any) -> bool:
    """Does a real tool result match a simulated one?

    Successes must have the same text (whitespace at the ends ignored).  For failures the
    simulator says ``TypeName: message`` while ``ToolNode`` says ``Error: TypeName('message')
    Please fix your mistakes.``, so the message (or, when it is escaped differently, the type
    name) must appear in the real text.
    """
    text = real if isinstance(real, str) else message_text(real) if real is not None else ""
    if success:
        return predicted.strip() == text.strip()
    if predicted.strip() == text.strip():
        return True
    type_name, _, message = predicted.partition(": ")
    return (bool(message) and message in text) or (bool(type_name) and type_name in text)


def _same_call(candidate: Mapping[str, Any], action: Any) -> bool:
    try:
        a = ToolCallCandidate.from_any(action)
        c = ToolCallCandidate.from_any(candidate)
    except ValueError:
        return False
    return (a.name, a.args) == (c.name, c.args)


def compare_transitions(
    transitions: Sequence[Transition],
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """``(metrics, mismatches)`` over the transitions whose ``prediction`` is a known
    simulated (or dry-run) outcome of the same single call, with ``success`` set.

    Metrics: ``n_compared``, ``n_mismatch`` (either kind), ``n_success_mismatch``,
    ``n_result_mismatch``, ``mismatch_rate``.  Each mismatch: ``call``,
    ``predicted_success``, ``real_success``, ``predicted_result``, ``real_result`` (cut to
    500 characters).
    """
    n = n_success = n_result = 0
    mismatches: list[dict[str, Any]] = []
    for t in transitions:
        o = t.prediction
        if o is None or not o.is_known or t.success is None:
            continue
        pred = o.prediction
        if pred.get("source") not in ("simulated", "dry_run"):
            continue
        if not isinstance(o.candidate, Mapping) or not _same_call(o.candidate, t.action):
            continue
        n += 1
        predicted = str(pred.get("predicted_result", ""))
        bad_success = bool(pred.get("success")) != bool(t.success)
        bad_result = not results_match(predicted, bool(t.success), t.result)
        n_success += bad_success
        n_result += bad_result
        if bad_success or bad_result:
            mismatches.append(
                {
                    "call": dict(o.candidate),
                    "predicted_success": pred.get("success"),
                    "real_success": t.success,
                    "predicted_result": predicted[:500],
                    "real_result": str(t.result)[:500],
                }
            )
    metrics = {
        "n_compared": float(n),
        "n_mismatch": float(len(mismatches)),
        "n_success_mismatch": float(n_success),
        "n_result_mismatch": float(n_result),
        "mismatch_rate": len(mismatches) / n if n else 0.0,
    }
    return metrics, mismatches
