"""Output paths: checked before a run works, and results saved elsewhere when the end fails
(issue 11, item 7)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import ClassVar

import gymnasium as gym
import pytest
from test_runner_cli import TINY  # the smallest run: 30 real steps, 2 members

from wm_agents.bench.common import write_json
from wm_agents.neural import EnsembleDynamicsModel
from wm_agents.outputs import OutputPathError, check_output_dir, check_output_file
from wm_agents.runner import RUN_FILES, run_gym


def test_check_output_dir_accepts_what_a_run_can_write_and_creates_nothing(tmp_path: Path) -> None:
    new = tmp_path / "a" / "b"
    assert check_output_dir(new, RUN_FILES) == new
    assert not (tmp_path / "a").exists()
    assert check_output_dir(tmp_path, RUN_FILES) == tmp_path
    assert list(tmp_path.iterdir()) == []  # the write check left nothing behind
    (tmp_path / "result.json").write_text("{}")  # an earlier run's files are overwritten
    check_output_dir(tmp_path, RUN_FILES)


def test_check_output_dir_refuses_files_in_the_way(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("")
    with pytest.raises(OutputPathError, match="it is a file, not a folder"):
        check_output_dir(f)
    with pytest.raises(OutputPathError, match=re.escape(f"{f} is a file, not a folder")):
        check_output_dir(f / "sub" / "run")
    (tmp_path / "run" / "result.json").mkdir(parents=True)
    with pytest.raises(OutputPathError, match=r"result\.json: it is a folder"):
        check_output_dir(tmp_path / "run", RUN_FILES)
    with pytest.raises(OutputPathError, match="it is a folder"):
        check_output_file(tmp_path)
    assert isinstance(OutputPathError("x"), ValueError)  # one error line in the CLI


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_check_output_dir_refuses_a_read_only_folder(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputPathError, match="nothing can be created"):
            check_output_dir(ro / "run")
        with pytest.raises(OutputPathError, match="nothing can be created"):
            check_output_file(ro / "x.json")
    finally:
        ro.chmod(0o700)


def test_run_gym_checks_out_before_making_the_env(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("")
    with pytest.raises(OutputPathError):
        run_gym("NoSuchEnv-v0", config=TINY, out=f, progress=False)  # out is checked first


class OutBreakingCartPole(gym.Env):
    """CartPole that, once the run has started, turns the run's out folder into a file."""

    out: ClassVar[Path | None] = None

    def __init__(self) -> None:
        self.env = gym.make("CartPole-v1").unwrapped
        self.observation_space = self.env.observation_space
        self.action_space = self.env.action_space

    def reset(self, *, seed=None, options=None):
        out = OutBreakingCartPole.out
        if out is not None and not out.is_file():
            shutil.rmtree(out, ignore_errors=True)
            out.write_text("not a folder any more")
        return self.env.reset(seed=seed)

    def step(self, action):
        return self.env.step(action)


@pytest.fixture
def out_breaking_env_id():
    env_id = "WmAgentsTest/OutBreaking-v0"
    gym.register(id=env_id, entry_point=OutBreakingCartPole, max_episode_steps=500)
    yield env_id
    OutBreakingCartPole.out = None
    del gym.registry[env_id]


def test_a_save_that_fails_at_the_end_goes_to_a_temporary_folder(
    tmp_path: Path, out_breaking_env_id: str, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    OutBreakingCartPole.out = out
    result = run_gym(out_breaking_env_id, seed=0, config=TINY, out=out, progress=False)
    err = capsys.readouterr().err
    assert out.read_text() == "not a folder any more"  # the run could not write there
    assert result.model_path is not None and result.plot_path is not None
    saved = Path(result.model_path).parent
    assert saved != out and saved.is_dir()
    assert f"warning: could not save the model and results to {out}" in err
    assert f"saved to {saved} instead" in err
    assert {p.name for p in saved.iterdir()} == set(RUN_FILES)
    assert json.loads((saved / "result.json").read_text())["model_path"] == result.model_path
    assert bool(EnsembleDynamicsModel.load(result.model_path).fitted)
    shutil.rmtree(saved)


def test_bench_json_falls_back_to_a_temporary_file(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    written = write_json(blocker / "x.json", {"a": 1})
    assert written.name == "x.json" and json.loads(written.read_text()) == {"a": 1}
    assert f"saved to {written.parent} instead" in capsys.readouterr().err
    shutil.rmtree(written.parent)


def test_imagination_agents_write_their_run_to_out(tmp_path: Path) -> None:
    from wm_agents.imagination import ImaginationConfig, run_imagination_gym

    out = tmp_path / "run"
    icfg = ImaginationConfig(learning_starts=20, rollout_starts=8, updates_per_step=1)
    r = run_imagination_gym(
        "CartPole-v1",
        agent="dqn",
        max_steps=30,
        config=TINY,
        imagination=icfg,
        eval_episodes=1,
        progress=False,
        out=out,
    )
    assert r.model_path == str(out / "model.pt")
    saved = json.loads((out / "result.json").read_text())
    assert saved["agent"] == "dqn" and saved["imagination"]["updates_per_step"] == 1
    assert saved["config"]["max_steps"] == 30
