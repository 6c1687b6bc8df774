"""From ``k`` sampled predictions of one tool call, and experience, to one ``Outcome``.

* ``prediction["success_probability"]``: the posterior of the samples' mean probability (a prior
  of strength ``prior_strength``) and the experience (see :mod:`wm_agents.llm.memory`);
* ``risk = 1 - p_success * (1 - harm)``: probability of failure or harm, where ``harm`` is the
  samples' mean :data:`~wm_agents.llm.schemas.RISK_LEVEL_HARM`;
* ``value = goal_progress * p_success - risk_penalty * harm`` (``member_values``: per sample);
* ``uncertainty`` in ``[0, 1]``: the samples' disagreement (half on success: ``2 * std`` of
  their probabilities; half on the predicted result: ``1 -`` mean pairwise word overlap), failed
  samples counting as 1, then shrunk toward the experience's own spread (``4 r (1 - r)`` of the
  observed success rate ``r``) by the share of evidence in the posterior.  ``1.0`` = unknown.
  **Fewer than two valid samples measure no disagreement**: one sample agreeing with itself
  says nothing, so its disagreement is unknown and counts as the maximum (``1.0``), not 0;
  ``prediction["uncertainty_parts"]["samples_unknown"]`` says so and the gate's reason names
  it.  Only experience (evidence) can then lower the uncertainty.

A candidate whose samples all failed is unknown (:func:`unknown_outcome`), with the reasons; an
unknown outcome still carries the experience about its call (``prediction["evidence"]``), so
the gate's experience rules hold whatever the model says or fails to say.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wm_agents.core import Outcome
from wm_agents.llm.memory import Evidence
from wm_agents.llm.schemas import RISK_LEVEL_HARM, ToolCallCandidate

__all__ = [
    "UNKNOWN_UNCERTAINTY",
    "SampleResult",
    "aggregate_samples",
    "medoid",
    "result_disagreement",
    "unknown_outcome",
]

UNKNOWN_UNCERTAINTY = 1.0
"""The predictor's uncertainty is normalized to [0, 1]; an unknown outcome has the maximum."""


@dataclass
class SampleResult:
    """One sample: a validated prediction, or the reason it failed."""

    index: int
    seed: int | None
    prediction: dict[str, Any] | None = None
    error: str | None = None
    cached: bool = False


def _word_set(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z0-9_]+", text)}


def result_disagreement(results: Sequence[str]) -> float:
    """``1 -`` the mean pairwise word overlap (Jaccard) of the predicted results; 0 for fewer
    than two."""
    if len(results) < 2:
        return 0.0
    sets = [_word_set(r) for r in results]
    sims = []
    for i in range(len(sets)):
        for j in range(i + 1, len(sets)):
            union = sets[i] | sets[j]
            sims.append(len(sets[i] & sets[j]) / len(union) if union else 1.0)
    return 1.0 - sum(sims) / len(sims)


def medoid(preds: list[dict[str, Any]]) -> dict[str, Any]:
    """The prediction whose result text is closest to the others' (the first on ties); empty
    results only when all are empty."""
    preds = [p for p in preds if p["predicted_result"].strip()] or preds
    if len(preds) < 3:
        return preds[0]
    texts = [p["predicted_result"] for p in preds]
    scores = [
        result_disagreement([texts[i], *texts[:i], *texts[i + 1 :]]) for i in range(len(texts))
    ]
    return preds[scores.index(min(scores))]


def unknown_outcome(
    call: ToolCallCandidate,
    reason: str,
    evidence: Evidence,
    *,
    n_samples: int = 0,
    samples: list[dict[str, Any]] | None = None,
) -> Outcome:
    """``Outcome.unknown``'s fields, plus what was tried and what experience says (the gate's
    experience rules apply to unknown outcomes too)."""
    return Outcome(
        candidate=call.as_dict(),
        prediction={
            "source": "llm",
            "tool": call.name,
            "n_samples": n_samples,
            "n_failed": len(samples or []),
            "samples": samples or [],
            "evidence": evidence.as_dict(),
        },
        value=-math.inf,
        uncertainty=UNKNOWN_UNCERTAINTY,
        risk=1.0,
        status="unknown",
        reason=reason,
    )


def aggregate_samples(
    call: ToolCallCandidate,
    results: list[SampleResult],
    evidence: Evidence,
    *,
    prior_strength: float,
    risk_penalty: float,
) -> Outcome:
    """One outcome from the samples of ``call`` and its ``evidence`` (see the module
    docstring); unknown when no sample is valid."""
    valid = [r for r in results if r.prediction is not None]
    failed = [r for r in results if r.prediction is None]
    if not valid:
        reasons = sorted({r.error or "unknown error" for r in failed})
        samples = [{"index": r.index, "seed": r.seed, "error": r.error} for r in failed]
        return unknown_outcome(
            call, "; ".join(reasons), evidence, n_samples=len(results), samples=samples
        )
    preds = [r.prediction for r in valid if r.prediction is not None]
    probs = [p["p_success"] for p in preds]
    harms = [RISK_LEVEL_HARM[p["risk_level"]] for p in preds]
    progress = [p["goal_progress"] for p in preds]
    p_llm = sum(probs) / len(probs)
    u_success = min(1.0, 2.0 * math.sqrt(sum((p - p_llm) ** 2 for p in probs) / len(probs)))
    u_result = result_disagreement([p["predicted_result"] for p in preds])
    samples_unknown = len(valid) < 2  # one sample cannot disagree with itself
    if samples_unknown:
        u_llm = UNKNOWN_UNCERTAINTY
    else:
        u_llm = 0.5 * u_success + 0.5 * u_result
        u_llm = (len(valid) * u_llm + len(failed) * 1.0) / len(results)

    p_final, share = evidence.combine(p_llm, prior_strength)
    rate = evidence.observed_success_rate
    u_evidence = 4.0 * rate * (1.0 - rate) if rate is not None else u_llm
    uncertainty = min(1.0, max(0.0, (1.0 - share) * u_llm + share * u_evidence))

    harm = sum(harms) / len(harms)
    mean_progress = sum(progress) / len(progress)
    risk = min(1.0, max(0.0, 1.0 - p_final * (1.0 - harm)))
    value = mean_progress * p_final - risk_penalty * harm
    member_values = [
        g * p - risk_penalty * h for g, p, h in zip(progress, probs, harms, strict=True)
    ]

    # The representative sample: one that agrees with the final verdict, closest to the rest.
    success = p_final >= 0.5
    agreeing = [p for p in preds if (p["p_success"] >= 0.5) == success] or preds
    rep = medoid(agreeing)
    predicted_result = rep["predicted_result"]
    if evidence.exact_result is not None:
        # What actually happened last time in this exact situation beats a guess.
        predicted_result = evidence.exact_result
    levels = Counter(p["risk_level"] for p in preds)
    risk_level = max(levels, key=lambda lv: (levels[lv], RISK_LEVEL_HARM[lv]))
    reversible = sum(p["reversible"] for p in preds) >= len(preds) / 2

    samples_info = [
        {
            "index": r.index,
            "seed": r.seed,
            "cached": r.cached,
            **({"error": r.error} if r.error else {}),
            **(r.prediction or {}),
        }
        for r in results
    ]
    prediction = {
        "source": "llm",
        "tool": call.name,
        "predicted_result": predicted_result,
        "success": success,
        "success_probability": p_final,
        "llm_success_probability": p_llm,
        "side_effects": rep["side_effects"],
        "reversible": reversible,
        "risk_level": risk_level,
        "harm": harm,
        "goal_progress": mean_progress,
        "n_samples": len(results),
        "n_failed": len(failed),
        "uncertainty_parts": {
            "samples_unknown": samples_unknown,
            "n_valid": len(valid),
            "success": u_success,
            "result": u_result,
            "evidence_share": share,
            "evidence": u_evidence,
        },
        "evidence": evidence.as_dict(),
        "samples": samples_info,
    }
    reason = None
    if failed:
        reasons = sorted({r.error or "unknown error" for r in failed})
        reason = f"{len(failed)}/{len(results)} samples failed: " + "; ".join(reasons)
    return Outcome(
        candidate=call.as_dict(),
        prediction=prediction,
        value=value,
        uncertainty=uncertainty,
        risk=risk,
        member_values=member_values,
        status="ok",
        reason=reason,
    )
