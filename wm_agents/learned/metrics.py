"""Scores of probabilistic success predictions: AUROC, Brier score, accuracy, reliability.

All take probabilities ``p [N]`` and outcomes ``y [N]`` (1 = success).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["accuracy", "auroc", "brier", "reliability"]


def _arrays(p: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> tuple:
    pa = np.asarray(p, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if pa.shape != ya.shape or pa.ndim != 1:
        raise ValueError(f"expected p and y of the same shape [N], got {pa.shape} and {ya.shape}")
    return pa, ya


def brier(p: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Mean squared error of the probabilities (0 = perfect; always 0.5 scores 0.25)."""
    pa, ya = _arrays(p, y)
    return float(np.mean((pa - ya) ** 2)) if len(pa) else float("nan")


def accuracy(p: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Share of outcomes on the right side of 0.5 (``p >= 0.5`` predicts success)."""
    pa, ya = _arrays(p, y)
    return float(np.mean((pa >= 0.5) == (ya == 1.0))) if len(pa) else float("nan")


def auroc(p: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve: the probability that a random success is ranked above a random
    failure (ties count half).  0.5 for a constant prediction; NaN with only one outcome."""
    pa, ya = _arrays(p, y)
    n_pos = int((ya == 1.0).sum())
    n_neg = len(ya) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(pa, kind="mergesort")
    sorted_p = pa[order]
    ranks = np.empty(len(pa))
    i = 0
    while i < len(pa):  # average ranks over ties
        j = i
        while j + 1 < len(pa) and sorted_p[j + 1] == sorted_p[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[ya == 1.0].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def reliability(
    p: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, *, bins: int = 10
) -> list[dict[str, float]]:
    """Equal-width bins over [0, 1]: per non-empty bin, ``n``, mean predicted probability and
    observed success rate (what a reliability diagram plots)."""
    pa, ya = _arrays(p, y)
    idx = np.minimum((pa * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        mask = idx == b
        if mask.any():
            out.append(
                {
                    "lo": b / bins,
                    "hi": (b + 1) / bins,
                    "n": int(mask.sum()),
                    "mean_p": float(pa[mask].mean()),
                    "rate": float(ya[mask].mean()),
                }
            )
    return out
