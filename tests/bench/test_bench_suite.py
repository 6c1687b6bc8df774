"""The suite at tiny sizes: reach / hold and their CPU-seconds from curves, the table, the
PNGs, resuming, the command line and its errors."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.bench.test_bench_sample_efficiency import TINY as SAMPLE_TINY
from wm_agents.bench import suite
from wm_agents.bench.common import CurveRun, EvalPoint
from wm_agents.bench.suite import learn_cpu_at, parse_per_env, plan_jobs, run_record, run_suite
from wm_agents.cli import main

# The sample-efficiency test's tiny agent, with this test's own budget and evaluations.
TINY = {k: v for k, v in SAMPLE_TINY.items() if k not in ("max_steps", "eval_every")}
PNG = b"\x89PNG\r\n\x1a\n"


def curve(*points: tuple[int, float, float]) -> list[EvalPoint]:
    return [EvalPoint(steps, (mean,), cpu) for steps, mean, cpu in points]


def test_reach_hold_and_their_cpu_seconds_from_a_curve() -> None:
    # Acrobot's threshold is -100: reached at 200, lost at 300, held from 400 to the end.
    evals = curve(
        (100, -300, 1.0), (200, -90, 2.5), (300, -150, 3.0), (400, -95, 4.25), (500, -80, 5)
    )
    run = CurveRun("planner", 7, evals, 1.0, {"cpu_seconds": 9.0, "learn_cpu_seconds": 5.0})
    rec = run_record("Acrobot-v1", "planner", run, {"max_steps": 500})
    assert (rec["steps_to_reach"], rec["steps_to_hold"]) == (200, 400)
    assert (rec["cpu_to_reach"], rec["cpu_to_hold"]) == (2.5, 4.25)
    assert rec["evals"][1] == {"real_steps": 200, "mean": -90.0, "min": -90, "learn_cpu_s": 2.5}
    assert (rec["env"], rec["method"], rec["seed"], rec["settings"]) == (
        "Acrobot-v1",
        "planner",
        7,
        {"max_steps": 500},
    )
    # Ending below the threshold: reached once, never held.
    lost = CurveRun("planner", 7, evals[:3], 1.0)
    rec = run_record("Acrobot-v1", "planner", lost, {})
    assert (rec["steps_to_hold"], rec["cpu_to_hold"], rec["cpu_to_reach"]) == (None, None, 2.5)
    assert learn_cpu_at(evals, None) is None


def record(method: str, seed: int, reach: int | None, cpu: float | None) -> dict:
    return {
        "env": "CartPole-v1",
        "method": method,
        "seed": seed,
        "session": 0,
        "steps_to_reach": reach,
        "steps_to_hold": reach,
        "cpu_to_reach": cpu,
        "cpu_to_hold": cpu,
        "cpu_seconds": 10.0,
        "learn_cpu_seconds": 8.0,
        "evals": [{"real_steps": reach or 100, "mean": 500.0 if reach else 9.0}],
    }


def test_table_rows_and_model_free_ratios() -> None:
    blob = {
        "sessions": [{"code": {"commit": "abcdef1234567890"}}],
        "runs": [
            record("planner", 0, 400, 20.0),
            record("planner", 1, 600, 30.0),
            record("planner", 2, None, None),
            record("model-free", 0, 5000, 40.0),
            record("model-free", 1, 6000, 60.0),
            record("model-free", 2, 7000, 80.0),
        ],
    }
    text = suite.table(blob)
    assert (
        "| CartPole-v1 (475) | wm_agents planner (default_config) | 2 / 2 of 3 "
        "| **600** (400-never; 2/3) | **600** (400-never; 2/3) "
        "| **30.0** (20.0-never; 2/3) | **30.0** (20.0-never; 2/3) | 8.0 / 10.0 |"
    ) in text
    # Medians 6000 / 600 steps and 60 / 30 CPU-seconds.
    assert (
        "| CartPole-v1 | wm_agents planner (default_config) | 10.0x | 10.0x | 2.0x | 2.0x |"
    ) in text
    assert "Commit(s): abcdef123456." in text


def test_bad_envs_methods_seeds_and_budgets_say_what_to_do() -> None:
    with pytest.raises(ValueError, match=r"unknown env.*LunarLander.*the suite has"):
        plan_jobs(["LunarLander-v3"], ["planner"], [100])
    with pytest.raises(ValueError, match="unknown method"):
        plan_jobs(["CartPole-v1"], ["ppo"], [100])
    with pytest.raises(ValueError, match="seeds must be"):
        plan_jobs(["CartPole-v1"], ["planner"], [-1])
    with pytest.raises(ValueError, match="seeds repeat"):
        plan_jobs(["CartPole-v1"], ["planner"], [100, 100])
    with pytest.raises(ValueError, match="mf_steps_scale"):
        plan_jobs(["CartPole-v1"], ["model-free"], [100], mf_steps_scale=0)
    with pytest.raises(ValueError, match="unknown env 'Foo-v0'"):
        parse_per_env(["Foo-v0=3"], ["CartPole-v1"], "--planner-steps")
    with pytest.raises(ValueError, match="integer N"):
        parse_per_env(["Acrobot-v1=lots"], ["Acrobot-v1"], "--planner-steps")
    envs = ["CartPole-v1", "Acrobot-v1"]
    assert parse_per_env(["500", "Acrobot-v1=900"], envs, "--x") == {
        "CartPole-v1": 500,
        "Acrobot-v1": 900,
    }


def test_budgets_default_per_env_and_scale_the_zoo() -> None:
    planned = plan_jobs(["Pendulum-v1"], ["planner", "model-free"], [100, 101], mf_steps_scale=0.1)
    assert [(p.method, p.seed) for p in planned] == [
        ("planner", 100),
        ("planner", 101),
        ("model-free", 100),
        ("model-free", 101),
    ]
    assert planned[0].settings == {"max_steps": 3000, "eval_every": 200, "eval_episodes": 10}
    # The zoo trains SAC on Pendulum-v1 for 20,000 steps.
    assert planned[2].settings == {"total_steps": 2000, "eval_every": 500, "eval_episodes": 10}
    assert planned[2].job.fn == "wm_agents.bench.dqn_baseline:run_sb3"
    assert planned[2].job.kwargs["env_id"] == "Pendulum-v1"


def test_tiny_suite_writes_json_table_png_and_resumes(tmp_path, monkeypatch) -> None:
    def planned(episodes: int = 1):
        return plan_jobs(
            ["Acrobot-v1"],
            ["planner"],
            [100],
            planner_steps={"Acrobot-v1": 60},
            planner_eval_every={"Acrobot-v1": 20},
            eval_episodes=episodes,
            overrides=TINY,
        )

    blob = run_suite(planned(), tmp_path, progress=False, command=["test"])
    (run,) = blob["runs"]
    assert [e["real_steps"] for e in run["evals"]] == [40, 60]
    cpus = [e["learn_cpu_s"] for e in run["evals"]]
    assert 0 < cpus[0] <= cpus[1] <= run["learn_cpu_seconds"] <= run["cpu_seconds"]
    assert run["config"]["max_steps"] == 60 and run["config"]["hidden"] == 16
    assert run["imagination_clipped"]["rows"] > 0 and "steps" in run["imagination_nonfinite"]
    on_disk = json.loads((tmp_path / "suite.json").read_text())
    assert on_disk["sessions"][0]["command"] == ["test"]
    assert on_disk["sessions"][0]["machine"]["cores"] >= 1
    assert "commit" in on_disk["sessions"][0]["code"]

    text = suite.report(tmp_path)
    assert "| Acrobot-v1 (-100) | wm_agents planner (default_config) | 0 / 0 of 1 |" in text
    assert (tmp_path / "suite.md").read_text().strip() == text.strip()
    assert (tmp_path / "suite_Acrobot-v1.png").read_bytes()[:8] == PNG

    # Resuming runs nothing that is already there ...
    def never(*a, **k):
        raise AssertionError("a finished run ran again")

    monkeypatch.setattr(suite, "run_agent", never)
    again = run_suite(planned(), tmp_path, progress=False)
    assert len(again["runs"]) == 1 and len(again["sessions"]) == 2
    # ... and will not mix settings under one key.
    with pytest.raises(ValueError, match="resume with the same options"):
        run_suite(planned(episodes=2), tmp_path, progress=False)


def test_model_free_sac_run_records_learning_cpu() -> None:
    pytest.importorskip("stable_baselines3")
    from wm_agents.bench.dqn_baseline import run_sb3

    run = run_sb3(100, env_id="Pendulum-v1", total_steps=150, eval_every=100, eval_episodes=1)
    assert [e.real_steps for e in run.evals] == [100, 150]  # every 100, and at the end
    assert run.extra["algo"] == "sac" and run.extra["hyperparams"] == {"learning_rate": 1e-3}
    assert 0 < run.evals[0].learn_cpu_s < run.evals[1].learn_cpu_s
    assert run.extra["learn_cpu_seconds"] < run.extra["cpu_seconds"]


def test_command_line_runs_the_model_free_cell(tmp_path, capsys) -> None:
    pytest.importorskip("stable_baselines3")
    args = ["bench", "suite", "--envs", "Acrobot-v1", "--seeds", "100", "--methods"]
    args += ["model-free", "--mf-steps", "200", "--mf-eval-every", "100", "--eval-episodes", "1"]
    assert main([*args, "--results", str(tmp_path), "--no-progress"]) == 0
    assert "SB3 DQN (rl-baselines3-zoo)" in capsys.readouterr().out
    blob = json.loads((tmp_path / "suite.json").read_text())
    assert [(r["agent"], r["settings"]["total_steps"]) for r in blob["runs"]] == [("sb3_dqn", 200)]
    assert (tmp_path / "suite_Acrobot-v1.png").read_bytes()[:8] == PNG
    assert main(["bench", "suite", "report", "--results", str(tmp_path)]) == 0


def test_command_line_errors(tmp_path, capsys, monkeypatch) -> None:
    assert main(["bench", "suite", "report", "--results", str(tmp_path)]) == 2
    assert "run `wm-agents bench suite" in capsys.readouterr().err
    assert main(["bench", "suite", "--seeds", "-3", "--results", str(tmp_path)]) == 2
    assert "seeds must be" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: not one of the suite's envs
        main(["bench", "suite", "--envs", "Humanoid-v5", "--results", str(tmp_path)])
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "stable_baselines3" else real(name, *a),
    )
    assert main(["bench", "suite", "--results", str(tmp_path)]) == 2
    assert "pip install 'wm-agents[bench]'" in capsys.readouterr().err
