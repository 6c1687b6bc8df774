"""Fitting the learned outcome model: features, the ensemble, and out-of-fold calibration.

:func:`fit_predictor` does, on the examples given:

1. fit the feature vocabulary (tools, argument slots) and featurize every example;
2. split the examples into ``calibration_folds`` folds *by situation* (all calls of one
   situation in one fold) and, per fold, train an ensemble on the other folds and predict the
   fold: every example gets an out-of-fold logit from members that never saw its situation;
3. fit Platt scaling on the out-of-fold logits, and, when at least ``min_prior_examples``
   examples carry an LLM prior, the combination with the prior (see
   :mod:`wm_agents.learned.calibration`);
4. train the final ensemble on every example.

Every ensemble member sees the tool's identity and the declared-type features, and each other
feature group (value types, numbers, strings, paths, the listing, links, call facts, words)
with probability ``group_keep``, drawn once per member: a member that cannot see a shortcut
must learn another cue, and members that learned different cues disagree on calls where the
cues disagree (measured on the benchmark's tuning seeds: AUROC 0.81 -> 0.835 on held-out
argument patterns, see BENCHMARKS.md, "Learned outcome model").

:func:`predict` returns calibrated probabilities and each member's, batched.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from wm_agents.learned.calibration import LogisticCalibrator, prior_logit
from wm_agents.learned.data import OutcomeExample
from wm_agents.learned.features import FEATURE_GROUPS, CallFeaturizer, Vocabulary
from wm_agents.learned.network import EnsembleClassifier, TrainConfig, train_classifier

__all__ = ["FittedPredictor", "LearnedConfig", "PredictionBatch", "fit_predictor", "predict"]


class LearnedConfig(BaseModel):
    """Settings of the learned outcome model (validated; saved with it).

    Attributes:
        ensemble_size, hidden, epochs, batch_size, lr, weight_decay, min_steps, group_keep:
            the network and its training (:class:`~wm_agents.learned.network.TrainConfig`).
            Chosen on the benchmark's tuning seeds (BENCHMARKS.md, "Learned outcome model"): about
            200 steps of 512 rows; longer training memorises the training patterns and
            generalises worse to new ones.
        calibration_folds: folds (by situation) for the out-of-fold logits calibration is
            fitted on; each costs one more training.
        calibration_l2: pull of the calibrators toward "the network as it is".
        min_examples: below this many examples (or with only one outcome among them) every
            prediction is unknown.
        min_tool_examples: a tool seen fewer times is unknown.
        min_prior_examples: out-of-fold examples with an LLM prior needed before the prior is
            weighed in (fewer: the prior is ignored, and predictions say so).
        max_examples: examples kept (the oldest are dropped first).
        refit_every: :meth:`LearnedOutcomeModel.learn` refits after this many new examples
            (and at once when a new tool reaches ``min_tool_examples``).
        seed: every random draw (initial weights, minibatches, folds) comes from it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    ensemble_size: int = Field(default=5, ge=1, le=64)
    hidden: int = Field(default=64, ge=1, le=4096)
    epochs: int = Field(default=30, ge=1, le=10_000)
    batch_size: int = Field(default=512, ge=1, le=65_536)
    lr: float = Field(default=3e-3, gt=0, le=1.0)
    weight_decay: float = Field(default=1e-2, ge=0, le=10.0)
    min_steps: int = Field(default=200, ge=1, le=1_000_000)
    group_keep: float = Field(default=0.7, gt=0, le=1.0)
    calibration_folds: int = Field(default=3, ge=2, le=20)
    calibration_l2: float = Field(default=1.0, ge=0, le=1e6)
    min_examples: int = Field(default=50, ge=2)
    min_tool_examples: int = Field(default=8, ge=1)
    min_prior_examples: int = Field(default=30, ge=2)
    max_examples: int = Field(default=50_000, ge=2, le=1_000_000)
    refit_every: int = Field(default=25, ge=1)
    seed: int = 0

    def train_config(self) -> TrainConfig:
        """The network's training settings."""
        return TrainConfig(
            ensemble_size=self.ensemble_size,
            hidden=self.hidden,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            min_steps=self.min_steps,
            group_keep=self.group_keep,
        )


@dataclass
class FittedPredictor:
    """A trained network with its featurizer and calibrators.

    Attributes:
        featurizer: turns calls into rows.
        net: the final ensemble (trained on every example).
        platt: calibration of the network's mean logit, ``[z] -> p``.
        combiner: ``[z, logit(p_llm)] -> p``, or None when too few examples had a prior.
        tool_counts: examples per tool.
        metrics: out-of-fold Brier scores (raw network, calibrated), sizes, fit seconds.
    """

    featurizer: CallFeaturizer
    net: EnsembleClassifier
    platt: LogisticCalibrator
    combiner: LogisticCalibrator | None
    tool_counts: dict[str, int]
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PredictionBatch:
    """Predictions for N calls.

    Attributes:
        p_success: ``[N]`` calibrated probability (combined with the prior where one was given
            and the model has a combiner).
        p_network: ``[N]`` calibrated probability from the network alone.
        member_probabilities: ``[E, N]`` each member's probability, calibrated the same way.
        prior_used: ``[N]`` whether the prior was weighed in.
    """

    p_success: np.ndarray
    p_network: np.ndarray
    member_probabilities: np.ndarray
    prior_used: np.ndarray

    @property
    def uncertainty(self) -> np.ndarray:
        """``[N]`` in [0, 1]: twice the members' standard deviation of probability (0 = they
        agree; 1 = half say 0, half say 1)."""
        return np.clip(2.0 * self.member_probabilities.std(axis=0), 0.0, 1.0)


def _folds(examples: Sequence[OutcomeExample], k: int, generator: torch.Generator) -> np.ndarray:
    groups = sorted({ex.group or ex.situation for ex in examples})
    if len(groups) < k:  # too few situations to hold whole ones out: fold by row
        order = torch.randperm(len(examples), generator=generator).numpy()
        fold = np.empty(len(examples), dtype=np.int64)
        fold[order] = np.arange(len(examples)) % k
        return fold
    perm = torch.randperm(len(groups), generator=generator).numpy()
    fold_of = {groups[i]: j % k for j, i in enumerate(perm)}
    return np.array([fold_of[ex.group or ex.situation] for ex in examples], dtype=np.int64)


def _mean_logit(net: EnsembleClassifier, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return net(x).mean(dim=0).double().numpy()


def _brier(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


def fit_predictor(
    examples: Sequence[OutcomeExample],
    config: LearnedConfig,
    schemas: Mapping[str, Mapping[str, Any]] | None = None,
) -> FittedPredictor:
    """Fit features, ensemble and calibration on ``examples`` (see the module docstring);
    ``schemas`` (tool -> JSON schema of its parameters) adds declared-type features.

    Raises:
        ValueError: fewer than two examples, or only one outcome among them (callers check
            ``min_examples`` first and report such a model as unknown).
    """
    start = time.perf_counter()
    ys = np.array([1.0 if ex.success else 0.0 for ex in examples])
    if len(examples) < 2 or ys.min() == ys.max():
        raise ValueError("fitting needs at least two examples with both outcomes")
    generator = torch.Generator().manual_seed(config.seed)
    vocab = Vocabulary.fit([(ex.tool, ex.args) for ex in examples], schemas)
    featurizer = CallFeaturizer(vocab)
    x = torch.from_numpy(
        featurizer.transform([(ex.situation, ex.tool, ex.args) for ex in examples])
    )
    y = torch.from_numpy(ys.astype(np.float32))
    train_cfg = config.train_config()
    groups = featurizer.feature_groups()
    # Every member sees which tool it is and whether a value has the declared type (the
    # tool's own contract); the rest of the groups form each member's random subspace.
    always = (FEATURE_GROUPS.index("tool"), FEATURE_GROUPS.index("schema"))

    fold = _folds(examples, config.calibration_folds, generator)
    z_oof = np.zeros(len(examples))
    for k in range(config.calibration_folds):
        held = fold == k
        train_idx = torch.from_numpy(np.flatnonzero(~held))
        if held.sum() == 0 or len(train_idx) == 0:
            continue
        net_k = train_classifier(x[train_idx], y[train_idx], train_cfg, generator, groups, always)
        z_oof[held] = _mean_logit(net_k, x[torch.from_numpy(np.flatnonzero(held))])
    platt = LogisticCalibrator.fit(z_oof[:, None], ys, l2=config.calibration_l2)
    has_prior = np.array([ex.p_llm is not None for ex in examples])
    combiner = None
    if has_prior.sum() >= config.min_prior_examples and len(set(ys[has_prior])) == 2:
        priors = np.array([ex.p_llm for ex in examples if ex.p_llm is not None], dtype=np.float64)
        inputs = np.stack([z_oof[has_prior], prior_logit(priors)], axis=1)
        combiner = LogisticCalibrator.fit(inputs, ys[has_prior], l2=config.calibration_l2)

    net = train_classifier(x, y, train_cfg, generator, groups, always)
    metrics: dict[str, float] = {
        "n_examples": float(len(examples)),
        "n_with_prior": float(has_prior.sum()),
        "success_rate": float(ys.mean()),
        "oof_brier_network": _brier(1.0 / (1.0 + np.exp(-z_oof)), ys),
        "oof_brier_calibrated": _brier(platt.probabilities(z_oof[:, None]), ys),
        "platt_a": platt.weights[0],
        "platt_b": platt.bias,
    }
    if combiner is not None:
        metrics |= {
            "prior_weight": combiner.weights[1],
            "combiner_network_weight": combiner.weights[0],
        }
    metrics["fit_s"] = time.perf_counter() - start
    return FittedPredictor(
        featurizer, net, platt, combiner, dict(Counter(ex.tool for ex in examples)), metrics
    )


def predict(
    fitted: FittedPredictor, rows: np.ndarray, priors: Sequence[float | None]
) -> PredictionBatch:
    """Calibrated predictions for feature ``rows [N, D]``; ``priors`` ``[N]`` (None: no prior)."""
    if rows.ndim != 2 or rows.shape[1] != fitted.featurizer.dim or len(priors) != len(rows):
        raise ValueError(
            f"expected rows [N, {fitted.featurizer.dim}] and N priors, got {rows.shape} and "
            f"{len(priors)}"
        )
    with torch.no_grad():
        z = fitted.net(torch.from_numpy(rows.astype(np.float32))).double().numpy()  # [E, N]
    z_mean = z.mean(axis=0)
    p_net = fitted.platt.probabilities(z_mean[:, None])
    members = fitted.platt.probabilities(z[..., None])
    use = np.array([p is not None and fitted.combiner is not None for p in priors])
    p = p_net.copy()
    if use.any() and fitted.combiner is not None:
        zp = prior_logit(np.array([q for q, u in zip(priors, use, strict=True) if u], float))
        p[use] = fitted.combiner.probabilities(np.stack([z_mean[use], zp], axis=1))
        zp_e = np.broadcast_to(zp, (z.shape[0], zp.shape[0]))
        members[:, use] = fitted.combiner.probabilities(np.stack([z[:, use], zp_e], axis=-1))
    return PredictionBatch(p, p_net, members, use)
