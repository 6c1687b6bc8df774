"""Evaluation split across forked workers: the same decisions, returns and clip counts as the
single-process batched evaluation; worker counts, shares, CPU accounting and errors."""

from __future__ import annotations

import math
import multiprocessing
import time
from dataclasses import asdict, replace

import gymnasium as gym
import numpy as np
import pytest
from test_batch_eval import EVAL_SEED, cartpole_agent, decisions

from wm_agents.batch_eval import evaluate_batched
from wm_agents.envs.make import make_env
from wm_agents.graph.env_graph import StepRecord
from wm_agents.parallel_eval import (
    evaluate_parallel,
    process_cpu_seconds,
    resolve_workers,
    shares,
)
from wm_agents.runner import AgentConfig, default_config, run_gym

needs_fork = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)


def everything(record: StepRecord) -> tuple:
    """Every field but the planning time (NaN prediction errors compare equal)."""
    fields = asdict(record)
    del fields["plan_ms"]
    return tuple(
        (k, "nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in fields.items()
    )


def cartpole() -> gym.Env:
    return make_env("CartPole-v1")


@needs_fork
def test_workers_decide_and_return_exactly_as_one_process() -> None:
    controller = cartpole_agent()
    stats = controller.model.clip_stats
    before = (stats.rows, stats.clipped)
    one_returns, one_records = evaluate_batched(cartpole, controller, 5, seed=EVAL_SEED)
    mid = (stats.rows, stats.clipped)
    returns, records = evaluate_parallel(cartpole, controller, 5, seed=EVAL_SEED, workers=2)
    after = (stats.rows, stats.clipped)
    assert returns == one_returns
    assert len(set(returns)) > 1  # episodes of different lengths in both shares
    assert decisions(records) == decisions(one_records)
    assert [everything(r) for r in records] == [everything(r) for r in one_records]
    # The workers' imagination is counted in this process's model, as if it ran here.
    assert mid[0] > before[0]
    assert (after[0] - mid[0], after[1] - mid[1]) == (mid[0] - before[0], mid[1] - before[1])


@needs_fork
def test_more_workers_than_episodes_and_an_uneven_split() -> None:
    controller = cartpole_agent()
    one, _ = evaluate_batched(cartpole, controller, 3, seed=EVAL_SEED + 7)
    assert evaluate_parallel(cartpole, controller, 3, seed=EVAL_SEED + 7, workers=2)[0] == one
    assert evaluate_parallel(cartpole, controller, 3, seed=EVAL_SEED + 7, workers=8)[0] == one


class _NaNAfter(gym.Wrapper):
    """An env whose observation turns NaN after three steps."""

    def reset(self, **kwargs):  # type: ignore[no-untyped-def]
        self.steps = 0
        return self.env.reset(**kwargs)

    def step(self, action):  # type: ignore[no-untyped-def]
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if self.steps > 3:
            obs = np.full_like(obs, math.nan)
        return obs, reward, terminated, truncated, info


@needs_fork
def test_an_error_in_a_worker_reaches_the_caller() -> None:
    def bad_env() -> gym.Env:
        return _NaNAfter(make_env("CartPole-v1"))

    with pytest.raises(ValueError, match="NaN or infinite observation"):
        evaluate_parallel(bad_env, cartpole_agent(), 4, seed=EVAL_SEED, workers=2)


def test_worker_counts_and_shares() -> None:
    assert resolve_workers(4, 10) == 4
    assert resolve_workers(16, 3) == 3  # never more processes than episodes
    assert 1 <= resolve_workers(0, 10) <= 10  # one per core
    with pytest.raises(ValueError, match="workers must be >= 0"):
        resolve_workers(-1, 10)
    assert shares(10, 3) == [(0, 4), (4, 3), (7, 3)]
    assert shares(4, 4) == [(0, 1), (1, 1), (2, 1), (3, 1)]
    assert sum(c for _, c in shares(10, 2)) == 10


def test_no_episodes_is_no_work() -> None:
    assert evaluate_parallel(cartpole, cartpole_agent(), 0, seed=EVAL_SEED, workers=2) == ([], [])
    with pytest.raises(ValueError, match="episodes must be >= 0"):
        evaluate_parallel(cartpole, cartpole_agent(), -1, seed=EVAL_SEED, workers=2)


@needs_fork
def test_process_cpu_seconds_counts_finished_children() -> None:
    def spin() -> None:
        end = time.process_time() + 0.3
        while time.process_time() < end:
            pass

    cpu0, here0 = process_cpu_seconds(), time.process_time()
    child = multiprocessing.get_context("fork").Process(target=spin)
    child.start()
    child.join()
    assert child.exitcode == 0
    assert process_cpu_seconds() - cpu0 >= 0.25 + (time.process_time() - here0)


def test_the_config_refuses_workers_without_batched_evaluation() -> None:
    assert AgentConfig(eval_workers=2).eval_workers == 2
    with pytest.raises(ValueError, match="eval_workers"):
        AgentConfig(eval_workers=-1)
    with pytest.raises(ValueError, match="batch_eval"):
        AgentConfig(eval_workers=2, batch_eval=False)
    assert replace(AgentConfig(), eval_workers=0).eval_workers == 0


@needs_fork
def test_a_run_with_evaluation_workers_is_the_same_run() -> None:
    cfg = default_config(
        "CartPole-v1",
        max_steps=80,
        warmup_steps=40,
        eval_every=20,
        eval_episodes=3,
        **{"fit.max_epochs": 5, "fit.value_epochs": 5},
    )
    one = run_gym("CartPole-v1", seed=3, config=cfg, progress=False).summary()
    two = run_gym(
        "CartPole-v1", seed=3, config=replace(cfg, eval_workers=2), progress=False
    ).summary()
    for key in ("seconds", "plan_ms_median"):
        del one[key], two[key]
    assert two == one
    assert len(one["evals"]) == 2
    assert one["imagination_clipped"]["rows"] > 0  # the evaluations' imagination is counted


def test_eval_workers_on_the_command_line_only_where_they_apply() -> None:
    from wm_agents.cli import main

    with pytest.raises(SystemExit, match="--eval-workers splits the MPC agent"):
        main(["gym", "--env", "CartPole-v1", "--agent", "policy", "--eval-workers", "2"])
