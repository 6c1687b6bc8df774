"""Imagined rewards and values kept to the range real data showed, with a margin.

A model fitted on a few hundred transitions extrapolates without limit outside them: CartPole,
whose return cannot exceed 500, was imagined at 2.7e10 (1e20 early in a run), and one such
candidate outranks every honest one in a search or a policy's trust test.  So the model records
the range of the rewards it was fitted on and of its value's regression targets (buffers saved
in the model file), and every imagined reward and terminal value is clamped to that range
widened by :func:`clip_range`'s margin.  Rows that were clipped are counted
(:class:`ClipStats`): a model that needs clipping often is a model not to trust yet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["NOTHING_SEEN", "ClipStats", "clip_range", "seen_range"]

NOTHING_SEEN = (math.inf, -math.inf)
"""The ``(min, max)`` of no data: :func:`clip_range` leaves values unclipped."""


def seen_range(values: Any) -> torch.Tensor:
    """``(min, max)`` of ``values`` as a float32 ``[2]`` tensor (:data:`NOTHING_SEEN` if empty)."""
    t = torch.as_tensor(values, dtype=torch.float32).reshape(-1)
    if t.numel() == 0:
        return torch.tensor(NOTHING_SEEN)
    return torch.stack([t.min(), t.max()])


def clip_range(seen: torch.Tensor) -> tuple[float, float]:
    """The bounds for imagined values, from the ``(min, max)`` seen in real data.

    The range is widened on each side by ``max(max - min, |min|, |max|)`` (1 when that is 0):
    one whole observed range, or the largest magnitude for a reward that never varied
    (CartPole's 1 -> ``[0, 2]``; Pendulum's ``[-16.3, 0]`` -> ``[-32.6, 16.3]``).  The margin
    is wide on purpose: a model may rightly imagine somewhat more than it has seen (a faster
    cheetah earns more than any step so far, and the range grows with each refit), and the
    clip is there to stop orders-of-magnitude errors, not to correct a model that is nearly
    right; a tight bound would change the plans of a good model.  Nothing seen: no bounds.
    """
    lo, hi = float(seen[0]), float(seen[1])
    if not lo <= hi:
        return -math.inf, math.inf
    margin = max(hi - lo, abs(lo), abs(hi)) or 1.0
    return lo - margin, hi + margin


@dataclass
class ClipStats:
    """How many imagined rows were clipped: ``rows`` counted, ``clipped`` among them.

    A row is one imagined trajectory of :meth:`EnsembleDynamicsModel.rollout` (one member, one
    candidate; a reward or its terminal value clipped) or one member's one-step prediction of
    :meth:`EnsembleDynamicsModel.predict` (its reward clipped).
    """

    rows: int = 0
    clipped: int = 0

    def add(self, rows: int, clipped: int) -> None:
        self.rows += int(rows)
        self.clipped += int(clipped)

    def as_dict(self) -> dict[str, int]:
        return {"rows": self.rows, "clipped": self.clipped}
