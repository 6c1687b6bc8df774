"""Sample-efficiency benchmark pieces at tiny sizes: planner run, DQN run, report + plot."""

from __future__ import annotations

import json

import pytest

from wm_agents.bench.common import write_json
from wm_agents.bench.sample_efficiency import THRESHOLD, report, run_planner
from wm_agents.bench.uncertainty import parse_variant, table

TINY = dict(
    max_steps=40,
    warmup_steps=20,
    refit_every=20,
    eval_every=10,
    ensemble_size=2,
    hidden=16,
    population=16,
    elites=4,
    horizon=3,
    iterations=1,
)


def test_planner_tiny_run_and_report(tmp_path) -> None:
    run = run_planner(0, eval_episodes=1, **TINY)
    assert run.evals and run.evals[-1].real_steps == 40
    # What the search met in imagination is kept per run (issue 14, item 6).
    clipped, nonfinite = run.extra["imagination_clipped"], run.extra["imagination_nonfinite"]
    assert clipped["rows"] > 0 and 0 <= clipped["clipped"] <= clipped["rows"]
    assert set(nonfinite) == {"steps", "candidates"}
    blob = {
        "summary": {
            "seeds": [0],
            "steps_to_reach": {"n": 1, "reached": 0, "median": None, "min": None, "max": None},
            "steps_to_hold": {"n": 1, "reached": 0, "median": None, "min": None, "max": None},
            "final_eval_mean": [run.evals[-1].mean],
            "seconds_per_seed": 1.0,
        },
        "runs": [run.to_json(THRESHOLD)],
    }
    write_json(tmp_path / "sample_efficiency_planner.json", blob)
    text = report(tmp_path)
    assert "wm_agents planner" in text and (tmp_path / "sample_efficiency.png").exists()


def test_dqn_tiny_run() -> None:
    pytest.importorskip("stable_baselines3")
    from wm_agents.bench.dqn_baseline import run_dqn

    run = run_dqn(0, total_steps=200, eval_every=100, eval_episodes=1)
    assert [e.real_steps for e in run.evals] == [100, 200]


def test_uncertainty_variants_and_table() -> None:
    assert parse_variant("E5:0.5") == (5, 0.5) and parse_variant("1:0") == (1, 0.0)
    with pytest.raises(ValueError, match=r"E5:0\.5"):
        parse_variant("five")
    stat = {"n": 1, "reached": 1, "median": 300, "min": 300, "max": 300}
    payload = {
        "variants": [
            {
                "ensemble": 5,
                "risk_weight": 0.5,
                "failures": [2],
                "summary": {
                    "seeds": [0],
                    "steps_to_reach": stat,
                    "steps_to_hold": stat,
                    "final_eval_mean": [500.0],
                },
            }
        ]
    }
    assert "| 5 | 0.5 | 1 | 300 (300-300; 1/1)" in table(payload)


def test_set_overrides_planner_settings_and_says_which_keys_exist() -> None:
    import argparse

    from wm_agents.bench.sample_efficiency import add_arguments, method_job

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["run", "--set", "refit_every=100", "--set", "fit.term_weight_cap=1000", "--seeds", "3"]
    )
    assert args.set == {"refit_every": 100, "fit.term_weight_cap": 1000}
    job = method_job("planner", 3, args)
    assert job.kwargs["refit_every"] == 100 and job.kwargs["fit.term_weight_cap"] == 1000
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--set", "refit_evry=100"])  # a typo is refused, not ignored
    run = run_planner(0, eval_episodes=1, **{**TINY, "fit.term_weight_cap": 3.0})
    assert run.extra["config"]["fit"]["term_weight_cap"] == 3.0
    assert run.extra["config"]["refit_every"] == 20


def test_an_interrupted_sweep_keeps_the_seeds_that_finished(tmp_path, monkeypatch) -> None:
    """The JSON is written after every seed: when the second seed fails, the first is on disk
    (marked incomplete), not lost with the process."""
    from wm_agents.bench import sample_efficiency
    from wm_agents.bench.sweep import Job
    from wm_agents.cli import main

    real_job = sample_efficiency.method_job

    def job(method, seed, args):
        return real_job(method, seed, args) if seed == 0 else Job("json:loads", {"s": "{"})

    monkeypatch.setattr(sample_efficiency, "method_job", job)
    args = ["bench", "sample-efficiency", "run", "--method", "seed_recipe", "--seeds", "0", "1"]
    args += ["--recipe-sizes", "30", "--eval-episodes", "1", "--results", str(tmp_path)]
    assert main(args) != 0  # the CLI reports the failed seed's error
    blob = json.loads((tmp_path / "sample_efficiency_seed_recipe.json").read_text())
    assert blob["complete"] is False
    assert [r["seed"] for r in blob["runs"]] == [0] and blob["summary"]["seeds"] == [0]
