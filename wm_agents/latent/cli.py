"""``wm-agents gym --env ENV --obs pixels``: the latent agent from frames only (issue 16).

Defaults are sized for a first look on a small machine, not for the issue's targets: the
number of real steps, the model and the search can all be raised from the command line.
With ``--out DIR`` the run writes ``result.json``, ``learning_curve.png``, ``dream.png`` (real
frames, reconstructions and open-loop imagined frames of the last training episode) and
``dream.gif`` (real beside imagined).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

__all__ = ["add_pixel_options", "run_pixels_from_args"]

AGENT_TITLES = {
    "mpc": "latent planning",
    "policy": "policy from dreams",
    "hybrid": "latent hybrid",
}

OUT_FILES = ("result.json", "learning_curve.png", "dream.png", "dream.gif", "model.pt")


def add_pixel_options(p: argparse.ArgumentParser) -> None:
    """``--obs`` and the pixel agent's own options."""
    p.add_argument(
        "--obs",
        choices=["state", "pixels"],
        default="state",
        help="what the agent sees: the state vector (default) or rendered frames only "
        "(the latent world model; --agent mpc, policy or hybrid)",
    )
    p.add_argument("--pixel-size", type=int, default=64, help="frame side for --obs pixels")
    p.add_argument("--frames", type=int, default=3, help="stacked frames for --obs pixels")
    p.add_argument("--grayscale", action="store_true", help="one channel for --obs pixels")


def _prediction(learner: Any, episodes: int = 5) -> dict[str, Any]:
    """:func:`~wm_agents.latent.errors.prediction_errors` on the replay's last ``episodes``
    long-enough episodes (seen in training: a check of the fit, not of generalisation)."""
    import numpy as np

    from wm_agents.latent.errors import prediction_errors

    start, horizon = 3, 10
    long_enough = [
        ep for ep in learner.replay.episodes if len(ep["frames"]) >= start + horizon + 1
    ][-episodes:]
    data = [(np.stack(ep["frames"]), np.stack(ep["actions"])) for ep in long_enough]
    result = prediction_errors(learner.model, data, start=start, horizon=horizon)
    return {"on": f"the last {len(data)} training episodes", **result}


def _dream_summary(learner: Any) -> dict[str, Any]:
    """The dreaming agents' own numbers: the last dream round, who acted, the trust log."""
    trainer = getattr(learner, "trainer", None)
    if trainer is None:
        return {}
    out: dict[str, Any] = {
        "dream_rounds": len(trainer.rounds),
        # JSON has no inf / NaN: a round with no policy loss or score yet says null
        "dream_last": {
            k: (v if math.isfinite(v) else None) for k, v in (trainer.rounds or [{}])[-1].items()
        }
        or None,
    }
    strategy = getattr(learner, "strategy", None)
    if strategy is not None and strategy.hybrid is not None:
        out["hybrid_sources"] = dict(strategy.hybrid.sources)
        out["trust_log"] = [list(t) for t in strategy.trust.log]
    return out


def run_pixels_from_args(args: argparse.Namespace) -> int:
    """Run the latent agent as the options say; print a summary (JSON last with ``--json``)."""
    if args.agent not in ("mpc", "policy", "hybrid"):
        raise ValueError(
            f"--obs pixels runs --agent mpc, policy or hybrid (the latent agents), not {args.agent}"
        )
    unsupported = [
        flag
        for flag, value in (
            ("--hybrid-threshold", args.hybrid_threshold),
            ("--real-ratio", args.real_ratio),
            ("--disagreement-threshold", args.disagreement_threshold),
            ("--branch-quantile", args.branch_quantile),
        )
        if value is not None
    ]
    if unsupported:
        raise ValueError(
            f"{', '.join(unsupported)} apply to the vector agents; with --obs pixels the dream's "
            "and the hybrid's threshold is --hybrid-quantile of the members' disagreement on "
            "real data"
        )
    out = None
    if args.out:
        from wm_agents.outputs import check_output_dir

        out = check_output_dir(args.out, OUT_FILES)
    import torch

    from wm_agents.envs.pixels import make_pixel_env
    from wm_agents.latent.agent import LatentAgentConfig, run_latent_gym
    from wm_agents.latent.pictures import dream_rows, save_animation, save_strip

    torch.set_num_threads(max(1, args.threads))

    def make_env() -> Any:
        return make_pixel_env(
            args.env, size=args.pixel_size, frames=args.frames, grayscale=args.grayscale
        )

    agent = LatentAgentConfig(horizon=args.horizon or 12, population=args.population or 100)
    max_steps = args.max_steps or 3_000
    dream = None
    trust_return = args.trust_return
    if args.agent != "mpc":
        import gymnasium as gym

        from wm_agents.latent.dream import DreamConfig

        spec = gym.spec(args.env)
        dream = DreamConfig(
            length=args.rollout_length or DreamConfig.length,
            quantile=args.hybrid_quantile or DreamConfig.quantile,
            score_horizon=spec.max_episode_steps or DreamConfig.score_horizon,
        )
        if trust_return is None:
            trust_return = spec.reward_threshold
    t0 = time.process_time()
    run, learner = run_latent_gym(
        make_env,
        seed=args.seed,
        max_steps=max_steps,
        warmup_steps=args.warmup_steps or min(1_000, max_steps // 3),
        eval_every=args.eval_every if args.eval_every is not None else 1_000,
        eval_episodes=args.eval_episodes or 5,
        agent_config=agent,
        agent=args.agent,
        dream_config=dream,
        trust_return=trust_return,
        policy_after=args.policy_after,
        progress=not args.quiet,
    )
    summary = {
        "env": args.env,
        "obs": "pixels",
        "seed": args.seed,
        "real_steps": run.real_steps,
        "eval_returns": [list(e.returns) for e in run.evals],
        "eval_mean": [round(e.mean, 2) for e in run.evals],
        "eval_steps": [e.real_steps for e in run.evals],
        "solved_at_step": run.solved_at,
        "wall_s": round(run.seconds, 1),
        "cpu_s": round(time.process_time() - t0, 1),
        "agent": args.agent,
        "losses": learner.losses[-1] if learner.losses else None,
        **_dream_summary(learner),
        # Pixel errors (wm_agents.latent.errors) on the last training episodes: what the model
        # reconstructs and predicts open-loop k steps ahead, beside holding the last frame.
        "prediction": _prediction(learner),
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.json").write_text(json.dumps(summary, indent=1))
        learner.model.save(out / "model.pt")  # LatentWorldModel.load reads it back
        if run.evals:
            import gymnasium as gym

            from wm_agents.reporting import plot_curve

            plot_curve(
                out / "learning_curve.png",
                train_episodes=run.train_episodes,
                evals=run.evals,
                threshold=gym.spec(args.env).reward_threshold,
                title=f"{args.env} from pixels, seed {args.seed}: {AGENT_TITLES[args.agent]}",
            )
        episodes = [ep for ep in learner.replay.episodes if len(ep["frames"]) >= 8]
        if episodes:
            import numpy as np

            ep = episodes[-1]
            frames, actions = np.stack(ep["frames"]), np.stack(ep["actions"])
            horizon = min(15, len(frames) - 4)
            per_frame = 1 if args.grayscale else 3
            rows = dream_rows(
                learner.model,
                frames,
                actions,
                start=3,
                horizon=horizon,
                channels_per_frame=per_frame,
            )
            save_strip(rows, out / "dream.png", title=f"{args.env}: real, reconstructed, imagined")
            save_animation(rows, out / "dream.gif")
        print(f"wrote {', '.join(OUT_FILES)} to {out}", file=sys.stderr)
    for e in run.evals:
        print(f"eval at {e.real_steps} real steps: mean {e.mean:.1f}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary))
    return 0
