"""``wm-agents bench pixel-baseline``: the model-free agent on the latent agent's frames
(issue 16, item 5).

Stable-Baselines3 with a ``CnnPolicy`` (SB3's NatureCNN in front of the zoo's heads) on exactly
what ``wm-agents gym --obs pixels`` sees: the env rendered, area-resized to ``--pixel-size``,
``--frames`` frames stacked (:func:`~wm_agents.envs.pixels.make_pixel_env`).  The algorithm
and its settings are the zoo's for the env (:data:`~wm_agents.bench.dqn_baseline.ZOO`: DQN for
CartPole, SAC for Pendulum), with two changes a pixel replay needs: the replay holds at most
``--steps`` transitions (SB3 allocates the whole buffer up front; a million 64 x 64 x 9 frames
would not fit in memory), and the CNN policy.  The budget is the one the issue sets for the
latent agent (10,000 real steps on CartPole), not the zoo's.

Each seed is evaluated every ``--eval-every`` real steps on 10 greedy episodes (the planner's
evaluation seeds, ``1_000_000 + 1_000 * seed + i``) with the learning CPU-seconds so far; the
JSON holds every curve, the real steps to first reach and to hold the env's threshold, and the
PNG the curves.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from wm_agents.bench.common import RESULTS_DIR, code_state, machine_info, write_json
from wm_agents.outputs import check_output_file

__all__ = ["add_arguments", "pixel_hyperparams", "run_cli", "run_pixel_sb3"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--env", default="CartPole-v1", help="CartPole-v1 (DQN) or Pendulum-v1 (SAC), as the suite"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--steps", type=int, default=10_000, help="real steps per seed (10,000)")
    p.add_argument("--eval-every", type=int, default=1_000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--pixel-size", type=int, default=64)
    p.add_argument("--frames", type=int, default=3)
    p.add_argument("--grayscale", action="store_true")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "pixel_baseline.json")


def pixel_hyperparams(env_id: str, steps: int) -> tuple[str, dict[str, Any]]:
    """The zoo's algorithm and settings for ``env_id`` with the replay capped at ``steps``
    (see the module doc)."""
    from wm_agents.bench.dqn_baseline import zoo_entry

    entry = zoo_entry(env_id)
    params = dict(entry.hyperparams)
    params["buffer_size"] = min(int(params.get("buffer_size", 1_000_000)), steps)
    return entry.algo, params


def run_pixel_sb3(
    seed: int,
    *,
    env_id: str,
    steps: int,
    eval_every: int,
    eval_episodes: int = 10,
    size: int = 64,
    frames: int = 3,
    grayscale: bool = False,
    threads: int = 1,
    progress: bool = True,
) -> Any:
    """One seed of the CNN baseline (a :class:`~wm_agents.bench.common.CurveRun`)."""
    from wm_agents.bench.dqn_baseline import run_sb3
    from wm_agents.envs.pixels import make_pixel_env

    algo, params = pixel_hyperparams(env_id, steps)

    def env_fn() -> Any:
        return make_pixel_env(env_id, size=size, frames=frames, grayscale=grayscale)

    return run_sb3(
        seed,
        env_id=env_id,
        algo=algo,
        total_steps=steps,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        hyperparams=params,
        threads=threads,
        progress=progress,
        env_fn=env_fn,
        policy="CnnPolicy",
    )


def run_cli(args: argparse.Namespace) -> int:
    from wm_agents.bench.suite import ENVS
    from wm_agents.reporting import plot_seed_curves

    if args.steps < 1 or args.eval_every < 1 or args.eval_episodes < 1:
        raise ValueError("--steps, --eval-every and --eval-episodes must be >= 1")
    if args.env not in ENVS:
        raise ValueError(f"no threshold for {args.env!r}; known: {sorted(ENVS)}")
    out = check_output_file(args.out)
    threshold = ENVS[args.env].threshold  # the suite's (Pendulum-v1: -200)
    runs = []
    for seed in args.seeds:
        run = run_pixel_sb3(
            seed,
            env_id=args.env,
            steps=args.steps,
            eval_every=args.eval_every,
            eval_episodes=args.eval_episodes,
            size=args.pixel_size,
            frames=args.frames,
            grayscale=args.grayscale,
            threads=args.threads,
        )
        runs.append(run.to_json(threshold))
        last = run.evals[-1]
        print(
            f"seed {seed}: eval mean {last.mean:.1f} at {last.real_steps} real steps; "
            f"reaches {threshold} at {runs[-1]['steps_to_reach']}, holds from "
            f"{runs[-1]['steps_to_hold']}; {run.extra['learn_cpu_seconds']:.0f} learning CPU-s"
        )
        payload = {
            "benchmark": "pixel-baseline",
            "env": args.env,
            "threshold": threshold,
            "frames": {"size": args.pixel_size, "stacked": args.frames, "grey": args.grayscale},
            "complete": len(runs) == len(args.seeds),
            "runs": runs,
            # The runs train inside torch_threads(args.threads), not on the process's count.
            "machine": machine_info(torch_threads=args.threads),
            **code_state(),
        }
        write_json(out, payload)  # after every seed: an interrupted run keeps what it measured
    algo = runs[0]["algo"].upper()
    curves = [[(e["real_steps"], e["mean"]) for e in r["evals"]] for r in runs]
    png = plot_seed_curves(
        out.with_suffix(".png"),
        {f"SB3 {algo} CnnPolicy": curves},
        threshold=threshold,
        threshold_label=f"threshold {threshold:g}",
        title=f"{args.env} from pixels: SB3 {algo} (CnnPolicy), {len(runs)} seeds",
    )
    print(f"written to {out} and {png}")
    return 0
