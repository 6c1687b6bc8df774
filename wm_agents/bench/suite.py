"""The suite: real steps and CPU-seconds to each env's threshold, our agents against the
rl-baselines3-zoo model-free agent, on CartPole-v1, Acrobot-v1, Pendulum-v1 and
MountainCarContinuous-v0.

    wm-agents bench suite                      (every env, seeds 100-104, planner + model-free)
    wm-agents bench suite --envs Acrobot-v1 --seeds 100 --methods planner
    wm-agents bench suite --methods planner model-free policy hybrid --envs CartPole-v1
    wm-agents bench suite report               (suite.md and the PNGs again, from suite.json)

Methods: ``planner`` is :func:`~wm_agents.runner.run_gym` with ``default_config(env)``;
``model-free`` the zoo's tuned Stable-Baselines3 agent with the zoo's budget (DQN for the
discrete envs, SAC for the continuous ones: :data:`~wm_agents.bench.dqn_baseline.ZOO`);
``policy`` / ``hybrid`` the imagination agents
(:func:`~wm_agents.imagination.run_imagination_gym`) on the planner's budget.

Every evaluation is ``--eval-episodes`` deterministic episodes on a separate env, seeds
``1_000_000 + 1_000 * seed + i``, every ``eval_every`` real steps (our agents evaluate at
exactly those step counts, mid-episode; SB3 from a callback) and once more at the end.  Beside
the real steps, each evaluation records the process CPU seconds (``time.process_time`` and any
evaluation workers' CPU, :func:`~wm_agents.parallel_eval.process_cpu_seconds`; one
torch thread) of learning so far, the evaluations' own CPU time left out: evaluations measure,
they do not learn.  A run's numbers against the env's threshold: real steps and learning
CPU-seconds at the first evaluation reaching it, and at the one from which every later
evaluation holds it (:func:`~wm_agents.runner.steps_to_hold`).

``suite.json`` under ``--results`` gets every run as it finishes (its curve, settings, the
machine and commit of the session that ran it); a second invocation skips the runs already
there, so an interrupted suite resumes.  At the end ``suite.md`` (the table) and one
``suite_<env>.png`` per env (evaluation mean against real steps, log scale: median over seeds,
min-max band, every seed thin) are written from the JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from wm_agents.bench.common import (
    RESULTS_DIR,
    CurveRun,
    EvalPoint,
    code_state,
    format_median_range,
    machine_info,
    median_range,
    write_json,
)
from wm_agents.bench.dqn_baseline import ZOO
from wm_agents.bench.sweep import Job, add_sweep_arguments, run_jobs, sweep_info
from wm_agents.outputs import check_output_dir, write_text_with_fallback
from wm_agents.thresholds import steps_to_hold, steps_to_reach

__all__ = [
    "DEFAULT_SEEDS",
    "ENVS",
    "METHODS",
    "SuiteEnv",
    "add_arguments",
    "learn_cpu_at",
    "plan_jobs",
    "report",
    "run_agent",
    "run_cli",
    "run_record",
    "run_suite",
    "table",
]


@dataclass(frozen=True)
class SuiteEnv:
    """One env of the suite: its threshold, and the default budgets and evaluation spacing
    (real steps) of our agents and of the model-free agent (whose budget is the zoo's)."""

    threshold: float
    planner_steps: int
    planner_eval_every: int
    mf_eval_every: int


ENVS: dict[str, SuiteEnv] = {
    "CartPole-v1": SuiteEnv(475.0, 3000, 200, 1000),
    "Acrobot-v1": SuiteEnv(-100.0, 3000, 250, 1000),
    "Pendulum-v1": SuiteEnv(-200.0, 3000, 200, 500),
    # Needs exploration: a planner that never sees the flag's reward has nothing to plan for.
    "MountainCarContinuous-v0": SuiteEnv(90.0, 5000, 500, 1000),
}
METHODS = ("planner", "model-free", "policy", "hybrid")
DEFAULT_METHODS = ("planner", "model-free")
#: Seeds the agents' defaults were never tuned on (those used 0-4).
DEFAULT_SEEDS = (100, 101, 102, 103, 104)
FILES = ("suite.json", "suite.md", *(f"suite_{env}.png" for env in ENVS))


def _label(env_id: str, method: str) -> str:
    if method == "model-free":
        return f"SB3 {ZOO[env_id].algo.upper()} (rl-baselines3-zoo)"
    return {
        "planner": "wm_agents planner (default_config)",
        "policy": "imagination policy agent",
        "hybrid": "hybrid agent (policy + MPC)",
    }[method]


def run_agent(
    env_id: str,
    seed: int,
    *,
    method: str = "planner",
    max_steps: int,
    eval_every: int,
    eval_episodes: int = 10,
    overrides: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> CurveRun:
    """One seed of one of our agents (``planner``, ``policy``, ``hybrid``) on ``env_id``, its
    learning CPU-seconds recorded at every evaluation.

    ``overrides``: further :class:`~wm_agents.runner.AgentConfig` fields on top of
    ``default_config(env_id)`` (tests use tiny models).  The agents run on the config's torch
    threads (1).  ``progress``: the run's own progress bar over real steps.
    """
    from wm_agents.imagination import run_imagination_gym
    from wm_agents.parallel_eval import process_cpu_seconds
    from wm_agents.runner import _jsonable, default_config, run_gym

    if method not in ("planner", "policy", "hybrid"):
        raise ValueError(f"run_agent runs planner, policy or hybrid, not {method!r}")
    cfg = default_config(
        env_id,
        max_steps=max_steps,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        **dict(overrides or {}),
    )
    # From here on (imports done): CPU so far at each evaluation, less every evaluation's own.
    cpu0 = process_cpu_seconds()  # with any evaluation workers' CPU (none by default)
    eval_cpu = 0.0
    learn_cpu: list[float] = []

    def on_eval(point: Any) -> None:  # runs right after each evaluation
        nonlocal eval_cpu
        eval_cpu += point.cpu_seconds
        learn_cpu.append(process_cpu_seconds() - cpu0 - eval_cpu)

    if method == "planner":
        res: Any = run_gym(env_id, seed=seed, config=cfg, progress=progress, on_eval=on_eval)
    else:
        res = run_imagination_gym(
            env_id,
            agent=method,  # type: ignore[arg-type]
            seed=seed,
            config=cfg,
            max_steps=max_steps,
            eval_every=eval_every,
            eval_episodes=eval_episodes,
            stop_when_solved=False,
            progress=progress,
            on_eval=on_eval,
        )
    cpu = process_cpu_seconds() - cpu0
    evals = [
        EvalPoint(e.real_steps, tuple(e.returns), c)
        for e, c in zip(res.evals, learn_cpu, strict=True)
    ]
    extra = {
        "config": _jsonable(asdict(cfg)),
        "cpu_seconds": cpu,
        "learn_cpu_seconds": cpu - eval_cpu,
        # Both runners' results come from run_result: every agent has these counts.
        "imagination_clipped": res.clipped,
        "imagination_nonfinite": res.nonfinite,
    }
    return CurveRun(method, seed, evals, res.seconds, extra)


def learn_cpu_at(evals: Sequence[EvalPoint], steps: int | None) -> float | None:
    """Learning CPU-seconds at the evaluation at ``steps`` real steps (``None`` when ``steps``
    is ``None``: never got there)."""
    if steps is None:
        return None
    return next(e.learn_cpu_s for e in evals if e.real_steps == steps)


def run_record(
    env_id: str, method: str, run: CurveRun, settings: Mapping[str, Any]
) -> dict[str, Any]:
    """One run as ``suite.json`` keeps it: the curve, and real steps / learning CPU-seconds
    to first reach and to hold the env's threshold, computed from the curve."""
    threshold = ENVS[env_id].threshold
    reach = steps_to_reach(run.evals, threshold)
    hold = steps_to_hold(run.evals, threshold)
    return {
        **run.to_json(threshold),
        "env": env_id,
        "method": method,
        "agent": run.method,
        "settings": dict(settings),
        "cpu_to_reach": _round(learn_cpu_at(run.evals, reach)),
        "cpu_to_hold": _round(learn_cpu_at(run.evals, hold)),
        "cpu_seconds": _round(run.extra.get("cpu_seconds")),
        "learn_cpu_seconds": _round(run.extra.get("learn_cpu_seconds")),
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


@dataclass(frozen=True)
class _Planned:
    """One run the suite asks for: its key, its settings and the sweep job that runs it."""

    env: str
    method: str
    seed: int
    settings: dict[str, Any]
    job: Job

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.env, self.method, self.seed)


def plan_jobs(
    envs: Sequence[str],
    methods: Sequence[str],
    seeds: Sequence[int],
    *,
    planner_steps: Mapping[str, int] | None = None,
    planner_eval_every: Mapping[str, int] | None = None,
    mf_steps: Mapping[str, int] | None = None,
    mf_steps_scale: float = 1.0,
    mf_eval_every: Mapping[str, int] | None = None,
    eval_episodes: int = 10,
    overrides: Mapping[str, Any] | None = None,
) -> list[_Planned]:
    """Every (env, method, seed) run with its settings: per-env budgets and evaluation
    spacing from :data:`ENVS` / the zoo unless given (``mf_steps_scale`` scales the zoo's
    budgets).  ``ValueError`` for an unknown env or method, or bad seeds."""
    unknown = [e for e in envs if e not in ENVS]
    if unknown:
        raise ValueError(f"unknown env(s) {unknown}; the suite has {list(ENVS)}")
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {bad}; choose from {list(METHODS)}")
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be one or more integers >= 0, got {list(seeds)}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds repeat: {list(seeds)}")
    if not mf_steps_scale > 0:
        raise ValueError(f"mf_steps_scale must be > 0, got {mf_steps_scale}")
    if eval_episodes < 1:
        raise ValueError(f"eval_episodes must be >= 1, got {eval_episodes}")
    out = []
    for env in envs:
        spec = ENVS[env]
        for method in methods:
            if method == "model-free":
                steps = (mf_steps or {}).get(env) or max(
                    1, round(ZOO[env].n_timesteps * mf_steps_scale)
                )
                every = (mf_eval_every or {}).get(env) or spec.mf_eval_every
                fn, extra = "wm_agents.bench.dqn_baseline:run_sb3", {"env_id": env}
                settings: dict[str, Any] = dict(total_steps=steps)
            else:
                steps = (planner_steps or {}).get(env) or spec.planner_steps
                every = (planner_eval_every or {}).get(env) or spec.planner_eval_every
                fn, extra = f"{__name__}:run_agent", {"env_id": env, "method": method}
                settings = dict(max_steps=steps)
                if overrides:
                    settings["overrides"] = dict(overrides)
            settings.update(eval_every=every, eval_episodes=eval_episodes)
            if every < 1 or steps < 1:
                raise ValueError(f"{env} {method}: budget and eval_every must be >= 1")
            for seed in seeds:
                job = Job(fn, {"seed": seed, **extra, **settings})
                out.append(_Planned(env, method, seed, settings, job))
    return out


def load_results(path: Path) -> dict[str, Any]:
    """``suite.json`` as written so far (an empty suite when there is none)."""
    if not path.exists():
        return {"benchmark": "suite", "sessions": [], "runs": []}
    blob = json.loads(path.read_text())
    if blob.get("benchmark") != "suite":
        raise ValueError(f"{path} is not a suite.json (benchmark {blob.get('benchmark')!r})")
    return blob


def run_suite(
    planned: Sequence[_Planned],
    results: Path,
    *,
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    command: Sequence[str] | None = None,
    sweep: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run what ``suite.json`` in ``results`` does not hold yet, saving it after every run;
    returns the JSON.

    A run already there with other settings (budget, evaluation spacing) is a ``ValueError``:
    resume with the same options, or use another ``--results`` folder.
    """
    from tqdm.auto import tqdm

    path = results / "suite.json"
    blob = load_results(path)
    done = {(r["env"], r["method"], r["seed"]): r for r in blob["runs"]}
    todo = []
    for p in planned:
        old = done.get(p.key)
        if old is None:
            todo.append(p)
        elif old["settings"] != p.settings:
            raise ValueError(
                f"{path} holds {p.env} {p.method} seed {p.seed} run with {old['settings']}, "
                f"not {p.settings}: resume with the same options or use another --results"
            )
    session = {
        "command": list(command) if command is not None else None,
        "code": code_state(),
        "machine": machine_info(),
        "sweep": dict(sweep or {}),
    }
    blob["sessions"].append(session)
    index = len(blob["sessions"]) - 1
    bar = tqdm(total=len(todo), desc="suite runs", unit="run", disable=not progress)
    bar.set_postfix_str(f"{len(planned) - len(todo)} already in {path.name}")

    def finished(i: int, run: CurveRun) -> None:
        p = todo[i]
        record = run_record(p.env, p.method, run, p.settings)
        record["session"] = index
        blob["runs"].append(record)
        write_json(path, blob)
        bar.update(1)
        reach = record["steps_to_reach"]
        bar.set_postfix_str(f"{p.env} {p.method} seed {p.seed}: reach {reach}")

    write_json(path, blob)
    # One run after another here: each run shows its own bar over real steps too.
    here = address is None and workers in (None, 1)
    jobs = [Job(p.job.fn, {**p.job.kwargs, "progress": progress and here}) for p in todo]
    try:
        run_jobs(jobs, workers=workers, address=address, on_result=finished)
    finally:
        bar.close()
    return blob


def report(results: Path, *, plot: bool = True) -> str:
    """Write ``suite.md`` (and, with ``plot``, one ``suite_<env>.png`` per env) from
    ``suite.json`` in ``results``; returns the markdown."""
    path = results / "suite.json"
    if not path.exists():
        raise FileNotFoundError(f"no {path}: run `wm-agents bench suite --results {results}` first")
    text = table(load_results(path), results if plot else None)
    write_text_with_fallback(results / "suite.md", text + "\n")
    return text


def table(blob: Mapping[str, Any], plots: Path | None = None) -> str:
    """The markdown of a ``suite.json``: one row per env and method, then the model-free /
    method ratios of the medians; with ``plots``, each env's PNG is drawn into that folder."""
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in blob["runs"]:
        groups.setdefault(r["env"], {}).setdefault(r["method"], []).append(r)
    lines = [
        "| env (threshold) | method | seeds reaching / holding | real steps to reach "
        "| real steps to hold | learning CPU-s to reach | learning CPU-s to hold "
        "| CPU-s per run: learning / with evals |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    ratios = [
        "| env | method | model-free / method: real steps to reach | to hold "
        "| CPU-s to reach | CPU-s to hold |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for env in [e for e in ENVS if e in groups]:
        stats = {}
        for method in [m for m in METHODS if m in groups[env]]:
            runs = sorted(groups[env][method], key=lambda r: r["seed"])
            stats[method] = s = {k: median_range([r[k] for r in runs]) for k in _STAT_KEYS}
            learn = _median([r["learn_cpu_seconds"] for r in runs])
            total = _median([r["cpu_seconds"] for r in runs])
            lines.append(
                f"| {env} ({ENVS[env].threshold:g}) | {_label(env, method)} "
                f"| {s['steps_to_reach']['reached']} / {s['steps_to_hold']['reached']} "
                f"of {len(runs)} "
                f"| {format_median_range(s['steps_to_reach'])} "
                f"| {format_median_range(s['steps_to_hold'])} "
                f"| {format_median_range(s['cpu_to_reach'], ',.1f')} "
                f"| {format_median_range(s['cpu_to_hold'], ',.1f')} "
                f"| {_num(learn)} / {_num(total)} |"
            )
        if "model-free" in stats:
            mf = stats["model-free"]
            for method, s in stats.items():
                if method != "model-free":
                    cells = " | ".join(_ratio(mf[k]["median"], s[k]["median"]) for k in _STAT_KEYS)
                    ratios.append(f"| {env} | {_label(env, method)} | {cells} |")
        if plots is not None:
            curves = {
                _label(env, m): [[(e["real_steps"], e["mean"]) for e in r["evals"]] for r in runs]
                for m, runs in groups[env].items()
            }
            _plot(env, curves, plots / f"suite_{env}.png")
    commits = sorted({blob["sessions"][r["session"]]["code"]["commit"] for r in blob["runs"]})
    return "\n".join(
        [
            "Medians over seeds (min-max; seeds that got there / seeds); a seed that never got "
            "there counts as infinitely late. CPU-s: process CPU seconds on one torch thread, "
            "evaluations left out.",
            "",
            *lines,
            "",
            *(ratios if len(ratios) > 2 else []),
            "",
            f"Commit(s): {', '.join(c[:12] or 'unknown' for c in commits) or 'none'}.",
        ]
    )


_STAT_KEYS = ("steps_to_reach", "steps_to_hold", "cpu_to_reach", "cpu_to_hold")


def _median(xs: Iterable[float | None]) -> float | None:
    stat = median_range(list(xs))
    return stat["median"]


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.1f}"


def _ratio(mf: float | None, ours: float | None) -> str:
    """``model-free / ours`` of two medians; what is known when one never got there."""
    if mf is None and ours is None:
        return "neither"
    if ours is None:
        return "method never"
    if mf is None:
        return "model-free never"
    return f"{mf / ours:.1f}x" if ours > 0 else "n/a"


def _plot(env: str, curves: Mapping[str, Any], path: Path) -> None:
    from wm_agents.reporting import plot_seed_curves

    threshold = ENVS[env].threshold
    plot_seed_curves(
        path,
        curves,
        threshold=threshold,
        threshold_label=f"{threshold:g} (threshold)",
        title=f"{env}: median over seeds, min-max band, thin lines: seeds",
        band=True,
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``wm-agents bench suite``."""
    p.add_argument(
        "action",
        nargs="?",
        choices=["run", "report"],
        default="run",
        help="run what suite.json lacks, then write the table and PNGs (default); or only report",
    )
    p.add_argument("--envs", nargs="+", choices=list(ENVS), default=list(ENVS), metavar="ENV")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(DEFAULT_METHODS))
    p.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    p.add_argument("--eval-episodes", type=int, default=10)
    for option, default in _PER_ENV_OPTIONS.items():
        p.add_argument(
            option,
            nargs="+",
            default=[],
            metavar="[ENV=]N",
            help="N for every env, or ENV=N (repeatable); default per env: "
            + ", ".join(f"{e} {default(e)}" for e in ENVS),
        )
    p.add_argument(
        "--mf-steps-scale",
        type=float,
        default=1.0,
        help="multiply the zoo's budgets (not those given by --mf-steps), e.g. 0.01 to try it",
    )
    p.add_argument("--results", type=Path, default=RESULTS_DIR)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_sweep_arguments(p)


_PER_ENV_OPTIONS: dict[str, Callable[[str], int]] = {
    "--planner-steps": lambda e: ENVS[e].planner_steps,
    "--planner-eval-every": lambda e: ENVS[e].planner_eval_every,
    "--mf-steps": lambda e: ZOO[e].n_timesteps,  # the zoo's n_timesteps
    "--mf-eval-every": lambda e: ENVS[e].mf_eval_every,
}


def parse_per_env(values: Sequence[str], envs: Sequence[str], option: str) -> dict[str, int]:
    """``["3000"]`` -> that for every env; ``["Acrobot-v1=2000", ...]`` -> per env."""
    out: dict[str, int] = {}
    for v in values:
        env, sep, n = v.rpartition("=")
        targets = [env] if sep else list(envs)
        if sep and env not in ENVS:
            raise ValueError(f"{option} {v}: unknown env {env!r}; the suite has {list(ENVS)}")
        try:
            number = int(n)
        except ValueError:
            raise ValueError(f"{option} {v}: expected N or ENV=N with an integer N") from None
        if number < 1:
            raise ValueError(f"{option} {v}: N must be >= 1")
        out.update(dict.fromkeys(targets, number))
    return out


def run_cli(args: argparse.Namespace) -> int:
    """Run the suite (or only report) as the parsed options say; prints the table."""
    import torch

    check_output_dir(args.results, FILES)
    torch.set_num_threads(1)  # CPU-seconds are for one thread; the Ray tasks set theirs too
    if args.action == "run":
        if "model-free" in args.methods and importlib.util.find_spec("stable_baselines3") is None:
            raise ValueError(
                "the model-free agents need stable-baselines3: pip install 'wm-agents[bench]' "
                "(or leave out --methods model-free)"
            )
        per_env = {
            option[2:].replace("-", "_"): parse_per_env(
                getattr(args, option[2:].replace("-", "_")), args.envs, option
            )
            for option in _PER_ENV_OPTIONS
        }
        planned = plan_jobs(
            args.envs,
            args.methods,
            args.seeds,
            mf_steps_scale=args.mf_steps_scale,
            eval_episodes=args.eval_episodes,
            **per_env,
        )
        run_suite(
            planned,
            args.results,
            workers=args.workers,
            address=args.ray,
            progress=not args.no_progress,
            command=["wm-agents", *sys.argv[1:]],
            sweep=sweep_info(args),
        )
    print(report(args.results))
    print(json.dumps({"written": [str(args.results / f) for f in ("suite.json", "suite.md")]}))
    return 0
