"""Every predictor on one split: probabilities for the held-out calls, and their scores.

Predictors (all see the same held-out calls; none sees their outcomes):

* ``majority``: the training calls' success rate, for every call;
* ``llm``: the embedded LLM alone (zero-shot, k = 3; from the cache of
  :mod:`~wm_agents.bench.learned_outcomes_llm`); a call whose samples all failed counts as 0.5;
* ``experience``: today's :class:`~wm_agents.llm.ExperienceMemory` (defaults) holding every
  training call as experience, its Beta posterior with prior strength 2 (the predictor's
  default) around a prior of 0.5 (``experience``) or the LLM's probability
  (``experience+llm``, where it was measured);
* ``learned``: :class:`~wm_agents.learned.LearnedOutcomeModel` trained on the training calls
  through ``learn``; ``learned+llm`` the same model given the LLM's probability as a prior.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from wm_agents.bench.toolworld import TOOLS, ToolCallRecord
from wm_agents.core import Transition
from wm_agents.learned import LearnedConfig, LearnedOutcomeModel, accuracy, auroc, brier
from wm_agents.llm.memory import ExperienceMemory
from wm_agents.llm.schemas import LLMState, ToolCallCandidate

__all__ = [
    "arecord_calls",
    "experience_probabilities",
    "fit_learned",
    "learned_probabilities",
    "probabilities_table",
    "score",
    "selective",
    "transitions",
]

PRIOR_STRENGTH = 2.0
"""``LLMOutcomePredictor``'s default weight of the prior against experience."""


def score(p: Sequence[float] | np.ndarray, y: Sequence[bool] | np.ndarray) -> dict[str, float]:
    """AUROC, Brier score, accuracy and size."""
    ys = np.asarray(y, dtype=np.float64)
    ps = np.asarray(p, dtype=np.float64)
    return {
        "n": len(ys),
        "auroc": auroc(ps, ys),
        "brier": brier(ps, ys),
        "accuracy": accuracy(ps, ys),
    }


UNCERTAINTY_CUTS = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0)


def selective(
    p: np.ndarray, u: np.ndarray, y: np.ndarray, cuts: Sequence[float] = UNCERTAINTY_CUTS
) -> list[dict[str, float]]:
    """For each cut: the share of calls whose uncertainty is at most the cut (what a router
    would leave to this model), and Brier and accuracy on them: is low uncertainty worth
    trusting?"""
    out = []
    for cut in cuts:
        mask = u <= cut
        row: dict[str, float] = {"max_uncertainty": cut, "coverage": float(mask.mean())}
        if mask.any():
            row |= {"brier": brier(p[mask], y[mask]), "accuracy": accuracy(p[mask], y[mask])}
        out.append(row)
    return out


def transitions(
    rows: Sequence[ToolCallRecord], priors: dict[str, float | None]
) -> list[Transition]:
    """The calls as the transitions an agent's ``learn`` step would record (the LLM's prior,
    where it was measured, in ``info["p_llm"]``)."""
    out = []
    for r in rows:
        info = {} if priors.get(r.id) is None else {"p_llm": priors[r.id]}
        out.append(
            Transition(
                state=r.state(), action=r.call(), result=r.result, success=r.success, info=info
            )
        )
    return out


def fit_learned(
    train: Sequence[ToolCallRecord], priors: dict[str, float | None], config: LearnedConfig
) -> tuple[LearnedOutcomeModel, float]:
    """A learned model trained on ``train`` through ``learn``; and the seconds it took."""
    model = LearnedOutcomeModel(config, tools=[t.spec() for t in TOOLS.values()])
    start = time.perf_counter()
    report = model.learn(transitions(train, priors))
    if not report.updated:
        raise RuntimeError(f"the learned model did not fit: {report.message}")
    return model, time.perf_counter() - start


def learned_probabilities(
    model: LearnedOutcomeModel,
    rows: Sequence[ToolCallRecord],
    priors: dict[str, float | None] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """``(p [N], uncertainty [N], n_unknown)``; an unknown prediction counts as 0.5."""
    calls = [(f"{r.task}\n{r.context}", r.tool, r.args) for r in rows]
    preds = model.predict(calls, None if priors is None else [priors.get(r.id) for r in rows])
    p = np.array([0.5 if q.p_success is None else q.p_success for q in preds])
    u = np.array([q.uncertainty for q in preds])
    return p, u, sum(not q.is_known for q in preds)


async def arecord_calls(memory: ExperienceMemory, rows: Sequence[ToolCallRecord]) -> None:
    """Record every call's real outcome in ``memory``, as an agent's ``learn`` step would."""
    for r in rows:
        await memory.arecord(
            LLMState(task=r.task, context=r.context),
            ToolCallCandidate(name=r.tool, args=r.args),
            result=r.result,
            success=r.success,
        )


async def _aexperience(
    train: Sequence[ToolCallRecord],
    queries: Sequence[tuple[Sequence[ToolCallRecord], Sequence[float]]],
) -> list[np.ndarray]:
    memory = ExperienceMemory()
    await arecord_calls(memory, train)
    out = []
    for rows, prior in queries:
        ps = []
        for r, p0 in zip(rows, prior, strict=True):
            evidence = await memory.aevidence(
                LLMState(task=r.task, context=r.context),
                ToolCallCandidate(name=r.tool, args=r.args),
            )
            ps.append(evidence.combine(p0, PRIOR_STRENGTH)[0])
        out.append(np.array(ps))
    return out


def experience_probabilities(
    train: Sequence[ToolCallRecord],
    queries: Sequence[tuple[Sequence[ToolCallRecord], Sequence[float]]],
) -> list[np.ndarray]:
    """Today's experience-by-similarity posterior for each ``(rows, priors)`` query, with
    every ``train`` call recorded as experience (one memory for all queries)."""
    return asyncio.run(_aexperience(train, queries))


def probabilities_table(**columns: Any) -> dict[str, list[float]]:
    """Per-call probabilities as plain lists (kept in the JSON for the reliability diagram)."""
    return {k: [round(float(v), 4) for v in vals] for k, vals in columns.items()}
