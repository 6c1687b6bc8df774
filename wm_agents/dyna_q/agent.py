"""Tabular Dyna-Q (Sutton 1991; Sutton & Barto 2018, section 8.2), the seed's pseudocode.

Per real step: epsilon-greedy action, one Q-learning update from the real transition, one model
update, then ``planning_steps`` Q-learning updates from transitions the model imagines for
previously seen state-actions.  ``planning_steps=0`` is plain Q-learning, the model-free baseline.

Planning updates run one after another (each sees the Q-values the previous one wrote), because
that is what makes value propagate backwards along a path within a single real step; their random
numbers are drawn in one batched call from the agent's own generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wm_agents.dyna_q.model import TabularModel

__all__ = ["DynaQAgent", "DynaQConfig"]


@dataclass(frozen=True)
class DynaQConfig:
    """Hyper-parameters (defaults: Sutton & Barto's Dyna maze experiment).

    Attributes:
        alpha: step size of every Q update (real and imagined).
        gamma: discount.
        epsilon: probability of a uniformly random action when acting.
        planning_steps: imagined updates per real step (``k``; 0 = Q-learning).
        q_init: initial value of every Q entry.
    """

    alpha: float = 0.1
    gamma: float = 0.95
    epsilon: float = 0.1
    planning_steps: int = 0
    q_init: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {self.epsilon}")
        if self.planning_steps < 0:
            raise ValueError(f"planning_steps must be >= 0, got {self.planning_steps}")


class DynaQAgent:
    """Q-table, tabular model and the Dyna-Q update.

    Args:
        n_states, n_actions: sizes of the ``Discrete`` spaces.
        config: hyper-parameters.
        seed: seeds the agent's own ``numpy.random.Generator`` (exploration, tie-breaking and
            planning samples); nothing global is touched.
    """

    def __init__(
        self, n_states: int, n_actions: int, config: DynaQConfig | None = None, *, seed: int = 0
    ) -> None:
        self.config = config or DynaQConfig()
        self.n_states, self.n_actions = n_states, n_actions
        self.q = np.full((n_states, n_actions), self.config.q_init, dtype=np.float64)
        self.model = TabularModel(n_states, n_actions)
        self.rng = np.random.default_rng(seed)
        self.real_updates = 0
        self.planning_updates = 0

    def greedy(self, state: int, rng: np.random.Generator | None = None) -> int:
        """The best action; ties broken at random with ``rng`` (or by lowest index if ``None``).

        Random tie-breaking matters: with all-zero initial values a fixed choice walks into the
        same wall forever, which is not the algorithm Sutton & Barto measured.
        """
        row = self.q[int(state)]
        if rng is None:
            return int(np.argmax(row))
        best = np.flatnonzero(row == row.max())
        return int(best[0] if len(best) == 1 else best[rng.integers(len(best))])

    def act(self, state: int) -> int:
        """Epsilon-greedy action from the agent's generator."""
        if self.rng.random() < self.config.epsilon:
            return int(self.rng.integers(self.n_actions))
        return self.greedy(state, self.rng)

    def q_update(
        self, state: int, action: int, reward: float, next_state: int, terminated: bool
    ) -> float:
        """One Q-learning update; returns the TD error."""
        c = self.config
        target = reward if terminated else reward + c.gamma * self.q[next_state].max()
        td = target - self.q[state, action]
        self.q[state, action] += c.alpha * td
        return float(td)

    def observe(
        self, state: int, action: int, reward: float, next_state: int, terminated: bool
    ) -> None:
        """Learn from one real transition: direct update, model update, then planning."""
        self.q_update(state, action, reward, next_state, terminated)
        self.model.update(state, action, reward, next_state, terminated)
        self.real_updates += 1
        self.plan(self.config.planning_steps)

    def plan(self, steps: int) -> None:
        """``steps`` Q-learning updates on transitions imagined by the model."""
        if steps <= 0 or len(self.model) == 0:
            return
        u = self.rng.random((steps, 3))  # state, action, outcome: one batched draw
        for us, ua, uo in u:
            s, a = self.model.sample_visited(us, ua)
            pred = self.model.predict(s, a, uo)
            self.q_update(s, a, pred.reward, pred.next_state, pred.terminated)
        self.planning_updates += steps
