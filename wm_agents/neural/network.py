"""The ensemble network: E probabilistic MLPs evaluated in one batched matmul per layer.

Each member maps ``(obs, action)`` to a Gaussian over ``(next_obs - obs, reward)`` (mean and
log-variance, PETS-style soft-bounded) plus a termination logit, so reward and termination are
learned from data: no hand-written knowledge of the environment is needed.  With
``end_reward`` on, a small classifier-sized net also learns the reward of the step that ends an
episode from the state it lands in (a goal's +100), and the imagined reward is
``(1 - p_end) r(s, a) + p_end r_end(s')``.  A user may still
pass ``reward_fn`` / ``termination_fn`` to replace the learned heads.  A small value network
``V(s)`` (fitted on real returns by ``trainer.fit_value``) gives the planner a terminal value
beyond its horizon.

This module is the network and its one-step prediction only.  The planner's fast rollout lives
in :mod:`wm_agents.neural.rollout`, fitting in :mod:`wm_agents.neural.trainer`, files in
:mod:`wm_agents.neural.persistence`, and the :class:`~wm_agents.core.WorldModel` adapter that
ties them together in :mod:`wm_agents.neural.ensemble`.

Shapes (E members, N rows per member, D obs size, A action width): member-batched inputs
``[E, N, D]`` / ``[E, N, A]``, per-member outputs ``[E, N]``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

from wm_agents.neural.bounds import NOTHING_SEEN, ClipStats, clip_range
from wm_agents.neural.model_config import EnsembleConfig, config_problem
from wm_agents.spaces import ActionSpec

__all__ = ["EnsembleLinear", "EnsembleNetwork", "RewardFn", "TerminalValue", "TerminationFn"]

_UNBOUNDED = (-math.inf, math.inf)

RewardFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
TerminationFn = Callable[[torch.Tensor], torch.Tensor]


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


class EnsembleNetwork(nn.Module):
    """The ensemble's weights, normalizers and one-step prediction (no planning, no data).

    Args:
        obs_dim: observation size D.
        action_spec: the env's action space (see :class:`ActionSpec`).
        ensemble_size: number of members E (5 in the seed's "ensemble of 5").
        hidden: width of each hidden layer.
        layers: number of hidden layers.
        seed: seeds weight init (and, through :attr:`generator`, the trainer's defaults).
        reward_fn: optional ``(obs, action, next_obs) -> reward`` replacing the learned reward.
        termination_fn: optional ``next_obs -> probability in [0, 1]`` replacing the learned
            termination head.
        end_reward: learn the reward of the step that ends an episode from the next state
            (:meth:`end_reward_of`) and imagine ``(1 - p_end) r(s, a) + p_end r_end(s')``:
            for envs whose end carries a reward unlike the others (a goal's +100, which the
            Gaussian reward head, seeing a handful among thousands of steps, takes for noise).
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
        end_reward: bool = False,
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
                end_reward=end_reward,
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
        # Per dimension (min, max) of the real observations fitted on ([2, D]): where an
        # imagined rollout halts when ``halt_outside_data`` is on (see :meth:`state_box`).
        self.register_buffer("state_seen", torch.tensor(NOTHING_SEEN)[:, None].repeat(1, d))
        for layer in [*self.hidden_layers, self.head, *self.term_layers, *self.value_layers]:
            layer.reset_parameters(self.generator)
        self.end_layers: nn.ModuleList | None = None
        if end_reward:
            # The reward of an episode's last step from the state it lands in (normalized by
            # end_mean / end_std: the end rewards' own statistics; trainer.fit_end_reward).
            # Built after the other nets so a model without it draws the same initial weights.
            self.end_layers = nn.ModuleList(
                [EnsembleLinear(e, d, tw), EnsembleLinear(e, tw, tw), EnsembleLinear(e, tw, 1)]
            )
            for layer in self.end_layers:
                layer.reset_parameters(self.generator)
            with torch.no_grad():  # unfitted, every end's reward is end_mean
                self.end_layers[-1].weight.zero_()
            self.register_buffer("end_mean", torch.zeros(()))
            self.register_buffer("end_std", torch.ones(()))
            # log of the weight the termination loss gave an end (trainer: pos_weight); the
            # end's reward is paid at the classifier's odds divided by it (end_probability).
            self.register_buffer("term_log_weight", torch.zeros(()))
        self.clip_stats = ClipStats()  # rows of imagination clipped to the data's range
        # False: imagined rewards and terminal values go unclipped (to measure what the clip
        # buys, issue 14).
        self.clip_imagination = True
        # True: an imagined rollout ends where it leaves the real data's range (MOReL's halt
        # on unknown states): see :meth:`state_box`.
        self.halt_outside_data = False
        # The box is widened on each side by this share of each dimension's seen range.
        self.halt_margin = 0.0
        self.last_fit: Any = None  # the trainer's last FitReport
        self.value_r2: float | None = None  # share of value-target variance explained (trainer)

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

    def _state_net(self, layers: nn.ModuleList, obs: torch.Tensor) -> torch.Tensor:
        """One of the small per-state nets (termination, end reward, value) on raw
        observations ``[E, N, D]`` (normalized as the trunk's inputs are) -> ``[E, N]``."""
        d = self.obs_dim
        h = (obs - self.in_mean[:d]) / self.in_std[:d]
        for layer in layers[:-1]:
            h = self.activation(layer(h))
        return layers[-1](h)[..., 0]

    def termination_logit(self, next_obs: torch.Tensor) -> torch.Tensor:
        """Raw next observations ``[E, N, D]`` -> termination logits ``[E, N]``."""
        return self._state_net(self.term_layers, next_obs)

    def _end_layers(self) -> nn.ModuleList:
        """The end-reward net, or a ``ValueError`` for a model built without it."""
        if self.end_layers is None:
            raise ValueError("this model has no end-reward head (built with end_reward=False)")
        return self.end_layers

    def end_reward_normalized(self, next_obs: torch.Tensor) -> torch.Tensor:
        """Raw next observations ``[E, N, D]`` -> normalized end rewards ``[E, N]`` (the
        model must have ``end_reward`` on)."""
        return self._state_net(self._end_layers(), next_obs)

    def end_probability(self, next_obs: torch.Tensor) -> torch.Tensor:
        """The calibrated probability that a step landing in ``next_obs`` ends the episode:
        ``[E, N, D] -> [E, N]``, the classifier's logit less :attr:`term_log_weight`.

        The termination loss weighs the rare ends up (``pos_weight``), which multiplies the
        classifier's odds by that weight: pessimism where an end is a failure (an imagined
        future ends a little early, CartPole's default), but where an end pays a reward it is
        paid early.  A MountainCarContinuous planner whose classifier said p = 0.76 one step
        short of the goal hovered there for 900 steps of an evaluation, every step imagining
        the +100 paid.  So a model with the end-reward head imagines its ends (survival and
        reward alike) with this probability.
        """
        self._end_layers()  # the weight is kept with the head
        return torch.sigmoid(self.termination_logit(next_obs) - self.term_log_weight)

    def end_reward_of(self, next_obs: torch.Tensor) -> torch.Tensor:
        """The reward of a step that ends the episode in ``next_obs``, per member: raw next
        observations ``[E, N, D]`` -> ``[E, N]`` (unclipped)."""
        return self.end_reward_normalized(next_obs) * self.end_std + self.end_mean

    def value_normalized(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw observations ``[E, N, D]`` -> normalized terminal values ``[E, N]``."""
        return self._state_net(self.value_layers, obs)

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
        of the rewards fitted on; unbounded before the first fit or with
        ``clip_imagination`` off)."""
        return clip_range(self.reward_seen) if self.clip_imagination else _UNBOUNDED

    def value_bounds(self) -> tuple[float, float]:
        """Terminal values are clipped to this (the value targets' range, with the margin)."""
        return clip_range(self.value_seen) if self.clip_imagination else _UNBOUNDED

    @staticmethod
    def check_halt_margin(margin: float, name: str = "halt_margin") -> float:
        """``margin`` if it can widen a halt box (finite, >= 0); ``ValueError`` naming ``name``
        otherwise."""
        if not (math.isfinite(margin) and margin >= 0):
            raise ValueError(f"{name} must be finite and >= 0, got {margin}")
        return margin

    @contextmanager
    def halt_margin_as(self, margin: float | None) -> Iterator[None]:
        """:attr:`halt_margin` is ``margin`` inside the block and what it was after (``None``:
        unchanged): one controller searching with a wider box than another on the same model
        (:attr:`~wm_agents.planning.MPCController.halt_margin`)."""
        if margin is None:
            yield
            return
        self.check_halt_margin(margin)
        kept = self.halt_margin
        self.halt_margin = margin
        try:
            yield
        finally:
            self.halt_margin = kept

    def state_box(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Where imagination is trusted from ``obs`` (``[..., D]``, the rollouts' start):
        ``(lo, hi)``, each ``[..., D]``, or ``None`` when rollouts do not halt.

        With :attr:`halt_outside_data` on, an imagined state outside the per-dimension range
        of the real observations the model was fitted on (:attr:`state_seen`, widened to take
        in the start itself, so a real state the data has not reached yet still plans) counts
        as an episode end: the model has never seen what happens there, and a planner would
        otherwise find the plans whose imagined futures leave the data for where the model
        errs in their favour (MOReL's pessimistic "halt" on unknown states, Kidambi et al.
        2020).  Learned-termination classifiers are the first to err there: a CartPole
        classifier fitted on 2,400 steps called 81% of the real pole-angle ends, at pole speeds
        above any it had seen, safe (p < 0.5; BENCHMARKS.md).  ``None`` before the first fit.

        :attr:`halt_margin` widens the seen range on each side by that share of its width: a
        box with no margin can be too tight where the data is narrow (a CartPole run that only
        ever drifted left saw x <= 0.07, and its planner, unable to imagine pushing right,
        dropped the pole on one start state in every evaluation; BENCHMARKS.md).
        """
        seen = self.state_seen
        if not self.halt_outside_data or not bool((seen[0] <= seen[1]).all()):
            return None
        pad = self.halt_margin * (seen[1] - seen[0])
        return torch.minimum(seen[0] - pad, obs), torch.maximum(seen[1] + pad, obs)

    def terminal_value_fn(
        self, kappa: float = 1.0
    ) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """The terminal value the planner should add (``None`` while no value is fitted): the
        clipped pessimistic value of :meth:`value_lcb`, ``[E, M, D] -> [E, M]``."""
        if not bool(self.value_fitted):
            return None
        return TerminalValue(self, kappa)

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
        reward ``[E, N]``, termination probability ``[E, N]``.  With ``end_reward`` on the
        learned reward is ``(1 - p_end) r(s, a) + p_end r_end(s')``.

        With ``sample=True`` each member draws from its Gaussian using ``generator``.  The
        learned reward is clipped to :meth:`reward_bounds` and the clipped predictions counted
        in :attr:`clip_stats`; ``clip=False`` gives the raw prediction (validation errors).  A
        ``reward_fn``'s reward is known, not imagined, and never clipped.

        Imagination, not training: no autograd graph is kept (the fit goes through
        :meth:`forward_normalized`), so a caller outside ``torch.no_grad`` holds no memory for it.
        """
        next_obs, reward, term, clipped = self.predict_with_clipped(
            obs, action, sample=sample, generator=generator, clip=clip
        )
        if clipped is not None:
            self.clip_stats.add(clipped.numel(), clipped.sum())
        return next_obs, reward, term

    @torch.no_grad()
    def predict_with_clipped(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        *,
        sample: bool = False,
        generator: torch.Generator | None = None,
        clip: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """:meth:`predict`, plus which rewards were clipped (``[E, N]``; ``None``: not clipped),
        without counting them in :attr:`clip_stats` (the caller counts what it keeps)."""
        mean, logvar = self.forward_normalized(self.normalize_inputs(obs, action))
        out = mean
        if sample:
            noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
            out = mean + torch.exp(0.5 * logvar) * noise
        out = out * self.out_std + self.out_mean
        next_obs = obs + out[..., :-1]
        if self.termination_fn is not None:
            term = self.termination_fn(next_obs).to(next_obs.dtype)
        elif self.end_layers is not None:
            term = self.end_probability(next_obs)
        else:
            term = torch.sigmoid(self.termination_logit(next_obs))
        clipped = None
        if self.reward_fn is not None:
            reward = self.reward_fn(obs, action, next_obs)
        else:
            reward = out[..., -1]
            if self.end_layers is not None:  # an end's reward where the step may end
                reward = torch.lerp(reward, self.end_reward_of(next_obs), term)
            if clip:
                lo, hi = self.reward_bounds()
                clipped = (reward < lo) | (reward > hi)  # NaN is not "clipped": it stays NaN
                reward = reward.clamp(lo, hi)
        return next_obs, reward, term, clipped

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


def _lcb(v: torch.Tensor, kappa: float) -> torch.Tensor:
    """``[E members, N]`` values -> ``[N]`` ``mean - kappa * std`` over members."""
    return v.mean(0) - kappa * v.std(0, correction=0) if kappa else v.mean(0)


@dataclass(frozen=True)
class TerminalValue:
    """The model's own terminal value (:meth:`EnsembleNetwork.terminal_value_fn`); a
    rollout that counts clipped rows asks it which rows had a member's value clipped."""

    model: EnsembleNetwork
    kappa: float

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        return self.model.value_lcb(states, self.kappa)

    def with_clipped(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.value_lcb_clipped(states, self.kappa)
