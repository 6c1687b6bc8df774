"""The LLM as a CartPole world model, against the neural ensemble (issue 14, item 5).

``wm-agents bench llm-env``: the same real data for both models, then

1. **one-step error** on held-out real transitions: mean absolute error per state dimension,
   and termination accuracy; with "persistence" (the next state is the current one) as the
   floor any model should beat;
2. **open-loop rollout error** after ``--rollout-steps`` (15) steps along real action
   sequences from held-out episodes;
3. **planning return**: MPC over every action sequence of ``--horizon`` steps (exhaustive: the
   same candidates for both models, so only the model differs), for a few episodes capped at
   ``--max-steps`` real steps, plus a random policy.

The ensemble is trained on ``--train-steps`` random real steps (what the default agent has
after its warm-up); the LLM sees ``--examples`` of the same steps in its prompt.  LLM calls
are slow (about 1.7 s each for the embedded SmolLM2-135M on this shared 2-core machine), so its
parts are sized by ``--held-out``, ``--rollouts``, ``--episodes`` and ``--max-steps``.  The LLM
is the embedded model unless ``OPENAI_*`` variables name another (``open_chat_model``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from wm_agents.bench.common import RESULTS_DIR, code_state, machine_info, write_json
from wm_agents.llm.env_model import EnvTransition, LLMDynamicsModel
from wm_agents.outputs import check_output_file

__all__ = ["CARTPOLE_DESCRIPTION", "add_arguments", "collect", "run", "run_cli"]

ENV_ID = "CartPole-v1"
OBS_NAMES = ["cart position", "cart velocity", "pole angle", "pole angular velocity"]
ACTION_NAMES = ["push the cart left", "push the cart right"]
CARTPOLE_DESCRIPTION = (
    "CartPole: a pole hinged on a cart that moves on a track, one step is 0.02 s. Pushing the "
    "cart right raises the cart velocity by about 0.2 and lowers the pole angular velocity by "
    "about 0.3 (left: the opposite); the position and angle change by their velocity x 0.02. "
    "Gravity makes a leaning pole fall further. The episode ends (terminated) when the pole "
    "angle leaves [-0.2095, 0.2095] rad or the cart position leaves [-2.4, 2.4]. Reward 1 "
    "every step."
)


@dataclass
class Episode:
    """One real episode: observations ``[T+1, 4]``, actions ``[T]``, whether it terminated."""

    obs: np.ndarray
    actions: list[int]
    terminated: bool


def collect(steps: int, seed: int) -> list[Episode]:
    """``steps`` uniformly random real steps of CartPole, as episodes (numpy Generator and env
    resets seeded from ``seed``)."""
    env = gym.make(ENV_ID)
    rng = np.random.default_rng(seed)
    episodes: list[Episode] = []
    obs, _ = env.reset(seed=seed)
    states, actions = [obs], []
    for _ in range(steps):
        a = int(rng.integers(2))
        obs, _, term, trunc, _ = env.step(a)
        states.append(obs)
        actions.append(a)
        if term or trunc:
            episodes.append(Episode(np.asarray(states), actions, bool(term)))
            obs, _ = env.reset(seed=int(rng.integers(2**31)))
            states, actions = [obs], []
    if actions:
        episodes.append(Episode(np.asarray(states), actions, False))
    env.close()
    return episodes


def transitions(episodes: Sequence[Episode]) -> list[EnvTransition]:
    """Every ``(obs, action, next_obs, reward, terminated)`` of ``episodes``."""
    out = []
    for ep in episodes:
        for t, a in enumerate(ep.actions):
            last = t == len(ep.actions) - 1
            out.append(
                EnvTransition(
                    tuple(float(v) for v in ep.obs[t]),
                    a,
                    tuple(float(v) for v in ep.obs[t + 1]),
                    1.0,
                    bool(ep.terminated and last),
                )
            )
    return out


def pick_examples(data: Sequence[EnvTransition], n: int, seed: int) -> list[EnvTransition]:
    """``n`` examples: both actions, and one termination when ``n >= 3`` (seeded)."""
    rng = np.random.default_rng(seed)
    ends = [d for d in data if d.terminated]
    rest = [d for d in data if not d.terminated]
    chosen = [ends[int(rng.integers(len(ends)))]] if ends and n >= 3 else []
    left = n - len(chosen)
    for action, take in ((0, (left + 1) // 2), (1, left // 2)):
        pool = [d for d in rest if d.action == action]
        idx = rng.choice(len(pool), size=min(take, len(pool)), replace=False)
        chosen += [pool[int(i)] for i in idx]
    return chosen[:n]


# -- the ensemble ---------------------------------------------------------------------------


def train_ensemble(episodes: Sequence[Episode], seed: int) -> Any:
    """The default CartPole agent's ensemble, fitted on ``episodes``."""
    from wm_agents.core import Transition
    from wm_agents.envs import GymActuator
    from wm_agents.runner import build_agent, default_config

    config = default_config(ENV_ID)
    actuator = GymActuator(gym.make(ENV_ID))
    model, _ = build_agent(actuator, config, seed)
    model.fit_config = config.fit
    data = [
        Transition(
            state=list(t.obs),
            action=[t.action],
            next_state=list(t.next_obs),
            reward=t.reward,
            terminated=t.terminated,
        )
        for t in transitions(episodes)
    ]
    model.learn(data)
    return model


def ensemble_step(model: Any, obs: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, ...]:
    """Members' mean next state ``[N, 4]`` and termination probability ``[N]``."""
    e = model.ensemble_size
    o = torch.as_tensor(obs, dtype=torch.float32).expand(e, *obs.shape)
    a = torch.as_tensor(actions, dtype=torch.float32).reshape(1, -1, 1).expand(e, -1, 1)
    with torch.no_grad():
        nxt, _, term = model.predict(o, a, clip=False)
    return nxt.mean(0).numpy(), term.mean(0).numpy()


# -- measurements ---------------------------------------------------------------------------


def one_step(
    llm: LLMDynamicsModel | None, ensemble: Any, held: Sequence[EnvTransition]
) -> dict[str, Any]:
    """Mean absolute error per dimension and termination accuracy of each model."""
    obs = np.asarray([t.obs for t in held])
    nxt = np.asarray([t.next_obs for t in held])
    ends = np.asarray([t.terminated for t in held])
    acts = np.asarray([t.action for t in held])
    pred, term = ensemble_step(ensemble, obs, acts)
    out: dict[str, Any] = {
        "n": len(held),
        "persistence": {"mae": np.abs(obs - nxt).mean(0).tolist(), "term_accuracy": None},
        "ensemble": {
            "mae": np.abs(pred - nxt).mean(0).tolist(),
            "term_accuracy": float(((term > 0.5) == ends).mean()),
        },
    }
    if llm is not None:
        errs, hits, failed = [], [], 0
        for t in tqdm(held, desc="LLM one-step", leave=False):
            try:
                p, _, done = llm.step(t.obs, t.action)
            except ValueError:
                failed += 1
                continue
            errs.append(np.abs(p - np.asarray(t.next_obs)))
            hits.append(done == t.terminated)
        out["llm"] = {
            "mae": np.mean(errs, 0).tolist() if errs else None,
            "term_accuracy": float(np.mean(hits)) if hits else None,
            "failed": failed,
        }
    return out


def rollout_error(
    llm: LLMDynamicsModel | None,
    ensemble: Any,
    episodes: Sequence[Episode],
    steps: int,
    n: int,
) -> dict[str, Any]:
    """Mean absolute state error after ``steps`` open-loop steps along real actions, from the
    start of the first ``n`` held-out episodes that last that long."""
    long = [ep for ep in episodes if len(ep.actions) >= steps][:n]
    truth = np.asarray([ep.obs[steps] for ep in long])
    starts = np.asarray([ep.obs[0] for ep in long])
    acts = np.asarray([ep.actions[:steps] for ep in long])
    out: dict[str, Any] = {"n": len(long), "steps": steps}
    if not long:
        return out
    x = starts.copy()
    for t in range(steps):
        x, _ = ensemble_step(ensemble, x, acts[:, t])
    out["ensemble"] = np.abs(x - truth).mean(0).tolist()
    out["persistence"] = np.abs(starts - truth).mean(0).tolist()
    if llm is not None:
        errs, failed = [], 0
        for ep in tqdm(long, desc="LLM rollouts", leave=False):
            [o] = llm.imagine(ep.obs[0], [ep.actions[:steps]], horizon=steps)
            states = o.prediction.get("states") if o.status == "ok" else None
            if not states or len(states) < steps:  # failed or predicted an early end
                failed += 1
                continue
            errs.append(np.abs(np.asarray(states[steps - 1]) - ep.obs[steps]))
        out["llm"] = np.mean(errs, 0).tolist() if errs else None
        out["llm_not_reaching_the_end"] = failed
    return out


def plan_episodes(
    model: Any, horizon: int, episodes: int, max_steps: int, seed: int, desc: str
) -> list[float]:
    """Real returns of MPC over all ``2**horizon`` action sequences with ``model``'s values
    (first best on ties); ``model=None`` acts at random."""
    env = gym.make(ENV_ID)
    rng = np.random.default_rng(seed)
    candidates = [list(c) for c in itertools.product((0, 1), repeat=horizon)]
    returns = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        total = 0.0
        for _ in tqdm(range(max_steps), desc=f"{desc} episode {ep}", leave=False):
            if model is None:
                a = int(rng.integers(2))
            else:
                outcomes = model.imagine(obs, candidates, horizon=horizon)
                values = [o.value if o.status == "ok" else -np.inf for o in outcomes]
                a = candidates[int(np.argmax(values))][0]
            obs, r, term, trunc, _ = env.step(a)
            total += float(r)
            if term or trunc:
                break
        returns.append(total)
    env.close()
    return returns


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement; returns the JSON payload."""
    torch.set_num_threads(max(1, args.threads))
    started = time.perf_counter()
    train = collect(args.train_steps, args.seed)
    held_eps = collect(args.held_out_steps, args.seed + 1000)
    held = transitions(held_eps)
    rng = np.random.default_rng(args.seed)
    sample = [
        held[int(i)]
        for i in rng.choice(len(held), size=min(args.held_out, len(held)), replace=False)
    ]
    ensemble = train_ensemble(train, args.seed)
    payload: dict[str, Any] = {
        "command": "wm-agents bench llm-env " + " ".join(sys.argv[3:]),
        "code": code_state(),
        "machine": machine_info(),
        "settings": {k: v for k, v in vars(args).items() if k != "func"},
    }
    chat_ctx = None
    llm = None
    if not args.no_llm:
        from wm_agents.llm.config import open_chat_model, resolve_llm_settings

        settings = resolve_llm_settings()
        payload["llm"] = settings.describe()
        chat_ctx = open_chat_model(settings, timeout_s=120.0, server_options={"parallel": 2})
        chat = chat_ctx.__enter__()
        llm = LLMDynamicsModel(
            chat,
            description=CARTPOLE_DESCRIPTION,
            obs_names=OBS_NAMES,
            action_names=ACTION_NAMES,
            examples=pick_examples(transitions(train), args.examples, args.seed),
            max_concurrency=2,
            seed=args.seed,
        )
    try:
        payload["one_step"] = one_step(llm, ensemble, sample)
        payload["rollout"] = rollout_error(
            llm, ensemble, held_eps, args.rollout_steps, args.rollouts
        )
        plan: dict[str, Any] = {
            "horizon": args.horizon,
            "max_steps": args.max_steps,
            "random": plan_episodes(
                None, args.horizon, args.episodes, args.max_steps, args.seed + 7, "random"
            ),
            "ensemble": plan_episodes(
                ensemble, args.horizon, args.episodes, args.max_steps, args.seed + 7, "ensemble"
            ),
        }
        if llm is not None:
            t0 = time.perf_counter()
            calls0 = llm.calls
            plan["llm"] = plan_episodes(
                llm, args.horizon, args.episodes, args.max_steps, args.seed + 7, "LLM"
            )
            plan["llm_s_per_action"] = (time.perf_counter() - t0) / max(1.0, sum(plan["llm"]))
            plan["llm_calls"] = llm.calls - calls0
        payload["planning"] = plan
        if llm is not None:
            payload["llm_calls"] = llm.calls
            payload["llm_failures"] = llm.failures
    finally:
        if chat_ctx is not None:
            chat_ctx.__exit__(None, None, None)
    payload["wall_s"] = time.perf_counter() - started
    return payload


def table(payload: dict[str, Any]) -> str:
    """The results as markdown."""
    names = ["x", "x_dot", "theta", "theta_dot"]
    lines = [
        "| model | one-step MAE (" + ", ".join(names) + ") | termination acc. | "
        f"{payload['rollout']['steps']}-step rollout MAE | planning return |",
        "|---|---|---:|---|---|",
    ]
    plan = payload["planning"]
    for key in ("persistence", "ensemble", "llm", "random"):
        one = payload["one_step"].get(key) or {}
        mae = one.get("mae")
        roll = payload["rollout"].get(key)
        ret = plan.get(key)
        acc = one.get("term_accuracy")
        lines.append(
            f"| {key} | {'-' if not mae else ', '.join(f'{v:.4f}' for v in mae)} | "
            f"{'-' if acc is None else f'{acc:.2f}'} | "
            f"{'-' if not roll else ', '.join(f'{v:.3f}' for v in roll)} | "
            f"{'-' if not ret else ' / '.join(f'{v:.0f}' for v in ret)} |"
        )
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``wm-agents bench llm-env``."""
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-steps", type=int, default=1000)
    p.add_argument("--held-out-steps", type=int, default=2000)
    p.add_argument("--held-out", type=int, default=100, help="one-step transitions scored")
    p.add_argument("--examples", type=int, default=6, help="real steps in the LLM's prompt")
    p.add_argument("--rollout-steps", type=int, default=15)
    p.add_argument("--rollouts", type=int, default=10)
    p.add_argument("--horizon", type=int, default=2, help="MPC over all 2**H sequences")
    p.add_argument("--episodes", type=int, default=2)
    p.add_argument("--max-steps", type=int, default=50, help="real steps per planning episode")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-llm", action="store_true", help="the ensemble and baselines only")
    p.add_argument("--out", default=str(RESULTS_DIR / "llm_env.json"))


def run_cli(args: argparse.Namespace) -> int:
    """Run, write the JSON, print the table."""
    out = check_output_file(args.out) if args.out else None
    payload = run(args)
    if out is not None:
        write_json(Path(out), payload)
        print(f"wrote {out}", file=sys.stderr)
    print(table(payload))
    print(json.dumps({k: payload[k] for k in ("one_step", "rollout", "planning")}, default=float))
    return 0
