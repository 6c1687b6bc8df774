"""Observations as pixels: an env whose agent sees only rendered frames (issue 16, item 1).

:class:`PixelObservation` renders the wrapped env (``render_mode="rgb_array"``) after every
reset and step, shrinks the frame to ``size x size`` by area averaging (every source pixel
counts, so a thin pole does not vanish between sample points), and returns the last ``frames``
frames stacked, ``uint8 [frames * C, size, size]``: one frame shows where things are, two or
more show how fast they move.  The state vector never leaves the wrapper: the observation is
the frames, and ``info`` is passed on without any key that holds the state.

The frame stack is reset with the env (the first frame repeated), so an episode's first
observation carries no motion, as for a camera that was just switched on.

Rendering needs pygame for gymnasium's classic-control envs (the ``pixels`` extra);
:func:`make_pixel_env` says so when it is missing.  ``SDL_VIDEODRIVER`` defaults to ``dummy``
(no screen is needed, nor opened).
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["PixelObservation", "make_pixel_env", "resize_area"]

STATE_INFO_KEYS = frozenset({"state", "obs", "observation", "true_state"})
"""``info`` keys dropped on the way out, in case an env reports its state there."""


def resize_area(frame: np.ndarray, size: int) -> np.ndarray:
    """``[H, W, C]`` uint8 -> ``[size, size, C]`` uint8 by area averaging (exact for integer
    factors, and the same on every CPU: a sum of integers and one rounding)."""
    if frame.ndim != 3:
        raise ValueError(f"a frame must be [H, W, C], got shape {frame.shape}")
    h, w, c = frame.shape
    if size < 1 or size > min(h, w):
        raise ValueError(f"size must be in [1, {min(h, w)}] for a {h}x{w} frame, got {size}")
    # Crop to a multiple of size (at most size-1 pixels off the far edges), then block-average.
    bh, bw = h // size, w // size
    cropped = frame[: bh * size, : bw * size].astype(np.uint32)
    blocks = cropped.reshape(size, bh, size, bw, c).sum(axis=(1, 3))
    return ((blocks + (bh * bw) // 2) // (bh * bw)).astype(np.uint8)


class PixelObservation(gym.Wrapper):
    """Replace an env's observation with its last ``frames`` rendered frames.

    Args:
        env: an env made with ``render_mode="rgb_array"``.
        size: side of the square frames the agent sees (64 by default).
        frames: frames stacked per observation (3 by default: position and velocity are both
            knowable).
        grayscale: one channel (the mean of RGB) instead of three.

    Raises:
        ValueError: the env does not render ``rgb_array`` frames, or bad sizes.
    """

    def __init__(self, env: gym.Env, *, size: int = 64, frames: int = 3, grayscale: bool = False):
        super().__init__(env)
        if getattr(env, "render_mode", None) != "rgb_array":
            raise ValueError(
                "PixelObservation needs an env made with render_mode='rgb_array' "
                f"(got render_mode={getattr(env, 'render_mode', None)!r}); use make_pixel_env"
            )
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        quiet_sdl()  # before the first render starts pygame
        self.size, self.frames, self.grayscale = int(size), int(frames), bool(grayscale)
        channels = 1 if grayscale else 3
        self.observation_space = gym.spaces.Box(
            0, 255, (self.frames * channels, self.size, self.size), np.uint8
        )
        self._stack: deque[np.ndarray] = deque(maxlen=self.frames)

    def _frame(self) -> np.ndarray:
        frame = self.env.render()
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(
                f"{self.env.spec.id if self.env.spec else self.env} rendered "
                f"{type(frame).__name__} {getattr(frame, 'shape', '')}, expected an RGB frame"
            )
        small = resize_area(frame, self.size)
        if self.grayscale:
            small = ((small.astype(np.uint16).sum(axis=2, keepdims=True) + 1) // 3).astype(np.uint8)
        return np.ascontiguousarray(small.transpose(2, 0, 1))  # [C, size, size]

    def _observation(self) -> np.ndarray:
        return np.concatenate(list(self._stack), axis=0)

    @staticmethod
    def _clean(info: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in info.items() if k not in STATE_INFO_KEYS}

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        _, info = self.env.reset(**kwargs)
        frame = self._frame()
        self._stack.clear()
        for _ in range(self.frames):
            self._stack.append(frame)
        return self._observation(), self._clean(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        _, reward, terminated, truncated, info = self.env.step(action)
        self._stack.append(self._frame())
        return self._observation(), reward, terminated, truncated, self._clean(info)


def quiet_sdl() -> None:
    """Before pygame starts: no window or sound device, and no SDL signal handlers (SDL turns
    SIGINT and SIGTERM into a quit event nobody reads, so a pixel run would ignore Ctrl-C and
    ``kill``).  Settings already in the environment are kept."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")


def make_pixel_env(
    env_id: str, *, size: int = 64, frames: int = 3, grayscale: bool = False, **kwargs: Any
) -> PixelObservation:
    """``gym.make(env_id, render_mode="rgb_array")`` seen through :class:`PixelObservation`.

    Raises:
        ImportError: rendering needs a package that is not installed (the message says which;
            for classic control: ``pip install "wm-agents[pixels]"``).
    """
    quiet_sdl()
    env = gym.make(env_id, render_mode="rgb_array", **kwargs)
    try:
        env.reset(seed=0)
        env.render()
    except gym.error.DependencyNotInstalled as err:
        env.close()
        raise ImportError(
            f'rendering {env_id} needs pygame: pip install "wm-agents[pixels]" ({err})'
        ) from err
    return PixelObservation(env, size=size, frames=frames, grayscale=grayscale)
