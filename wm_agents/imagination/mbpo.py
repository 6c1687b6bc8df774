"""Learning a policy inside imagination (MBPO, Janner et al. 2019), on the ensemble model.

Every real step: the transition goes to the model's replay buffer and the model is refit on
the :class:`~wm_agents.neural.dyna.DynaLearner` schedule.  Every ``rollout_every`` real steps,
``rollout_starts`` real states are drawn and the current policy is rolled out from them in the
model (:func:`branched_rollouts`, stopping where members disagree); the imagined transitions go
to a small buffer of recent imagination.  Then ``updates_per_step`` policy updates run on
minibatches that are ``real_ratio`` real and the rest imagined.  Until the model has been fitted
(and with ``imagine=False``, the model-free baseline) minibatches are all real.

The object has the ``observe / exhausted / model / steps / fits`` surface of ``DynaLearner``, so
the env planning graph's learn node feeds it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from wm_agents.imagination.buffer import TensorReplay
from wm_agents.imagination.dqn import DQNLearner
from wm_agents.imagination.rollouts import ImaginedBatch, branched_rollouts
from wm_agents.imagination.sac import SACLearner
from wm_agents.neural.dyna import DynaLearner
from wm_agents.neural.ensemble import EnsembleDynamicsModel
from wm_agents.neural.trainer import FitReport

__all__ = ["ImaginationConfig", "ImaginationLearner"]


@dataclass(frozen=True)
class ImaginationConfig:
    """Options of learning in imagination.

    Attributes:
        rollout_length: imagined steps per branch (MBPO: 1-5 on short-horizon control).
        rollout_starts: real start states per rollout round.
        rollout_every: real steps between rollout rounds.
        disagreement_threshold: a branch stops before a step whose member disagreement (in
            units of a typical real one-step change) exceeds this.  On CartPole-v1 the
            disagreement about real states is ~0.0006 (median) to ~0.001 (95th percentile)
            once the model has ~1000 transitions; 0.02 stops only well outside the data.
        real_ratio: fraction of each minibatch drawn from real transitions.
        updates_per_step: policy gradient steps per real step.
        imagined_capacity: transitions of imagination kept (older ones are stale).
        learning_starts: real steps before the first policy update.
        epsilon_start, epsilon_end, epsilon_decay_steps: exploration of the DQN policy when it
            acts in the real env and in imagination (linear decay over real steps).
        imagine: ``False`` turns imagination off (the model-free baseline).
    """

    rollout_length: int = 10
    rollout_starts: int = 256
    rollout_every: int = 10
    disagreement_threshold: float = 0.02
    real_ratio: float = 0.1
    updates_per_step: int = 10
    imagined_capacity: int = 50_000
    learning_starts: int = 200
    epsilon_start: float = 0.2
    epsilon_end: float = 0.02
    epsilon_decay_steps: int = 2_000
    imagine: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.real_ratio <= 1.0:
            raise ValueError(f"real_ratio must be in [0, 1], got {self.real_ratio}")
        if self.rollout_length < 1 or self.rollout_starts < 1 or self.rollout_every < 1:
            raise ValueError("rollout_length, rollout_starts and rollout_every must be >= 1")
        if self.disagreement_threshold < 0:
            raise ValueError("disagreement_threshold must be >= 0")


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
    """

    dyna: DynaLearner
    policy: DQNLearner | SACLearner
    config: ImaginationConfig = field(default_factory=ImaginationConfig)
    seed: int = 0
    rollout_stats: list[tuple[int, float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        m = self.dyna.model
        self.generator = torch.Generator().manual_seed(self.seed + 15_485_863)
        self.imagined = TensorReplay(m.obs_dim, m.action_spec.dim, self.config.imagined_capacity)
        self.losses: list[float] = []

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
            return self.policy.act(obs, epsilon=self.epsilon, generator=self.generator)
        return self.policy.act(obs, explore=True, generator=self.generator)

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
        report = self.dyna.observe(obs, action, reward, next_obs, terminated, truncated)
        if self.fitting_only:
            return report
        c = self.config
        data = self.model.buffer.all()
        if self.imagining and (self.steps % c.rollout_every == 0 or report is not None):
            self.imagine(data)
        for _ in range(c.updates_per_step):
            self.losses.append(self.policy.update(*self.minibatch(data)))
        return report

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
            threshold=c.disagreement_threshold,
            generator=self.generator,
        )
        self.imagined.add(batch)
        self.rollout_stats.append(
            (len(batch), float(batch.stopped.float().mean()), float(batch.lengths.float().mean()))
        )
        return batch

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
