"""Ensemble dynamics model: E probabilistic MLPs evaluated in one batched matmul per layer.

Each member maps ``(obs, action)`` to a Gaussian over ``(next_obs - obs, reward)`` (mean and
log-variance, PETS-style soft-bounded) plus a termination logit, so reward and termination are
learned from data: no hand-written knowledge of the environment is needed.  A user may still
pass ``reward_fn`` / ``termination_fn`` to replace the learned heads.  A small value network
``V(s)`` (fitted on real returns by ``trainer.fit_value``) gives the planner a terminal value
beyond its horizon.

Planning uses a fast path (:meth:`EnsembleDynamicsModel.planning_weights`): normalizers folded
into the first and last layers, the log-variance half of the head dropped, the action part of
the first layer computed for the whole horizon at once, so one model step is ~15 small ops.

Shapes (E members, N rows per member, D obs size, A action width, H horizon, B candidates,
K particles per candidate):

* member-batched inputs ``[E, N, D]`` / ``[E, N, A]``
* candidate action sequences ``[B, H, A]``
* per-particle imagined returns ``[B, K]``
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

from wm_agents.core import LearnReport, Outcome, Transition
from wm_agents.neural.bounds import NOTHING_SEEN, ClipStats, clip_range
from wm_agents.neural.buffer import ReplayBuffer
from wm_agents.neural.model_config import EnsembleConfig, ModelFileError, config_problem
from wm_agents.spaces import ActionSpec

__all__ = [
    "EnsembleConfig",
    "EnsembleDynamicsModel",
    "EnsembleLinear",
    "ImaginedRollout",
    "ModelFileError",
]

RewardFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
TerminationFn = Callable[[torch.Tensor], torch.Tensor]

_FILE_FORMAT = "wm_agents.EnsembleDynamicsModel"
_FILE_VERSION = 3
# Version 2 files lack the data ranges of version 3 (``reward_seen``, ``value_seen``); they load
# with nothing seen (no clipping) until the model is fitted again.
_READABLE_VERSIONS = {2: {"reward_seen", "value_seen"}, _FILE_VERSION: set()}


class EnsembleLinear(nn.Module):
    """E independent linear layers as one batched op: ``[E, N, in] -> [E, N, out]``.

    Weights are shaped ``(E, in, out)`` so all members run in a single ``baddbmm``.
    """

    def __init__(self, ensemble_size: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ensemble_size, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(ensemble_size, 1, out_features))

    def reset_parameters(self, generator: torch.Generator) -> None:
        # Truncated normal, std 1/(2 sqrt(fan_in)) as in PETS; explicit generator, no global RNG.
        std = 1.0 / (2.0 * math.sqrt(self.weight.shape[1]))
        with torch.no_grad():
            nn.init.trunc_normal_(self.weight, std=std, a=-2 * std, b=2 * std, generator=generator)
            self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


@dataclass(frozen=True)
class ImaginedRollout:
    """Result of imagining B action sequences with K particles each.

    Attributes:
        returns: ``[B, K]`` discounted return per particle (reward stops after a predicted end).
        survival: ``[B, K]`` probability the episode is still running after the horizon.
        first_obs: ``[B, K, D]`` predicted observation after the first action.
        clipped: ``[B, K]`` whether a particle's reward or terminal value was clipped to the
            range of the real data (``None`` when not counted, see ``count_clipped``).
    """

    returns: torch.Tensor
    survival: torch.Tensor
    first_obs: torch.Tensor
    clipped: torch.Tensor | None = None


class EnsembleDynamicsModel(nn.Module):
    """A learned world model for vector-observation environments (a :class:`WorldModel`).

    Args:
        obs_dim: observation size D.
        action_spec: the env's action space (see :class:`ActionSpec`).
        ensemble_size: number of members E (5 in the seed's "ensemble of 5").
        hidden: width of each hidden layer.
        layers: number of hidden layers.
        seed: seeds weight init, bootstrap and minibatch order (its own ``torch.Generator``).
        reward_fn: optional ``(obs, action, next_obs) -> reward`` replacing the learned reward.
        termination_fn: optional ``next_obs -> probability in [0, 1]`` replacing the learned
            termination head.
        buffer_capacity: capacity of the replay buffer :meth:`learn` fills.
        fit_config: training options used by :meth:`learn` (see :class:`FitConfig`).
    """

    def __init__(
        self,
        obs_dim: int,
        action_spec: ActionSpec,
        *,
        ensemble_size: int = 5,
        hidden: int = 200,
        layers: int = 3,
        seed: int = 0,
        reward_fn: RewardFn | None = None,
        termination_fn: TerminationFn | None = None,
        buffer_capacity: int = 100_000,
        fit_config: Any = None,
    ) -> None:
        super().__init__()
        try:  # bounded sizes, checked before anything is allocated (see model_config)
            self.config = EnsembleConfig(
                obs_dim=obs_dim,
                action_kind=action_spec.kind,
                action_dim=action_spec.dim,
                action_n=action_spec.n,
                action_low=action_spec.low,
                action_high=action_spec.high,
                ensemble_size=ensemble_size,
                hidden=hidden,
                layers=layers,
            )
        except ValidationError as err:
            raise ValueError(f"invalid model config: {config_problem(err)}") from None
        self.action_spec = action_spec
        self.reward_fn = reward_fn
        self.termination_fn = termination_fn
        self.generator = torch.Generator().manual_seed(seed)
        d, e = obs_dim, ensemble_size
        in_dim = d + action_spec.encoded_dim
        widths = [in_dim] + [hidden] * layers
        self.hidden_layers = nn.ModuleList(
            EnsembleLinear(e, a, b) for a, b in itertools.pairwise(widths)
        )
        # Outputs: mean of (delta obs, reward) [D+1] and its log-variance [D+1].
        self.head = EnsembleLinear(e, hidden, 2 * (d + 1))
        # Termination is a function of the state the step lands in for most environments, so it
        # gets its own small classifier on the (normalized) next observation: that generalizes
        # from a few dozen real episode ends far better than a logit on the (s, a) trunk.
        tw = max(32, hidden // 4)
        self.term_layers = nn.ModuleList(
            [EnsembleLinear(e, d, tw), EnsembleLinear(e, tw, tw), EnsembleLinear(e, tw, 1)]
        )
        # Terminal value V(s) of the next observation (see trainer.fit_value): a learned estimate
        # of the discounted return beyond the planning horizon, from real experience.
        vw = max(32, hidden // 2)
        self.value_layers = nn.ModuleList(
            [EnsembleLinear(e, d, vw), EnsembleLinear(e, vw, vw), EnsembleLinear(e, vw, 1)]
        )
        self.activation = nn.SiLU()
        self.max_logvar = nn.Parameter(torch.full((1, 1, d + 1), 0.5))
        self.min_logvar = nn.Parameter(torch.full((1, 1, d + 1), -10.0))
        self.register_buffer("in_mean", torch.zeros(in_dim))
        self.register_buffer("in_std", torch.ones(in_dim))
        self.register_buffer("out_mean", torch.zeros(d + 1))
        self.register_buffer("out_std", torch.ones(d + 1))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self.register_buffer("v_mean", torch.zeros(()))
        self.register_buffer("v_std", torch.ones(()))
        self.register_buffer("value_fitted", torch.zeros((), dtype=torch.bool))
        # (min, max) of the real rewards fitted on and of the value's targets: the range
        # imagined rewards and terminal values are clipped to (see neural.bounds).
        self.register_buffer("reward_seen", torch.tensor(NOTHING_SEEN))
        self.register_buffer("value_seen", torch.tensor(NOTHING_SEEN))
        for layer in [*self.hidden_layers, self.head, *self.term_layers, *self.value_layers]:
            layer.reset_parameters(self.generator)
        self.buffer = ReplayBuffer(obs_dim, action_spec.dim, buffer_capacity)
        self.fit_config = fit_config
        self.last_fit: Any = None
        self.clip_stats = ClipStats()  # rows of imagination clipped to the data's range
        # Search options of :meth:`rollout` (see there); :meth:`imagine` always runs float32,
        # every row to the horizon, without sharing (the reference numbers).
        self.planning_dtype: torch.dtype | str = "auto"
        self.share_prefixes: bool = False
        self.planning_min_survival: float = 0.0

    # ------------------------------------------------------------------ network
    @property
    def ensemble_size(self) -> int:
        return self.config.ensemble_size

    @property
    def obs_dim(self) -> int:
        return self.config.obs_dim

    def forward_normalized(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized inputs ``[E, N, in]`` -> normalized mean and logvar ``[E, N, D+1]``."""
        h = x
        for layer in self.hidden_layers:
            h = self.activation(layer(h))
        out = self.head(h)
        k = self.obs_dim + 1
        mean, raw_logvar = out[..., :k], out[..., k:]
        # Soft bounds (PETS): keep the variance in a learnable range without hard clipping.
        logvar = self.max_logvar - nn.functional.softplus(self.max_logvar - raw_logvar)
        logvar = self.min_logvar + nn.functional.softplus(logvar - self.min_logvar)
        return mean, logvar

    def termination_logit(self, next_obs: torch.Tensor) -> torch.Tensor:
        """Raw next observations ``[E, N, D]`` -> termination logits ``[E, N]``."""
        d = self.obs_dim
        h = (next_obs - self.in_mean[:d]) / self.in_std[:d]
        for layer in self.term_layers[:-1]:
            h = self.activation(layer(h))
        return self.term_layers[-1](h)[..., 0]

    def value_normalized(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw observations ``[E, N, D]`` -> normalized terminal values ``[E, N]``."""
        d = self.obs_dim
        h = (obs - self.in_mean[:d]) / self.in_std[:d]
        for layer in self.value_layers[:-1]:
            h = self.activation(layer(h))
        return self.value_layers[-1](h)[..., 0]

    def value(self, obs: torch.Tensor, *, clip: bool = True) -> torch.Tensor:
        """Terminal value ``V(s)`` per member: raw observations ``[E, N, D]`` -> ``[E, N]``.

        Member ``i`` scores row ``[i]``, so a TS-infinity particle is valued by its own member.
        Each member's value is clipped to :meth:`value_bounds` (``clip=False``: raw).
        """
        v = self.value_normalized(obs) * self.v_std + self.v_mean
        return v.clamp(*self.value_bounds()) if clip else v

    def value_lcb(self, obs: torch.Tensor, kappa: float = 1.0) -> torch.Tensor:
        """Pessimistic terminal value: every member scores every state, ``mean - kappa * std``.

        ``[E, N, D] -> [E, N]``.  Imagined states outside the data are where members disagree,
        so the planner cannot chase a value that only one member extrapolated.  The members'
        values are clipped (:meth:`value`) before they are combined: the bound stops a member's
        absurd value, and the spread of the clipped values still makes a state the members
        disagree about look worse than one they agree about (clipping the combined value
        instead floored that pessimism, and CartPole learned worse on 4 of 5 seeds).
        """
        e, n, d = obs.shape
        v = self.value(obs.reshape(1, e * n, d).expand(e, -1, -1))  # [E members, E*N states]
        return _lcb(v, kappa).view(e, n)

    def value_lcb_clipped(
        self, obs: torch.Tensor, kappa: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`value_lcb` and, per row ``[E, N]``, whether any member's value was clipped."""
        e, n, d = obs.shape
        raw = self.value(obs.reshape(1, e * n, d).expand(e, -1, -1), clip=False)
        lo, hi = self.value_bounds()
        hit = ((raw < lo) | (raw > hi)).any(0)
        return _lcb(raw.clamp(lo, hi), kappa).view(e, n), hit.view(e, n)

    def reward_bounds(self) -> tuple[float, float]:
        """Imagined rewards are clipped to this (:func:`~wm_agents.neural.bounds.clip_range`
        of the rewards fitted on; unbounded before the first fit)."""
        return clip_range(self.reward_seen)

    def value_bounds(self) -> tuple[float, float]:
        """Terminal values are clipped to this (the value targets' range, with the margin)."""
        return clip_range(self.value_seen)

    def terminal_value_fn(
        self, kappa: float = 1.0
    ) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """The terminal value the planner should add (``None`` while no value is fitted): the
        clipped pessimistic value of :meth:`value_lcb`, ``[E, M, D] -> [E, M]``."""
        if not bool(self.value_fitted):
            return None
        return _TerminalValue(self, kappa)

    def normalize_inputs(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, self.action_spec.encode(action)], dim=-1)
        return (x - self.in_mean) / self.in_std

    def predict(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        *,
        sample: bool = False,
        generator: torch.Generator | None = None,
        clip: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step for every member: ``[E, N, D]``, ``[E, N, A]`` -> next obs ``[E, N, D]``,
        reward ``[E, N]``, termination probability ``[E, N]``.

        With ``sample=True`` each member draws from its Gaussian using ``generator``.  The
        learned reward is clipped to :meth:`reward_bounds` and the clipped predictions counted
        in :attr:`clip_stats`; ``clip=False`` gives the raw prediction (validation errors).  A
        ``reward_fn``'s reward is known, not imagined, and never clipped.
        """
        next_obs, reward, term, clipped = self._step(obs, action, sample, generator, clip)
        if clipped is not None:
            self.clip_stats.add(clipped.numel(), clipped.sum())
        return next_obs, reward, term

    def _step(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        sample: bool,
        generator: torch.Generator | None,
        clip: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """:meth:`predict`, plus which rewards were clipped (``[E, N]``; ``None``: not clipped)."""
        mean, logvar = self.forward_normalized(self.normalize_inputs(obs, action))
        out = mean
        if sample:
            noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
            out = mean + torch.exp(0.5 * logvar) * noise
        out = out * self.out_std + self.out_mean
        next_obs = obs + out[..., :-1]
        clipped = None
        if self.reward_fn is not None:
            reward = self.reward_fn(obs, action, next_obs)
        else:
            reward = out[..., -1]
            if clip:
                lo, hi = self.reward_bounds()
                clipped = (reward < lo) | (reward > hi)  # NaN is not "clipped": it stays NaN
                reward = reward.clamp(lo, hi)
        if self.termination_fn is not None:
            term = self.termination_fn(next_obs).to(next_obs.dtype)
        else:
            term = torch.sigmoid(self.termination_logit(next_obs))
        return next_obs, reward, term, clipped

    # ------------------------------------------------------------------ imagination
    def planning_weights(self, dtype: torch.dtype | None = None) -> dict[str, Any]:
        """Weights with the input/output normalizers folded in, for the fast mean rollout.

        Cached and rebuilt only when a parameter or normalizer changed (tensor versions), so a
        planning step runs ~15 small ops per model step instead of ~25.

        With a low-precision ``dtype`` the matmul weights come converted (cached too); the
        action part of the first layer (``w1a``, ``b1``) stays float32.
        """
        tensors = [*self.parameters(), *self.buffers()]
        key = tuple(t._version for t in tensors) + tuple(id(t) for t in tensors)
        cached = getattr(self, "_plan_cache", None)
        if cached is not None and cached[0] == key:
            return _weights_in(cached[1], dtype)
        d = self.obs_dim
        with torch.no_grad():
            w1, b1 = self.hidden_layers[0].weight, self.hidden_layers[0].bias
            w1n = w1 / self.in_std[None, :, None]
            b1n = b1 - ((self.in_mean / self.in_std) @ w1).unsqueeze(1)  # [E, 1, H]
            wh = self.head.weight[..., : d + 1] * self.out_std
            bh = self.head.bias[..., : d + 1] * self.out_std + self.out_mean
            t1 = self.term_layers[0]
            wt1 = t1.weight / self.in_std[None, :d, None]
            bt1 = t1.bias - ((self.in_mean[:d] / self.in_std[:d]) @ t1.weight).unsqueeze(1)
            weights = {
                "w1": w1n.contiguous(),  # state and (encoded) action inputs together
                "w1s": w1n[:, :d].contiguous(),
                "w1a": w1n[:, d:].contiguous(),
                "b1": b1n.contiguous(),
                "mid": [(m.weight.detach(), m.bias.detach()) for m in self.hidden_layers[1:]],
                "wh": wh.contiguous(),
                "bh": bh.contiguous(),
                "term": [
                    (wt1.contiguous(), bt1.contiguous()),
                    (self.term_layers[1].weight.detach(), self.term_layers[1].bias.detach()),
                ],
                # Negated so that sigmoid gives the probability of *continuing*.
                "term_out": (
                    -self.term_layers[2].weight.detach(),
                    -self.term_layers[2].bias.detach(),
                ),
                "reward_clip": self.reward_bounds(),
            }
        self._plan_cache = (key, weights)
        return _weights_in(weights, dtype)

    def _fast_rollout(
        self,
        obs_t: torch.Tensor,
        actions: torch.Tensor,
        cand: torch.Tensor,
        gamma: float,
        terminal_value: Callable[[torch.Tensor], torch.Tensor] | None,
        *,
        dtype: torch.dtype = torch.float32,
        share_prefixes: bool = False,
        min_survival: float = 0.0,
        count_clipped: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Mean-prediction rollout on folded weights: ``[E, M]`` returns, survival, first obs,
        and (with ``count_clipped``) which rows had a reward or terminal value clipped.

        Rewards are clamped to :meth:`reward_bounds` at every step (one op, paid for by doing
        the return and survival updates in place: measured within a few percent of the
        unclipped loop); the model's own terminal value clips its members' values (see
        :meth:`value_lcb`).  Counting clipped rows
        costs one more op per step (the unclipped return, accumulated beside the clipped one:
        the two differ only where a clip changed a reward), so only :meth:`imagine`'s
        reference rollout counts, where sharing and skipping are off.

        Discrete actions enter the first layer as a one-hot beside the state (one ``K = D + n``
        matmul with the bias per step).  With
        ``share_prefixes`` rows of one member whose action sequences agree up to step ``t`` are
        one node of a :class:`_PrefixTree`, computed once.  A low-precision ``dtype`` runs the
        wide matmuls (hidden x hidden and the head) in it; the first layer (``K = D`` plus the
        action) and the termination classifier stay float32, where small matmuls are faster,
        and states, returns and survival accumulate in float32.

        ``min_survival > 0``: rows whose probability of still running fell below it stop being
        computed (their return and survival are kept as they were; the return they could still
        add is at most ``min_survival`` times the remaining rewards plus the terminal value).
        The batch is compacted when that drops at least a quarter of its rows.
        """
        w = self.planning_weights(dtype)
        r_lo, r_hi = w["reward_clip"]
        low = dtype != torch.float32
        e, m = cand.shape
        h = actions.shape[1]
        d = self.obs_dim
        silu = nn.functional.silu
        (wt1, bt1), (wt2, bt2) = w["term"]
        wt3, bt3 = w["term_out"]
        w1s, wh, bh, mid = w["w1s"], w["wh"], w["bh"], w["mid"]
        discrete = self.action_spec.kind == "discrete"
        tree = _PrefixTree.for_actions(self.action_spec, actions, cand) if share_prefixes else None
        if discrete:
            # State and one-hot action enter the first layer as one [D + n] input: one small
            # matmul with the bias, no gather of per-action rows.
            n_act = self.action_spec.n
            w1 = w["w1"]  # [E, D + n, hidden]
            idx = actions[..., 0].round().long().clamp_(0, n_act - 1)[cand]
            onehot = nn.functional.one_hot(idx, n_act).float()  # [E, M, H, n]
        else:
            act = self.action_spec.encode(actions[cand])  # [E, M, H, A']
            # First-layer action contributions for every step at once: [E, M, H, hidden].
            act_in = torch.bmm(act.reshape(e, m * h, -1), w["w1a"]).view(e, m, h, -1)
            act_in = act_in + w["b1"].unsqueeze(2)
        rows = 1 if tree is not None else m
        state = obs_t.expand(e, rows, d).contiguous()
        alive = torch.ones(e, rows)
        ret = torch.zeros(e, rows)
        first = state
        discount = 1.0
        compact = _Compactor() if min_survival > 0 and tree is None else None
        if count_clipped and (tree is not None or compact is not None):
            raise ValueError("count_clipped needs share_prefixes and min_survival off")
        raw = ret.clone() if count_clipped else None  # the return without clipping
        for t in range(h):
            if tree is not None:
                parent, action = tree.step(t)  # [E, U] nodes at depth t
                if parent is not None:
                    state, ret, alive = (_take(x, parent) for x in (state, ret, alive))
                step_a = nn.functional.one_hot(action, n_act).float()
            elif discrete:
                step_a = onehot[:, :, t]
            if discrete:
                x = torch.baddbmm(w["b1"], torch.cat([state, step_a], dim=-1), w1)
            else:
                x = torch.baddbmm(act_in[:, :, t], state, w1s)
            x = silu(x, inplace=True)
            if low:
                x = x.to(dtype)
            for wm, bm in mid:
                x = silu(torch.baddbmm(bm, x, wm), inplace=True)
            out = torch.baddbmm(bh, x, wh)
            if low:
                out = out.float()
            state = state + out[..., :d]
            if t == 0:
                first = state if tree is None else tree.to_rows(state)
            z = silu(torch.baddbmm(bt1, state, wt1), inplace=True)
            z = silu(torch.baddbmm(bt2, z, wt2), inplace=True)
            cont = torch.sigmoid(torch.baddbmm(bt3, z, wt3)[..., 0])
            if raw is not None:
                raw.addcmul_(alive, out[..., d], value=discount)
            # In place (the rows are this loop's own tensors): pays for the clamp's extra op.
            ret.addcmul_(alive, out[..., d].clamp_(r_lo, r_hi), value=discount)
            alive.mul_(cont)
            discount *= gamma
            if compact is not None and t < h - 1:
                order = compact.plan(alive, min_survival)
                if order is not None:
                    compact.save(state, ret, alive)
                    compact.select(order)
                    state, ret, alive = (_take(x, order) for x in (state, ret, alive))
                    if discrete:
                        onehot = _take(onehot, order)
                    else:
                        act_in = _take(act_in, order)
        if tree is not None:
            state, ret, alive = tree.to_rows(state), tree.to_rows(ret), tree.to_rows(alive)
        clipped = None
        if raw is not None:
            clipped = (raw != ret) & ~torch.isnan(raw)
        if terminal_value is not None:
            v, hit = _terminal(terminal_value, state, clipped is not None)
            if hit is not None and clipped is not None:
                clipped |= hit
            ret.addcmul_(alive, v, value=discount)
        if compact is not None and compact.slots is not None:
            compact.save(state, ret, alive)
            state, ret, alive = compact.state, compact.ret, compact.alive
        return ret, alive, first, clipped

    @torch.no_grad()
    def rollout(
        self,
        obs: torch.Tensor | np.ndarray | Sequence[float],
        actions: torch.Tensor,
        *,
        particles: int | None = None,
        gamma: float = 1.0,
        sample: bool = False,
        generator: torch.Generator | None = None,
        terminal_value: Callable[[torch.Tensor], torch.Tensor] | None = None,
        dtype: torch.dtype | str | None = None,
        share_prefixes: bool | None = None,
        min_survival: float | None = None,
        count_clipped: bool = False,
    ) -> ImaginedRollout:
        """Imagine ``[B, H, A]`` action sequences from one observation ``[D]``.

        Particles are assigned to members round-robin over the flat particle index (PETS's
        TS-infinity): with ``particles == E`` every member rolls out every candidate once, which
        is what risk-aware scoring (mean - lambda * std over members) needs; with
        ``particles == 1`` each candidate is imagined by one member (cheap, for search).  All
        candidates x particles x horizon run as ``H`` batched steps, never one candidate at a
        time.  Reward after a predicted termination is weighted by the probability of still
        running.  ``terminal_value`` (``[E, M, D] -> [E, M]``, e.g. :meth:`value`) adds
        ``gamma^H * survival * V(s_H)`` at the horizon.

        Imagined rewards (learned ones; a ``reward_fn`` is known) are clipped to
        :meth:`reward_bounds`, and the members' values inside the model's own terminal value
        (:meth:`terminal_value_fn`) to :meth:`value_bounds`: the range of the real data, with
        a margin (:mod:`wm_agents.neural.bounds`); a caller's own ``terminal_value`` is used
        as given.  ``count_clipped``
        (with sharing and skipping off) fills ``ImaginedRollout.clipped`` and
        :attr:`clip_stats`; the search leaves it off (one op per step less).

        Three search options speed up the mean rollout (``sample=False``, learned heads);
        ``None`` takes the model's ``planning_dtype`` / ``share_prefixes`` /
        ``planning_min_survival`` attributes (defaults ``"auto"``, off, ``0``):

        * ``dtype``: ``torch.float32`` (the reference numbers), ``torch.bfloat16`` (the wide
          matmuls in bfloat16, about 3x the float32 throughput on CPUs with AMX /
          AVX512-BF16; states, returns and survival accumulate in float32; returns move by
          about 1e-2, so keep the final choice in float32, as :meth:`imagine` does), or
          ``"auto"`` (:func:`search_dtype`: bfloat16 where the CPU runs it natively and the
          layers are wide enough for it to pay, else float32);
        * ``share_prefixes`` (discrete actions): candidates whose sequences start alike, and
          particles of one candidate on one member, are computed once per shared prefix.
          Same numbers up to float32 rounding (the matmuls see other batch shapes);
        * ``min_survival``: rows whose imagined episode has ended (probability of still
          running below it) stop being computed; each such row's return can be short by at
          most ``min_survival`` x (its remaining rewards + terminal value).  ``0`` (the
          default) computes every row to the horizon: the members rarely agree on which rows
          ended and a batched matmul needs as many rows per member, so on CartPole the check
          cost more than it saved (``BENCHMARKS.md``, planning speed).
        """
        obs_t = self.check_obs(obs)
        actions = self.action_spec.check_sequences(torch.as_tensor(actions, dtype=torch.float32))
        e = self.ensemble_size
        k = e if particles is None else int(particles)
        if k < 1:
            raise ValueError(f"particles must be >= 1, got {particles}")
        dtype = search_dtype(self, self.planning_dtype if dtype is None else dtype)
        min_survival = self.planning_min_survival if min_survival is None else min_survival
        if not 0.0 <= float(min_survival) < 1.0:
            raise ValueError(f"min_survival must be in [0, 1), got {min_survival}")
        b, h, _ = actions.shape
        p = b * k
        m = -(-p // e)  # rows per member, padding the last row
        cand = torch.arange(m * e) // k
        cand = cand.clamp_(max=b - 1).view(m, e).T  # [E, M]: particle j = row * E + member
        clipped: torch.Tensor | None
        if not sample and self.reward_fn is None and self.termination_fn is None:
            ret, alive, first, clipped = self._fast_rollout(
                obs_t,
                actions,
                cand,
                gamma,
                terminal_value,
                dtype=dtype,
                share_prefixes=(self.share_prefixes if share_prefixes is None else share_prefixes),
                min_survival=float(min_survival),
                count_clipped=count_clipped,
            )
        else:
            state = obs_t.expand(e, m, -1)
            alive = torch.ones(e, m)
            ret = torch.zeros(e, m)
            clipped = torch.zeros(e, m, dtype=torch.bool)
            first = state
            discount = 1.0
            for t in range(h):
                a = actions[cand, t]  # [E, M, A]
                state, reward, term, hit = self._step(state, a, sample, generator, True)
                if hit is not None:
                    clipped |= hit
                if t == 0:
                    first = state
                ret = ret + discount * alive * reward
                alive = alive * (1.0 - term)
                discount *= gamma
            if terminal_value is not None:
                v, hit = _terminal(terminal_value, state, count_clipped)
                if hit is not None:
                    clipped |= hit
                ret = ret + discount * alive * v

        def per_particle(x: torch.Tensor) -> torch.Tensor:
            return x.transpose(0, 1).reshape(m * e, *x.shape[2:])[:p].reshape(b, k, *x.shape[2:])

        rows_clipped = None
        if count_clipped and clipped is not None:
            rows_clipped = per_particle(clipped)
            self.clip_stats.add(rows_clipped.numel(), rows_clipped.sum())
        return ImaginedRollout(
            per_particle(ret), per_particle(alive), per_particle(first), rows_clipped
        )

    def check_obs(self, obs: torch.Tensor | np.ndarray | Sequence[float]) -> torch.Tensor:
        """Validate one observation; returns a float32 ``[D]`` tensor or raises ``ValueError``."""
        t = torch.as_tensor(np.asarray(obs, dtype=np.float32)).reshape(-1)
        if t.numel() != self.obs_dim:
            raise ValueError(
                f"observation must have {self.obs_dim} values, got shape {list(np.shape(obs))}"
            )
        if not torch.isfinite(t).all():
            raise ValueError(f"observation contains NaN or infinite values: {t.tolist()}")
        return t

    def imagine(
        self,
        state: Any,
        candidates: Sequence[Any],
        *,
        horizon: int = 1,
        gamma: float = 1.0,
        use_value: bool = False,
        value_kappa: float = 1.0,
    ) -> list[Outcome]:
        """Score action-sequence candidates with every member (the :class:`WorldModel` API).

        ``state`` is an observation ``[D]``; each candidate an action sequence ``[H][A]`` (or
        ``[H]`` for discrete actions); Box actions outside the bounds are imagined clipped to
        them, as the env runs them (:meth:`ActionSpec.encode`), while ``Outcome.candidate``
        keeps them as given.  ``horizon`` truncates longer sequences.  Values are
        predicted returns per member; ``uncertainty`` is their standard deviation and ``risk``
        the mean probability that the episode ends within the horizon.  A candidate whose
        prediction is non-finite comes back ``status="unknown"``.  With ``use_value`` (and a
        fitted value, see ``trainer.fit_value``) values include ``gamma^H * survival * V(s_H)``
        with the pessimistic ``V`` of :meth:`value_lcb` (``value_kappa``).  Rewards and terminal
        values are clipped to the range of the real data (see :meth:`rollout`);
        ``prediction["clipped_members"]`` counts the members whose value was clipped.
        """
        actions = self.candidates_to_tensor(candidates)
        if horizon >= 1:
            actions = actions[:, :horizon]
        tv = self.terminal_value_fn(value_kappa) if use_value else None
        roll = self.rollout(
            state,
            actions,
            particles=self.ensemble_size,
            gamma=gamma,
            terminal_value=tv,
            dtype=torch.float32,
            share_prefixes=False,
            min_survival=0.0,
            count_clipped=True,
        )
        return outcomes_from_rollout(candidates, roll)

    async def aimagine(
        self, state: Any, candidates: Sequence[Any], *, horizon: int = 1, **kwargs: Any
    ) -> list[Outcome]:
        """:meth:`imagine` in a worker thread (torch work is CPU-bound, not I/O)."""
        return await asyncio.to_thread(self.imagine, state, candidates, horizon=horizon, **kwargs)

    def candidates_to_tensor(self, candidates: Sequence[Any]) -> torch.Tensor:
        """Candidates as nested lists / arrays -> validated ``[B, H, A]`` float tensor."""
        if len(candidates) == 0:
            raise ValueError("no candidates to imagine: pass at least one action sequence")
        try:
            arr = np.asarray(
                [np.asarray(c, dtype=np.float32) for c in candidates], dtype=np.float32
            )
        except ValueError as err:
            raise ValueError(
                f"candidates must all be action sequences of one shape: {err}"
            ) from err
        if arr.ndim == 2 and self.action_spec.dim == 1:
            arr = arr[..., None]
        return self.action_spec.check_sequences(torch.from_numpy(arr), name="candidates")

    # ------------------------------------------------------------------ learning
    def learn(self, transitions: Sequence[Transition]) -> LearnReport:
        """Add real transitions to the replay buffer and refit on all of it."""
        from wm_agents.neural.trainer import MIN_TRANSITIONS, FitConfig, fit_ensemble

        n = self.buffer.add_transitions(transitions)
        if len(self.buffer) < MIN_TRANSITIONS:
            return LearnReport(
                n_transitions=n,
                updated=False,
                message=f"not enough data to fit: {len(self.buffer)} of {MIN_TRANSITIONS} "
                "transitions",
            )
        report = fit_ensemble(self, self.buffer.all(), self.fit_config or FitConfig())
        return LearnReport(
            n_transitions=n, updated=True, metrics=report.metrics(), message=report.summary()
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write config + weights + normalizers to one file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "format": _FILE_FORMAT,
                "version": _FILE_VERSION,
                "config": self.config.model_dump(),
                "state_dict": self.state_dict(),
            },
            path,
        )
        return path

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        expect_obs_dim: int | None = None,
        expect_action_spec: ActionSpec | None = None,
        **kwargs: Any,
    ) -> EnsembleDynamicsModel:
        """Load a file written by :meth:`save`.

        Raises :class:`ModelFileError` for a corrupt or foreign file, or when the stored model
        does not match ``expect_obs_dim`` / ``expect_action_spec``; ``FileNotFoundError`` when
        the file is missing.  ``kwargs`` (``reward_fn``, ``termination_fn``, ``seed``...) are
        passed to the constructor.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no model file at {path}")
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many types for a damaged zip / pickle
            raise ModelFileError(f"{path} is not a readable model file (corrupt?): {err}") from err
        if not isinstance(blob, dict) or blob.get("format") != _FILE_FORMAT:
            raise ModelFileError(f"{path} is not an {_FILE_FORMAT} file")
        version = blob.get("version")
        if version not in _READABLE_VERSIONS:
            raise ModelFileError(
                f"{path} has file version {version}, this library reads "
                f"{', '.join(map(str, sorted(_READABLE_VERSIONS)))}"
            )
        try:
            config = EnsembleConfig(**blob["config"])
        except ValidationError as err:
            raise ModelFileError(f"{path} has an invalid config: {config_problem(err)}") from None
        except Exception as err:
            raise ModelFileError(f"{path} has an invalid config: {err}") from err
        if expect_obs_dim is not None and config.obs_dim != expect_obs_dim:
            raise ModelFileError(
                f"{path} models observations of size {config.obs_dim}, expected {expect_obs_dim}"
            )
        if expect_action_spec is not None and config.action_spec != expect_action_spec:
            raise ModelFileError(
                f"{path} models actions {config.action_spec}, expected {expect_action_spec}"
            )
        model = cls(
            config.obs_dim,
            config.action_spec,
            ensemble_size=config.ensemble_size,
            hidden=config.hidden,
            layers=config.layers,
            **kwargs,
        )
        try:
            missing, unexpected = model.load_state_dict(blob["state_dict"], strict=False)
        except (RuntimeError, KeyError, TypeError) as err:
            raise ModelFileError(f"{path} weights do not match its config: {err}") from err
        absent = sorted(set(missing) - _READABLE_VERSIONS[version])
        if absent or unexpected:
            raise ModelFileError(
                f"{path} weights do not match its config: missing {absent}, "
                f"unexpected {sorted(unexpected)}"
            )
        return model


_PLANNING_DTYPES = (torch.float32, torch.bfloat16)
_BF16_MIN_HIDDEN = 128  # below this width bfloat16 matmuls cost more than they save (measured)


def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AMX or AVX512-BF16)."""
    cpu = torch.cpu
    return bool(
        getattr(cpu, "_is_amx_tile_supported", lambda: False)()
        or getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
    )


def search_dtype(model: EnsembleDynamicsModel, dtype: torch.dtype | str) -> torch.dtype:
    """Resolve a search precision: a dtype is checked, ``"auto"`` picks one.

    ``"auto"`` is bfloat16 when the CPU runs it natively (:func:`native_bfloat16`) and the
    model's hidden layers are at least 128 wide, float32 otherwise.  The rule reads only the
    hardware and the model's shape, never a timing, so a run repeats exactly on one machine.
    """
    if dtype == "auto":
        wide = model.config.hidden >= _BF16_MIN_HIDDEN
        return torch.bfloat16 if wide and native_bfloat16() else torch.float32
    if isinstance(dtype, str):
        named = {"float32": torch.float32, "bfloat16": torch.bfloat16}
        if dtype not in named:
            raise ValueError(f"dtype must be 'auto', 'float32' or 'bfloat16', got {dtype!r}")
        dtype = named[dtype]
    if dtype not in _PLANNING_DTYPES:
        raise ValueError(
            f"dtype must be one of {_PLANNING_DTYPES} or 'auto' (the search precision), got {dtype}"
        )
    return dtype


def _weights_in(weights: dict[str, Any], dtype: torch.dtype | None) -> dict[str, Any]:
    """The float32 planning weights, or a cached copy with the wide matmuls' in ``dtype``.

    Only the hidden x hidden layers and the head are converted: the first layer (``K = D`` plus
    the action) and the termination classifier are small matmuls, faster in float32.
    """
    if dtype is None or dtype == torch.float32:
        return weights
    low = weights.setdefault("_low", {})
    if dtype not in low:
        low[dtype] = {
            **{k: v for k, v in weights.items() if k != "_low"},
            "mid": [(a.to(dtype), b.to(dtype)) for a, b in weights["mid"]],
            "wh": weights["wh"].to(dtype),
            "bh": weights["bh"].to(dtype),
        }
    return low[dtype]


_DENSE_FRACTION = 0.7
_NODE_ROUND = 8  # node counts are padded to a multiple of this: fewer distinct matmul shapes


def _take(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Per-member rows: ``x[e, index[e, j]]`` for ``x`` ``[E, U, ...]``, ``index`` ``[E, V]``.

    One ``index_select`` on the flattened rows (several times faster than advanced indexing or
    ``gather`` for these sizes; same values).
    """
    e, u = x.shape[:2]
    flat = (index + torch.arange(e)[:, None] * u).reshape(-1)
    return x.reshape(e * u, *x.shape[2:]).index_select(0, flat).view(*index.shape, *x.shape[2:])


class _Compactor:
    """Drops rows whose imagined episode has ended from a rollout batch, remembering them.

    ``slots`` ``[E, m]`` maps the rows still computed to the original rows (``None`` while
    nothing was dropped); ``save`` writes the current values of those rows into full-size
    ``[E, M]`` buffers, so a dropped row keeps the values it had when it was dropped.
    """

    def __init__(self) -> None:
        self.slots: torch.Tensor | None = None
        self.state = self.ret = self.alive = torch.empty(0)

    def plan(self, alive: torch.Tensor, min_survival: float) -> torch.Tensor | None:
        """Row order that puts the running rows first, cut to their count (rounded up to
        ``_NODE_ROUND``), or ``None`` when that would drop fewer than a quarter of the rows."""
        cur = alive.shape[1]
        running = alive >= min_survival
        n = int(running.sum(dim=1).max())
        keep = min(cur, -(-n // _NODE_ROUND) * _NODE_ROUND)
        if keep > 0.75 * cur:
            return None
        order = torch.argsort(running.to(torch.int8), dim=1, descending=True, stable=True)
        return order[:, : max(keep, _NODE_ROUND if cur >= _NODE_ROUND else cur)]

    def save(self, state: torch.Tensor, ret: torch.Tensor, alive: torch.Tensor) -> None:
        """Write the computed rows' current values into the full-size buffers."""
        if self.slots is None:
            self.state, self.ret, self.alive = state.clone(), ret.clone(), alive.clone()
            return
        self.ret.scatter_(1, self.slots, ret)
        self.alive.scatter_(1, self.slots, alive)
        self.state.scatter_(1, self.slots[..., None].expand_as(state), state)

    def select(self, order: torch.Tensor) -> None:
        """Keep only the rows ``order`` (``[E, m']`` positions among the computed rows)."""
        if self.slots is None:
            self.slots = order
        else:
            self.slots = self.slots.gather(1, order)


class _PrefixTree:
    """Rows of each member grouped by their action prefix, one depth at a time.

    ``step(t)`` returns, for the nodes at depth ``t`` (distinct ``(prefix up to t)`` per member,
    ordered by their first row), their parent node at depth ``t - 1`` and their action, both
    ``[E, U]`` (padded with copies of node 0 up to a multiple of ``_NODE_ROUND``).  Once nodes would
    be more than ``_DENSE_FRACTION`` of the rows, every row becomes its own node (``U == M``, in
    row order) and later steps are the identity: no more bookkeeping.
    """

    def __init__(self, idx: torch.Tensor, n_actions: int) -> None:
        self.idx = idx  # [E, M, H] action indices per row
        self.n = n_actions
        e, m, _ = idx.shape
        self.rows = torch.arange(m)
        self.member = torch.arange(e)[:, None].expand(e, m)
        self.node = torch.zeros(e, m, dtype=torch.long)  # row -> node at the last depth
        self.n_nodes = 1
        self.dense = False

    @classmethod
    def for_actions(
        cls, spec: ActionSpec, actions: torch.Tensor, cand: torch.Tensor
    ) -> _PrefixTree | None:
        """A tree for ``[B, H, A]`` discrete actions assigned to rows by ``cand`` ``[E, M]``;
        ``None`` for Box actions (continuous sequences never share a prefix)."""
        if spec.kind != "discrete":
            return None
        idx = actions[..., 0].round().long().clamp_(0, spec.n - 1)
        return cls(idx[cand], spec.n)

    def step(self, t: int) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Parents (``None``: every row is its own node, nothing to gather) and actions."""
        e, m = self.node.shape
        a = self.idx[:, :, t]
        if self.dense:
            return None, a
        span = self.n_nodes * self.n
        key = (self.node * self.n + a + self.member * span).flatten()
        uniq, inv = torch.unique(key, return_inverse=True)  # sorted: grouped by member
        mem = uniq // span
        counts = torch.bincount(mem, minlength=e)
        if int(counts.max()) > _DENSE_FRACTION * m:
            parent, self.dense = self.node, True
            self.node = self.rows.expand(e, m)
            return parent, a
        # Order each member's nodes by their first row, so that when every row has its own
        # node the order is the row order.
        first_row = torch.full((len(uniq),), m, dtype=torch.long)
        first_row.scatter_reduce_(0, inv, self.rows.repeat(e), reduce="amin")
        perm = torch.argsort(mem * m + first_row)
        rank = torch.empty_like(perm)
        rank[perm] = torch.arange(len(perm))
        offsets = torch.cumsum(counts, 0) - counts
        mem_sorted = mem[perm]
        slot = torch.arange(len(perm)) - offsets[mem_sorted]
        rest = uniq[perm] - mem_sorted * span
        u = min(m, -(-int(counts.max()) // _NODE_ROUND) * _NODE_ROUND)
        parent = torch.zeros(e, u, dtype=torch.long)
        action = torch.zeros(e, u, dtype=torch.long)
        parent[mem_sorted, slot] = rest // self.n
        action[mem_sorted, slot] = rest % self.n
        self.node = (rank[inv] - offsets[self.member.flatten()]).view(e, m)
        self.n_nodes = u
        return parent, action

    def to_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Per-node values ``[E, U, ...]`` at the last depth -> per-row ``[E, M, ...]``."""
        return x if self.dense else _take(x, self.node)


def _terminal(
    terminal_value: Callable[[torch.Tensor], torch.Tensor], state: torch.Tensor, count: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A rollout's terminal values, and (when counting, for the model's own value) which rows
    had a member's value clipped; a caller's own ``terminal_value`` is used as given."""
    if count and isinstance(terminal_value, _TerminalValue):
        return terminal_value.with_clipped(state)
    return terminal_value(state), None


def _lcb(v: torch.Tensor, kappa: float) -> torch.Tensor:
    """``[E members, N]`` values -> ``[N]`` ``mean - kappa * std`` over members."""
    return v.mean(0) - kappa * v.std(0, correction=0) if kappa else v.mean(0)


@dataclass(frozen=True)
class _TerminalValue:
    """The model's own terminal value (:meth:`EnsembleDynamicsModel.terminal_value_fn`); a
    rollout that counts clipped rows asks it which rows had a member's value clipped."""

    model: EnsembleDynamicsModel
    kappa: float

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        return self.model.value_lcb(states, self.kappa)

    def with_clipped(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.value_lcb_clipped(states, self.kappa)


def outcomes_from_rollout(candidates: Sequence[Any], roll: ImaginedRollout) -> list[Outcome]:
    """Turn per-particle returns into one :class:`Outcome` per candidate."""
    returns = roll.returns.double()
    mean = returns.mean(dim=1)
    std = returns.std(dim=1, correction=0) if returns.shape[1] > 1 else torch.zeros_like(mean)
    risk = (1.0 - roll.survival.double().mean(dim=1)).clamp(0.0, 1.0)
    first = roll.first_obs.double().mean(dim=1)
    n_clipped = roll.clipped.sum(dim=1).tolist() if roll.clipped is not None else None
    outcomes = []
    for i, cand in enumerate(candidates):
        members = returns[i].tolist()
        cand_list = np.asarray(cand, dtype=float).tolist()
        if not (math.isfinite(mean[i].item()) and math.isfinite(std[i].item())):
            outcomes.append(
                Outcome.unknown(
                    cand_list,
                    "non-finite predicted return (the model diverged on this sequence)",
                    member_values=[v if math.isfinite(v) else -math.inf for v in members],
                )
            )
            continue
        outcomes.append(
            Outcome(
                candidate=cand_list,
                prediction={
                    "next_obs": first[i].tolist(),
                    "termination_prob": float(risk[i]),
                    **({"clipped_members": n_clipped[i]} if n_clipped is not None else {}),
                },
                value=float(mean[i]),
                uncertainty=float(std[i]),
                risk=float(risk[i]),
                member_values=members,
            )
        )
    return outcomes
