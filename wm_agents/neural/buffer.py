"""Replay buffer of real transitions, stored as flat numpy arrays in arrival order.

Order matters: multi-step validation replays contiguous stretches of real experience, so the
buffer keeps transitions in the order they happened and marks episode ends.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from wm_agents.core import Transition

__all__ = ["ReplayBuffer", "TransitionBatch"]


@dataclass(frozen=True)
class TransitionBatch:
    """Arrays of transitions. Shapes: obs/next_obs ``[N, D]``, action ``[N, A]``, rest ``[N]``."""

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    episode_end: np.ndarray

    def __len__(self) -> int:
        return int(self.obs.shape[0])


class ReplayBuffer:
    """Fixed-capacity FIFO of real transitions (oldest dropped first)."""

    def __init__(self, obs_dim: int, action_dim: int, capacity: int = 100_000) -> None:
        if obs_dim < 1 or action_dim < 1 or capacity < 1:
            raise ValueError("obs_dim, action_dim and capacity must be positive")
        self.obs_dim, self.action_dim, self.capacity = obs_dim, action_dim, capacity
        self._obs = np.zeros((capacity, obs_dim), np.float32)
        self._act = np.zeros((capacity, action_dim), np.float32)
        self._rew = np.zeros(capacity, np.float32)
        self._next = np.zeros((capacity, obs_dim), np.float32)
        self._term = np.zeros(capacity, bool)
        self._end = np.zeros(capacity, bool)
        self._size = 0
        self._start = 0  # index of the oldest transition in the ring

    def __len__(self) -> int:
        return self._size

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray | float | int,
        reward: float,
        next_obs: np.ndarray,
        terminated: bool,
        truncated: bool = False,
    ) -> None:
        """Append one transition; raises ``ValueError`` on wrong shapes or non-finite numbers."""
        o = self._vector(obs, self.obs_dim, "obs")
        n = self._vector(next_obs, self.obs_dim, "next_obs")
        a = self._vector(action, self.action_dim, "action")
        r = float(reward)
        if not np.isfinite(r):
            raise ValueError(f"reward must be finite, got {reward!r}")
        i = (self._start + self._size) % self.capacity
        if self._size == self.capacity:
            self._start = (self._start + 1) % self.capacity
        else:
            self._size += 1
        self._obs[i], self._act[i], self._rew[i], self._next[i] = o, a, r, n
        self._term[i] = bool(terminated)
        self._end[i] = bool(terminated) or bool(truncated)

    def add_transitions(self, transitions: Iterable[Transition]) -> int:
        """Append :class:`Transition` objects (all validated before any is added).

        Returns the count.
        """
        rows = []
        for t in transitions:
            if t.next_state is None:
                raise ValueError("a dynamics transition needs next_state")
            rows.append(
                (
                    self._vector(t.state, self.obs_dim, "state"),
                    self._vector(t.action, self.action_dim, "action"),
                    t.reward,
                    self._vector(t.next_state, self.obs_dim, "next_state"),
                    t.terminated,
                    t.truncated,
                )
            )
        for row in rows:
            self.add(*row)
        return len(rows)

    def mark_episode_end(self) -> None:
        """Mark the latest transition as the end of its episode (e.g. the run stopped there)."""
        if self._size:
            self._end[(self._start + self._size - 1) % self.capacity] = True

    def all(self) -> TransitionBatch:
        """Every stored transition, oldest first."""
        idx = (self._start + np.arange(self._size)) % self.capacity
        end = self._end[idx].copy()
        if self._size:
            end[-1] = True  # the newest transition ends whatever stretch it is in
        return TransitionBatch(
            obs=self._obs[idx],
            action=self._act[idx],
            reward=self._rew[idx],
            next_obs=self._next[idx],
            terminated=self._term[idx],
            episode_end=end,
        )

    @staticmethod
    def _vector(x: object, dim: int, name: str) -> np.ndarray:
        a = np.asarray(x, dtype=np.float32).reshape(-1)
        if a.size != dim:
            raise ValueError(f"{name} must have {dim} values, got shape {np.shape(x)}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or infinite values: {a.tolist()}")
        return a
