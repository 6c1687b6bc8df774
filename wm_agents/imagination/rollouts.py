"""MBPO-style branched rollouts: short imagined trajectories from real states.

From ``N`` real start states the current policy acts inside the ensemble for up to ``length``
steps.  At every step all members predict (one batched :meth:`EnsembleDynamicsModel.predict`
call); the transition kept is the one of a member drawn at random per row (MBPO), and the
members' spread decides whether to keep it at all: a row stops *before* the first step whose
disagreement exceeds ``threshold``, so the policy never learns from a step the model is unsure
of.  Rows also stop after a predicted termination (probability > 0.5), which is kept.

Disagreement of a row is ``max_d std_e(next_obs[e, n, d]) / scale[d]``: the largest member
spread of any observation dimension, in units of ``scale`` (by default the model's standard
deviation of real one-step changes, so 1.0 means "members disagree by a typical step").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["ImaginedBatch", "branched_rollouts", "default_scale", "ensemble_disagreement"]

Policy = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ImaginedBatch:
    """Imagined transitions, flattened over rows and steps.

    Attributes:
        obs, next_obs: ``[M, D]``.
        action: ``[M, A]``.
        reward, terminated: ``[M]`` (``terminated`` as 0/1 floats).
        lengths: ``[N]`` steps kept per start state.
        stopped: ``[N]`` true where the row stopped on disagreement (not horizon/termination).
        disagreement: ``[M]`` disagreement of each kept transition.
    """

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    lengths: torch.Tensor
    stopped: torch.Tensor
    disagreement: torch.Tensor

    def __len__(self) -> int:
        return int(self.obs.shape[0])


def ensemble_disagreement(
    next_obs: torch.Tensor, scale: torch.Tensor | None = None
) -> torch.Tensor:
    """``[E, N, D]`` member predictions -> ``[N]`` largest spread over dims, in scale units."""
    if next_obs.ndim != 3:
        raise ValueError(f"next_obs must be [E, N, D], got {list(next_obs.shape)}")
    spread = next_obs.std(0, correction=0)
    if scale is not None:
        spread = spread / scale
    return spread.max(-1).values


def default_scale(model: Any) -> torch.Tensor | None:
    """The model's std of real one-step observation changes (``out_std[:D]``), if it has one."""
    out_std = getattr(model, "out_std", None)
    if out_std is None:
        return None
    return out_std[: model.obs_dim].clamp(min=1e-6)


@torch.no_grad()
def branched_rollouts(
    model: Any,
    start_obs: torch.Tensor,
    policy: Policy,
    length: int,
    *,
    threshold: float,
    generator: torch.Generator,
    scale: torch.Tensor | None = None,
) -> ImaginedBatch:
    """Imagine up to ``length`` steps of ``policy`` from each of ``start_obs`` ``[N, D]``.

    Args:
        model: anything with ``ensemble_size`` and ``predict(obs[E, N, D], act[E, N, A]) ->
            (next_obs [E, N, D], reward [E, N], term_prob [E, N])`` (an
            :class:`~wm_agents.neural.EnsembleDynamicsModel`).
        policy: ``[n, D] -> [n, A]`` actions (exploration, if any, is the policy's business).
        threshold: maximum disagreement of a kept step (``inf``: never stop on disagreement).
        generator: draws the member that supplies each row's transition.
        scale: per-dimension unit of disagreement (default :func:`default_scale`).
    """
    if length < 1:
        raise ValueError(f"rollout length must be >= 1, got {length}")
    if start_obs.ndim != 2:
        raise ValueError(f"start_obs must be [N, D], got {list(start_obs.shape)}")
    if scale is None:
        scale = default_scale(model)
    e = int(model.ensemble_size)
    n = start_obs.shape[0]
    obs = start_obs.float()
    rows = torch.arange(n)  # original row index of each live row
    lengths = torch.zeros(n, dtype=torch.long)
    stopped = torch.zeros(n, dtype=torch.bool)
    parts: list[tuple[torch.Tensor, ...]] = []
    for _ in range(length):
        if rows.numel() == 0:
            break
        m = rows.numel()
        act = policy(obs)
        nxt, rew, term = model.predict(obs.expand(e, m, -1), act.expand(e, m, -1))
        dis = ensemble_disagreement(nxt, scale)
        member = torch.randint(0, e, (m,), generator=generator)
        idx = torch.arange(m)
        nxt_k, rew_k, done_k = nxt[member, idx], rew[member, idx], term[member, idx] > 0.5
        keep = dis <= threshold
        stopped[rows[~keep]] = True
        parts.append(
            (obs[keep], act[keep], rew_k[keep], nxt_k[keep], done_k[keep].float(), dis[keep])
        )
        lengths[rows[keep]] += 1
        live = keep & ~done_k
        rows, obs = rows[live], nxt_k[live]
    if parts:
        cat = [torch.cat(p) for p in zip(*parts, strict=True)]
    else:  # pragma: no cover - length >= 1 always yields one part
        cat = [torch.empty(0)] * 6
    return ImaginedBatch(cat[0], cat[1], cat[2], cat[3], cat[4], lengths, stopped, cat[5])
