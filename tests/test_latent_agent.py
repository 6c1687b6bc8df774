"""The latent agent plans from pixels through the one planning graph (issue 16, item 3), on a
toy world it must learn from frames alone: a column at position x in 0..15 on a 16 x 16 frame,
action 1 moves it right, 0 left; the reward is x / 15 per step; episodes last 20 steps and
start anywhere.  Always going right earns about 15-19 per episode, random actions about 8-10."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from column_world import (
    SIZE,
    TINY_MODEL,
    ColumnWorld,
    few_cli_train_steps,
    make_env,
    tiny_latent_agent,
)

from wm_agents.latent.agent import run_latent_gym


def test_the_latent_agent_learns_to_go_where_it_pays_from_pixels():
    torch.set_num_threads(1)
    agent = tiny_latent_agent(horizon=5, population=32, elites=6, iterations=2)
    run, learner = run_latent_gym(
        make_env,
        seed=0,
        max_steps=400,
        warmup_steps=200,
        eval_every=200,
        eval_episodes=3,
        model_config=TINY_MODEL,
        agent_config=agent,
        progress=False,
    )
    assert run.real_steps == 400 and run.evals
    last = run.evals[-1]
    assert last.mean > 14.0, [e.mean for e in run.evals]
    assert set(last.sources) == {"latent"}
    assert learner.losses[-1]["recon"] < learner.losses[0]["recon"]


def test_a_model_and_env_that_do_not_fit_are_refused():
    from wm_agents.latent import LatentConfig, LatentWorldModel
    from wm_agents.latent.agent import LatentController
    from wm_agents.spaces import ActionSpec

    model = LatentWorldModel(LatentConfig(channels=1, size=SIZE, action_dim=3))
    with pytest.raises(ValueError, match="width 3"):
        LatentController(model, ActionSpec.discrete(2))
    controller = LatentController(
        LatentWorldModel(LatentConfig(channels=1, size=SIZE, action_dim=2)),
        ActionSpec.discrete(2),
    )
    with pytest.raises(ValueError, match="pixel values"):
        controller.frames(np.zeros(10))


def test_the_cli_runs_from_pixels_and_draws_what_the_model_dreams(tmp_path, capsys, monkeypatch):
    few_cli_train_steps(monkeypatch)
    import json

    from wm_agents.cli import main

    if "ColumnWorld-v0" not in gym.registry:
        gym.register(id="ColumnWorld-v0", entry_point=ColumnWorld, max_episode_steps=20)
    out = tmp_path / "run"
    argv = ["gym", "--env", "ColumnWorld-v0", "--obs", "pixels", "--pixel-size", "16"]
    argv += ["--frames", "1", "--grayscale", "--max-steps", "120", "--warmup-steps", "80"]
    argv += ["--eval-every", "0", "--eval-episodes", "1", "--horizon", "4"]
    argv += ["--population", "16", "--out", str(out), "--json", "--quiet"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["obs"] == "pixels" and summary["real_steps"] == 120
    assert len(summary["eval_mean"]) == 1 and summary["cpu_s"] > 0
    prediction = summary["prediction"]
    assert prediction["horizon"] == 10 and prediction["episodes"] >= 1
    assert len(prediction["k_step_mse"]) == len(prediction["copy_last_mse"]) == 10
    for name in ("result.json", "learning_curve.png", "dream.png", "dream.gif", "model.pt"):
        assert (out / name).stat().st_size > 0, name
    from wm_agents.latent import LatentWorldModel

    model = LatentWorldModel.load(out / "model.pt", expect_channels=1, expect_size=16)
    assert model.config.action_dim == 2
    from PIL import Image

    with Image.open(out / "dream.gif") as gif:
        assert gif.n_frames >= 5  # one per imagined step
    assert main(["gym", "--env", "ColumnWorld-v0", "--obs", "pixels", "--agent", "policy"]) == 2
