"""Several agents' evaluations in one batched pass: each agent's decisions and returns exactly
those of its evaluation alone, and agents that cannot share a pass refused with a reason."""

from __future__ import annotations

from dataclasses import replace
from functools import cache

import gymnasium as gym
import pytest
import torch

from wm_agents.batch_eval import evaluate_batched
from wm_agents.batch_eval_agents import evaluate_agents_batched
from wm_agents.envs.gym_actuator import GymActuator
from wm_agents.envs.make import make_env
from wm_agents.graph.env_graph import StepRecord
from wm_agents.neural import FitConfig
from wm_agents.neural.dyna import DynaLearner
from wm_agents.planning import MPCController
from wm_agents.run_loop import random_warmup
from wm_agents.runner import build_agent, default_config

SEEDS = [1_000_000, 1_001_000, 1_002_000]


def env_fn() -> gym.Env:
    return make_env("CartPole-v1")


@cache
def agent(seed: int, hidden: int = 64) -> MPCController:
    """A sweep's agent: the default CartPole shapes (5 members, population 100: 20 rows per
    member, the exact-bits case of ``rollout_many``), a horizon of 10 to keep the test short,
    its own model fitted to 200 random steps of its own seed (episodes of ~15-60 steps)."""
    torch.set_num_threads(1)
    actuator = GymActuator(make_env("CartPole-v1"))
    cfg = default_config("CartPole-v1", horizon=10, hidden=hidden)
    model, controller = build_agent(actuator, cfg, seed=seed)
    learner = DynaLearner(model, 10_000, FitConfig(max_epochs=10, value_epochs=10), budget=10_000)
    random_warmup(actuator, learner, 200, seed=seed)
    learner.finish_warmup()
    return controller


def decisions(records: list[StepRecord]) -> list[tuple]:
    return [
        (r.step, r.action, r.reward, r.verdict, r.predicted_value, r.uncertainty, r.agreement)
        for r in records
    ]


def clip_counts(controllers: list[MPCController]) -> list[dict[str, int]]:
    """Each model's clip counts since the last call (then zeroed)."""
    counts = []
    for c in controllers:
        stats = c.model.clip_stats  # type: ignore[attr-defined]
        counts.append(stats.as_dict())
        stats.rows = stats.clipped = 0
    return counts


def test_each_agent_decides_and_returns_exactly_as_when_evaluated_alone() -> None:
    # Agent 1 re-plans whenever its members disagree (its searches run with a population of
    # 200 beside the others' 100); 4 sub-envs run 3 agents x 2 episodes in waves that mix
    # agents.  Every action, verdict, predicted value and return is the same, bit for bit.
    base = [agent(s) for s in (0, 1, 2)]
    replanning = replace(base[1], gate=replace(base[1].gate, agreement_threshold=1.0))  # type: ignore[type-var]
    controllers = [base[0], replanning, base[2]]
    clip_counts(controllers)
    alone = [
        evaluate_batched(env_fn, c, 2, seed=s) for c, s in zip(controllers, SEEDS, strict=True)
    ]
    alone_clipped = clip_counts(controllers)
    for num_envs in (None, 4):
        together = evaluate_agents_batched(
            env_fn,
            controllers,
            2,
            seeds=SEEDS,
            num_envs=num_envs,
        )
        assert clip_counts(controllers) == alone_clipped  # each model counted its own rows
        for (returns, records), (alone_returns, alone_records) in zip(together, alone, strict=True):
            assert returns == alone_returns
            assert decisions(records) == decisions(alone_records)
    assert len({r for rets, _ in alone for r in rets}) > 1  # episodes end at different steps
    assert {"lcb"} <= {r.verdict for r in alone[1][1]}  # agent 1 re-planned, then took the bound


def test_one_agent_twice_is_its_batched_evaluation_twice() -> None:
    c = agent(0)
    alone_returns, alone_records = evaluate_batched(env_fn, c, 2, seed=7)
    for returns, records in evaluate_agents_batched(env_fn, [c, c], 2, seeds=[7, 7]):
        assert returns == alone_returns
        assert decisions(records) == decisions(alone_records)


def test_agents_that_cannot_share_a_pass_are_refused_with_what_differs() -> None:
    narrow = agent(0, hidden=32)
    with pytest.raises(ValueError, match=r"controller 1 cannot share.*\{'hidden': \(64, 32\)\}"):
        evaluate_agents_batched(env_fn, [agent(0), narrow], 1, seeds=[0, 1])
    other_gamma = replace(agent(1), gamma=0.9)
    with pytest.raises(ValueError, match=r"controller 1 cannot share.*'gamma': \(0\.99, 0\.9\)"):
        evaluate_agents_batched(env_fn, [agent(0), other_gamma], 1, seeds=[0, 1])


def test_counts_that_do_not_match_are_refused() -> None:
    with pytest.raises(ValueError, match="2 controllers but 1 seeds"):
        evaluate_agents_batched(env_fn, [agent(0), agent(1)], 1, seeds=[0])
    with pytest.raises(ValueError, match="no controllers"):
        evaluate_agents_batched(env_fn, [], 1, seeds=[])
    with pytest.raises(ValueError, match="episodes must be >= 0"):
        evaluate_agents_batched(env_fn, [agent(0)], -1, seeds=[0])
    assert evaluate_agents_batched(env_fn, [agent(0), agent(1)], 0, seeds=[0, 1]) == [
        ([], []),
        ([], []),
    ]
