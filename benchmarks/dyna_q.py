"""Learning inside imagination: tabular Dyna-Q against k, and policy / MPC / hybrid on CartPole.

    python benchmarks/dyna_q.py tabular [--seeds 30] [--ks 0 5 10 20 50]
    python benchmarks/dyna_q.py cartpole [--seed 0] [--max-steps N] [--agents dqn policy mpc hybrid]

``tabular`` runs Sutton & Barto's Dyna maze (alpha 0.1, gamma 0.95, epsilon 0.1) for every k and
seed, prints a markdown table of episodes-to-solve (greedy path within 20% of the 14-step
shortest path) and writes ``benchmarks/results/dyna_maze_episodes_vs_k.png`` (episodes-to-solve
against k, and the book's steps-per-episode curves).  ``cartpole`` runs each agent of
``wm_agents.imagination`` and prints real steps to reach an evaluation mean >= 475 and the median
milliseconds per action of the trained agent.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


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
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "dyna_maze_episodes_vs_k.png"
    fig.savefig(out, dpi=100)
    print(f"\nplot: {out}", file=sys.stderr)


def cartpole(args: argparse.Namespace) -> None:
    from wm_agents.imagination.runner import run_imagination_gym

    rows = []
    for agent in args.agents:
        result = run_imagination_gym(
            "CartPole-v1",
            agent=agent,
            seed=args.seed,
            max_steps=args.max_steps,
            progress=False,
        )
        s = result.summary()
        rows.append(s)
        print(json.dumps(s), file=sys.stderr)
    print(
        "| agent | real steps to eval mean >= 475 | final eval mean | ms per action "
        "(trained, median) | policy / MPC actions in eval | run seconds |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for s in rows:
        src = s.get("action_sources", {})
        print(
            f"| {s['agent']} | {s['solved_at_step']} | {s['eval_mean']} "
            f"| {s['act_ms_median']} | {src.get('policy', 0)} / {src.get('mpc', 0)} "
            f"| {s['seconds']} |"
        )


def main() -> None:
    import torch

    torch.set_num_threads(1)  # one visible threads block; everything else takes explicit seeds
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("tabular")
    t.add_argument("--seeds", type=int, default=30)
    t.add_argument("--episodes", type=int, default=50)
    t.add_argument("--ks", type=int, nargs="+", default=[0, 1, 2, 5, 10, 20, 50])
    t.set_defaults(func=tabular)
    c = sub.add_parser("cartpole")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--max-steps", type=int, default=None)
    c.add_argument("--agents", nargs="+", default=["dqn", "policy", "mpc", "hybrid"])
    c.set_defaults(func=cartpole)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
