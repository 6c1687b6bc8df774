"""Learning inside imagination: tabular Dyna-Q against k, and policy / MPC / hybrid agents on
CartPole-v1 (DQN) and Pendulum-v1 (SAC).

    wm-agents bench dyna-q tabular [--seeds 30] [--ks 0 5 10 20 50]
    wm-agents bench dyna-q cartpole [--seeds 0 1 2 3 4] [--max-steps 2000] [--agents ...]
    wm-agents bench dyna-q cartpole-report
    wm-agents bench dyna-q pendulum [--seeds 0 1 2] [--max-steps 1500]
    wm-agents bench dyna-q pendulum-report

(each with ``--results DIR``, default ``benchmarks/results`` under the current folder, checked
before any run; ``cartpole`` / ``pendulum`` with ``--workers N`` / ``--ray [ADDRESS]`` run the
agents x seeds as Ray tasks, :mod:`wm_agents.bench.sweep`, into the same JSON and plot).
``tabular`` runs Sutton & Barto's Dyna maze (alpha 0.1, gamma 0.95, epsilon 0.1) for every k and
seed, prints a markdown table of episodes-to-solve (greedy path within 20% of the 14-step shortest
path) and writes ``dyna_maze_episodes_vs_k.png`` (episodes-to-solve against k, and the book's
steps-per-episode curves). ``cartpole`` / ``pendulum`` run the mpc, policy and hybrid agents of
``wm_agents.imagination`` for a fixed real-step budget (no early stop) on each seed, write every
run's summary to ``imagination_{env}.json`` and print real steps to first reach / hold an
evaluation mean at the env's bar (:data:`ENVS`: 475 for CartPole, -200 for Pendulum), the final
evaluation, the median milliseconds per action (each decision's ``plan_ms`` in the evaluation
through the planning graph, same for every agent; results before issue 12 timed a bare
``controller.act``), the policy's share of the hybrid's actions, which policy acted and the
hybrid's trust events; ``{env}-report`` redoes the tables and the plot from the JSON."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

from wm_agents.bench.common import RESULTS_DIR, code_state
from wm_agents.bench.sweep import Job, add_sweep_arguments, run_jobs, sweep_info
from wm_agents.outputs import check_output_dir

__all__ = [
    "ENVS",
    "add_arguments",
    "imagination_runs",
    "imagination_summary",
    "report",
    "run_cli",
    "tabular",
]


def tabular(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wm_agents.dyna_q import run_dyna

    rows, curves = {}, {}
    for k in args.ks:
        runs = [
            run_dyna("DynaMaze", planning_steps=k, seed=s, episodes=args.episodes)
            for s in range(args.seeds)
        ]
        eps = [r.solved_at_episode for r in runs]
        solved = [e for e in eps if e is not None]
        steps = [r.solved_at_step for r in runs if r.solved_at_step is not None]
        rows[k] = {
            "k": k,
            "solved": f"{len(solved)}/{len(runs)}",
            "episodes_median": statistics.median(solved) if solved else None,
            "episodes_mean": round(float(np.mean(solved)), 1) if solved else None,
            "episodes_min_max": [min(solved), max(solved)] if solved else None,
            "real_steps_median": statistics.median(steps) if steps else None,
            "ms_per_real_step": round(
                float(np.median([statistics.median(r.step_ms) for r in runs])), 4
            ),
            "seconds_per_run": round(float(np.mean([r.seconds for r in runs])), 2),
        }
        curves[k] = np.mean([r.episode_lengths for r in runs], axis=0)
        print(json.dumps(rows[k]), file=sys.stderr)
    print(
        "| k (planning steps) | solved | episodes to solve: median | mean | min-max "
        "| real steps to solve (median) | ms per real step |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows.values():
        lo, hi = r["episodes_min_max"] or ("-", "-")
        print(
            f"| {r['k']} | {r['solved']} | {r['episodes_median']} | {r['episodes_mean']} "
            f"| {lo}-{hi} | {r['real_steps_median']} | {r['ms_per_real_step']} |"
        )
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ks = list(rows)
    med = [rows[k]["episodes_median"] for k in ks]
    lo = [rows[k]["episodes_min_max"][0] for k in ks]
    hi = [rows[k]["episodes_min_max"][1] for k in ks]
    ax1.plot(ks, med, "o-", label="median")
    ax1.fill_between(ks, lo, hi, alpha=0.2, label="min-max")
    ax1.set_xscale("symlog", linthresh=1)
    ax1.set_xlabel("planning steps k per real step")
    ax1.set_ylabel("real episodes to a near-optimal greedy path")
    ax1.set_title(f"Dyna maze, {args.seeds} seeds")
    ax1.legend()
    for k, c in curves.items():
        ax2.plot(np.arange(2, len(c) + 1), c[1:], label=f"k={k}")
    ax2.set_ylim(0, 800)
    ax2.set_xlabel("episode")
    ax2.set_ylabel("steps per episode (mean over seeds)")
    ax2.set_title("Sutton & Barto Fig. 8.2 (from episode 2)")
    ax2.legend()
    fig.tight_layout()
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / "dyna_maze_episodes_vs_k.png"
    fig.savefig(out, dpi=100)
    print(f"\nplot: {out}", file=sys.stderr)


# Per env: gym id, the eval mean counted as "solved" (CartPole: gymnasium's threshold; Pendulum
# has none, -200 is our bar: swung up and held within a few steps of every start), defaults.
ENVS: dict[str, dict] = {
    "cartpole": dict(
        id="CartPole-v1",
        bar=475.0,
        max_steps=2_000,
        eval_every=300,
        eval_episodes=10,
        seeds=[0, 1, 2, 3, 4],
    ),
    "pendulum": dict(
        id="Pendulum-v1",
        bar=-200.0,
        max_steps=1_500,
        eval_every=300,
        eval_episodes=5,
        seeds=[0, 1, 2],
    ),
}


def _json(env: str, results: Path) -> Path:
    return results / f"imagination_{env}.json"


def _png(env: str, results: Path) -> Path:
    return results / f"imagination_{env}.png"


def imagination_runs(args: argparse.Namespace) -> None:
    """Every agent x seed on ``args.env``, seed by seed (or as Ray tasks with ``--workers`` /
    ``--ray``); the JSON is rewritten after each run (``--resume`` skips runs already in it)."""
    from wm_agents.bench.common import machine_info, write_json

    env = ENVS[args.env]
    for key in ("max_steps", "eval_every", "eval_episodes", "seeds"):
        if getattr(args, key) is None:
            setattr(args, key, env[key])
    out = _json(args.env, args.results)
    done: list[dict] = []
    if args.resume and out.exists():
        done = json.loads(out.read_text())["runs"]
    have = {(r["agent"], r["seed"]) for r in done}
    settings = {
        "env": env["id"],
        "solved_bar": env["bar"],
        "max_steps": args.max_steps,
        "eval_every": args.eval_every,
        "eval_episodes": args.eval_episodes,
        "stop_when_solved": False,
        "model_and_mpc": f"default_config('{env['id']}')",
        "imagination": "ImaginationConfig() defaults, DQNConfig() / SACConfig() defaults",
        "hybrid_threshold": "calibrated: 0.99 quantile of disagreement on real transitions",
        "hybrid_trust": "imagined return >= the env's reward threshold (probation), then a real "
        "training episode >= it; envs without a threshold: trusted at once",
    }
    todo = [(agent, seed) for seed in args.seeds for agent in args.agents]
    todo = [key for key in todo if key not in have]
    quiet = args.quiet or args.workers not in (None, 1) or args.ray is not None
    jobs = [
        Job(
            f"{__name__}:imagination_summary",
            dict(
                env_id=env["id"],
                agent=agent,
                seed=seed,
                max_steps=args.max_steps,
                eval_every=args.eval_every,
                eval_episodes=args.eval_episodes,
                progress=not quiet,
            ),
        )
        for agent, seed in todo
    ]
    earlier = list(done)

    def save(runs: list[dict]) -> None:
        blob = {
            "benchmark": f"imagination_{args.env}",
            "machine": machine_info(),
            "sweep": sweep_info(args),
            "code": code_state(),
            "settings": settings,
            "runs": runs,
        }
        write_json(out, blob)

    def finished(i: int, s: dict) -> None:
        done.append(s)  # in finishing order: what --resume needs if the sweep stops here
        keys = ("agent", "seed", "held_from_step", "eval_mean")
        print(json.dumps({k: s[k] for k in keys}), file=sys.stderr)
        save(done)

    fresh = run_jobs(jobs, workers=args.workers, address=args.ray, on_result=finished)
    if fresh:
        save(earlier + fresh)  # in the order asked, whichever finished first
    print(report(args.env, plot=not args.no_plot, results=args.results))


def imagination_summary(env_id: str, agent: str, seed: int, **options: Any) -> dict[str, Any]:
    """One agent and seed, learning for the whole budget: its ``summary()`` (a sweep job)."""
    from wm_agents.imagination.runner import run_imagination_gym

    result = run_imagination_gym(env_id, agent=agent, seed=seed, stop_when_solved=False, **options)
    return result.summary()


def _policy_share(run: dict) -> float | None:
    """Share of the last evaluation's actions taken by the policy (``None`` for MPC-only)."""
    src = run.get("action_sources", {})
    total = sum(src.values())
    return src.get("policy", 0) / total if total else None


def report(env_key: str, *, plot: bool = True, results: Path = RESULTS_DIR) -> str:
    """Markdown tables (per seed, then medians) from ``imagination_{env}.json`` in
    ``results``; with ``plot``, ``imagination_{env}.png`` (eval mean against real steps, per
    agent).  "Reach" / "hold" use the env's bar in :data:`ENVS`."""
    from wm_agents.bench.common import median_range, steps_to_hold, steps_to_reach
    from wm_agents.runner import EvalPoint

    env = ENVS[env_key]
    bar = env["bar"]
    data = json.loads(_json(env_key, results).read_text())
    runs = data["runs"]
    for r in runs:  # reach / hold against the bar (Pendulum has no threshold of its own)
        evals = [EvalPoint(e["real_steps"], [e["mean"]]) for e in r["evals"]]
        r["solved_at_step"] = steps_to_reach(evals, bar)
        r["held_from_step"] = steps_to_hold(evals, bar)
    agents = list(dict.fromkeys(r["agent"] for r in runs))
    lines = [
        f"| agent | seed | first reach {bar:g} | hold {bar:g} from | final eval mean "
        "| ms per action (median, last eval) | policy share (last eval) | acting policy "
        "| trust events | run s |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    short = {"probation": "P", "trusted": "T", "revoked": "R"}
    for r in sorted(runs, key=lambda r: (agents.index(r["agent"]), r["seed"])):
        share = _policy_share(r)
        acting = r.get("rollouts", {}).get("acting_policy", "-")
        events = " ".join(f"{short.get(e, e)}@{n}" for n, e in r.get("trust_log", [])) or "-"
        lines.append(
            f"| {r['agent']} | {r['seed']} | {r['solved_at_step'] or 'never'} "
            f"| {r['held_from_step'] or 'never'} "
            f"| {r['eval_mean']:.1f} | {r['act_ms_median']:.3g} "
            f"| {'-' if share is None else f'{share:.3f}'} "
            f"| {acting if r['agent'] != 'mpc' else '-'} "
            f"| {events if r['agent'] == 'hybrid' else '-'} | {r['seconds']} |"
        )
    lines += [
        "",
        f"| agent | seeds | first reach {bar:g}: median (min-max; seeds) | hold {bar:g}: median "
        "(min-max; seeds) | final eval mean per seed | ms per action: median of seeds |",
        "|---|---:|---:|---:|---|---:|",
    ]

    def fmt(st: dict) -> str:
        med = "never" if st["median"] is None else f"{st['median']:,.0f}"
        lo = "-" if st["min"] is None else f"{st['min']:,}"
        hi = "never" if st["max"] is None else f"{st['max']:,}"
        return f"{med} ({lo}-{hi}; {st['reached']}/{st['n']})"

    for a in agents:
        rs = [r for r in runs if r["agent"] == a]
        reach = median_range([r["solved_at_step"] for r in rs])
        hold = median_range([r["held_from_step"] for r in rs])
        ms = statistics.median(r["act_ms_median"] for r in rs)
        finals = [round(r["eval_mean"], 1) for r in rs]
        lines.append(f"| {a} | {len(rs)} | {fmt(reach)} | {fmt(hold)} | {finals} | {ms:.3g} |")
    if plot:
        _plot(runs, agents, env, _png(env_key, results))
        lines.append(f"\nplot: {_png(env_key, results)}")
    return "\n".join(lines)


def _plot(runs: list[dict], agents: list[str], env: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    colors = dict(zip(agents, ["tab:blue", "tab:orange", "tab:green", "tab:red"], strict=False))
    for r in runs:
        xs = [e["real_steps"] for e in r["evals"]]
        ys = [e["mean"] for e in r["evals"]]
        ax1.plot(xs, ys, "o-", color=colors[r["agent"]], alpha=0.6, label=r["agent"])
    handles, labels = ax1.get_legend_handles_labels()
    uniq = dict(zip(labels, handles, strict=True))
    ax1.legend(uniq.values(), uniq.keys())
    ax1.axhline(env["bar"], color="grey", ls="--", lw=1)
    ax1.set_xlabel("real env steps")
    ax1.set_ylabel("eval mean return (greedy episodes)")
    ax1.set_title(f"{env['id']}, one line per seed")
    ms = [statistics.median(r["act_ms_median"] for r in runs if r["agent"] == a) for a in agents]
    ax2.bar(agents, ms, color=[colors[a] for a in agents])
    ax2.set_yscale("log")
    ax2.set_ylabel("ms per action (median over seeds, log)")
    ax2.set_title("decision time (plan_ms, last evaluation)")
    for i, v in enumerate(ms):
        ax2.text(i, v, f"{v:.3g}", ha="center", va="bottom")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``tabular``, ``cartpole``, ``cartpole-report``, ``pendulum``, ``pendulum-report``."""
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("tabular", help="Dyna maze: episodes to solve against k")
    t.add_argument("--seeds", type=int, default=30)
    t.add_argument("--episodes", type=int, default=50)
    t.add_argument("--ks", type=int, nargs="+", default=[0, 1, 2, 5, 10, 20, 50])
    t.set_defaults(stage=tabular, writes=lambda a: ["dyna_maze_episodes_vs_k.png"])
    for key, env in ENVS.items():
        c = sub.add_parser(key, help=f"mpc / policy / hybrid on {env['id']}")
        c.add_argument("--seeds", type=int, nargs="+", default=None, help=f"{env['seeds']}")
        c.add_argument("--max-steps", type=int, default=None, help=f"{env['max_steps']}")
        c.add_argument("--eval-every", type=int, default=None, help=f"{env['eval_every']}")
        c.add_argument("--eval-episodes", type=int, default=None, help=f"{env['eval_episodes']}")
        c.add_argument("--agents", nargs="+", default=["mpc", "policy", "hybrid"])
        c.add_argument("--resume", action="store_true", help="skip runs already in the JSON")
        c.add_argument("--no-plot", action="store_true")
        c.add_argument("--quiet", action="store_true")
        add_sweep_arguments(c)
        c.set_defaults(
            stage=imagination_runs,
            env=key,
            writes=lambda a: [f"imagination_{a.env}.json", f"imagination_{a.env}.png"],
        )
        r = sub.add_parser(f"{key}-report", help=f"tables + plot from the {key} JSON")
        r.add_argument("--no-plot", action="store_true")
        r.set_defaults(
            stage=lambda a, k=key: print(report(k, plot=not a.no_plot, results=a.results)),
            env=key,
            writes=lambda a: [] if a.no_plot else [f"imagination_{a.env}.png"],
        )
    for p in sub.choices.values():
        p.add_argument(
            "--results",
            type=Path,
            default=RESULTS_DIR,
            help="folder for the JSON and PNG results (default: ./benchmarks/results)",
        )


def run_cli(args: argparse.Namespace) -> int:
    """Check the results folder, then run the chosen part."""
    import torch

    # Before minutes or hours of runs, not after: the folder must take what this part writes.
    check_output_dir(args.results, args.writes(args))
    torch.set_num_threads(1)  # one visible threads block; everything else takes explicit seeds
    args.stage(args)
    return 0
