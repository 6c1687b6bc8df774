"""``--agent policy|mpc|hybrid|dqn`` for ``wm-agents gym`` / ``wm-agents cartpole``.

``add_agent_options`` adds the options to a gym sub-command's parser; ``run_agent_from_args``
runs :func:`run_imagination_gym` from the parsed options (the ``gym`` command's other options
keep their meaning) and prints the summary table, then with ``--json`` one JSON object last
(the ``gym`` fields plus ``agent``, ``act_ms_median``, ``action_sources``, ``rollouts``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_agent_options", "run_agent_from_args"]


def add_agent_options(p: argparse.ArgumentParser) -> None:
    """Add ``--agent`` and the imagination options to a gym sub-command's parser."""
    p.add_argument(
        "--agent",
        choices=["mpc", "policy", "hybrid", "dqn"],
        default="mpc",
        help="mpc: plan every step (default); policy: a DQN/SAC policy trained in imagination; "
        "hybrid: the policy, with MPC when the ensemble disagrees about its action; "
        "dqn: the model-free baseline",
    )
    p.add_argument(
        "--hybrid-threshold",
        type=float,
        default=None,
        help="disagreement (in typical one-step changes) above which hybrid plans with MPC "
        "(default: calibrated from the real transitions, see --hybrid-quantile)",
    )
    p.add_argument(
        "--hybrid-quantile",
        type=float,
        default=None,
        help="quantile of the members' disagreement on real transitions used as the hybrid's "
        "threshold after each model refit (default 0.99)",
    )
    p.add_argument(
        "--policy-after",
        type=int,
        default=None,
        help="real steps before the hybrid agent considers trusting its policy (default 400)",
    )
    p.add_argument(
        "--trust-return",
        type=float,
        default=None,
        help="imagined return the policy must reach before the hybrid agent lets it act "
        "(default: the env's reward threshold)",
    )
    p.add_argument("--rollout-length", type=int, default=None, help="imagined steps per branch")
    p.add_argument(
        "--real-ratio", type=float, default=None, help="fraction of real rows per policy batch"
    )
    p.add_argument(
        "--disagreement-threshold",
        type=float,
        default=None,
        help="imagined branches stop before a step whose member disagreement exceeds this",
    )
    p.add_argument(
        "--branch-quantile",
        type=float,
        default=None,
        help="raise the branch threshold to this quantile of the members' disagreement on real "
        "transitions when that is larger (off by default: it hurt the CartPole DQN)",
    )


def run_agent_from_args(args: argparse.Namespace) -> int:
    """Run the chosen agent from parsed ``gym`` options; print a table and, with ``--json``,
    one JSON summary object last."""
    from dataclasses import replace

    from rich.console import Console

    from wm_agents.imagination.mbpo import ImaginationConfig
    from wm_agents.imagination.runner import run_imagination_gym
    from wm_agents.reporting import summary_table
    from wm_agents.runner import default_config

    config = default_config(
        args.env,
        threads=args.threads,
        warmup_steps=args.warmup_steps,
        horizon=args.horizon,
        population=args.population,
        planner=args.planner,
        risk_weight=args.risk_weight,
        end_reward=args.end_reward,
    )
    icfg = ImaginationConfig(learning_starts=config.warmup_steps)
    overrides: dict[str, Any] = {
        "rollout_length": args.rollout_length,
        "real_ratio": args.real_ratio,
        "disagreement_threshold": args.disagreement_threshold,
        "branch_quantile": args.branch_quantile,
    }
    icfg = replace(icfg, **{k: v for k, v in overrides.items() if v is not None})
    kwargs: dict[str, Any] = {}
    if args.hybrid_threshold is not None:
        kwargs["hybrid_threshold"] = args.hybrid_threshold
    if args.hybrid_quantile is not None:
        kwargs["hybrid_quantile"] = args.hybrid_quantile
    if args.policy_after is not None:
        kwargs["policy_after"] = args.policy_after
    if args.trust_return is not None:
        kwargs["trust_return"] = args.trust_return
    if args.eval_every:
        kwargs["eval_every"] = args.eval_every
    if args.eval_episodes is not None:
        kwargs["eval_episodes"] = args.eval_episodes
    result = run_imagination_gym(
        args.env,
        agent=args.agent,
        seed=args.seed,
        max_steps=args.max_steps,
        config=config,
        imagination=icfg,
        stop_when_solved=args.stop_when_solved,
        progress=not args.quiet,
        out=args.out,
        **kwargs,
    )
    console = Console(stderr=args.json)
    console.print(summary_table(result))
    s = result.summary()
    console.print(
        f"agent {s['agent']}: {s['act_ms_median']} ms per action (last evaluation), "
        f"actions by source {s['action_sources']}"
    )
    if result.plot_path:
        # Paths are user input: printed as text, never as rich markup.
        console.print(
            f"learning curve: {result.plot_path}\nmodel: {result.model_path}", markup=False
        )
    if args.json:
        print(json.dumps(s))
    return 0
