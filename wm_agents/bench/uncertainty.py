"""Uncertainty-aware planning (the seed's bonus): risk weight lambda and ensemble size.

Runs the Dyna/MPC planner (``default_config("CartPole-v1")``) with ``risk_weight`` lambda in
the CEM score and the gate (``mean - lambda * std`` over members) and with 1 or 5 members, and
reports real steps to first reach / to hold 475 and failures during learning: planned training
episodes (after the random warm-up) that ended before the 500-step time limit.

    wm-agents bench uncertainty --seeds 0 1 2 --variants E5:0 E5:0.5 E5:1 E1:0 [--workers 2]

``--workers N`` / ``--ray [ADDRESS]`` run the variants x seeds as Ray tasks
(:mod:`wm_agents.bench.sweep`) into the same JSON and table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

from wm_agents.bench.common import (
    RESULTS_DIR,
    CurveRun,
    EvalPoint,
    machine_info,
    summarize_runs,
    write_json,
)
from wm_agents.bench.sample_efficiency import THRESHOLD
from wm_agents.bench.sweep import Job, add_sweep_arguments, run_jobs, sweep_info
from wm_agents.outputs import check_output_file
from wm_agents.runner import default_config

__all__ = ["add_arguments", "parse_variant", "run_cli", "table"]


def parse_variant(text: str) -> tuple[int, float]:
    """``"E5:0.5"`` -> (ensemble size 5, risk weight 0.5)."""
    try:
        e, lam = text.upper().removeprefix("E").split(":")
        return int(e), float(lam)
    except ValueError as err:
        raise ValueError(f"variant must look like E5:0.5 (members:lambda), got {text!r}") from err


def table(payload: dict[str, Any]) -> str:
    """Markdown table of the variants."""
    rows = [
        "| members E | lambda | seeds | steps to reach 475: median (min-max) "
        "| steps to hold 475: median (min-max) | failures during learning: median (per seed) "
        "| final eval mean per seed |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for v in payload["variants"]:
        s = v["summary"]
        fails = v["failures"]
        rows.append(
            f"| {v['ensemble']} | {v['risk_weight']:g} | {len(s['seeds'])} "
            f"| {_fmt(s['steps_to_reach'])} | {_fmt(s['steps_to_hold'])} "
            f"| {statistics.median(fails):g} ({', '.join(map(str, fails))}) "
            f"| {s['final_eval_mean']} |"
        )
    return "\n".join(rows)


def _fmt(stat: dict[str, Any]) -> str:
    if stat["median"] is None:
        return f"not reached ({stat['reached']}/{stat['n']})"
    hi = f"{stat['max']:,}" if stat["max"] is not None else "never"
    return f"{stat['median']:,.0f} ({stat['min']:,}-{hi}; {stat['reached']}/{stat['n']})"


_DEFAULT = (default_config("CartPole-v1").ensemble_size, default_config("CartPole-v1").risk_weight)


def _baseline_runs(args: argparse.Namespace) -> dict[int, CurveRun]:
    """Default-config runs of ``sample_efficiency_planner.json`` (reused, not re-run)."""
    if not args.baseline or not Path(args.baseline).exists() or args.max_steps is not None:
        return {}
    blob = json.loads(Path(args.baseline).read_text())
    out = {}
    for r in blob["runs"]:
        if r.get("config", {}).get("eval_episodes") != args.eval_episodes:
            continue
        evals = [EvalPoint(e["real_steps"], (e["mean"],)) for e in r["evals"]]
        extra = {"train_failures_after_warmup": r["train_failures_after_warmup"], "reused": True}
        out[r["seed"]] = CurveRun("planner", r["seed"], evals, r["seconds"], extra)
    return out


def _earlier_runs(args: argparse.Namespace) -> dict[tuple[int, float, int], CurveRun]:
    """Runs already in ``--out`` with the same budget (so adding seeds re-runs nothing)."""
    if not args.out or not Path(args.out).exists() or args.max_steps is not None:
        return {}
    out = {}
    for v in json.loads(Path(args.out).read_text())["variants"]:
        for r in v["runs"]:
            if r.get("config", {}).get("eval_episodes", args.eval_episodes) != args.eval_episodes:
                continue
            evals = [EvalPoint(e["real_steps"], (e["mean"],)) for e in r["evals"]]
            extra = {k: r[k] for k in ("train_failures_after_warmup", "config") if k in r}
            out[(v["ensemble"], v["risk_weight"], r["seed"])] = CurveRun(
                "planner", r["seed"], evals, r["seconds"], extra
            )
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``wm-agents bench uncertainty``."""
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--variants",
        nargs="+",
        default=["E5:0", "E5:0.5", "E5:1", "E1:0"],
        help="members:lambda pairs",
    )
    p.add_argument("--max-steps", type=int, default=None, help="default: default_config")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--threads", type=int, default=1, help="torch threads of a run in this process")
    add_sweep_arguments(p)
    p.add_argument(
        "--baseline",
        default=str(RESULTS_DIR / "sample_efficiency_planner.json"),
        help="reuse its default-config runs (E5, lambda 0) instead of re-running them",
    )
    p.add_argument("--out", default=str(RESULTS_DIR / "uncertainty.json"))


def run_cli(args: argparse.Namespace) -> int:
    """Run every variant on every seed; write JSON, print the markdown table."""
    if args.out:
        check_output_file(args.out)  # before hours of runs, not after
    torch.set_num_threads(max(1, args.threads))
    baseline = _baseline_runs(args)
    earlier = _earlier_runs(args)
    # Runs measured before, by (members, lambda, seed): an earlier call's, and the baseline's
    # default-config runs (the same config and seed: identical runs).
    known = earlier | {(*_DEFAULT, seed): run for seed, run in baseline.items()}
    grid = [(text, *parse_variant(text)) for text in args.variants]
    todo = [
        (text, e, lam, seed)
        for text, e, lam in grid
        for seed in args.seeds
        if (e, lam, seed) not in known
    ]
    jobs = [
        Job(
            "wm_agents.bench.sample_efficiency:run_planner",
            dict(
                seed=seed,
                eval_episodes=args.eval_episodes,
                ensemble_size=e,
                risk_weight=lam,
                max_steps=args.max_steps,
            ),
        )
        for _, e, lam, seed in todo
    ]

    def progress(i: int, run: CurveRun) -> None:
        line = {"variant": todo[i][0], **run.to_json(THRESHOLD)}
        print(json.dumps(line), file=sys.stderr, flush=True)

    done = run_jobs(jobs, workers=args.workers, address=args.ray, on_result=progress)
    known |= {(e, lam, seed): run for (_, e, lam, seed), run in zip(todo, done, strict=True)}
    variants = []
    for _, e, lam in grid:
        runs = [known[(e, lam, seed)] for seed in args.seeds]
        variants.append(
            {
                "ensemble": e,
                "risk_weight": lam,
                "summary": summarize_runs(runs, THRESHOLD),
                "failures": [r.extra["train_failures_after_warmup"] for r in runs],
                "runs": [r.to_json(THRESHOLD) for r in runs],
            }
        )
    payload = {
        "benchmark": "uncertainty",
        "machine": machine_info(),
        "sweep": sweep_info(args),
        "threshold": THRESHOLD,
        "variants": variants,
    }
    if args.out:
        write_json(args.out, payload)
    print(table(payload))
    return 0
