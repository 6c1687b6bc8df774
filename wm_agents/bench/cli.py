"""``wm-agents bench ...``: every benchmark from the command line.

wm-agents bench plan --population 500 --horizon 15 --ensemble 5 --hidden 200 --layers 3 \
    --iterations 5 --particles 1 --threads 1 [--dtype bfloat16] [--seed-loop] --json
wm-agents bench plan-table            (the whole planning-speed table -> JSON)
wm-agents bench sample-efficiency run --method planner|dqn|seed_recipe [--seeds ...]
wm-agents bench sample-efficiency report
wm-agents bench seed-recipe-why       (what the seed's model predicts, and why it fails)
wm-agents bench graph [--seeds 0 1 2]
wm-agents bench uncertainty [--seeds 0 1 2] [--variants E5:0 E5:1 E1:0]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_bench_subparser"]


def add_bench_subparser(subparsers: Any) -> None:
    """Add the ``bench`` command and its sub-commands; each sets ``func(args) -> int``."""
    from wm_agents.bench import graph_overhead, planning_speed, sample_efficiency, uncertainty

    bench = subparsers.add_parser("bench", help="side-by-side benchmarks (see BENCHMARKS.md)")
    sub = bench.add_subparsers(dest="bench_command", required=True)

    plan = sub.add_parser("plan", help="ms per CEM decision for one configuration")
    planning_speed.add_arguments(plan)
    plan.set_defaults(func=planning_speed.run_cli)

    table = sub.add_parser("plan-table", help="the whole planning-speed table (JSON file)")
    planning_speed.add_table_arguments(table)
    table.set_defaults(func=planning_speed.run_table)

    se = sub.add_parser("sample-efficiency", help="planner vs. SB3 DQN vs. the seed's recipe")
    sample_efficiency.add_arguments(se)
    se.set_defaults(func=sample_efficiency.run_cli)

    why = sub.add_parser("seed-recipe-why", help="why the seed's recipe scores ~9 on CartPole")
    why.add_argument("--seed", type=int, default=0)
    why.set_defaults(func=_seed_recipe_why)

    graph = sub.add_parser("graph", help="planning graph vs. bare loop, with/without SQLite")
    graph_overhead.add_arguments(graph)
    graph.set_defaults(func=graph_overhead.run_cli)

    unc = sub.add_parser("uncertainty", help="risk weight lambda and ensemble size")
    uncertainty.add_arguments(unc)
    unc.set_defaults(func=uncertainty.run_cli)


def _seed_recipe_why(args: argparse.Namespace) -> int:
    import torch

    from wm_agents.bench.seed_recipe import diagnose

    torch.set_num_threads(1)
    print(json.dumps(diagnose(args.seed)))
    return 0
