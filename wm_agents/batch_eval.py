"""Evaluation episodes on a gymnasium vector env, planned for all sub-envs in one batched pass.

:func:`~wm_agents.run_loop.evaluate` runs evaluation episodes one after another through the
planning graph, each real step one CEM search over one state.  :func:`evaluate_batched` runs
them side by side: N episodes step one ``gymnasium.vector.SyncVectorEnv`` (episode ``i`` in
sub-env ``i``, reset with env seed ``seed + i``), and each real step plans for every running
episode at once (:meth:`~wm_agents.planning.MPCController.plan_many`: N searches, each with its
own warm start and random stream, scoring their populations in one batched model pass).

Same returns as the sequential evaluation: each episode plans from its own random stream
(:meth:`~wm_agents.planning.MPCController.episode_generator`, seeded by the env seed), which
:func:`~wm_agents.run_loop.evaluate` uses too, and the batched rollout gives each sub-env the
bits its own rollout would (:func:`~wm_agents.neural.rollout.rollout_many`), so every decision
and every return is the same (``tests/test_batch_eval.py``).  One shared stream, as before,
could not be batched: episode ``i``'s first draw would depend on how many draws episodes
``0..i-1`` made, which is known only when they end.

Autoreset: the vector env runs gymnasium's ``AutoresetMode.NEXT_STEP`` (named, not left to the
version's default): the step on which a sub-env's episode ends returns its real last
observation; the next ``step`` call resets that sub-env instead of stepping it.  An episode is
over at its first ``terminated`` or ``truncated``; after that its sub-env is stepped with its
last action and ignored (its autoreset and any later episode are not part of the evaluation).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from wm_agents.core import PlannedStep
from wm_agents.graph.env_graph import StepRecord, step_record
from wm_agents.spaces import ActionSpec, observation_dim

__all__ = ["BatchPlanner", "evaluate_batched", "make_vector_env"]


class BatchPlanner(Protocol):
    """What :func:`evaluate_batched` plans with (:class:`~wm_agents.planning.MPCController`)."""

    def episode_generator(self, episode_seed: int) -> torch.Generator:
        """The random stream of the evaluation episode with env seed ``episode_seed``."""
        ...

    def plan_many(
        self,
        states: Sequence[Any],
        *,
        warm_starts: Sequence[Any],
        generators: Sequence[torch.Generator],
    ) -> list[PlannedStep[Any]]:
        """One decision per state, all planned together."""
        ...


def make_vector_env(env_fn: Callable[[], gym.Env], num_envs: int) -> SyncVectorEnv:
    """``num_envs`` sub-envs from ``env_fn`` in one ``SyncVectorEnv`` with
    ``AutoresetMode.NEXT_STEP`` (see the module doc).  Sync, not a vectorized entry point
    (``gym.make_vec``'s default for CartPole): each sub-env is the very env the sequential
    evaluation steps, with its own seeding."""
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    return SyncVectorEnv([env_fn] * num_envs, autoreset_mode=AutoresetMode.NEXT_STEP)


def evaluate_batched(
    env_fn: Callable[[], gym.Env],
    controller: BatchPlanner,
    episodes: int,
    *,
    seed: int,
    num_envs: int | None = None,
    max_steps: int | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
) -> tuple[list[float], list[StepRecord]]:
    """Run ``episodes`` evaluation episodes (env seeds ``seed + i``) side by side, without
    learning; returns their returns and step records (episode by episode, as
    :func:`~wm_agents.run_loop.evaluate` returns them).

    Args:
        env_fn: makes one env (the evaluation env's kind: ``lambda: make_env("CartPole-v1")``).
        controller: plans for all running episodes at once (:class:`BatchPlanner`).
        episodes: how many episodes.
        seed: episode ``i`` resets with env seed ``seed + i`` and plans from
            ``controller.episode_generator(seed + i)``.
        num_envs: sub-envs (default: one per episode); more episodes run in waves.
        max_steps: ends an episode after this many steps (default: the env's time limit, or
            1000 steps where it has none).
        on_step: called with each :class:`StepRecord`.

    Raises:
        ValueError: the env returned a NaN/inf observation or reward, or a gate answered
            ``ask`` / ``refuse`` (a person or a fallback policy needs the planning graph's
            review nodes: evaluate through the graph instead).
    """
    if episodes < 0:
        raise ValueError(f"episodes must be >= 0, got {episodes}")
    if not episodes:
        return [], []
    n_envs = min(episodes, num_envs or episodes)
    env = make_vector_env(env_fn, n_envs)
    try:
        spec = ActionSpec.from_space(env.single_action_space)
        obs_dim = observation_dim(env.single_observation_space)
        time_limit = getattr(env.envs[0].spec, "max_episode_steps", None)
        limit = max_steps or time_limit or 1000
        returns: list[float] = []
        records: list[StepRecord] = []
        for start in range(0, episodes, n_envs):
            wave = [seed + i for i in range(start, min(start + n_envs, episodes))]
            rets, recs = _run_wave(env, controller, wave, spec, obs_dim, limit, on_step)
            returns.extend(rets)
            for episode_records in recs:
                records.extend(episode_records)
        return returns, records
    finally:
        env.close()


def _run_wave(
    env: SyncVectorEnv,
    controller: BatchPlanner,
    seeds: list[int],
    spec: ActionSpec,
    obs_dim: int,
    limit: int,
    on_step: Callable[[StepRecord], None] | None,
) -> tuple[list[float], list[list[StepRecord]]]:
    """One episode per seed in sub-envs ``0..len(seeds)-1`` (any others sit idle)."""
    n = env.num_envs
    k = len(seeds)
    obs, _ = env.reset(seed=seeds + [None] * (n - k))
    obs = _checked_obs(obs, n, obs_dim)
    running = [True] * k
    returns = [0.0] * k
    records: list[list[StepRecord]] = [[] for _ in range(k)]
    warm: list[Any] = [None] * k
    generators = [controller.episode_generator(s) for s in seeds]
    # Sub-envs not (or no longer) in an episode get a valid action they ignore or waste.
    actions: list[Any] = [spec.to_env(np.zeros(spec.dim)) for _ in range(n)]
    while live := [i for i in range(k) if running[i]]:
        t0 = time.perf_counter()
        planned = controller.plan_many(
            [obs[i] for i in live],
            warm_starts=[warm[i] for i in live],
            generators=[generators[i] for i in live],
        )
        ms = (time.perf_counter() - t0) * 1e3
        for i, step in zip(live, planned, strict=True):
            decision = step.decision
            if decision.verdict not in ("act", "lcb") or decision.action is None:
                raise ValueError(
                    f"the gate answered {decision.verdict!r} in a batched evaluation: a person "
                    "or a fallback policy needs the planning graph's review nodes; evaluate "
                    "through the graph (wm_agents.run_loop.evaluate with a graph built with "
                    "ask=True / refuse=True)"
                )
            actions[i] = spec.to_env(decision.action)
        next_obs, rewards, terminated, truncated, _ = env.step(np.asarray(actions))
        next_obs = _checked_obs(next_obs, n, obs_dim)
        for i, step in zip(live, planned, strict=True):
            reward = float(rewards[i])
            if not np.isfinite(reward):
                raise ValueError(f"sub-env {i} returned a non-finite reward: {reward}")
            decision = step.decision
            returns[i] += reward
            warm[i] = decision.plan
            # plan_ms: the batched planning pass this step was part of.
            transition = {
                "action": list(decision.action),
                "reward": reward,
                "next_obs": next_obs[i].tolist(),
            }
            record = step_record(
                len(records[i]) + 1, decision, step.outcomes, transition, plan_ms=ms
            )
            records[i].append(record)
            if on_step is not None:
                on_step(record)
            if terminated[i] or truncated[i] or len(records[i]) >= limit:
                running[i] = False
        obs = next_obs
    return returns, records


def _checked_obs(obs: Any, n: int, obs_dim: int) -> np.ndarray:
    """``[N, D]`` float32 observations (as :class:`~wm_agents.envs.GymActuator` casts one),
    or a ``ValueError`` for a wrong size or a NaN / inf."""
    a = np.asarray(obs, dtype=np.float32).reshape(n, -1)
    if a.shape[1] != obs_dim:
        raise ValueError(
            f"the vector env returned {a.shape[1]} values per sub-env, expected {obs_dim}"
        )
    if not np.all(np.isfinite(a)):
        bad = int(np.flatnonzero(~np.isfinite(a).all(axis=1))[0])
        raise ValueError(f"sub-env {bad} returned a NaN or infinite observation: {a[bad].tolist()}")
    return a
