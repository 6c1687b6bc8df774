"""Whole episodes of pixel observations, sampled as fixed-length sequences for the latent model.

Each stored step is ``(frames, action before it, reward for reaching it, continue)``: an
episode's first step has a zero action and reward, and ``continue`` is 0 only on the frame where
the episode terminated (a truncated episode keeps 1: nothing ended there).  Sequences never
cross episodes; an episode shorter than the sequence length is sampled whole, padded by
repeating its last step with ``mask`` 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["EpisodeReplay", "SequenceBatch"]


@dataclass
class SequenceBatch:
    """``frames [B, T, C, S, S]`` uint8, ``actions [B, T, A]``, ``rewards``, ``continues``,
    ``mask [B, T]`` (0 on padding)."""

    frames: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    continues: torch.Tensor
    mask: torch.Tensor


@dataclass
class EpisodeReplay:
    """Episodes of ``(frames, action, reward, continue)`` steps.

    Args:
        action_dim: the action vector's size.
        max_steps: steps kept (the oldest episodes are dropped first).
    """

    action_dim: int
    max_steps: int = 100_000
    episodes: list[dict[str, list]] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return sum(len(ep["frames"]) for ep in self.episodes)

    def start(self, frames: np.ndarray) -> None:
        """Begin an episode with its first observation."""
        self.episodes.append(
            {
                "frames": [np.asarray(frames, dtype=np.uint8)],
                "actions": [np.zeros(self.action_dim, np.float32)],
                "rewards": [0.0],
                "continues": [1.0],
            }
        )
        while self.steps > self.max_steps and len(self.episodes) > 1:
            self.episodes.pop(0)

    def add(self, action: np.ndarray, frames: np.ndarray, reward: float, terminated: bool) -> None:
        """One real step of the current episode."""
        if not self.episodes:
            raise ValueError("call start(frames) with the episode's first observation first")
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        if action.shape != (self.action_dim,):
            raise ValueError(f"action must have {self.action_dim} values, got {action.shape}")
        if not np.isfinite(reward) or not np.all(np.isfinite(action)):
            raise ValueError("reward and action must be finite")
        ep = self.episodes[-1]
        ep["frames"].append(np.asarray(frames, dtype=np.uint8))
        ep["actions"].append(action)
        ep["rewards"].append(float(reward))
        ep["continues"].append(0.0 if terminated else 1.0)

    def sample(self, batch: int, length: int, rng: np.random.Generator) -> SequenceBatch:
        """``batch`` sequences of ``length`` steps, episodes drawn in proportion to their length.

        A start is a step drawn uniformly from the episode, moved back so the sequence fits: every
        step (the last one included) is then in about ``length`` of ``n`` possible sequences.  A
        start drawn only from the positions that fit would show an episode's last step (a fall,
        the rare thing the continue head must learn) ``length`` times less often than its middle.
        """
        usable = [ep for ep in self.episodes if len(ep["frames"]) >= 2]
        if not usable:
            raise ValueError("no episode with at least two steps to learn from yet")
        weights = np.asarray([len(ep["frames"]) for ep in usable], dtype=np.float64)
        picks = rng.choice(len(usable), size=batch, p=weights / weights.sum())
        out: dict[str, list] = {k: [] for k in ("frames", "actions", "rewards", "continues")}
        masks = []
        for i in picks:
            ep = usable[int(i)]
            n = len(ep["frames"])
            start = min(int(rng.integers(0, n)), max(0, n - length))
            idx = [min(start + j, n - 1) for j in range(length)]
            masks.append([1.0 if start + j < n else 0.0 for j in range(length)])
            for key in out:
                out[key].append(np.stack([np.asarray(ep[key][j]) for j in idx]))
        return SequenceBatch(
            frames=torch.as_tensor(np.stack(out["frames"])),
            actions=torch.as_tensor(np.stack(out["actions"]), dtype=torch.float32),
            rewards=torch.as_tensor(np.stack(out["rewards"]), dtype=torch.float32),
            continues=torch.as_tensor(np.stack(out["continues"]), dtype=torch.float32),
            mask=torch.as_tensor(np.asarray(masks), dtype=torch.float32),
        )
