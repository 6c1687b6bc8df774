"""A small ensemble of classifiers: E members, one batched matmul per layer for all of them.

Each member is an MLP ``[D] -> hidden -> hidden -> 1`` (a logit of success).  Members differ by
their initial weights and by the rows they see (each draws its own bootstrap minibatches), so
their disagreement grows where the training data says little: that is the model's uncertainty.
The layers are :class:`~wm_agents.neural.ensemble.EnsembleLinear` (the dynamics ensemble's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from wm_agents.neural.network import EnsembleLinear

__all__ = ["EnsembleClassifier", "TrainConfig", "subspace_masks", "train_classifier"]


class EnsembleClassifier(nn.Module):
    """E independent MLP classifiers as one module: ``[N, D] -> [E, N]`` logits.

    Args:
        in_features: D, the featurizer's row length.
        ensemble_size: E.
        hidden: width of the two hidden layers.
        generator: draws the initial weights.
        columns: the columns the network reads (by default all ``D``).  Training keeps only
            columns that are non-zero in some training row: a feature never seen in training
            has no learned meaning, and its random initial weights would otherwise add noise
            to every call that shows it (and the smaller matmul is faster).
    """

    def __init__(
        self,
        in_features: int,
        *,
        ensemble_size: int,
        hidden: int,
        generator: torch.Generator,
        columns: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if in_features < 1 or ensemble_size < 1 or hidden < 1:
            raise ValueError("in_features, ensemble_size and hidden must be >= 1")
        cols = list(range(in_features)) if columns is None else [int(c) for c in columns]
        if not cols or min(cols) < 0 or max(cols) >= in_features:
            raise ValueError(f"columns must be a non-empty subset of range({in_features})")
        self.in_features, self.ensemble_size, self.hidden = in_features, ensemble_size, hidden
        self.register_buffer("columns", torch.tensor(cols, dtype=torch.long))
        self.layers = nn.ModuleList(
            [
                EnsembleLinear(ensemble_size, len(cols), hidden),
                EnsembleLinear(ensemble_size, hidden, hidden),
                EnsembleLinear(ensemble_size, hidden, 1),
            ]
        )
        for layer in self.layers:
            layer.reset_parameters(generator)
        # Which read columns each member sees (its random subspace); all of them by default.
        self.register_buffer("input_mask", torch.ones(ensemble_size, 1, len(cols)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[E, N]`` for rows ``[N, D]`` (or per-member rows ``[E, N, D]``)."""
        if x.shape[-1] != self.in_features:
            raise ValueError(f"expected rows of {self.in_features} features, got {x.shape[-1]}")
        x = x.index_select(-1, self.columns)
        h = x.expand(self.ensemble_size, *x.shape) if x.dim() == 2 else x
        h = h * self.input_mask
        for layer in self.layers[:-1]:
            h = torch.nn.functional.silu(layer(h))
        return self.layers[-1](h).squeeze(-1)


@dataclass(frozen=True)
class TrainConfig:
    """How the members are trained (Adam, bootstrap minibatches, weight decay).  The defaults
    live in one place, :class:`~wm_agents.learned.LearnedConfig`.

    Attributes:
        ensemble_size: members E.
        hidden: hidden width.
        epochs: passes over the data (in minibatch steps: ``epochs * N / batch_size``).
        batch_size: rows per member per step.
        lr: Adam's learning rate.
        weight_decay: L2 penalty (AdamW), the main guard against memorising situations.
        min_steps: at least this many steps, however small the data set.
        group_keep: each member sees each feature group with this probability (its random
            subspace, drawn once); 1.0 = every member sees everything.
    """

    ensemble_size: int
    hidden: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    min_steps: int
    group_keep: float


def subspace_masks(
    groups: Sequence[int],
    ensemble_size: int,
    keep: float,
    generator: torch.Generator,
    always: Sequence[int] = (0,),
) -> torch.Tensor:
    """``[E, 1, D]`` masks: member e sees column j when it kept group ``groups[j]``.  Groups in
    ``always`` are kept by every member (the tool's identity, group 0: without it a member
    cannot tell tools apart)."""
    group_ids = torch.as_tensor(list(groups), dtype=torch.long)
    n_groups = int(group_ids.max()) + 1 if len(group_ids) else 1
    kept = torch.rand(ensemble_size, n_groups, generator=generator) < keep
    kept[:, list(always)] = True
    return kept[:, group_ids].float().unsqueeze(1)


def train_classifier(
    x: torch.Tensor,
    y: torch.Tensor,
    config: TrainConfig,
    generator: torch.Generator,
    groups: Sequence[int] | None = None,
    always: Sequence[int] = (0,),
) -> EnsembleClassifier:
    """Fit an ensemble to rows ``x [N, D]`` and labels ``y [N]`` (0/1); returns it in eval mode.

    Each member draws its own minibatch indices with replacement (a bootstrap per step), and,
    with ``groups`` (a group id per column) and ``config.group_keep < 1``, sees only its own
    random subset of feature groups: members that rely on different cues disagree when the
    cues disagree, which is the uncertainty a new kind of call should get.
    """
    if x.dim() != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"expected x [N, D] and y [N], got {tuple(x.shape)} and {tuple(y.shape)}")
    n = x.shape[0]
    if n == 0:
        raise ValueError("no training rows")
    used = torch.nonzero(x.abs().sum(dim=0) > 0).flatten().tolist() or [0]
    net = EnsembleClassifier(
        x.shape[1],
        ensemble_size=config.ensemble_size,
        hidden=config.hidden,
        generator=generator,
        columns=used,
    )
    if groups is not None and config.group_keep < 1.0:
        if len(groups) != x.shape[1]:
            raise ValueError(f"groups has {len(groups)} entries for {x.shape[1]} columns")
        masks = subspace_masks(groups, config.ensemble_size, config.group_keep, generator, always)
        net.input_mask.copy_(masks[:, :, used])
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    batch = min(config.batch_size, n)
    steps = max(config.min_steps, config.epochs * n // batch)
    loss_fn = nn.BCEWithLogitsLoss()
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, n, (config.ensemble_size, batch), generator=generator)
        logits = net(x[idx])  # [E, B]: member e on its own bootstrap rows
        loss = loss_fn(logits, y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.eval()
    return net
