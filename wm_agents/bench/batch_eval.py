"""``wm-agents bench batch-eval``: evaluation episodes one after another through the planning
graph against side by side on a vector env, planned in one batched pass.

Both evaluate the CartPole MPC agent of ``run_gym`` (the default config; its evaluation
controller, seed ``seed + 7777``) on the same model: a ``model.pt`` written by ``wm-agents
cartpole --out`` (a solved agent: every episode 500 steps), or by default a model fitted to
``--warmup-steps`` random steps (an early evaluation: episodes end after ~60-250 steps, so the
batch thins out as they end).  The two ways alternate, ``--reps`` times each, so a load spike on
a shared machine hits both alike; the JSON has every time, the medians, and the per-rep ratio
(sequential / batched, each pair measured back to back).  Every rep also checks that both gave
the same returns (``same_returns``): the speed-up is for the same decisions.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from wm_agents.bench.common import RESULTS_DIR, code_state, machine_info, write_json
from wm_agents.outputs import check_output_file

__all__ = ["add_arguments", "measure", "run_cli"]

ENV_ID = "CartPole-v1"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--episodes", type=int, default=10, help="episodes per evaluation (10)")
    p.add_argument("--reps", type=int, default=3, help="evaluations of each kind (3)")
    p.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model.pt of a `wm-agents cartpole --out DIR` run (default: a model fitted to "
        "--warmup-steps random steps)",
    )
    p.add_argument("--warmup-steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0, help="the agent's seed (evaluation seeds too)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "batch_eval.json")


def measure(
    *, episodes: int, reps: int, seed: int, model_path: Path | None, warmup_steps: int
) -> dict[str, Any]:
    """Time ``reps`` sequential and ``reps`` batched evaluations of ``episodes`` episodes,
    alternating; see the module doc."""
    import torch

    from wm_agents.batch_eval import evaluate_batched
    from wm_agents.envs.gym_actuator import GymActuator
    from wm_agents.envs.make import make_env
    from wm_agents.graph.env_graph import create_env_planning_graph
    from wm_agents.neural import EnsembleDynamicsModel
    from wm_agents.neural.dyna import DynaLearner
    from wm_agents.run_loop import evaluate, random_warmup
    from wm_agents.runner import build_agent, build_controller, default_config

    torch.set_num_threads(1)
    cfg = default_config(ENV_ID)
    actuator = GymActuator(make_env(ENV_ID))
    model, _ = build_agent(actuator, cfg, seed)
    if model_path is not None:
        model = EnsembleDynamicsModel.load(
            model_path, expect_obs_dim=actuator.obs_dim, expect_action_spec=actuator.action_spec
        )
    else:
        learner = DynaLearner(model, 10**9, cfg.fit, budget=10**9)
        random_warmup(actuator, learner, warmup_steps, seed=seed)
        learner.finish_warmup()
    controller = build_controller(model, cfg, seed + 7_777)  # run_gym's evaluation twin
    graph = create_env_planning_graph(fuse=cfg.fuse_graph).compile()
    eval_seed = 1_000_000 + seed * 1_000

    def sequential() -> tuple[list[float], int]:
        rets, recs = evaluate(graph, actuator, controller, episodes, seed=eval_seed)
        return rets, len(recs)

    def batched() -> tuple[list[float], int]:
        rets, recs = evaluate_batched(
            lambda: make_env(ENV_ID), controller, episodes, seed=eval_seed
        )
        return rets, len(recs)

    times: dict[str, list[float]] = {"sequential": [], "batched": []}
    returns: dict[str, list[list[float]]] = {"sequential": [], "batched": []}
    steps = 0
    for _ in range(reps):
        for name, fn in (("sequential", sequential), ("batched", batched)):
            t0 = time.perf_counter()
            rets, steps = fn()
            times[name].append(time.perf_counter() - t0)
            returns[name].append(rets)
    actuator.close()
    ratios = [s / b for s, b in zip(times["sequential"], times["batched"], strict=True)]
    return {
        "episodes": episodes,
        "steps": steps,
        "model": str(model_path) if model_path else f"fitted to {warmup_steps} random steps",
        "seconds": {k: [round(t, 3) for t in v] for k, v in times.items()},
        "median_seconds": {k: round(statistics.median(v), 3) for k, v in times.items()},
        "ms_per_step_median": {
            k: round(statistics.median(v) / max(steps, 1) * 1e3, 3) for k, v in times.items()
        },
        "speedup_per_rep": [round(r, 2) for r in ratios],
        "speedup_median": round(statistics.median(ratios), 2),
        "returns": returns["batched"][-1],
        "same_returns": returns["sequential"] == returns["batched"],
    }


def run_cli(args: argparse.Namespace) -> int:
    if args.episodes < 1 or args.reps < 1:
        raise ValueError("--episodes and --reps must be >= 1")
    out = check_output_file(args.out)
    result = measure(
        episodes=args.episodes,
        reps=args.reps,
        seed=args.seed,
        model_path=args.model,
        warmup_steps=args.warmup_steps,
    )
    payload = {"benchmark": "batch-eval", **result, "machine": machine_info(), **code_state()}
    written = write_json(out, payload)
    print(
        f"{args.episodes} episodes ({result['steps']} steps): sequential "
        f"{result['median_seconds']['sequential']:.1f} s, batched "
        f"{result['median_seconds']['batched']:.1f} s (medians of {args.reps}); speed-up "
        f"{result['speedup_median']:.2f}x (per rep {result['speedup_per_rep']}); same returns: "
        f"{result['same_returns']}; written to {written}"
    )
    return 0
