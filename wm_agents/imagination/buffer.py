"""A fixed-capacity ring of imagined transitions, kept as torch tensors (oldest dropped first).

Imagined data goes stale as the policy and model change, so MBPO keeps only the latest few
rollout rounds; ``capacity`` sets how many transitions that is.
"""

from __future__ import annotations

import torch

from wm_agents.imagination.rollouts import ImaginedBatch

__all__ = ["TensorReplay"]


class TensorReplay:
    """Ring buffer of ``(obs, action, reward, next_obs, terminated)`` rows."""

    def __init__(self, obs_dim: int, action_dim: int, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.obs = torch.zeros(capacity, obs_dim)
        self.action = torch.zeros(capacity, action_dim)
        self.reward = torch.zeros(capacity)
        self.next_obs = torch.zeros(capacity, obs_dim)
        self.terminated = torch.zeros(capacity)
        self._next = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, batch: ImaginedBatch) -> None:
        """Append a batch (if larger than the capacity, only its newest rows are kept)."""
        m = len(batch)
        if m == 0:
            return
        cols = (batch.obs, batch.action, batch.reward, batch.next_obs, batch.terminated)
        if m > self.capacity:
            cols = tuple(c[-self.capacity :] for c in cols)
            m = self.capacity
        idx = (self._next + torch.arange(m)) % self.capacity
        for dst, src in zip(
            (self.obs, self.action, self.reward, self.next_obs, self.terminated), cols, strict=True
        ):
            dst[idx] = src
        self._next = (self._next + m) % self.capacity
        self._size = min(self.capacity, self._size + m)

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """``n`` rows drawn uniformly with replacement: obs, action, reward, next_obs, term."""
        if self._size == 0:
            raise ValueError("cannot sample from an empty buffer")
        idx = torch.randint(0, self._size, (n,), generator=generator)
        return (
            self.obs[idx],
            self.action[idx],
            self.reward[idx],
            self.next_obs[idx],
            self.terminated[idx],
        )
