"""Calibration, and the combination with the LLM's prior, as one small logistic regression.

The network's raw probabilities are over-confident on new situations (trained to fit its
training rows), so its mean logit ``z`` goes through Platt scaling fitted on *out-of-fold*
predictions (each row predicted by members that never saw its situation):
``p = sigmoid(a * z + b)``.

When the LLM was asked, its probability enters the same regression as a second input,
``p = sigmoid(a * z + c * logit(p_llm) + b)``, fitted on the out-of-fold rows that have a prior.
Why this and not the prior as a network input: priors are missing for most stored outcomes
(the LLM costs seconds per call), and how much a prior is worth depends on which LLM gave it; a
single weight ``c`` fitted on held-out rows learns exactly that (near 0 for a model at chance,
large for a good one) and cannot overfit.  Both regressions are regularised toward "trust the
network as it is" (``a = 1``, ``c = 0``) so a handful of rows cannot swing them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["LogisticCalibrator", "prior_logit"]

PRIOR_CLIP = 0.01
"""Priors are clipped to ``[0.01, 0.99]`` before their logit (a prior of exactly 0 or 1 would
be an infinite input)."""


def prior_logit(p: float | np.ndarray) -> np.ndarray:
    """``logit(clip(p, 0.01, 0.99))``."""
    q = np.clip(np.asarray(p, dtype=np.float64), PRIOR_CLIP, 1.0 - PRIOR_CLIP)
    return np.log(q / (1.0 - q))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # stable for large |z|


@dataclass(frozen=True)
class LogisticCalibrator:
    """``p = sigmoid(inputs @ weights + bias)``.

    Attributes:
        weights: one per input column (``[a]`` or ``[a, c]``).
        bias: ``b``.
        n_rows: rows it was fitted on.
    """

    weights: tuple[float, ...]
    bias: float
    n_rows: int = 0

    @classmethod
    def identity(cls, n_inputs: int = 1) -> LogisticCalibrator:
        """``a = 1`` on the first input, 0 elsewhere: the network as it is."""
        return cls((1.0,) + (0.0,) * (n_inputs - 1), 0.0, 0)

    @classmethod
    def fit(
        cls, inputs: np.ndarray, y: np.ndarray, *, l2: float = 1.0, iterations: int = 50
    ) -> LogisticCalibrator:
        """Newton's method on the penalised log-loss; ``inputs [N, K]``, ``y [N]`` in {0, 1}.

        The penalty ``l2 / 2 * |w - w0|^2`` pulls toward :meth:`identity` (``w0 = [1, 0...]``);
        the bias is not penalised.  Deterministic.
        """
        x = np.asarray(inputs, dtype=np.float64)
        t = np.asarray(y, dtype=np.float64)
        if x.ndim != 2 or t.shape != (x.shape[0],):
            raise ValueError(f"expected inputs [N, K] and y [N], got {x.shape} and {t.shape}")
        if not np.isfinite(x).all():
            raise ValueError("calibration inputs must be finite")
        n, k = x.shape
        w0 = np.array((*cls.identity(k).weights, 0.0))
        design = np.hstack([x, np.ones((n, 1))])
        penalty = np.full(k + 1, l2)
        penalty[-1] = 0.0

        def loss(w: np.ndarray) -> float:
            z = design @ w
            # log(1 + e^z) - t z, stable for large |z|
            nll = np.logaddexp(0.0, z) - t * z
            return float(nll.sum() + 0.5 * (penalty * (w - w0) ** 2).sum())

        w = w0.copy()
        current = loss(w)
        for _ in range(iterations):
            p = _sigmoid(design @ w)
            grad = design.T @ (p - t) + penalty * (w - w0)
            hess = design.T @ (design * (p * (1 - p))[:, None]) + np.diag(penalty + 1e-6)
            step = np.linalg.solve(hess, grad)
            # Backtracking: near-separable data makes a full Newton step overshoot.
            scale = 1.0
            while scale > 1e-4 and loss(w - scale * step) > current:
                scale *= 0.5
            if scale <= 1e-4:
                break
            w = w - scale * step
            previous, current = current, loss(w)
            if previous - current < 1e-10 * max(1.0, abs(current)):
                break
        return cls(tuple(float(v) for v in w[:-1]), float(w[-1]), n)

    def logits(self, inputs: np.ndarray) -> np.ndarray:
        """Calibrated logits for ``inputs [N, K]`` (or ``[..., K]``)."""
        x = np.asarray(inputs, dtype=np.float64)
        if x.shape[-1] != len(self.weights):
            raise ValueError(f"expected {len(self.weights)} inputs, got {x.shape[-1]}")
        return x @ np.asarray(self.weights) + self.bias

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for ``inputs [N, K]``."""
        return _sigmoid(self.logits(inputs))

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"weights": list(self.weights), "bias": self.bias, "n_rows": self.n_rows}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, n_inputs: int) -> LogisticCalibrator:
        """Inverse of :meth:`as_dict`; raises ``ValueError`` unless it has ``n_inputs``
        finite weights and a finite bias."""
        weights = data.get("weights")
        bias = data.get("bias")
        if (
            not isinstance(weights, Sequence)
            or len(weights) != n_inputs
            or not all(isinstance(v, int | float) and math.isfinite(v) for v in weights)
            or not isinstance(bias, int | float)
            or not math.isfinite(bias)
        ):
            raise ValueError(f"a calibrator needs {n_inputs} finite weights and a finite bias")
        return cls(tuple(float(v) for v in weights), float(bias), int(data.get("n_rows", 0)))
