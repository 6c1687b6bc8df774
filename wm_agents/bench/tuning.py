"""Hyper-parameter searches on Ray Tune: every evaluation of a run is reported to Tune as it is
measured, so a scheduler (ASHA) or a stopper ends a poor trial early.

    wm-agents bench tune --env CartPole-v1 --agent mpc --seeds 0 1 \\
        --grid risk_weight=0,0.5,1 --grid ensemble_size=1,5 --grid fit.value_epochs=50,100 \\
        [--max-steps 1000] [--eval-every 400] [--scheduler asha] [--stop-mean 475] \\
        [--workers 2 | --ray ADDRESS] [--out benchmarks/results/tune.json]

Each trial is one run of :func:`run_agent`: an env, an agent (``mpc`` through
:func:`~wm_agents.runner.run_gym`; ``policy`` / ``hybrid`` / ``dqn`` through
:func:`~wm_agents.imagination.run_imagination_gym`), a seed, and
:class:`~wm_agents.runner.AgentConfig` fields (its model fit's as ``fit.FIELD``); every list
on the command line is a grid axis (``tune.grid_search``).  After each evaluation the trial
reports ``eval_mean``, ``eval_min`` and ``real_steps`` (the run loop's ``on_eval``); ASHA's time
axis is ``real_steps``.  The JSON
lists every trial with its settings, every evaluation it reported, and whether Tune stopped it
before its budget.
Needs the ``[ray]`` extra; each trial holds one CPU and runs on one torch thread.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

from wm_agents.bench.common import RESULTS_DIR, code_state, parse_value, write_json
from wm_agents.bench.sweep import add_sweep_arguments, connect_ray, sweep_info
from wm_agents.outputs import check_output_file

__all__ = ["METRIC", "add_arguments", "parse_grid", "run_agent", "run_cli", "table", "tune_agent"]

METRIC = "eval_mean"
"""What the searches maximise: the mean return of one evaluation's episodes."""

_RUN_KEYS = ("env", "agent", "seed")


def run_agent(config: Mapping[str, Any], on_eval: Callable[[Any], bool | None] | None) -> Any:
    """One run from a trial's ``config``: ``env``, ``agent`` (default ``mpc``), ``seed``
    (default 0), and any :class:`~wm_agents.runner.AgentConfig` fields (``max_steps``,
    ``eval_every``, ``eval_episodes``, ``risk_weight``...); one torch thread.
    ``on_eval`` hears every evaluation (:func:`~wm_agents.run_loop.run_env_loop`)."""
    from wm_agents.runner import default_config

    settings = {k: v for k, v in config.items() if k not in _RUN_KEYS}
    env, agent, seed = config["env"], config.get("agent", "mpc"), config.get("seed", 0)
    cfg = default_config(env, threads=1, **settings)
    if agent == "mpc":
        from wm_agents.runner import run_gym

        return run_gym(env, seed=seed, config=cfg, progress=False, on_eval=on_eval)
    from wm_agents.imagination.runner import run_imagination_gym

    return run_imagination_gym(
        env,
        agent=agent,
        seed=seed,
        config=cfg,
        max_steps=cfg.max_steps,
        eval_every=cfg.eval_every,
        eval_episodes=cfg.eval_episodes,
        stop_when_solved=False,
        progress=False,
        on_eval=on_eval,
    )


def _trial(config: dict[str, Any]) -> None:
    """The Tune trainable: the run, reporting each evaluation as it comes."""
    import torch
    from ray import tune

    torch.set_num_threads(1)

    def report(point: Any) -> None:
        tune.report(
            {METRIC: point.mean, "eval_min": min(point.returns), "real_steps": point.real_steps}
        )

    run_agent(config, report)


def tune_agent(
    param_space: Mapping[str, Any],
    *,
    scheduler: Any = None,
    stop: Any = None,
    max_concurrent: int | None = None,
    storage_path: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Run a Tune search over ``param_space`` (the keys of :func:`run_agent`'s config; values
    may be ``tune.grid_search`` / ``tune.choice``...); returns one dict per trial: ``config``,
    ``evals`` (every reported evaluation: ``real_steps``, ``mean``, ``min``),
    ``stopped_early`` (ended before its real-step budget) and ``error``.

    ``scheduler``: a Tune scheduler (metric ``eval_mean``, mode ``max`` are set here);
    ``stop``: a Tune stopper, a dict (``{"eval_mean": 475}``: stop a trial once it reaches
    that) or a function.  Joins the Ray instance this process runs, or starts a local one
    (:func:`~wm_agents.bench.sweep.connect_ray`, shut down at the end).  Tune's own files go
    to ``storage_path`` (default: a temporary folder, removed afterwards).
    """
    from ray import tune

    from wm_agents.runner import default_config

    started = connect_ray(None)
    trainable = tune.with_resources(_trial, {"cpu": 1})
    with tempfile.TemporaryDirectory(prefix="wm_agents_tune_") as tmp, _shutdown_if(started):
        tuner = tune.Tuner(
            trainable,
            param_space=dict(param_space),
            tune_config=tune.TuneConfig(
                metric=METRIC,
                mode="max",
                scheduler=scheduler,
                max_concurrent_trials=max_concurrent,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name="wm_agents_tune",
                storage_path=str(Path(storage_path or tmp).resolve()),
                stop=stop,
                verbose=0,
            ),
        )
        grid = tuner.fit()
        trials = []
        for result in grid:
            frame = result.metrics_dataframe
            rows = [] if frame is None else frame.to_dict("records")
            evals = [
                {
                    "real_steps": int(r["real_steps"]),
                    "mean": float(r[METRIC]),
                    "min": float(r["eval_min"]),
                }
                for r in rows
                if "real_steps" in r
            ]
            config = dict(result.config)
            budget = default_config(config["env"]).max_steps
            budget = config.get("max_steps", budget)
            trials.append(
                {
                    "config": config,
                    "evals": evals,
                    "stopped_early": bool(evals) and evals[-1]["real_steps"] < budget,
                    "error": None if result.error is None else str(result.error),
                }
            )
    return trials


@contextmanager
def _shutdown_if(started: bool) -> Iterator[None]:
    try:
        yield
    finally:
        if started:
            import ray

            ray.shutdown()


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["risk_weight=0,0.5", "fit.lr=1e-3,3e-3"]`` -> ``{"risk_weight": [0, 0.5], ...}``
    (each value read as JSON when it is, else as a string): AgentConfig's fields, and its
    model fit's as ``fit.FIELD`` (:func:`~wm_agents.runner.default_config` applies them)."""
    from wm_agents.neural.trainer import FitConfig
    from wm_agents.runner import AgentConfig

    names = {f.name for f in fields(AgentConfig)} - {"fit", "threads"}
    names |= {f"fit.{f.name}" for f in fields(FitConfig)} - {"fit.seed"}
    out: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not values or key not in names:
            known = ", ".join(sorted(names))
            raise ValueError(f"--grid takes FIELD=V1,V2,... with a field of: {known}; got {item!r}")
        out[key] = [parse_value(v) for v in values.split(",")]
    return out


def table(trials: list[dict[str, Any]], axes: list[str]) -> str:
    """Markdown: one row per trial, its settings on ``axes``, its evaluations, how it ended."""
    rows = [
        f"| {' | '.join(axes)} | evaluations (real steps: mean) | final mean | ended |",
        "|" + "---|" * (len(axes) + 3),
    ]
    for t in trials:
        cells = [str(t["config"].get(a, "")) for a in axes]
        evals = ", ".join(f"{e['real_steps']}: {e['mean']:.1f}" for e in t["evals"]) or "-"
        final = f"{t['evals'][-1]['mean']:.1f}" if t["evals"] else "-"
        ended = "error" if t["error"] else "stopped early" if t["stopped_early"] else "budget"
        rows.append(f"| {' | '.join(cells)} | {evals} | {final} | {ended} |")
    return "\n".join(rows)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``wm-agents bench tune``."""
    p.add_argument("--env", nargs="+", default=["CartPole-v1"], help="gymnasium env ids")
    p.add_argument(
        "--agent", nargs="+", default=["mpc"], choices=["mpc", "policy", "hybrid", "dqn"]
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="FIELD=V1,V2",
        help="an AgentConfig field, or fit.FIELD of its FitConfig, and its values (repeat for "
        "more axes)",
    )
    p.add_argument("--max-steps", type=int, default=None, help="default: per env")
    p.add_argument("--eval-every", type=int, default=None, help="default: per env")
    p.add_argument("--eval-episodes", type=int, default=None, help="default: 10")
    p.add_argument("--scheduler", choices=["fifo", "asha"], default="fifo")
    p.add_argument(
        "--grace-steps",
        type=int,
        default=None,
        help="ASHA: real steps before a trial may be stopped (default: its first evaluation)",
    )
    p.add_argument(
        "--stop-mean", type=float, default=None, help="stop a trial once an evaluation reaches it"
    )
    p.add_argument("--out", default=str(RESULTS_DIR / "tune.json"))
    p.add_argument(
        "--storage", default=None, help="keep Tune's own files there (default: removed after)"
    )
    add_sweep_arguments(p)


def run_cli(args: argparse.Namespace) -> int:
    """Build the search space from the options, run it, write the JSON, print the table."""
    check_output_file(args.out)  # before the search, not after
    grid = parse_grid(args.grid)
    from wm_agents.runner import default_config

    sizes = {"max_steps": args.max_steps, "eval_every": args.eval_every}
    sizes["eval_episodes"] = args.eval_episodes
    # The settings every trial shares, checked before Ray starts (a bad one fails here, once).
    fixed = {k: v[0] for k, v in grid.items() if len(v) == 1}
    first = default_config(args.env[0], **sizes, **fixed)
    from ray import tune

    space: dict[str, Any] = {k: v for k, v in sizes.items() if v is not None}
    axes = {"env": args.env, "agent": args.agent, "seed": args.seeds, **grid}
    for key, values in axes.items():
        space[key] = tune.grid_search(values) if len(values) > 1 else values[0]
    scheduler = None
    if args.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        grace = args.grace_steps or first.warmup_steps + max(first.eval_every, 1)
        scheduler = ASHAScheduler(
            time_attr="real_steps", max_t=first.max_steps, grace_period=grace, reduction_factor=2
        )
    stop = {METRIC: args.stop_mean} if args.stop_mean is not None else None
    address = args.ray
    if address is not None or args.workers not in (None, 1):
        connect_ray(address, workers=args.workers)
    trials = tune_agent(
        space,
        scheduler=scheduler,
        stop=stop,
        max_concurrent=args.workers,
        storage_path=args.storage,
    )
    from wm_agents.bench.common import machine_info

    shown = [k for k, v in axes.items() if len(v) > 1] or ["env"]
    payload = {
        "benchmark": "tune",
        "machine": machine_info(),
        "sweep": sweep_info(args),
        "code": code_state(),
        "metric": METRIC,
        "scheduler": args.scheduler,
        "stop": stop,
        "space": {k: v for k, v in {**sizes, **axes}.items() if v is not None},
        "trials": trials,
    }
    write_json(args.out, payload)
    print(table(trials, shown))
    failed = [t for t in trials if t["error"]]
    for t in failed:
        print(f"trial {t['config']} failed: {t['error']}", file=sys.stderr)
    return 1 if failed else 0
