"""Sweeps (issue 15 item 3): the sequential path needs no Ray; on Ray, the same jobs give the same
per-seed results and the same reports; a Tune search hears every evaluation and stops early."""

from __future__ import annotations

import json
import sys

import pytest

# A few real steps: 20 random, 20 planned, evaluations of one episode at 30 (most seeds) and 40.
from tests.bench.test_bench_sample_efficiency import TINY
from wm_agents.bench.common import summarize_runs
from wm_agents.bench.sample_efficiency import THRESHOLD
from wm_agents.bench.sweep import Job, RayMissingError, run_jobs


def planner_jobs(seeds):
    return [
        Job("wm_agents.bench.sample_efficiency:run_planner", dict(seed=s, eval_episodes=1, **TINY))
        for s in seeds
    ]


def per_seed(run):
    """Everything a run measured except its timings."""
    out = run.to_json(THRESHOLD)
    for timing in ("seconds", "plan_ms_median"):
        out.pop(timing)
    return out


def test_sequential_path_runs_here_without_ray(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails, as when not installed
    heard = []
    out = run_jobs(
        [Job("json:dumps", {"obj": [1]}), Job("json:dumps", {"obj": {"a": 2}})],
        on_result=lambda i, r: heard.append((i, r)),
    )
    assert out == ["[1]", '{"a": 2}'] and heard == [(0, "[1]"), (1, '{"a": 2}')]
    with pytest.raises(RayMissingError, match=r"pip install 'wm-agents\[ray\]'"):
        run_jobs([Job("json:dumps", {"obj": [1]})], workers=2)
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        run_jobs([], workers=0)


def test_importing_the_benchmarks_imports_no_ray():
    import subprocess

    code = (
        "import sys\n"
        "import wm_agents.bench.sample_efficiency, wm_agents.bench.uncertainty\n"
        "import wm_agents.bench.dyna_q, wm_agents.bench.sweep, wm_agents.bench.tuning\n"
        "print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.fixture(scope="module")
def sequential():
    """Seeds 0-4 of the tiny planner, one after another in this process."""
    return run_jobs(planner_jobs(range(5)))


@pytest.mark.parametrize(
    "command",
    [
        ["sample-efficiency", "run"],
        ["uncertainty"],
        ["dyna-q", "cartpole"],
        ["dyna-q", "pendulum"],
        ["tune"],
    ],
)
def test_the_sweep_commands_take_workers_and_ray(command):
    from wm_agents.cli import build_parser

    argv = ["bench", *command]
    assert build_parser(argv).parse_args(argv).workers is None  # the default: no Ray
    argv += ["--workers", "2", "--ray"]
    args = build_parser(argv).parse_args(argv)
    assert (args.workers, args.ray) == (2, "local")
    argv += ["auto"]
    assert build_parser(argv).parse_args(argv).ray == "auto"


def test_five_seeds_on_ray_give_the_sequential_results(ray_local, sequential):
    """The acceptance test: 5 seeds of the planner as Ray tasks (2 workers, one torch thread
    each) equal the sequential runs seed for seed, and so do the report's summaries."""
    del ray_local
    jobs = planner_jobs(range(5))
    here = sequential
    finished = []
    on_ray = run_jobs(jobs, workers=2, on_result=lambda i, r: finished.append(i))
    assert sorted(finished) == list(range(5))
    assert [r.seed for r in on_ray] == [0, 1, 2, 3, 4]  # in the order asked
    assert [per_seed(r) for r in on_ray] == [per_seed(r) for r in here]
    assert [r.evals for r in on_ray] == [r.evals for r in here]  # unrounded returns too
    assert len({tuple(r.evals) for r in here}) > 1  # the seeds differ: the test can fail
    summary = {k: v for k, v in summarize_runs(here, THRESHOLD).items() if k != "seconds_per_seed"}
    assert {k: v for k, v in summarize_runs(on_ray, THRESHOLD).items() if k in summary} == summary


def test_a_job_that_fails_on_ray_raises_its_error(ray_local):
    with pytest.raises(ValueError, match="Expecting value"):
        run_jobs([Job("json:loads", {"s": "not json"})], workers=2)


def test_the_cli_with_workers_writes_the_same_report(ray_local, tmp_path):
    from wm_agents.cli import main

    del ray_local
    args = ["bench", "sample-efficiency", "run", "--method", "seed_recipe", "--seeds", "0", "1"]
    args += ["--recipe-sizes", "30", "--eval-episodes", "1"]
    blobs = []
    for extra, folder in (([], "here"), (["--workers", "2"], "ray")):
        assert main([*args, "--results", str(tmp_path / folder), *extra]) == 0
        blobs.append(
            json.loads((tmp_path / folder / "sample_efficiency_seed_recipe.json").read_text())
        )
    here, on_ray = blobs
    assert here["sweep"] == {"workers": None, "ray": None}
    assert on_ray["sweep"] == {"workers": 2, "ray": None}
    timings = ("seconds", "seconds_per_decision")
    for blob in blobs:
        blob["summary"].pop("seconds_per_seed")
        for run in blob["runs"]:
            for key in timings:
                run.pop(key)
    assert on_ray["runs"] == here["runs"] and on_ray["summary"] == here["summary"]


def test_tune_reports_every_evaluation_and_a_stopper_ends_trials_early(ray_local, sequential):
    """Two seeds as two trials; a stopper ends each after its first reported evaluation,
    which is the sequential run's first evaluation of that seed."""
    from ray import tune

    from wm_agents.bench.tuning import tune_agent

    del ray_local
    space = {"env": "CartPole-v1", "seed": tune.grid_search([1, 2]), "eval_episodes": 1, **TINY}
    trials = tune_agent(space, stop={"training_iteration": 1})
    assert sorted(t["config"]["seed"] for t in trials) == [1, 2]
    here = {r.seed: r for r in sequential}
    for t in trials:
        assert t["error"] is None
        run = here[t["config"]["seed"]]
        assert len(run.evals) == 2  # unstopped, these seeds evaluate twice (30 and 40 steps)
        first = run.evals[0]
        assert t["evals"] == [
            {"real_steps": first.real_steps, "mean": first.mean, "min": min(first.returns)}
        ]
        assert t["stopped_early"]


def test_a_trials_fit_fields_reach_the_run(monkeypatch):
    """A ``fit.FIELD`` axis changes the run's model fit, the rest its AgentConfig."""
    import wm_agents.runner
    from wm_agents.bench.tuning import run_agent

    seen = {}

    def fake_run_gym(env, *, seed, config, progress, on_eval):
        seen.update(env=env, seed=seed, config=config)

    monkeypatch.setattr(wm_agents.runner, "run_gym", fake_run_gym)
    run_agent({"env": "CartPole-v1", "seed": 4, "fit.value_epochs": 7, "horizon": 9}, None)
    cfg = seen["config"]
    assert seen["seed"] == 4 and cfg.horizon == 9 and cfg.fit.value_epochs == 7
    assert cfg.fit.max_epochs == wm_agents.runner.default_config("CartPole-v1").fit.max_epochs


def test_tune_grid_options_are_agent_config_fields():
    from wm_agents.bench.tuning import parse_grid, table

    assert parse_grid(["risk_weight=0,0.5", "planner=cem,random"]) == {
        "risk_weight": [0, 0.5],
        "planner": ["cem", "random"],
    }
    assert parse_grid(["fit.value_epochs=50,100"]) == {"fit.value_epochs": [50, 100]}
    for bad in ["risk=0,1", "risk_weight", "threads=1,2", "fit.nope=1", "fit.seed=1,2"]:
        with pytest.raises(ValueError, match="--grid takes FIELD=V1,V2"):
            parse_grid([bad])
    trial = {"config": {"seed": 3}, "evals": [{"real_steps": 30, "mean": 8.0, "min": 8.0}]}
    text = table([{**trial, "stopped_early": True, "error": None}], ["seed"])
    assert "| 3 | 30: 8.0 | 8.0 | stopped early |" in text
