"""`wm-agents` command line.

wm-agents cartpole [--seed S] [--max-steps N] [--eval-episodes N] [--out DIR] [--json]
wm-agents gym --env ENV_ID [same options]
wm-agents llm serve | predict ...   (embedded offline LLM and the outcome predictor)
wm-agents tools --task TEXT [--db FILE] [--json] [--on-ask approve|reject] [--resume ID]
wm-agents dyna --env ENV [--planning-steps K] [--json]   (tabular Dyna-Q)
wm-agents gym --env ENV --agent policy|mpc|hybrid       (policy learned in imagination)
wm-agents bench plan|plan-table|sample-efficiency|seed-recipe-why|graph|uncertainty ...
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _add_gym_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="seeds everything in the run (default 0)")
    p.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="real env steps for learning, warm-up included (default per env)",
    )
    p.add_argument("--warmup-steps", type=int, default=None, help="random steps before planning")
    p.add_argument(
        "--eval-episodes",
        type=int,
        default=None,
        help="evaluation episodes per evaluation (default 10)",
    )
    p.add_argument(
        "--eval-every",
        type=int,
        default=None,
        help="real steps between evaluations (0: only at the end)",
    )
    p.add_argument("--horizon", type=int, default=None, help="planning horizon (steps)")
    p.add_argument("--population", type=int, default=None, help="CEM population per iteration")
    p.add_argument("--planner", choices=["cem", "random"], default=None)
    p.add_argument(
        "--risk-weight",
        type=float,
        default=None,
        help="lambda in mean - lambda * std over ensemble members",
    )
    p.add_argument(
        "--stop-when-solved",
        action="store_true",
        help="stop learning at the first evaluation that reaches the solved threshold",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1 is fastest on small shared machines)",
    )
    p.add_argument(
        "--out", default=None, help="folder for model.pt, learning_curve.png, result.json"
    )
    p.add_argument("--json", action="store_true", help="print one JSON summary object last")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    from wm_agents.imagination.cli import add_agent_options

    add_agent_options(p)  # --agent mpc|policy|hybrid|dqn and its options


def _run_gym(args: argparse.Namespace) -> int:
    if args.agent != "mpc":
        from wm_agents.imagination.cli import run_agent_from_args

        return run_agent_from_args(args)
    from rich.console import Console

    from wm_agents.reporting import summary_table
    from wm_agents.runner import default_config, run_gym

    # The runner sets (and restores) torch's threads from the config; seeds are explicit.
    config = default_config(
        args.env,
        max_steps=args.max_steps,
        warmup_steps=args.warmup_steps,
        eval_episodes=args.eval_episodes,
        eval_every=args.eval_every,
        horizon=args.horizon,
        population=args.population,
        planner=args.planner,
        risk_weight=args.risk_weight,
        stop_when_solved=args.stop_when_solved or None,
        threads=args.threads,
    )
    result = run_gym(args.env, seed=args.seed, config=config, out=args.out, progress=not args.quiet)
    console = Console(stderr=args.json)
    console.print(summary_table(result))
    if result.plot_path:
        # Paths are user input: printed as text, never as rich markup.
        console.print(
            f"learning curve: {result.plot_path}\nmodel: {result.model_path}", markup=False
        )
    if args.json:
        print(json.dumps(result.summary()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wm-agents",
        description="LangGraph agents that imagine before they act.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    cp = sub.add_parser("cartpole", help="learn CartPole-v1 by planning with a learned model")
    _add_gym_options(cp)
    cp.set_defaults(func=_run_gym, env="CartPole-v1")

    gp = sub.add_parser(
        "gym", help="learn any Box-observation gymnasium env (Discrete/Box actions)"
    )
    gp.add_argument("--env", required=True, help="gymnasium env id, e.g. Pendulum-v1")
    _add_gym_options(gp)
    gp.set_defaults(func=_run_gym)

    # Each part registers its own sub-commands (imports are local: `wm-agents --help` stays fast
    # to read, and each module owns its options).
    from wm_agents.bench import add_bench_subparser
    from wm_agents.dyna_q.cli import add_dyna_subparser
    from wm_agents.llm.cli import add_llm_subparser
    from wm_agents.tools.cli import add_tools_subparser

    add_llm_subparser(sub)
    add_tools_subparser(sub)
    add_dyna_subparser(sub)
    add_bench_subparser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wm-agents`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as err:
        # Bad input (unsupported env space, bad option values): a clear message, no traceback.
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
