"""Batched evaluation on a vector env: the same decisions and returns as the graph's one-at-a-time
evaluation, the vector env's autoreset handled, and a vector env refused where one env is meant."""

from __future__ import annotations

from dataclasses import replace
from functools import cache

import gymnasium as gym
import pytest
import torch

from wm_agents.batch_eval import evaluate_batched, make_vector_env
from wm_agents.envs.gym_actuator import GymActuator
from wm_agents.envs.make import make_env
from wm_agents.graph.env_graph import StepRecord, create_env_planning_graph
from wm_agents.neural import FitConfig
from wm_agents.neural.dyna import DynaLearner
from wm_agents.planning import MPCController
from wm_agents.run_loop import evaluate, random_warmup
from wm_agents.runner import build_agent, default_config

EVAL_SEED = 1_000_000


@cache
def cartpole_agent() -> MPCController:
    """The default CartPole agent (its shapes: 5 members, population 100, horizon 30) on a model
    fitted to 300 random steps: episodes of ~60-250 steps, each ending at another time."""
    torch.set_num_threads(1)
    actuator = GymActuator(make_env("CartPole-v1"))
    model, controller = build_agent(actuator, default_config("CartPole-v1"), seed=0)
    fit = FitConfig(max_epochs=20, value_rounds=1, value_epochs=20)
    learner = DynaLearner(model, 10_000, fit, budget=10_000)
    random_warmup(actuator, learner, 300, seed=0)
    learner.finish_warmup()
    return controller


def sequential(controller: MPCController, episodes: int) -> tuple[list[float], list[StepRecord]]:
    graph = create_env_planning_graph(fuse=True).compile()
    actuator = GymActuator(make_env("CartPole-v1"))
    return evaluate(graph, actuator, controller, episodes, seed=EVAL_SEED)


def decisions(records: list[StepRecord]) -> list[tuple]:
    return [(r.step, r.action, r.verdict, r.predicted_value, r.uncertainty) for r in records]


def test_batched_evaluation_decides_and_returns_exactly_as_the_sequential_one() -> None:
    controller = cartpole_agent()
    seq_returns, seq_records = sequential(controller, 4)
    returns, records = evaluate_batched(
        lambda: make_env("CartPole-v1"), controller, 4, seed=EVAL_SEED
    )
    assert returns == seq_returns
    assert len(set(returns)) > 1  # episodes end at different steps: the autoreset is exercised
    assert decisions(records) == decisions(seq_records)
    assert {r.source for r in records} == {"mpc"}


def test_re_plans_and_waves_of_sub_envs_decide_the_same() -> None:
    # A gate that re-plans whenever the members disagree: re-planning sub-envs search with a
    # population of 200 beside others searching with 100; 3 sub-envs run 4 episodes in 2 waves.
    base = cartpole_agent()
    gate = replace(base.gate, agreement_threshold=1.0)  # type: ignore[type-var]
    controller = replace(base, gate=gate)
    seq_returns, seq_records = sequential(controller, 4)
    returns, records = evaluate_batched(
        lambda: make_env("CartPole-v1"), controller, 4, seed=EVAL_SEED, num_envs=3
    )
    assert returns == seq_returns
    assert decisions(records) == decisions(seq_records)
    assert {"lcb"} <= {r.verdict for r in records}  # re-planned, then took the bound


def test_each_episode_plans_from_its_own_stream_in_any_order() -> None:
    controller = cartpole_agent()
    shared = controller.planner.generator.get_state()
    alone, _ = evaluate_batched(lambda: make_env("CartPole-v1"), controller, 1, seed=EVAL_SEED + 2)
    together, _ = evaluate_batched(lambda: make_env("CartPole-v1"), controller, 3, seed=EVAL_SEED)
    assert alone == together[2:]
    assert torch.equal(controller.planner.generator.get_state(), shared)  # never drawn from
    g1 = controller.episode_generator(5)
    g2 = controller.episode_generator(5)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))
    assert not torch.equal(
        torch.rand(3, generator=controller.episode_generator(5)),
        torch.rand(3, generator=controller.episode_generator(6)),
    )


def test_the_vector_env_autoresets_on_the_next_step() -> None:
    env = make_vector_env(lambda: make_env("CartPole-v1"), 2)
    try:
        assert env.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    finally:
        env.close()
    with pytest.raises(ValueError, match="num_envs must be >= 1"):
        make_vector_env(lambda: make_env("CartPole-v1"), 0)


def test_no_episodes_is_no_work() -> None:
    assert evaluate_batched(lambda: make_env("CartPole-v1"), cartpole_agent(), 0, seed=0) == (
        [],
        [],
    )


def test_a_vector_env_where_one_env_is_meant_says_what_to_do() -> None:
    env = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")
    try:
        with pytest.raises(TypeError, match=r"one env.*gymnasium\.make.*evaluate_batched"):
            GymActuator(env)
    finally:
        env.close()
