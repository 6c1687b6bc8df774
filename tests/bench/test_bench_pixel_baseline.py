"""The model-free pixel baseline at a tiny size: SB3 with a CnnPolicy on the latent agent's
frames, stopped at the budget, evaluated on the same frames."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("stable_baselines3")
pytest.importorskip("pygame")

from wm_agents.bench.pixel_baseline import pixel_hyperparams, run_pixel_sb3


def test_the_zoo_settings_with_a_replay_the_size_of_the_budget() -> None:
    algo, params = pixel_hyperparams("CartPole-v1", 10_000)
    assert algo == "dqn" and params["buffer_size"] == 10_000
    assert params["learning_rate"] == 2.3e-3  # the zoo's CartPole DQN otherwise
    algo, params = pixel_hyperparams("Pendulum-v1", 5_000)
    assert algo == "sac" and params["buffer_size"] == 5_000
    with pytest.raises(ValueError, match="no rl-baselines3-zoo entry"):
        pixel_hyperparams("Pong-v5", 100)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_a_cnn_agent_learns_on_frames_up_to_the_budget(env_id: str) -> None:
    run = run_pixel_sb3(
        0,
        env_id=env_id,
        steps=120,  # SAC learns from step 100 (its default learning_starts): 20 updates
        eval_every=60,
        eval_episodes=1,
        grayscale=True,
        progress=False,
    )
    assert [e.real_steps for e in run.evals] == [60, 120]  # stopped at the budget
    assert run.extra["policy"] == "CnnPolicy" and run.extra["learn_cpu_seconds"] > 0
    assert all(len(e.returns) == 1 for e in run.evals)


def test_the_command_writes_curves_and_a_picture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wm_agents.cli import main

    out = tmp_path / "pb.json"
    argv = ["bench", "pixel-baseline", "--seeds", "3", "--steps", "200", "--eval-every", "100"]
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the process's count; the runs train on --threads (1)
    try:
        assert main([*argv, "--eval-episodes", "1", "--grayscale", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(before)
    result = json.loads(out.read_text())
    assert result["machine"]["torch_threads"] == 1  # what the runs trained on
    assert result["complete"] and result["threshold"] == 475.0
    assert result["runs"][0]["seed"] == 3 and result["runs"][0]["steps_to_reach"] is None
    assert out.with_suffix(".png").stat().st_size > 0
    assert main(["bench", "pixel-baseline", "--env", "Pong-v5", "--out", str(out)]) != 0
    assert "no threshold for 'Pong-v5'" in capsys.readouterr().err
