"""The seed's own recipe, as written, on CartPole-v1 (the "Daily Challenge").

``WorldModel``, ``train_world_model`` and ``plan_with_model`` are the seed's "Practical
Application" code, kept line for line.  The only changes are the ones needed to run it at all:

* ``plan_with_model`` reads ``action_dim`` from a global the seed never defines; here it is a
  keyword (default 1) and the loop draws from an explicit ``torch.Generator`` (seeded runs);
* the seed samples *continuous* actions (``torch.randn(action_dim)``) while CartPole's action is
  0 or 1, so a CartPole action ``a`` is fed to the model as ``2a - 1`` (push left -1, right +1)
  and a planned value ``x`` is executed as ``int(x > 0)``: the sign of the push;
* ``buffer.sample(batch_size=256)`` is a small uniform replay buffer (:class:`TransitionBuffer`).

The Daily Challenge: 1,000 random transitions, a network predicting ``(next_state, reward)``,
random shooting with 50 sequences of 20 steps, first action of the best (MPC).  It fails on
CartPole, and :func:`diagnose` shows why.  The reward is +1 on every step, so the only thing
that separates the 50 imagined returns (all about 20) is the reward head's regression error;
nothing in the model says that an episode *ends* (no termination), so a sequence that drops the
pole looks exactly as good as one that balances it.  Worse, that error is not random: the
predicted reward grows with the pole's angle (correlation about +0.3 on real states: tilted
states are rare in the data and the head extrapolates above 1 there), so the planner prefers
sequences that tilt the pole, pushes toward the lean in only 19-42% of its decisions (a random
policy: 50%), and the pole falls in 11-15 steps: worse than the random policy (17-26).
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn

from wm_agents.bench.common import CurveRun, EvalPoint

__all__ = [
    "TransitionBuffer",
    "WorldModel",
    "diagnose",
    "plan_with_model",
    "run_seed_recipe",
    "train_world_model",
]


# ---------------------------------------------------------------- the seed's code, as written
class WorldModel(nn.Module):
    def __init__(self, state_dim, action_dim, hidden_dim=64):  # type: ignore[no-untyped-def]
        super().__init__()
        self.dynamics = nn.Sequential(
            nn.Linear(state_dim + action_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, state_dim + 1),  # next_state + reward
        )

    def forward(self, state, action):  # type: ignore[no-untyped-def]
        x = torch.cat([state, action], dim=-1)
        out = self.dynamics(x)
        next_state = out[..., :-1]
        reward = out[..., -1]
        return next_state, reward

    def rollout(self, state, action_sequence):  # type: ignore[no-untyped-def]
        """Imagine a trajectory given a sequence of actions."""
        states, rewards = [state], []
        for action in action_sequence:
            state, reward = self.forward(state, action)
            states.append(state)
            rewards.append(reward)
        return torch.stack(states), torch.stack(rewards)


# Training loop
def train_world_model(model, buffer, epochs=100):  # type: ignore[no-untyped-def]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    for _ in range(epochs):
        states, actions, rewards, next_states = buffer.sample(batch_size=256)

        pred_next, pred_reward = model(states, actions)

        loss = nn.MSELoss()(pred_next, next_states) + nn.MSELoss()(pred_reward, rewards)

        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return model


# Using for planning (simple random shooting)
def plan_with_model(  # type: ignore[no-untyped-def]
    model, current_state, num_candidates=100, horizon=10, *, action_dim=1, generator=None
):
    best_return = -float("inf")
    best_actions = None

    for _ in range(num_candidates):
        # Sample random action sequence
        actions = [torch.randn(action_dim, generator=generator) for _ in range(horizon)]

        # Imagine the trajectory
        _, rewards = model.rollout(current_state, actions)
        total_return = rewards.sum()

        if total_return > best_return:
            best_return = total_return
            best_actions = actions

    return best_actions[0]  # Return first action (MPC style)


# ---------------------------------------------------------------- what the seed leaves implied
class TransitionBuffer:
    """The ``buffer`` the seed's training loop samples from: uniform minibatches of tensors."""

    def __init__(self, generator: torch.Generator) -> None:
        self.rows: list[tuple[np.ndarray, float, float, np.ndarray]] = []
        self.generator = generator

    def add(self, state: np.ndarray, action: int, reward: float, next_state: np.ndarray) -> None:
        self.rows.append((np.asarray(state), 2.0 * action - 1.0, float(reward), next_state))

    def __len__(self) -> int:
        return len(self.rows)

    def sample(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        idx = torch.randint(0, len(self.rows), (batch_size,), generator=self.generator).tolist()
        s, a, r, s2 = zip(*(self.rows[i] for i in idx), strict=True)
        return (
            torch.as_tensor(np.stack(s), dtype=torch.float32),
            torch.tensor(a, dtype=torch.float32)[:, None],
            torch.tensor(r, dtype=torch.float32),
            torch.as_tensor(np.stack(s2), dtype=torch.float32),
        )


def collect_random(env: gym.Env, n: int, seed: int, buffer: TransitionBuffer) -> None:
    """``n`` transitions of the uniformly random policy (step 1 of the Daily Challenge)."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    episode = 0
    for _ in range(n):
        a = int(rng.integers(2))
        nxt, r, term, trunc, _ = env.step(a)
        buffer.add(obs, a, float(r), nxt)
        obs = nxt
        if term or trunc:
            episode += 1
            obs, _ = env.reset(seed=seed + episode)


def play(
    model: WorldModel,
    env: gym.Env,
    seed: int,
    generator: torch.Generator,
    *,
    candidates: int = 50,
    horizon: int = 20,
    trace: list[dict[str, Any]] | None = None,
) -> float:
    """One episode acting with the seed's planner; optionally records per-step diagnostics."""
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        state = torch.as_tensor(obs, dtype=torch.float32)
        with torch.no_grad():
            a = plan_with_model(
                model, state, num_candidates=candidates, horizon=horizon, generator=generator
            )
        action = int(a.item() > 0)
        if trace is not None:
            # The lean rule (push toward where the pole is falling) balances CartPole well.
            lean = int(obs[2] + obs[3] > 0)
            trace.append({"action": action, "lean": lean})
        obs, r, term, trunc, _ = env.step(action)
        total += float(r)
        done = term or trunc
    return total


def run_seed_recipe(
    seed: int,
    *,
    data_sizes: tuple[int, ...] = (1000,),
    eval_episodes: int = 10,
    candidates: int = 50,
    horizon: int = 20,
    epochs: int = 100,
) -> CurveRun:
    """The Daily Challenge for each random-data size; one evaluation per size.

    The recipe has no learning loop after the random data, so its "learning curve" is one point
    per amount of random data it was given (``(1000,)`` is the challenge as written).
    """
    t0 = time.perf_counter()
    evals, extra = (
        [],
        {"action_share_push_right": [], "share_toward_lean": [], "seconds_per_decision": []},
    )
    env = gym.make("CartPole-v1")
    for n in data_sizes:
        torch_gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)  # nn.Linear's default init uses the global RNG (seed's code)
        buffer = TransitionBuffer(torch_gen)
        collect_random(env, n, seed * 10_000, buffer)
        model = train_world_model(WorldModel(4, 1), buffer, epochs=epochs)
        trace: list[dict[str, Any]] = []
        t1 = time.perf_counter()
        rets = tuple(
            play(
                model,
                env,
                1_000_000 + seed * 1_000 + i,
                torch_gen,
                candidates=candidates,
                horizon=horizon,
                trace=trace,
            )
            for i in range(eval_episodes)
        )
        evals.append(EvalPoint(n, rets))
        extra["action_share_push_right"].append(
            round(float(np.mean([t["action"] for t in trace])), 3)
        )
        extra["share_toward_lean"].append(
            round(float(np.mean([t["action"] == t["lean"] for t in trace])), 3)
        )
        extra["seconds_per_decision"].append(round((time.perf_counter() - t1) / len(trace), 4))
    env.close()
    return CurveRun("seed_recipe", seed, evals, time.perf_counter() - t0, extra)


def diagnose(seed: int = 0, *, n: int = 1000, epochs: int = 100) -> dict[str, Any]:
    """Why the recipe fails: what its model predicts and how its planner chooses.

    Returns the spread of imagined returns across the 50 candidates (tiny against their mean
    of about 20), the learned reward's range on real states (constant: every step pays +1), the
    share of decisions that push the same way, and the random policy's mean for comparison.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    env = gym.make("CartPole-v1")
    buffer = TransitionBuffer(gen)
    collect_random(env, n, seed * 10_000, buffer)
    model = train_world_model(WorldModel(4, 1), buffer, epochs=epochs)
    s, a, r, _ = buffer.sample(512)
    with torch.no_grad():
        _, pred_r = model(s, a)
        obs = s[0]
        rets = []
        for _ in range(50):
            acts = [torch.randn(1, generator=gen) for _ in range(20)]
            rets.append(float(model.rollout(obs, acts)[1].sum()))
    trace: list[dict[str, Any]] = []
    recipe = [play(model, env, 1_000_000 + i, gen, trace=trace) for i in range(10)]
    rng = np.random.default_rng(seed)
    random_returns = []
    for i in range(10):
        env.reset(seed=1_000_000 + i)
        done, total = False, 0.0
        while not done:
            _, rew, term, trunc, _ = env.step(int(rng.integers(2)))
            total += float(rew)
            done = term or trunc
        random_returns.append(total)
    env.close()
    share = float(np.mean([t["action"] for t in trace]))
    agree = float(np.mean([t["action"] == t["lean"] for t in trace]))
    theta = s[:, 2].abs()
    corr = float(np.corrcoef(theta.numpy(), pred_r.numpy())[0, 1])
    return {
        "corr_predicted_reward_vs_abs_pole_angle": round(corr, 3),
        "share_of_decisions_pushing_toward_the_lean": round(agree, 3),
        "real_reward_values": sorted({float(x) for x in r.tolist()}),
        "predicted_reward_min_max": [round(float(pred_r.min()), 4), round(float(pred_r.max()), 4)],
        "imagined_return_mean": round(float(np.mean(rets)), 3),
        "imagined_return_std_over_50_candidates": round(float(np.std(rets)), 4),
        "share_of_decisions_pushing_right": round(share, 3),
        "recipe_eval_mean": float(np.mean(recipe)),
        "random_policy_eval_mean": float(np.mean(random_returns)),
    }
