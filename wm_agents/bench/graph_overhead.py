"""Graph overhead: one CartPole-v1 episode through the planning graph vs. a bare Python loop.

The same controller (model, CEM planner, gate, warm starts) plays the same episode seeds three
ways, interleaved so machine noise hits all of them alike:

* ``bare``: ``controller.act(obs)`` then ``actuator.step`` in a plain ``while`` loop;
* ``graph``: ``create_env_planning_graph().compile()`` (start -> propose -> imagine -> decide ->
  act -> learn per step, nothing learned);
* ``graph_sqlite``: the same graph compiled with a ``SqliteSaver`` (one checkpoint per node
  execution, on a temporary file, with the library's serializer);
* ``fused`` / ``fused_sqlite``: ``create_env_planning_graph(fuse=True)``, each real step one
  node (start -> step -> step ...), without and with the checkpointer (one checkpoint per step).

All paths make the same decisions (checked: equal episode returns and step counts), so the
difference in wall time per step is what the graph (and the checkpointer) costs.  Each variant
first runs one untimed episode (one-off costs); the overhead is the median over episodes of
each graph episode against the bare episode of the same seed (paired).  The agent
first learns for ``--train-steps`` real steps with ``run_gym`` and
``wm_agents.runner.default_config("CartPole-v1")`` (so episodes are full length), and the planner
generator is reseeded per episode.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from wm_agents.bench.common import RESULTS_DIR, machine_info, write_json
from wm_agents.outputs import check_output_file

__all__ = ["add_arguments", "measure_overhead", "run_cli"]


def _agent(seed: int, train_steps: int, overrides: dict[str, Any]) -> tuple[Any, Any, Any]:
    """A controller whose model learned CartPole the normal way (``run_gym``, no evaluation)."""
    from dataclasses import replace

    from wm_agents.envs.gym_actuator import GymActuator
    from wm_agents.neural.ensemble import EnsembleDynamicsModel
    from wm_agents.runner import build_agent, default_config, run_gym

    cfg = default_config("CartPole-v1", **overrides)
    learn_cfg = replace(
        cfg, max_steps=train_steps, eval_episodes=0, threads=torch.get_num_threads()
    )
    with tempfile.TemporaryDirectory() as tmp:
        run_gym("CartPole-v1", seed=seed, config=learn_cfg, out=tmp, progress=False)
        trained = EnsembleDynamicsModel.load(Path(tmp) / "model.pt")
    actuator = GymActuator(gym.make("CartPole-v1"))
    model, controller = build_agent(actuator, cfg, seed)
    model.load_state_dict(trained.state_dict())
    return actuator, controller, cfg


def bare_episode(actuator: Any, controller: Any, seed: int, limit: int) -> tuple[float, int]:
    """The planner in a plain loop: returns (episode return, steps)."""
    controller.reset()
    obs = actuator.reset(seed=seed)
    total, steps, done = 0.0, 0, False
    while not done and steps < limit:
        decision = controller.act(obs)
        res = actuator.step(decision.action)
        total += res.reward
        steps += 1
        obs = res.obs
        done = res.terminated or res.truncated
    return total, steps


def graph_episode(
    graph: Any, actuator: Any, controller: Any, seed: int, limit: int, max_replans: int, thread: str
) -> tuple[float, int]:
    """The planner through the compiled planning graph: returns (episode return, steps)."""
    from wm_agents.graph.env_graph import EnvPlanningContext, episode_config

    ctx = EnvPlanningContext(actuator=actuator, controller=controller, max_steps=limit)
    config = episode_config(limit, max_replans, configurable={"thread_id": thread})
    final = graph.invoke({"seed": seed}, context=ctx, config=config)
    return float(final["episode_return"]), int(final["step"])


def measure_overhead(
    *,
    seeds: Sequence[int] = (0, 1, 2),
    train_steps: int = 1000,
    limit: int = 500,
    repeats: int = 1,
    **overrides: Any,
) -> dict[str, Any]:
    """Seconds per episode and per step for bare / graph / graph_sqlite (see module doc)."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    from wm_agents.graph.env_graph import create_env_planning_graph
    from wm_agents.serialization import checkpoint_serializer

    actuator, controller, cfg = _agent(0, train_steps, overrides)
    graph = create_env_planning_graph().compile()
    tmp = tempfile.TemporaryDirectory()
    conn = sqlite3.connect(str(Path(tmp.name) / "ckpt.sqlite"), check_same_thread=False)
    saver = SqliteSaver(conn, serde=checkpoint_serializer())
    graph_sql = create_env_planning_graph().compile(checkpointer=saver)
    graphs = {
        "graph": graph,
        "graph_sqlite": graph_sql,
        "fused": create_env_planning_graph(fuse=True).compile(),
        "fused_sqlite": create_env_planning_graph(fuse=True).compile(checkpointer=saver),
    }
    times: dict[str, list[float]] = {"bare": [], **{k: [] for k in graphs}}
    per_step: dict[str, list[float]] = {k: [] for k in times}
    episodes = []
    # One untimed episode per variant first: the first run of anything pays one-off costs
    # (allocations, oneDNN kernel caches, LangGraph's compiled channels, SQLite's file).
    for name in times:
        controller.reset()
        if name == "bare":
            bare_episode(actuator, controller, 999, min(limit, 50))
        else:
            graph_episode(
                graphs[name],
                actuator,
                controller,
                999,
                min(limit, 50),
                cfg.max_replans,
                f"warm-up-{name}",  # its own thread: the two SQLite graphs share one saver
            )
    for rep in range(repeats):
        for seed in seeds:
            row: dict[str, Any] = {"seed": seed, "repeat": rep}
            for name in times:  # interleaved: the same noise for all variants
                controller.reset()
                # The same planner randomness for every variant: the same decisions.
                controller.planner.generator.manual_seed(seed)
                t0 = time.perf_counter()
                if name == "bare":
                    ret, steps = bare_episode(actuator, controller, 1_000_000 + seed, limit)
                else:
                    ret, steps = graph_episode(
                        graphs[name],
                        actuator,
                        controller,
                        1_000_000 + seed,
                        limit,
                        cfg.max_replans,
                        f"{name}-{seed}-{rep}",
                    )
                dt = time.perf_counter() - t0
                times[name].append(dt)
                per_step[name].append(dt / max(steps, 1) * 1e3)
                row[name] = {"return": ret, "steps": steps, "seconds": round(dt, 3)}
            episodes.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    conn.close()
    tmp.cleanup()
    same = all(len({(r[k]["steps"], r[k]["return"]) for k in times}) == 1 for r in episodes)

    # Paired: each graph episode against the bare episode of the same seed and repeat, then
    # the median over episodes (a single disturbed episode cannot swing it).
    def paired(k: str, f: Any) -> float:
        return statistics.median(f(r[k]["seconds"], r["bare"]["seconds"], r) for r in episodes)

    summary = {
        "same_decisions": same,
        "ms_per_step_median": {k: round(statistics.median(v), 2) for k, v in per_step.items()},
        **{
            f"overhead_{k}_pct": round(paired(k, lambda g, b, _: 100 * (g - b) / g), 2)
            for k in graphs
        },
        "overhead_ms_per_step": {
            k: round(paired(k, lambda g, b, r: 1e3 * (g - b) / r["bare"]["steps"]), 3)
            for k in graphs
        },
    }
    return {
        "benchmark": "graph_overhead",
        "machine": machine_info(),
        "planner": {
            k: getattr(cfg, k)
            for k in ("planner", "horizon", "population", "elites", "iterations", "particles")
        },
        "summary": summary,
        "episodes": episodes,
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``wm-agents bench graph``."""
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--train-steps", type=int, default=1000, help="real steps the agent learns from first"
    )
    p.add_argument("--limit", type=int, default=500, help="steps per episode at most")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--population", type=int, default=None, help="override the default config")
    p.add_argument("--horizon", type=int, default=None, help="override the default config")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS_DIR / "graph_overhead.json"))


def run_cli(args: argparse.Namespace) -> int:
    """Measure and write the JSON; prints the summary."""
    if args.out:
        check_output_file(args.out)  # before minutes of measuring, not after
    torch.set_num_threads(max(1, args.threads))
    payload = measure_overhead(
        seeds=args.seeds,
        train_steps=args.train_steps,
        limit=args.limit,
        repeats=args.repeats,
        population=args.population,
        horizon=args.horizon,
    )
    if args.out:
        write_json(args.out, payload)
    print(json.dumps(payload["summary"]))
    return 0
