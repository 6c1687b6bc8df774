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

Several agents (a sweep's seeds, each its own model of one architecture) plan their evaluation
episodes together with :func:`~wm_agents.batch_eval_agents.evaluate_agents_batched`, on the
same episode loop (:func:`run_episodes`: which episode is whose is the planning function's
business).

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

__all__ = ["BatchPlanner", "PlanFn", "evaluate_batched", "make_vector_env", "run_episodes"]


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


PlanFn = Callable[
    [Sequence[int], Sequence[Any], Sequence[Any], Sequence[torch.Generator]],
    list[PlannedStep[Any]],
]
"""``(episodes, states, warm_starts, generators) -> one decision each``: plans one real step
for the running episodes ``episodes`` (indices into :func:`run_episodes`' list), all at
once."""


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
    seeds = [seed + i for i in range(episodes)]
    done = run_episodes(
        env_fn,
        seeds,
        [controller.episode_generator(s) for s in seeds],
        lambda _, states, warm, gens: controller.plan_many(
            states, warm_starts=warm, generators=gens
        ),
        num_envs=num_envs,
        max_steps=max_steps,
        on_step=on_step,
    )
    return [ret for ret, _ in done], [r for _, recs in done for r in recs]


def run_episodes(
    env_fn: Callable[[], gym.Env],
    seeds: Sequence[int],
    generators: Sequence[torch.Generator],
    plan: PlanFn,
    *,
    num_envs: int | None = None,
    max_steps: int | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
) -> list[tuple[float, list[StepRecord]]]:
    """The episodes of :func:`evaluate_batched` (and of
    :func:`~wm_agents.batch_eval_agents.evaluate_agents_batched`): episode ``j`` resets with
    env seed ``seeds[j]`` and plans from ``generators[j]`` through ``plan`` (which knows whose
    episode ``j`` is); returns each episode's return and step records, in order.  Its
    arguments and errors are :func:`evaluate_batched`'s."""
    if len(generators) != len(seeds):
        raise ValueError(f"{len(seeds)} env seeds but {len(generators)} generators: one each")
    if not seeds:
        return []
    n_envs = min(len(seeds), num_envs or len(seeds))
    env = make_vector_env(env_fn, n_envs)
    try:
        spec = ActionSpec.from_space(env.single_action_space)
        obs_dim = observation_dim(env.single_observation_space)
        time_limit = getattr(env.envs[0].spec, "max_episode_steps", None)
        limit = max_steps or time_limit or 1000
        done: list[tuple[float, list[StepRecord]]] = []
        for start in range(0, len(seeds), n_envs):
            wave = list(range(start, min(start + n_envs, len(seeds))))
            done.extend(
                _run_wave(env, wave, seeds, generators, plan, spec, obs_dim, limit, on_step)
            )
        return done
    finally:
        env.close()


def _run_wave(
    env: SyncVectorEnv,
    wave: list[int],
    seeds: Sequence[int],
    generators: Sequence[torch.Generator],
    plan: PlanFn,
    spec: ActionSpec,
    obs_dim: int,
    limit: int,
    on_step: Callable[[StepRecord], None] | None,
) -> list[tuple[float, list[StepRecord]]]:
    """Episodes ``wave`` in sub-envs ``0..len(wave)-1`` (any others sit idle)."""
    n = env.num_envs
    k = len(wave)
    obs, _ = env.reset(seed=[seeds[j] for j in wave] + [None] * (n - k))
    obs = _checked_obs(obs, n, obs_dim)
    running = [True] * k
    returns = [0.0] * k
    records: list[list[StepRecord]] = [[] for _ in range(k)]
    warm: list[Any] = [None] * k
    # Sub-envs not (or no longer) in an episode get a valid action they ignore or waste.
    actions: list[Any] = [spec.to_env(np.zeros(spec.dim)) for _ in range(n)]
    while live := [i for i in range(k) if running[i]]:
        t0 = time.perf_counter()
        planned = plan(
            [wave[i] for i in live],
            [obs[i] for i in live],
            [warm[i] for i in live],
            [generators[wave[i]] for i in live],
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
    return list(zip(returns, records, strict=True))


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
