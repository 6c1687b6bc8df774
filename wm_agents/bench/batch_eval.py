"""``wm-agents bench batch-eval``: evaluation episodes one after another through the planning
graph against side by side on a vector env, planned in one batched pass; with ``--agents``,
several agents' evaluations one agent after another against all together; with ``--workers N``,
the batched evaluation in this process against it split across ``N`` forked worker processes
(:func:`~wm_agents.parallel_eval.evaluate_parallel`: wall time on several cores).

Both evaluate the CartPole MPC agent of ``run_gym`` (the default config; its evaluation
controller, seed ``seed + 7777``) on the same model: a ``model.pt`` written by ``wm-agents
cartpole --out`` (a solved agent: every episode 500 steps), or by default a model fitted to
``--warmup-steps`` random steps (an early evaluation: episodes end after ~60-250 steps, so the
batch thins out as they end).  The two ways alternate, ``--reps`` times each, so a load spike on
a shared machine hits both alike; the JSON has every time, the medians, and the per-rep ratio
(sequential / batched, each pair measured back to back).  Every rep also checks that both gave
the same returns (``same_returns``): the speed-up is for the same decisions.

``--agents 1,2,5``: a sweep's evaluation.  Agents of seeds ``seed``, ``seed + 1``, ... (each
its own model fitted to ``--warmup-steps`` random steps of its own seed, its own evaluation
seeds) are evaluated one after another, each with
:func:`~wm_agents.batch_eval.evaluate_batched` (``separate``), against all at once with
:func:`~wm_agents.batch_eval_agents.evaluate_agents_batched` (``together``), for each number
of agents; the same alternation, ratios and return check.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from wm_agents.bench.common import RESULTS_DIR, code_state, machine_info, write_json
from wm_agents.outputs import check_output_file

__all__ = ["add_arguments", "measure", "measure_agents", "run_cli"]

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
    p.add_argument(
        "--agents",
        type=_counts,
        default=None,
        metavar="S1,S2,...",
        help="several agents' evaluations, one after another vs. together, for each number of "
        "agents (e.g. 1,2,5); models fitted to --warmup-steps random steps",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="compare the batched evaluation in this process against it split across this "
        "many forked worker processes (wm_agents.parallel_eval) instead of against the "
        "sequential one (default 1: sequential vs batched)",
    )
    p.add_argument("--warmup-steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0, help="the agent's seed (evaluation seeds too)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "batch_eval.json")


def _counts(text: str) -> list[int]:
    """``"1,2,5"`` -> ``[1, 2, 5]`` (numbers of agents, each >= 1)."""
    try:
        counts = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,2,5, got {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"numbers of agents must be >= 1, got {text!r}")
    return counts


def _eval_agent(seed: int, model_path: Path | None, warmup_steps: int) -> Any:
    """``run_gym``'s evaluation controller (seed ``seed + 7777``) on a model loaded from
    ``model_path`` or fitted to ``warmup_steps`` random steps of ``seed``."""
    from wm_agents.envs.gym_actuator import GymActuator
    from wm_agents.envs.make import make_env
    from wm_agents.neural import EnsembleDynamicsModel
    from wm_agents.neural.dyna import DynaLearner
    from wm_agents.run_loop import random_warmup
    from wm_agents.runner import build_agent, build_controller, default_config

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
    actuator.close()
    return build_controller(model, cfg, seed + 7_777)  # run_gym's evaluation twin


def _eval_seed(seed: int) -> int:
    """The agent of ``seed``'s first evaluation env seed (as ``run_gym`` numbers them)."""
    return 1_000_000 + seed * 1_000


def _alternate(
    ways: dict[str, Callable[[], tuple[Any, int]]], reps: int
) -> tuple[dict[str, Any], Any]:
    """Run the two ways (each ``() -> (returns, steps)``) in turn, ``reps`` times; the summary
    (steps, times, medians, ratios of the first way's time to the second's, whether they
    returned the same) and the second way's last returns."""
    times: dict[str, list[float]] = {name: [] for name in ways}
    results: dict[str, list[Any]] = {name: [] for name in ways}
    steps = 0
    for _ in range(reps):
        for name, fn in ways.items():
            t0 = time.perf_counter()
            result, steps = fn()
            times[name].append(time.perf_counter() - t0)
            results[name].append(result)
    slow, fast = ways
    ratios = [s / b for s, b in zip(times[slow], times[fast], strict=True)]
    summary = {
        "steps": steps,
        "seconds": {k: [round(t, 3) for t in v] for k, v in times.items()},
        "median_seconds": {k: round(statistics.median(v), 3) for k, v in times.items()},
        "ms_per_step_median": {
            k: round(statistics.median(v) / max(steps, 1) * 1e3, 3) for k, v in times.items()
        },
        "speedup_per_rep": [round(r, 2) for r in ratios],
        "speedup_median": round(statistics.median(ratios), 2),
        "same_returns": results[slow] == results[fast],
    }
    return summary, results[fast][-1]


def measure(
    *,
    episodes: int,
    reps: int,
    seed: int,
    model_path: Path | None,
    warmup_steps: int,
    workers: int = 1,
) -> dict[str, Any]:
    """Time ``reps`` sequential and ``reps`` batched evaluations of ``episodes`` episodes,
    alternating; with ``workers > 1``, batched in this process against batched in ``workers``
    forked processes (:func:`~wm_agents.parallel_eval.evaluate_parallel`).  See the module
    doc."""
    import torch

    from wm_agents.batch_eval import evaluate_batched
    from wm_agents.envs.gym_actuator import GymActuator
    from wm_agents.envs.make import make_env
    from wm_agents.graph.env_graph import create_env_planning_graph
    from wm_agents.parallel_eval import evaluate_parallel
    from wm_agents.run_loop import evaluate
    from wm_agents.runner import default_config

    torch.set_num_threads(1)
    controller = _eval_agent(seed, model_path, warmup_steps)
    graph = create_env_planning_graph(fuse=default_config(ENV_ID).fuse_graph).compile()
    actuator = GymActuator(make_env(ENV_ID))

    def sequential() -> tuple[list[float], int]:
        rets, recs = evaluate(graph, actuator, controller, episodes, seed=_eval_seed(seed))
        return rets, len(recs)

    def batched() -> tuple[list[float], int]:
        rets, recs = evaluate_batched(
            lambda: make_env(ENV_ID), controller, episodes, seed=_eval_seed(seed)
        )
        return rets, len(recs)

    def parallel() -> tuple[list[float], int]:
        rets, recs = evaluate_parallel(
            lambda: make_env(ENV_ID), controller, episodes, seed=_eval_seed(seed), workers=workers
        )
        return rets, len(recs)

    ways = (
        {"batched": batched, f"{workers} workers": parallel}
        if workers > 1
        else {"sequential": sequential, "batched": batched}
    )
    summary, returns = _alternate(ways, reps)
    actuator.close()
    model = str(model_path) if model_path else f"fitted to {warmup_steps} random steps"
    return {"episodes": episodes, "workers": workers, "model": model, **summary, "returns": returns}


def measure_agents(
    *, agents: Sequence[int], episodes: int, reps: int, seed: int, warmup_steps: int
) -> dict[str, Any]:
    """For each number of agents ``S`` in ``agents``: time ``reps`` evaluations of ``S``
    agents one after another against ``reps`` of all together, alternating; see the module
    doc."""
    import torch

    from wm_agents.batch_eval import evaluate_batched
    from wm_agents.batch_eval_agents import evaluate_agents_batched
    from wm_agents.envs.make import make_env

    torch.set_num_threads(1)
    controllers = [_eval_agent(seed + a, None, warmup_steps) for a in range(max(agents))]
    seeds = [_eval_seed(seed + a) for a in range(max(agents))]

    def env_fn() -> Any:
        return make_env(ENV_ID)

    rows = []
    for n in agents:

        def separate(n: int = n) -> tuple[list[list[float]], int]:
            done = [
                evaluate_batched(env_fn, c, episodes, seed=s)
                for c, s in zip(controllers[:n], seeds[:n], strict=True)
            ]
            return [rets for rets, _ in done], sum(len(recs) for _, recs in done)

        def together(n: int = n) -> tuple[list[list[float]], int]:
            done = evaluate_agents_batched(env_fn, controllers[:n], episodes, seeds=seeds[:n])
            return [rets for rets, _ in done], sum(len(recs) for _, recs in done)

        summary, returns = _alternate({"separate": separate, "together": together}, reps)
        rows.append({"agents": n, **summary, "returns": returns})
    return {
        "episodes": episodes,
        "model": f"fitted to {warmup_steps} random steps, one per agent (seeds {seed}..)",
        "by_agents": rows,
    }


def run_cli(args: argparse.Namespace) -> int:
    if args.episodes < 1 or args.reps < 1:
        raise ValueError("--episodes and --reps must be >= 1")
    if args.agents and args.model is not None:
        raise ValueError("--agents fits one model per agent: it takes no --model")
    if args.workers < 1 or (args.agents and args.workers != 1):
        raise ValueError("--workers must be >= 1, and --agents compares on one process only")
    out = check_output_file(args.out)
    common = dict(episodes=args.episodes, reps=args.reps, seed=args.seed)
    if args.agents:
        result = measure_agents(agents=args.agents, warmup_steps=args.warmup_steps, **common)
        lines = [
            _summary_line(f"{r['agents']} agents x {args.episodes} episodes", r, args.reps)
            for r in result["by_agents"]
        ]
    else:
        result = measure(
            model_path=args.model, warmup_steps=args.warmup_steps, workers=args.workers, **common
        )
        lines = [_summary_line(f"{args.episodes} episodes", result, args.reps)]
    payload = {"benchmark": "batch-eval", **result, "machine": machine_info(), **code_state()}
    written = write_json(out, payload)
    print("\n".join([*lines, f"written to {written}"]))
    return 0


def _summary_line(what: str, r: dict[str, Any], reps: int) -> str:
    """One comparison of :func:`_alternate` in a line."""
    slow, fast = r["median_seconds"]
    return (
        f"{what} ({r['steps']} steps): {slow} {r['median_seconds'][slow]:.1f} s, {fast} "
        f"{r['median_seconds'][fast]:.1f} s (medians of {reps}); speed-up "
        f"{r['speedup_median']:.2f}x (per rep {r['speedup_per_rep']}); same returns: "
        f"{r['same_returns']}"
    )
