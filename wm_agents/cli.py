"""`wm-agents` command line (also ``python -m wm_agents``).

wm-agents cartpole [--seed S] [--max-steps N] [--eval-episodes N] [--out DIR] [--json]
wm-agents gym --env ENV_ID [same options]
wm-agents llm serve | predict ...   (embedded offline LLM and the outcome predictor)
wm-agents tools [--task TEXT] [--db FILE] [--json] [--on-ask approve|reject] [--resume ID]
                [--world-model composite|llm] [--plan-search --goal GOAL]
wm-agents dyna --env ENV [--planning-steps K] [--json]   (tabular Dyna-Q)
wm-agents gym --env ENV --agent policy|mpc|hybrid       (policy learned in imagination)
wm-agents bench plan|plan-table|sample-efficiency|graph|dyna-q|llm-latency|...  (every benchmark)

Start-up is kept short: :data:`COMMANDS` names every command with its help text, and only the
chosen command's module is imported to add its options (the modules that run commands import
torch, LangGraph and LLM clients), so ``wm-agents cartpole --help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["COMMANDS", "Command", "build_parser", "main"]


@dataclass(frozen=True)
class Command:
    """A ``wm-agents`` command: its help, and where its options are defined.

    Attributes:
        help: one line for ``wm-agents --help``.
        configure: ``"module:function"``; ``function(parser, rest)`` adds the command's options
            to its parser and sets ``func(args) -> int`` (``rest``: the arguments after the
            command name, for commands with sub-commands of their own; ``None`` = all).
        description: the command's own ``--help`` text (default: ``help``).
    """

    help: str
    configure: str
    description: str | None = None


COMMANDS: dict[str, Command] = {
    "cartpole": Command(
        "learn CartPole-v1 by planning with a learned model", "wm_agents.cli:_configure_cartpole"
    ),
    "gym": Command(
        "learn any Box-observation gymnasium env (Discrete/Box actions)",
        "wm_agents.cli:_configure_gym",
    ),
    "llm": Command(
        "the LLM outcome predictor and its embedded model", "wm_agents.llm.cli:configure"
    ),
    "tools": Command(
        "run the sandboxed file-system agent that imagines tool calls before acting",
        "wm_agents.tools.cli:configure",
        "A file-system agent in a sandbox folder: every tool call is imagined (simulated on a "
        "copy of the folder, or predicted by the LLM) and gated (act / ask a person / refuse) "
        "before it runs.",
    ),
    "dyna": Command(
        "tabular Dyna-Q on a discrete env (DynaMaze, FrozenLake-v1, CliffWalking-v1, Taxi-v4)",
        "wm_agents.dyna_q.cli:configure",
        "Tabular Dyna-Q (Sutton & Barto 8.2): k imagined Q-updates per real step from a learned "
        "count model; k=0 is plain Q-learning.",
    ),
    "bench": Command(
        "side-by-side benchmarks (see BENCHMARKS.md)", "wm_agents.bench.cli:configure"
    ),
}
"""Every command, in ``--help`` order."""


def load(target: str) -> Callable[..., object]:
    """The function named by ``"module:function"`` (imported now)."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


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
        "--explore",
        type=float,
        default=None,
        help="the MPC agent's training plans add this weight times the ensemble members' "
        "disagreement to each imagined reward, so it goes where its model is ignorant (e.g. 1 "
        "for MountainCarContinuous-v0; default 0: off; evaluations never explore)",
    )
    p.add_argument(
        "--end-reward",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the vector model also learns the reward of an episode's last step from the state "
        "it lands in (a goal's +100; default: on for MountainCarContinuous-v0, off elsewhere)",
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
        "--eval-workers",
        type=int,
        default=1,
        help="processes an evaluation's episodes are split across (the MPC agent; 0: one per "
        "CPU core; the same decisions and returns as 1, the default)",
    )
    p.add_argument(
        "--out", default=None, help="folder for model.pt, learning_curve.png, result.json"
    )
    p.add_argument("--json", action="store_true", help="print one JSON summary object last")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    from wm_agents.imagination.cli import add_agent_options

    add_agent_options(p)  # --agent mpc|policy|hybrid|dqn and its options
    from wm_agents.latent.cli import add_pixel_options

    add_pixel_options(p)  # --obs state|pixels


def _run_gym(args: argparse.Namespace) -> int:
    if args.eval_workers != 1 and (args.obs == "pixels" or args.agent != "mpc"):
        raise SystemExit(
            "--eval-workers splits the MPC agent's batched evaluation; "
            f"--agent {args.agent} --obs {args.obs} evaluates in this process (drop the option)"
        )
    if args.explore is not None and (args.obs == "pixels" or args.agent != "mpc"):
        raise ValueError(
            f"--explore is the vector MPC agent's (--agent mpc --obs state), not --agent "
            f"{args.agent} --obs {args.obs}'s"
        )
    if args.end_reward is not None and args.obs == "pixels":
        raise ValueError("--end-reward is the vector model's (--obs state), not --obs pixels'")
    if args.obs == "pixels":
        from wm_agents.latent.cli import run_pixels_from_args

        return run_pixels_from_args(args)
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
        explore=args.explore,
        end_reward=args.end_reward,
        stop_when_solved=args.stop_when_solved or None,
        threads=args.threads,
        eval_workers=args.eval_workers,
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


def _configure_cartpole(p: argparse.ArgumentParser, rest: Sequence[str] | None) -> None:
    del rest
    _add_gym_options(p)
    p.set_defaults(func=_run_gym, env="CartPole-v1")


def _configure_gym(p: argparse.ArgumentParser, rest: Sequence[str] | None) -> None:
    del rest
    p.add_argument("--env", required=True, help="gymnasium env id, e.g. Pendulum-v1")
    _add_gym_options(p)
    p.set_defaults(func=_run_gym)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser.  With ``argv`` only the command it names gets its options (the others are
    listed with their help); without, every command is fully configured."""
    parser = argparse.ArgumentParser(
        prog="wm-agents",
        description="LangGraph agents that imagine before they act.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    chosen = None
    rest: Sequence[str] | None = None
    if argv is not None:
        # The command is the first word that is not an option (top-level has only -h).
        words = [i for i, a in enumerate(argv) if not a.startswith("-")]
        chosen = argv[words[0]] if words else ""
        rest = argv[words[0] + 1 :] if words else []
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.description or command.help)
        if chosen is None or chosen == name:
            load(command.configure)(p, rest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wm-agents`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as err:
        # Bad input (unsupported env space, bad option values): a clear message, no traceback.
        print(f"error: {err}", file=sys.stderr)
        return 2
