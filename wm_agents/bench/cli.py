"""``wm-agents bench ...``: every benchmark from the command line (also
``python -m wm_agents bench ...``); numbers and the exact commands are in BENCHMARKS.md.

wm-agents bench plan --population 500 --horizon 15 --ensemble 5 --hidden 200 --layers 3 \
    --iterations 5 --particles 1 --threads 1 [--dtype bfloat16] [--seed-loop] --json
wm-agents bench plan-table            (the whole planning-speed table -> JSON)
wm-agents bench sample-efficiency run --method planner|dqn|seed_recipe [--seeds ...]
wm-agents bench sample-efficiency report
wm-agents bench suite [run|report] [--envs ...] [--seeds ...] [--methods planner model-free ...]
wm-agents bench tune [--env ...] [--agent ...] [--seeds ...] [--grid FIELD=V1,V2] [--scheduler asha]
wm-agents bench seed-recipe-why       (what the seed's model predicts, and why it fails)
wm-agents bench graph [--seeds 0 1 2]
wm-agents bench uncertainty [--seeds 0 1 2] [--variants E5:0 E5:1 E1:0]
wm-agents bench llm-env [--no-llm] [--held-out 100] [--episodes 2] [--max-steps 50]
wm-agents bench dyna-q tabular|cartpole|cartpole-report|pendulum|pendulum-report
wm-agents bench simulate-cost [--big]
wm-agents bench learned-outcomes data|llm|run|report
wm-agents bench llm-calibration|llm-concurrency [--out FILE]
wm-agents bench llm-latency [--base OLD_CHECKOUT] [--out FILE]
wm-agents bench startup [--checkout DIR]
wm-agents bench pixel-baseline [--env CartPole-v1|Pendulum-v1] [--seeds ...] [--steps 10000]
wm-agents bench pixel-report --latent RUN/result.json ... --baseline BASELINE.json ...
wm-agents bench batch-eval [--episodes 10] [--reps 3] [--model RUN/model.pt | --agents 1,2,5]

``sample-efficiency run``, ``suite``, ``uncertainty`` and ``dyna-q cartpole|pendulum`` take
``--workers N`` / ``--ray [ADDRESS]`` to run their seeds x settings as Ray tasks
(``wm_agents.bench.sweep``); without them everything runs in this process and Ray is not needed.

Results go to ``./benchmarks/results`` under the current folder unless ``--out`` /
``--results`` says otherwise; each benchmark checks that it can write there before it starts.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

__all__ = ["BENCHMARKS", "configure"]


BENCHMARKS: dict[str, tuple[str, str, str]] = {
    "plan": (
        "ms per CEM decision for one configuration",
        "wm_agents.bench.planning_speed:add_arguments",
        "wm_agents.bench.planning_speed:run_cli",
    ),
    "plan-table": (
        "the whole planning-speed table (JSON file)",
        "wm_agents.bench.planning_speed:add_table_arguments",
        "wm_agents.bench.planning_speed:run_table",
    ),
    "sample-efficiency": (
        "planner vs. SB3 DQN vs. the seed's recipe",
        "wm_agents.bench.sample_efficiency:add_arguments",
        "wm_agents.bench.sample_efficiency:run_cli",
    ),
    "suite": (
        "real steps and CPU-seconds to each env's threshold: our agents vs. the zoo's SB3 agent",
        "wm_agents.bench.suite:add_arguments",
        "wm_agents.bench.suite:run_cli",
    ),
    "seed-recipe-why": (
        "why the seed's recipe scores ~9 on CartPole",
        "wm_agents.bench.cli:_seed_recipe_arguments",
        "wm_agents.bench.cli:_seed_recipe_why",
    ),
    "tune": (
        "hyper-parameter search on Ray Tune, every evaluation reported (ASHA / stoppers)",
        "wm_agents.bench.tuning:add_arguments",
        "wm_agents.bench.tuning:run_cli",
    ),
    "graph": (
        "planning graph vs. bare loop, with/without SQLite",
        "wm_agents.bench.graph_overhead:add_arguments",
        "wm_agents.bench.graph_overhead:run_cli",
    ),
    "uncertainty": (
        "risk weight lambda and ensemble size",
        "wm_agents.bench.uncertainty:add_arguments",
        "wm_agents.bench.uncertainty:run_cli",
    ),
    "llm-env": (
        "the LLM as a CartPole world model against the ensemble (one-step, rollout, planning)",
        "wm_agents.bench.llm_env:add_arguments",
        "wm_agents.bench.llm_env:run_cli",
    ),
    "dyna-q": (
        "tabular Dyna-Q against k; policy / MPC / hybrid agents on CartPole and Pendulum",
        "wm_agents.bench.dyna_q:add_arguments",
        "wm_agents.bench.dyna_q:run_cli",
    ),
    "simulate-cost": (
        "what simulating a tool call on a shadow copy costs, against workspace size",
        "wm_agents.bench.simulate_cost:add_arguments",
        "wm_agents.bench.simulate_cost:run_cli",
    ),
    "learned-outcomes": (
        "the learned outcome model vs. the LLM and experience on 9,000 real tool calls",
        "wm_agents.bench.learned_outcomes:add_arguments",
        "wm_agents.bench.learned_outcomes:run_cli",
    ),
    "llm-calibration": (
        "does experience make the LLM outcome predictor right more often (real tool calls)",
        "wm_agents.bench.llm_calibration:add_arguments",
        "wm_agents.bench.llm_calibration:run_cli",
    ),
    "llm-concurrency": (
        "wall time of imagining 8 tool calls x 3 samples, concurrently vs. one at a time",
        "wm_agents.bench.llm_concurrency:add_arguments",
        "wm_agents.bench.llm_concurrency:run_cli",
    ),
    "llm-latency": (
        "ms per imagined tool call on the embedded LLM, against an older checkout",
        "wm_agents.bench.llm_latency:add_arguments",
        "wm_agents.bench.llm_latency:run_cli",
    ),
    "batch-eval": (
        "evaluation episodes one at a time through the graph vs. batched on a vector env "
        "(--agents: several agents' one after another vs. together)",
        "wm_agents.bench.batch_eval:add_arguments",
        "wm_agents.bench.batch_eval:run_cli",
    ),
    "pixel-baseline": (
        "SB3 with a CnnPolicy on the latent agent's frames (CartPole DQN, Pendulum SAC)",
        "wm_agents.bench.pixel_baseline:add_arguments",
        "wm_agents.bench.pixel_baseline:run_cli",
    ),
    "pixel-report": (
        "the latent agent from pixels beside the model-free agent: one table, one PNG",
        "wm_agents.bench.pixel_report:add_arguments",
        "wm_agents.bench.pixel_report:run_cli",
    ),
    "startup": (
        "import and --help start-up time (optionally against another checkout)",
        "wm_agents.bench.startup:add_arguments",
        "wm_agents.bench.startup:run_cli",
    ),
}
"""Each benchmark: help, ``module:function`` adding its options, ``module:function`` running
it.  Only the chosen one's module is imported (they import torch and the agents)."""


def configure(bench: argparse.ArgumentParser, rest: Sequence[str] | None = None) -> None:
    """Add the benchmarks as sub-commands of ``bench`` (only the one named first in ``rest``
    gets its options; ``rest=None``: all of them)."""
    from wm_agents.cli import load

    sub = bench.add_subparsers(dest="bench_command", required=True)
    words = [a for a in rest or [] if not a.startswith("-")]
    chosen = None if rest is None else (words[0] if words else "")
    for name, (help_text, add_arguments, run) in BENCHMARKS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if chosen is None or chosen == name:
            load(add_arguments)(p)
            p.set_defaults(func=load(run))


def _seed_recipe_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0)


def _seed_recipe_why(args: argparse.Namespace) -> int:
    import torch

    from wm_agents.bench.seed_recipe import diagnose

    torch.set_num_threads(1)
    print(json.dumps(diagnose(args.seed)))
    return 0
