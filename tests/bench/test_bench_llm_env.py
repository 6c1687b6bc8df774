"""The LLM-as-env-model benchmark at a tiny size: the ensemble beats persistence one step
ahead, a scripted 'LLM' that echoes the state scores exactly persistence's error, and the
planning loop runs both models on the same candidates."""

from __future__ import annotations

import argparse
import json
import re

import numpy as np
import pytest

from wm_agents.bench import llm_env
from wm_agents.llm.env_model import LLMDynamicsModel
from wm_agents.testing import Reply, ScriptedChatModel

STATE = re.compile(r"state \[([^\]]*)\] action \d ->\s*$")


def echo(call):
    values = [float(v) for v in STATE.search(call.user).group(1).split(",")]
    return Reply(json.dumps({"next": values, "reward": 1.0, "terminated": False}))


@pytest.fixture(scope="module")
def data():
    train = llm_env.collect(400, seed=0)
    held = llm_env.collect(300, seed=1000)
    return train, held, llm_env.train_ensemble(train, seed=0)


def echo_model(train):
    return LLMDynamicsModel(
        ScriptedChatModel(script=echo),
        description=llm_env.CARTPOLE_DESCRIPTION,
        obs_names=llm_env.OBS_NAMES,
        action_names=llm_env.ACTION_NAMES,
        examples=llm_env.pick_examples(llm_env.transitions(train), 4, seed=0),
    )


def test_one_step_errors(data):
    train, held, ensemble = data
    sample = llm_env.transitions(held)[:40]
    out = llm_env.one_step(echo_model(train), ensemble, sample)
    assert np.allclose(out["llm"]["mae"], out["persistence"]["mae"], atol=1e-4)
    ens, floor = out["ensemble"]["mae"], out["persistence"]["mae"]
    assert all(e < p for e, p in zip(ens, floor, strict=True))
    assert out["ensemble"]["term_accuracy"] > 0.9


def test_rollouts_and_planning_run_both_models(data):
    train, held, ensemble = data
    out = llm_env.rollout_error(echo_model(train), ensemble, held, steps=5, n=3)
    assert out["n"] == 3 and np.allclose(out["llm"], out["persistence"], atol=1e-4)
    returns = llm_env.plan_episodes(echo_model(train), 2, 1, 5, seed=0, desc="echo")
    assert len(returns) == 1 and 1 <= returns[0] <= 5
    [ret] = llm_env.plan_episodes(ensemble, 2, 1, 30, seed=0, desc="ens")
    assert 1 <= ret <= 30


def test_examples_hold_both_actions_and_an_end(data):
    train, _, _ = data
    ex = llm_env.pick_examples(llm_env.transitions(train), 6, seed=3)
    assert len(ex) == 6 and {e.action for e in ex} == {0, 1} and any(e.terminated for e in ex)


def test_the_cli_checks_its_output_before_work(tmp_path):
    p = argparse.ArgumentParser()
    llm_env.add_arguments(p)
    args = p.parse_args(["--no-llm", "--out", str(tmp_path / "missing" / "x" / "..")])
    with pytest.raises((SystemExit, ValueError, OSError)):
        llm_env.run_cli(args)
