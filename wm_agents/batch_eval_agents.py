"""Several agents' evaluation episodes on one vector env, planned in one batched pass.

A sweep trains several agents (seeds of one config: each its own
:class:`~wm_agents.neural.EnsembleDynamicsModel` of one architecture) and evaluates each.
:func:`~wm_agents.batch_eval.evaluate_batched` plans one agent's episodes together;
:func:`evaluate_agents_batched` plans every agent's episodes together: agent ``a``'s episode
``i`` steps its own sub-env of one ``SyncVectorEnv`` (env seed ``seeds[a] + i``), and each real
step plans for every running episode of every agent at once
(:func:`~wm_agents.planning.mpc.plan_together`).  The agents' models share each model pass:
their rows stacked on the member axis, agent ``a``'s rows with agent ``a``'s weights, reward
bounds and terminal value (:func:`~wm_agents.neural.rollout.rollout_many` with one model per
observation), so ``S`` agents x ``N`` episodes cost one pass per search round, not ``S``.

Same decisions, bit for bit, as evaluating each agent alone with
:func:`~wm_agents.batch_eval.evaluate_batched` (and so with the graph's
:func:`~wm_agents.run_loop.evaluate`): each episode plans from its own agent's stream for its
env seed (:meth:`~wm_agents.planning.MPCController.episode_generator`) with its own warm start,
is searched by its own agent's planner and decided by its own agent's gate, and each block of
rows runs matmuls of the shapes its own rollout runs (the conditions and the one exception,
the rows per member, are :func:`~wm_agents.neural.rollout.rollout_many`'s;
``tests/test_batch_eval_agents.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gymnasium as gym

from wm_agents.batch_eval import run_episodes
from wm_agents.graph.env_graph import StepRecord
from wm_agents.planning.mpc import MPCController, joint_pass, plan_together

__all__ = ["evaluate_agents_batched"]


def evaluate_agents_batched(
    env_fn: Callable[[], gym.Env],
    controllers: Sequence[MPCController],
    episodes: int,
    *,
    seeds: Sequence[int],
    num_envs: int | None = None,
    max_steps: int | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
) -> list[tuple[list[float], list[StepRecord]]]:
    """Run ``episodes`` evaluation episodes of every agent side by side, without learning;
    returns, per agent, what ``evaluate_batched(env_fn, controllers[a], episodes,
    seed=seeds[a])`` returns (its returns and step records).

    Args:
        env_fn: makes one env (the evaluation env's kind: ``lambda: make_env("CartPole-v1")``).
        controllers: one per agent (its model, planner and gate); ensembles of one architecture
            and one set of pass options (:func:`~wm_agents.planning.mpc.joint_pass`).  Other
            world models also work, each scored on its own (no shared pass).
        episodes: episodes per agent.
        seeds: per agent: its episode ``i`` resets with env seed ``seeds[a] + i`` and plans
            from ``controllers[a].episode_generator(seeds[a] + i)``.
        num_envs: sub-envs (default: one per episode of every agent); more episodes run in
            waves (agent by agent, in order).
        max_steps: ends an episode after this many steps (default: the env's time limit, or
            1000 steps where it has none).
        on_step: called with each :class:`StepRecord` (records of all agents, interleaved).

    Raises:
        ValueError: ``seeds`` and ``controllers`` of different lengths, no controllers, agents
            that cannot share a model pass (another architecture, planning dtype or pass
            option: the message names the agent and what differs), or
            :func:`~wm_agents.batch_eval.evaluate_batched`'s errors.
    """
    if not controllers:
        raise ValueError("no controllers: pass one per agent")
    if len(seeds) != len(controllers):
        raise ValueError(
            f"{len(controllers)} controllers but {len(seeds)} seeds: one evaluation seed per agent"
        )
    if episodes < 0:
        raise ValueError(f"episodes must be >= 0, got {episodes}")
    joint_pass(controllers)  # refuses agents that cannot share a pass before any env exists
    owner = [a for a in range(len(controllers)) for _ in range(episodes)]
    env_seeds = [seeds[a] + i for a in range(len(controllers)) for i in range(episodes)]
    done = run_episodes(
        env_fn,
        env_seeds,
        [controllers[a].episode_generator(s) for a, s in zip(owner, env_seeds, strict=True)],
        lambda which, states, warm, gens: plan_together(
            [controllers[owner[j]] for j in which], states, warm_starts=warm, generators=gens
        ),
        num_envs=num_envs,
        max_steps=max_steps,
        on_step=on_step,
    )
    per_agent = [done[a * episodes : (a + 1) * episodes] for a in range(len(controllers))]
    return [([ret for ret, _ in eps], [r for _, recs in eps for r in recs]) for eps in per_agent]
