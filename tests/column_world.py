"""A toy pixel world for the latent agent's tests: a column at position x in 0..15 on a 16 x 16
frame, action 1 moves it right, 0 left; the reward is x / 15 per step; episodes last 20 steps and
start anywhere.  Always going right earns about 15-19 per episode, random actions about 8-10."""

from __future__ import annotations

from typing import ClassVar

import gymnasium as gym
import numpy as np
import torch

from wm_agents.envs.pixels import PixelObservation
from wm_agents.latent import EpisodeReplay, LatentConfig, LatentWorldModel
from wm_agents.latent.agent import LatentAgentConfig

SIZE = 16

TINY_MODEL = dict(deter=32, stoch=8, hidden=64, ensemble=3, depth=8, lr=3e-3)
"""A latent model small enough for tests that still learns the column world."""


def tiny_latent_agent(**settings) -> LatentAgentConfig:
    """Latent agent settings for a few hundred real steps of the column world."""
    base = dict(train_every=20, train_steps=10, warmup_train_steps=250, batch=16, seq_len=10)
    return LatentAgentConfig(**{**base, **settings})


def few_cli_train_steps(monkeypatch) -> None:
    """The CLI's latent agent with 20 warm-up gradient steps and 5 per refit instead of 200 and
    25: the CLI tests check what the command writes and refuses, not what it learns (the
    learning tests above do that), and the full counts are most of their time."""
    import functools

    import wm_agents.latent.agent as latent_agent

    fewer = functools.partial(LatentAgentConfig, warmup_train_steps=20, train_steps=5)
    monkeypatch.setattr(latent_agent, "LatentAgentConfig", fewer)


class ColumnWorld(gym.Env):
    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 30}
    observation_space = gym.spaces.Box(0, SIZE - 1, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, render_mode: str = "rgb_array") -> None:
        self.render_mode = render_mode
        self.spec = gym.envs.registration.EnvSpec("ColumnWorld-v0", max_episode_steps=20)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = int(self.np_random.integers(0, SIZE)), 0
        return np.array([self.x], np.float32), {}

    def step(self, action):
        self.x = min(SIZE - 1, max(0, self.x + (1 if int(action) == 1 else -1)))
        self.t += 1
        return np.array([self.x], np.float32), self.x / (SIZE - 1), False, self.t >= 20, {}

    def render(self):
        frame = np.zeros((SIZE, SIZE, 3), np.uint8)
        frame[:, self.x] = 255
        return frame


def make_env():
    return PixelObservation(ColumnWorld(), size=SIZE, frames=1, grayscale=True)


def frame(x: int) -> np.ndarray:
    f = np.zeros((1, SIZE, SIZE), np.uint8)
    f[0, :, x] = 255
    return f


def one_hot(a: int) -> np.ndarray:
    return np.eye(2, dtype=np.float32)[a]


def fill(replay: EpisodeReplay, rng: np.random.Generator, episodes: int, length: int) -> None:
    for _ in range(episodes):
        x = int(rng.integers(0, SIZE))
        replay.start(frame(x))
        for _ in range(length):
            a = int(rng.integers(2))
            x = min(SIZE - 1, max(0, x + (1 if a else -1)))
            replay.add(one_hot(a), frame(x), x / (SIZE - 1), False)


def train_column_model(steps: int = 300, seed: int = 0):
    """A latent model trained ``steps`` updates on 40 random-action episodes of 20 steps:
    ``(model, replay, first losses, last losses)``."""
    torch.set_num_threads(1)
    cfg = LatentConfig(channels=1, size=SIZE, action_dim=2, **TINY_MODEL)
    model = LatentWorldModel(cfg, seed=seed)
    replay = EpisodeReplay(action_dim=2)
    rng = np.random.default_rng(seed)
    fill(replay, rng, episodes=40, length=20)
    first = None
    for _ in range(steps):
        b = replay.sample(16, 10, rng)
        parts = model.train_step(b.frames, b.actions, b.rewards, b.continues, b.mask)
        first = first or parts
    return model, replay, first, parts
