"""Bad input to the `wm-agents` command, run as a real process: one `error:` line on stderr, exit
code 2, no traceback, and no work done before the error (issue 11)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

UNREACHABLE = "http://127.0.0.1:9/v1"  # nothing listens on the discard port


def run_cli(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OPENAI_BASE_URL=UNREACHABLE)
    return subprocess.run(
        [sys.executable, "-m", "wm_agents", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def assert_one_error_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, stderr exactly one ``error:`` line holding every needle, stdout empty."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0]
    assert proc.stdout == ""  # nothing ran: no table, no JSON
    return lines[0]


# ---------------------------------------------------------------- env ids (item 8)


def test_unknown_env_id_is_one_error_line() -> None:
    proc = run_cli("gym", "--env", "NoSuchEnv-v0", "--max-steps", "30", "--warmup-steps", "20")
    assert_one_error_line(proc, "unknown env id 'NoSuchEnv-v0'", "doesn't exist")


def test_deprecated_env_id_names_its_successor() -> None:
    proc = run_cli("dyna", "--env", "Taxi-v3", "--episodes", "1")
    assert_one_error_line(proc, "Taxi-v3 is deprecated", "use Taxi-v4 instead")
    proc = run_cli("gym", "--env", "Pendulum-v0", "--agent", "hybrid", "--quiet")
    assert_one_error_line(proc, "Pendulum-v0 is deprecated", "use Pendulum-v1 instead")


@pytest.mark.skipif(importlib.util.find_spec("Box2D") is not None, reason="Box2D is installed here")
def test_env_missing_its_extra_names_the_pip_package() -> None:
    proc = run_cli("gym", "--env", "LunarLander-v3", "--max-steps", "30", "--warmup-steps", "20")
    assert_one_error_line(proc, "LunarLander-v3", 'pip install "gymnasium[box2d]"')


def test_make_env_errors_in_the_library() -> None:
    from wm_agents.envs import EnvUnavailableError, env_spec, make_env

    with pytest.raises(EnvUnavailableError, match="use Taxi-v4 instead"):
        make_env("Taxi-v3")
    with pytest.raises(EnvUnavailableError, match="provides versioned environments"):
        make_env("CartPole-v9")
    with pytest.raises(EnvUnavailableError, match="Did you mean"):
        env_spec("cartpole-v1")
    assert isinstance(EnvUnavailableError("x"), ValueError)  # the CLI's one-line errors
    env = make_env("CartPole-v1")
    assert env.spec is not None and env.spec.id == "CartPole-v1"
    env.close()


# ---------------------------------------------------------------- llm predict input (item 8)


@pytest.mark.parametrize(
    ("option", "text", "needle"),
    [
        ("--args", '{"x": NaN}', "--args has NaN"),
        ("--args", '{"x": [1e999]}', "--args has 1e999"),
        ("--args", '{"x": -Infinity}', "--args has -Infinity"),
        ("--schema", "[1]", "--schema must be a JSON object, got list"),
        ("--schema", '{"x": Infinity}', "--schema has Infinity"),
    ],
)
def test_llm_predict_rejects_non_finite_or_non_object_json(
    option: str, text: str, needle: str
) -> None:
    proc = run_cli("llm", "predict", "--tool", "t", option, text, "--json", "--retries", "0")
    assert_one_error_line(proc, needle)


# ---------------------------------------------------------------- output paths (item 7)

TINY_RUN = ("--max-steps", "30", "--warmup-steps", "20", "--eval-episodes", "1", "--quiet")


def test_cartpole_out_that_is_a_file_fails_before_training(tmp_path: Path) -> None:
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    proc = run_cli("cartpole", *TINY_RUN, "--json", "--out", str(existing))
    assert_one_error_line(proc, str(existing), "is a file, not a folder")
    assert existing.read_text() == "keep me"


def test_policy_agents_check_out_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    out = blocker / "run"
    proc = run_cli("gym", "--env", "CartPole-v1", "--agent", "dqn", *TINY_RUN, "--out", str(out))
    assert_one_error_line(proc, str(out), f"{blocker} is a file, not a folder")


def test_explore_is_the_vector_mpc_agents_option() -> None:
    proc = run_cli("gym", "--env", "CartPole-v1", "--agent", "policy", "--explore", "1", *TINY_RUN)
    assert_one_error_line(proc, "--explore", "--agent policy")
    proc = run_cli("cartpole", "--explore", "-1", *TINY_RUN)
    assert_one_error_line(proc, "explore must be a finite weight >= 0")


def test_end_reward_is_the_vector_models_option() -> None:
    proc = run_cli("gym", "--env", "CartPole-v1", "--obs", "pixels", "--end-reward", *TINY_RUN)
    assert_one_error_line(proc, "--end-reward", "--obs pixels")


def test_out_folder_where_an_output_file_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "run" / "model.pt").mkdir(parents=True)
    proc = run_cli("gym", "--env", "CartPole-v1", *TINY_RUN, "--out", str(tmp_path / "run"))
    assert_one_error_line(proc, "model.pt: it is a folder")


def test_bench_outputs_are_checked_before_measuring(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    bad = str(blocker / "x.json")
    proc = run_cli("bench", "graph", "--seeds", "0", "--train-steps", "30", "--out", str(tmp_path))
    assert_one_error_line(proc, f"cannot write {tmp_path}: it is a folder")
    proc = run_cli("bench", "uncertainty", "--seeds", "0", "--variants", "E1:0", "--out", bad)
    assert_one_error_line(proc, f"{blocker} is a file, not a folder")
    proc = run_cli("bench", "sample-efficiency", "run", "--seeds", "0", "--results", str(blocker))
    assert_one_error_line(proc, "is a file, not a folder")
    tiny = ["--population", "8", "--horizons", "2", "--particles-list", "1", "--hidden", "8"]
    tiny += ["--layers", "1", "--iterations", "1", "--states", "1", "--repeats", "1"]
    proc = run_cli("bench", "plan-table", "--out", bad, "--modes", "float32", *tiny)
    assert_one_error_line(proc, f"{blocker} is a file, not a folder")


@pytest.mark.parametrize(
    "argv",
    [
        ["dyna-q", "cartpole", "--seeds", "0", "--results", "{blocker}"],
        ["dyna-q", "tabular", "--seeds", "1", "--results", "{blocker}/results"],
        ["simulate-cost", "--files", "10", "--out", "{blocker}/x.json"],
        ["learned-outcomes", "run", "--out", "{blocker}/x.json"],
        ["learned-outcomes", "llm", "--cache", "{blocker}/x.jsonl"],
        ["llm-calibration", "--out", "{blocker}/x.json"],
        ["llm-concurrency", "--out", "{blocker}/x.json"],
        ["llm-latency", "--out", "{blocker}/x.json"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_every_benchmark_checks_its_results_path_first(tmp_path: Path, argv: list[str]) -> None:
    """Before its minutes or hours of work: a results path under a file is one error line."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    proc = run_cli("bench", *(a.format(blocker=blocker) for a in argv))
    assert_one_error_line(proc, str(blocker), "is a file, not a folder")
