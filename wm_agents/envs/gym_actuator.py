"""The real actuator for gymnasium environments: reset, step, and validation of what comes back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from wm_agents.spaces import ActionSpec, observation_dim

__all__ = ["GymActuator", "StepResult"]


@dataclass(frozen=True)
class StepResult:
    """What one real ``env.step`` returned, validated."""

    obs: np.ndarray
    reward: float
    terminated: bool
    truncated: bool


class GymActuator:
    """Wraps a gymnasium env: checks spaces up front and observations on every step.

    Raises :class:`~wm_agents.spaces.UnsupportedSpaceError` for spaces the planners cannot use,
    ``TypeError`` for a vector env (one env is stepped here; see
    :func:`~wm_agents.batch_eval.evaluate_batched`), and ``ValueError`` when the env returns a
    NaN/inf observation or reward (a broken env must fail loudly instead of poisoning the
    replay buffer).
    """

    def __init__(self, env: Any) -> None:
        if isinstance(env, gym.vector.VectorEnv):
            # Its batched spaces would pass for one env's (MultiDiscrete, a [N, D] Box) and fail
            # later with a hint about flattening wrappers that is no fix for a vector env.
            raise TypeError(
                f"GymActuator steps one env, got a vector env of {env.num_envs} sub-envs: pass "
                "one env (gymnasium.make(env_id)); to run evaluation episodes side by side, pass "
                "a function making one env to wm_agents.batch_eval.evaluate_batched, which "
                "builds the vector env itself"
            )
        self.env = env
        self.obs_dim = observation_dim(env.observation_space)
        self.action_spec = ActionSpec.from_space(env.action_space)
        spec = getattr(env, "spec", None)
        self.env_id: str = getattr(spec, "id", None) or type(env).__name__
        self.reward_threshold: float | None = getattr(spec, "reward_threshold", None)
        self.max_episode_steps: int | None = getattr(spec, "max_episode_steps", None)

    def reset(self, seed: int | None = None) -> np.ndarray:
        obs, _ = self.env.reset(seed=seed)
        return self._check_obs(obs)

    def step(self, action: Any) -> StepResult:
        """Execute one ``[A]`` action (as planned) in the real env."""
        obs, reward, terminated, truncated, _ = self.env.step(self.action_spec.to_env(action))
        reward = float(reward)
        if not np.isfinite(reward):
            raise ValueError(f"{self.env_id} returned a non-finite reward: {reward}")
        return StepResult(self._check_obs(obs), reward, bool(terminated), bool(truncated))

    def sample_action(self, rng: np.random.Generator) -> np.ndarray:
        """A uniformly random ``[A]`` action drawn from ``rng`` (not the env's own RNG)."""
        spec = self.action_spec
        if spec.kind == "discrete":
            return np.array([float(rng.integers(spec.n))])
        return rng.uniform(spec.low, spec.high)

    def _check_obs(self, obs: Any) -> np.ndarray:
        a = np.asarray(obs, dtype=np.float32).reshape(-1)
        if a.size != self.obs_dim:
            raise ValueError(
                f"{self.env_id} returned an observation of {a.size} values, expected {self.obs_dim}"
            )
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{self.env_id} returned a NaN or infinite observation: {a.tolist()}")
        return a

    def close(self) -> None:
        self.env.close()
