"""Learning a policy inside imagination (MBPO, Janner et al. 2019), on the ensemble model.

Every real step: the transition goes to the model's replay buffer and the model is refit on
the :class:`~wm_agents.neural.dyna.DynaLearner` schedule.  Every ``rollout_every`` real steps,
``rollout_starts`` real states are drawn and the current policy is rolled out from them in the
model (:func:`branched_rollouts`, epsilon-greedy for DQN, stopping where members disagree); the
imagined transitions go to a buffer of recent imagination.  Then ``updates_per_step`` policy
updates run on minibatches that are ``real_ratio`` real and the rest imagined.  Until the model
has been fitted (and with ``imagine=False``, the model-free baseline) minibatches are all real.

Compute is cheap and real steps are not, so the defaults imagine a lot (256 branches of up to 50
steps every 10 real steps, 20 updates per real step).  DQN on CartPole is famously unstable: a
policy at 500 can fall to 100 a few thousand updates later.  So the policy that *acts*
(:attr:`ImaginationLearner.acting`) is a snapshot, replaced only when the learning policy's
return imagined by the ensemble from real episode start states (:func:`imagined_policy_return`,
every ``select_every`` real steps) is at least the snapshot's under the same model: policy
selection in imagination, no real steps spent on it.  Where real steps were chosen by a
demonstrator (``demo_source``: the hybrid agent's MPC), policies distilled from those choices
(:class:`~wm_agents.imagination.distill.DistilledPolicy`) enter the same contest after every
refit.

Branches stop where the members disagree more than a fixed threshold.  Optionally
(``branch_quantile``) the threshold is raised to what the members show on a quantile of the
real transitions: a model fitted on a few hundred steps disagrees more than the fixed 0.02 even
about its own data and imagines almost nothing for a while (CartPole seed 4: mean branch 0.1-1.3
steps until ~700 real steps).  Measured on CartPole, longer early branches made the DQN policy
*worse* (BENCHMARKS.md), so it is off by default.

The object has the ``observe / exhausted / steps / mark_episode_end / finish_warmup`` surface of
``DynaLearner`` (:class:`~wm_agents.run_loop.RunLearner`, plus ``model`` and ``fits``), so the
env planning graph's learn node and the run loop feed it unchanged.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from wm_agents.imagination.buffer import TensorReplay
from wm_agents.imagination.distill import DistilledPolicy
from wm_agents.imagination.dqn import DQNLearner
from wm_agents.imagination.rollouts import ImaginedBatch, branched_rollouts
from wm_agents.imagination.sac import SACLearner
from wm_agents.imagination.trust import calibrate_disagreement, imagined_policy_return
from wm_agents.neural.dyna import DynaLearner
from wm_agents.neural.ensemble import EnsembleDynamicsModel
from wm_agents.neural.trainer import FitReport

__all__ = ["ImaginationConfig", "ImaginationLearner", "episode_starts"]


@dataclass(frozen=True)
class ImaginationConfig:
    """Options of learning in imagination.

    Attributes:
        rollout_length: imagined steps per branch (the disagreement threshold, not the length,
            is what keeps branches where the model is right; 50 with 0.02 gives ~40 on CartPole).
        rollout_starts: real start states per rollout round.
        rollout_every: real steps between rollout rounds.
        rollout_epsilon: DQN exploration inside imagination (constant: coverage is free there).
        disagreement_threshold: a branch stops before a step whose member disagreement (in
            units of a typical real one-step change) exceeds this.  On CartPole-v1 the
            disagreement about real states is ~0.0006 (median) to ~0.001 (95th percentile)
            once the model has ~1000 transitions; 0.02 stops only well outside the data.
        branch_quantile: the threshold actually used is the larger of
            ``disagreement_threshold`` and this quantile of the members' disagreement on the
            real transitions (:func:`~wm_agents.imagination.trust.calibrate_disagreement`,
            re-derived after every refit).  A young model disagrees more than 0.02 even about
            the states it was fitted on, and with the fixed threshold alone every branch would
            stop at its first step; "no less sure than about 99% of real data" lets it imagine.
            ``None`` (default): the fixed threshold only.  With 0.99 the DQN policy alone held
            475 on fewer CartPole seeds (BENCHMARKS.md): early imagination from a young model
            taught it more error than it taught it balance.
        real_ratio: fraction of each minibatch drawn from real transitions.
        updates_per_step: policy gradient steps per real step.
        imagined_capacity: transitions of imagination kept (older ones are stale).
        learning_starts: real steps before the first policy update.
        epsilon_start, epsilon_end, epsilon_decay_steps: exploration of the DQN policy when it
            acts in the real env and in imagination (linear decay over real steps).
        imagine: ``False`` turns imagination off (the model-free baseline).
        select_every: real steps between policy selections in imagination (0: the acting
            policy is always the learning one).
        select_starts: real episode start states the candidate policies are scored from.
        select_horizon: imagined steps of that score (use the env's episode limit).
        distill: hidden widths of the :class:`DistilledPolicy` candidates fitted to the
            demonstrations after every refit (0: linear; empty: no distillation).  Only
            learners with a ``demo_source`` (the hybrid agent) have demonstrations.
        distill_min_demos: demonstrations needed before distilling.
    """

    rollout_length: int = 50
    rollout_starts: int = 256
    rollout_every: int = 10
    rollout_epsilon: float = 0.1
    disagreement_threshold: float = 0.02
    branch_quantile: float | None = None
    real_ratio: float = 0.1
    updates_per_step: int = 20
    imagined_capacity: int = 100_000
    learning_starts: int = 200
    epsilon_start: float = 0.2
    epsilon_end: float = 0.02
    epsilon_decay_steps: int = 2_000
    imagine: bool = True
    select_every: int = 50
    select_starts: int = 64
    select_horizon: int = 500
    distill: tuple[int, ...] = (0, 32)
    distill_min_demos: int = 100

    def __post_init__(self) -> None:
        if any(h < 0 for h in self.distill) or self.distill_min_demos < 1:
            raise ValueError("distill widths must be >= 0 and distill_min_demos >= 1")
        if self.select_every < 0 or self.select_starts < 1 or self.select_horizon < 1:
            raise ValueError("select_every must be >= 0, select_starts and select_horizon >= 1")
        if not 0.0 <= self.rollout_epsilon <= 1.0:
            raise ValueError(f"rollout_epsilon must be in [0, 1], got {self.rollout_epsilon}")
        if not 0.0 <= self.real_ratio <= 1.0:
            raise ValueError(f"real_ratio must be in [0, 1], got {self.real_ratio}")
        if self.rollout_length < 1 or self.rollout_starts < 1 or self.rollout_every < 1:
            raise ValueError("rollout_length, rollout_starts and rollout_every must be >= 1")
        if self.disagreement_threshold < 0:
            raise ValueError("disagreement_threshold must be >= 0")
        if self.branch_quantile is not None and not 0.0 < self.branch_quantile <= 1.0:
            raise ValueError(f"branch_quantile must be in (0, 1], got {self.branch_quantile}")


@dataclass
class ImaginationLearner:
    """Model learning (Dyna schedule) + imagined rollouts + policy updates, per real step.

    Attributes:
        dyna: refits ``dyna.model`` on real data.
        policy: :class:`DQNLearner` (Discrete actions) or :class:`SACLearner` (Box).
        config: options.
        seed: seeds this learner's generator (start states, rollout members, minibatches).
        rollout_stats: per rollout round ``(transitions kept, fraction of branches stopped on
            disagreement, mean branch length)``.
        acting: the policy that acts (a snapshot of ``policy``, see the module docstring);
            ``policy`` itself when imagination or selection is off.
        acting_score: ``acting``'s imagined return under the model it was last scored with
            (``-inf`` until scored).
        selections: per selection ``(real steps, candidate score, acting score, replaced)``.
        demo_source: asked once per real transition (as it is recorded): was its action a
            demonstration?  The hybrid agent answers "MPC chose it"; :meth:`distill` fits
            policies to those actions.  ``None``: no demonstrations.
    """

    dyna: DynaLearner
    policy: DQNLearner | SACLearner
    config: ImaginationConfig = field(default_factory=ImaginationConfig)
    seed: int = 0
    rollout_stats: list[tuple[int, float, float]] = field(default_factory=list)
    demo_source: Callable[[], bool] | None = None

    def __post_init__(self) -> None:
        # Per real transition in the buffer (same order, same ring size): did a demonstrator
        # choose it?
        self._demo: deque[bool] = deque(maxlen=self.dyna.model.buffer.capacity)
        self._branch_calibration: tuple[int, float] | None = None  # (fits, quantile)
        m = self.dyna.model
        self.generator = torch.Generator().manual_seed(self.seed + 15_485_863)
        self.imagined = TensorReplay(m.obs_dim, m.action_spec.dim, self.config.imagined_capacity)
        self.losses: list[float] = []
        selecting = self.config.imagine and self.config.select_every > 0
        self.acting: DQNLearner | SACLearner | DistilledPolicy = (
            copy.deepcopy(self.policy) if selecting else self.policy
        )
        self.acting_version = 0  # +1 whenever the acting policy changes
        # per distillation: (real steps, name, agreement with the demonstrations, score)
        self.distilled: list[tuple[int, str, float, float]] = []
        self.acting_score = -float("inf")
        self._scored_with_fit = -1  # len(fits) when acting_score was computed
        self.selections: list[tuple[int, float, float, bool]] = []

    # The DynaLearner surface the env graph's learn node uses.
    @property
    def model(self) -> EnsembleDynamicsModel:
        return self.dyna.model

    @property
    def steps(self) -> int:
        return self.dyna.steps

    @property
    def exhausted(self) -> bool:
        return self.dyna.exhausted

    @property
    def fits(self) -> list[FitReport]:
        return self.dyna.fits

    @property
    def epsilon(self) -> float:
        """Current DQN exploration rate (linear decay over real steps)."""
        c = self.config
        frac = min(1.0, self.steps / max(1, c.epsilon_decay_steps))
        return c.epsilon_start + frac * (c.epsilon_end - c.epsilon_start)

    def explore_policy(self, obs: torch.Tensor) -> torch.Tensor:
        """The behaviour policy ``[N, D] -> [N, A]`` (exploring), used in imagination."""
        if isinstance(self.policy, DQNLearner):
            eps = self.config.rollout_epsilon
            return self.policy.act(obs, epsilon=eps, generator=self.generator)
        return self.policy.act(obs, explore=True, generator=self.generator)

    def mark_episode_end(self) -> None:
        """The last recorded transition ends its episode (the run stopped there)."""
        self.dyna.mark_episode_end()

    def finish_warmup(self) -> None:
        """After the random warm-up: fit the model (:meth:`DynaLearner.finish_warmup`), unless
        nothing is imagined (``imagine=False``, the model-free baseline: no model to fit)."""
        if self.config.imagine:
            self.dyna.finish_warmup()

    def observe(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_obs: np.ndarray,
        terminated: bool,
        truncated: bool,
    ) -> FitReport | None:
        """Record a real transition, refit on schedule, imagine, and update the policy."""
        demo = bool(self.demo_source()) if self.demo_source is not None else False
        steps = self.dyna.steps
        try:
            report = self.dyna.observe(obs, action, reward, next_obs, terminated, truncated)
        finally:
            if self.dyna.steps != steps:  # the row is in the buffer (even if the refit raised)
                self._demo.append(demo)
        if self.fitting_only:
            return report
        c = self.config
        data = self.model.buffer.all()
        if self.imagining and (self.steps % c.rollout_every == 0 or report is not None):
            self.imagine(data)
        for _ in range(c.updates_per_step):
            self.losses.append(self.policy.update(*self.minibatch(data)))
        if self.acting is not self.policy and self.imagining and self.steps % c.select_every == 0:
            self.select(data)
        return report

    def select(self, data: Any) -> bool:
        """Score the learning policy and the acting snapshot in imagination; keep the better.

        Both are rolled out greedily by every member from the same real episode start states
        (:func:`episode_starts`) for ``select_horizon`` steps.  The snapshot is re-scored only
        when the model was refit since its last score; then, if there are demonstrations
        (:attr:`demo_source`), policies distilled from them compete too (:meth:`distill`).
        Returns whether the acting policy changed.
        """
        c = self.config
        starts = episode_starts(data, c.select_starts)
        cand = imagined_policy_return(self.model, _greedy(self.policy), starts, c.select_horizon)
        score = float(cand.mean())
        n_fits = len(self.fits)
        refit = n_fits != self._scored_with_fit
        if refit:
            act = imagined_policy_return(self.model, _greedy(self.acting), starts, c.select_horizon)
            self.acting_score = float(act.mean())
            self._scored_with_fit = n_fits
        # Ties go to the newer policy: it was trained on more data.
        replaced = score >= self.acting_score
        self.selections.append((self.steps, score, self.acting_score, replaced))
        if replaced:
            if isinstance(self.acting, type(self.policy)):
                self.acting.load_state_dict(self.policy.state_dict())
            else:
                self.acting = copy.deepcopy(self.policy)
            self.acting_score = score
            self.acting_version += 1
        if refit and c.distill:
            replaced = self.distill(data, starts) or replaced
        return replaced

    def distill(self, data: Any, starts: torch.Tensor) -> bool:
        """Fit a :class:`DistilledPolicy` of every width in ``config.distill`` to the real
        steps a demonstrator chose, score each in imagination like the snapshots, and let the
        best act if it scores at least as well as the acting policy.  Needs
        ``config.distill_min_demos`` demonstrations.  Returns whether the acting policy changed.
        """
        c = self.config
        flags = np.fromiter(self._demo, dtype=bool, count=len(self._demo))[-len(data) :]
        if len(flags) != len(data) or int(flags.sum()) < c.distill_min_demos:
            return False
        obs = torch.from_numpy(data.obs[flags])
        action = torch.from_numpy(data.action[flags])
        best: tuple[float, DistilledPolicy] | None = None
        for hidden in c.distill:
            pol = DistilledPolicy(
                self.model.obs_dim,
                self.model.action_spec,
                hidden=hidden,
                seed=self.seed + 1_000 * len(self.fits) + hidden,
                critic=self.policy,
            )
            pol.fit(obs, action)
            ret = imagined_policy_return(self.model, _greedy(pol), starts, c.select_horizon)
            score = float(ret.mean())
            self.distilled.append((self.steps, pol.name, pol.agreement, score))
            if best is None or score > best[0]:
                best = (score, pol)
        assert best is not None
        if best[0] < self.acting_score:
            return False
        self.acting, self.acting_score = best[1], best[0]
        self.acting_version += 1
        return True

    @property
    def acting_name(self) -> str:
        """``"dqn"`` / ``"sac"`` (a snapshot of the learner) or the distilled policy's name."""
        if isinstance(self.acting, DistilledPolicy):
            return self.acting.name
        return "dqn" if isinstance(self.acting, DQNLearner) else "sac"

    @property
    def fitting_only(self) -> bool:
        return self.steps < self.config.learning_starts

    @property
    def imagining(self) -> bool:
        return self.config.imagine and bool(self.model.fitted)

    def imagine(self, data: Any) -> ImaginedBatch:
        """One rollout round from real start states; appends to the imagined buffer."""
        c = self.config
        idx = torch.randint(0, len(data), (c.rollout_starts,), generator=self.generator)
        starts = torch.from_numpy(data.obs)[idx]
        batch = branched_rollouts(
            self.model,
            starts,
            self.explore_policy,
            c.rollout_length,
            threshold=self.branch_threshold(data),
            generator=self.generator,
        )
        self.imagined.add(batch)
        self.rollout_stats.append(
            (len(batch), float(batch.stopped.float().mean()), float(batch.lengths.float().mean()))
        )
        return batch

    def branch_threshold(self, data: Any) -> float:
        """The disagreement at which imagined branches stop now (see ``branch_quantile``);
        the calibration is cached per model fit."""
        c = self.config
        if c.branch_quantile is None:
            return c.disagreement_threshold
        n_fits = len(self.fits)
        if self._branch_calibration is None or self._branch_calibration[0] != n_fits:
            q = calibrate_disagreement(
                self.model, data.obs, data.action, quantile=c.branch_quantile
            )
            self._branch_calibration = (n_fits, q)
        return max(c.disagreement_threshold, self._branch_calibration[1])

    def minibatch(self, data: Any) -> tuple[torch.Tensor, ...]:
        """``real_ratio`` real rows + imagined rows (all real until imagination exists)."""
        b = self.policy.config.batch_size
        n_real = (
            b
            if len(self.imagined) == 0 or not self.imagining
            else round(b * self.config.real_ratio)
        )
        idx = torch.randint(0, len(data), (n_real,), generator=self.generator).numpy()
        real = (
            torch.from_numpy(data.obs[idx]),
            torch.from_numpy(data.action[idx]),
            torch.from_numpy(data.reward[idx]),
            torch.from_numpy(data.next_obs[idx]),
            torch.from_numpy(data.terminated[idx].astype(np.float32)),
        )
        if n_real == b:
            return real
        fake = self.imagined.sample(b - n_real, self.generator)
        return tuple(torch.cat([r, f]) for r, f in zip(real, fake, strict=True))


def episode_starts(data: Any, n: int) -> torch.Tensor:
    """Up to ``n`` first observations of real episodes in ``data`` ``[n, D]`` (the newest ones;
    all of them when fewer).  Where the env starts its episodes is data, not knowledge: the
    first row and every row after an ``episode_end``."""
    if len(data) == 0:
        raise ValueError("no real transitions to take episode starts from")
    ends = np.asarray(data.episode_end, dtype=bool)
    idx = np.concatenate([[0], np.nonzero(ends[:-1])[0] + 1])
    if len(idx) > n:
        idx = idx[-n:]
    return torch.from_numpy(np.asarray(data.obs[idx], dtype=np.float32))


def _greedy(policy: DQNLearner | SACLearner | DistilledPolicy) -> Any:
    if isinstance(policy, DQNLearner):
        return lambda o: policy.act(o, epsilon=0.0)
    return lambda o: policy.act(o)
