"""``wm-agents dyna --env ENV [--planning-steps K] [--json]``: tabular Dyna-Q on a discrete env.

Prints a table (episodes-to-solve, real steps, time per step); with ``--json`` the last line of
stdout is one JSON object with the fields of ``wm-agents gym`` plus ``planning_steps``,
``episodes``, ``episodes_to_solve`` and ``episode_lengths``.  Also runnable alone:
``python -m wm_agents dyna --env DynaMaze --planning-steps 50``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

__all__ = ["configure"]


def configure(p: argparse.ArgumentParser, rest: Sequence[str] | None = None) -> None:
    """Add the command's options to its parser (sets ``func(args) -> int``)."""
    del rest
    p.add_argument(
        "--env", default="DynaMaze", help="DynaMaze (Sutton & Barto's 9x6 maze) or a gym id"
    )
    p.add_argument(
        "--planning-steps", "-k", type=int, default=0, help="imagined updates per real step"
    )
    p.add_argument("--episodes", type=int, default=None, help="real episodes (default per env)")
    p.add_argument("--seed", type=int, default=0, help="seeds everything in the run (default 0)")
    p.add_argument("--alpha", type=float, default=0.1, help="step size (default 0.1)")
    p.add_argument("--gamma", type=float, default=0.95, help="discount (default 0.95)")
    p.add_argument("--epsilon", type=float, default=0.1, help="exploration (default 0.1)")
    p.add_argument(
        "--stop-when-solved", action="store_true", help="stop at the first solved evaluation"
    )
    p.add_argument("--json", action="store_true", help="print one JSON summary object last")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from wm_agents.dyna_q.agent import DynaQConfig
    from wm_agents.dyna_q.runner import run_dyna

    config = DynaQConfig(alpha=args.alpha, gamma=args.gamma, epsilon=args.epsilon)
    result = run_dyna(
        args.env,
        planning_steps=args.planning_steps,
        seed=args.seed,
        episodes=args.episodes,
        config=config,
        stop_when_solved=args.stop_when_solved,
    )
    s = result.summary()
    table = Table(title=f"Dyna-Q on {s['env']} (k={s['planning_steps']}, seed {s['seed']})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in (
        "episodes",
        "episodes_to_solve",
        "real_steps",
        "solved_at_step",
        "eval_mean",
        "plan_ms_median",
        "model_val_mse",
        "seconds",
    ):
        v = s[key]
        table.add_row(key, "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v))
    Console(stderr=args.json).print(table)
    if args.json:
        print(json.dumps(s))
    return 0
