"""Model-free baseline: Stable-Baselines3 DQN with rl-baselines3-zoo's CartPole-v1 settings.

Needs the optional extra ``pip install "wm-agents[bench]"`` (stable-baselines3).  The
hyperparameters are copied from rl-baselines3-zoo ``hyperparams/dqn.yml`` (``CartPole-v1``,
marked "Almost Tuned" there) and used unchanged, including its 50,000-step budget.  Every
``eval_every`` real steps the greedy policy (``deterministic=True``) plays ``eval_episodes``
episodes on a separate env seeded the same way as the planner's evaluations.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym

from wm_agents.bench.common import CurveRun, EvalPoint

__all__ = ["ZOO_CARTPOLE_DQN", "run_dqn"]

#: rl-baselines3-zoo ``hyperparams/dqn.yml``, ``CartPole-v1`` (n_timesteps 5e4).
ZOO_CARTPOLE_DQN: dict[str, Any] = {
    "learning_rate": 2.3e-3,
    "batch_size": 64,
    "buffer_size": 100_000,
    "learning_starts": 1000,
    "gamma": 0.99,
    "target_update_interval": 10,
    "train_freq": 256,
    "gradient_steps": 128,
    "exploration_fraction": 0.16,
    "exploration_final_eps": 0.04,
    "policy_kwargs": {"net_arch": [256, 256]},
}
ZOO_CARTPOLE_STEPS = 50_000


def evaluate_policy_greedy(
    predict: Any, env_id: str, episodes: int, seed: int
) -> tuple[float, ...]:
    """Returns of ``episodes`` episodes of ``predict(obs) -> action``, env seeds ``seed + i``."""
    env = gym.make(env_id)
    out = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(predict(obs))
            total += float(r)
            done = term or trunc
        out.append(total)
    env.close()
    return tuple(out)


def run_dqn(
    seed: int,
    *,
    env_id: str = "CartPole-v1",
    total_steps: int = ZOO_CARTPOLE_STEPS,
    eval_every: int = 1000,
    eval_episodes: int = 10,
    hyperparams: dict[str, Any] | None = None,
) -> CurveRun:
    """Train SB3 DQN for ``total_steps`` real steps, evaluating every ``eval_every`` steps."""
    try:
        from stable_baselines3 import DQN
        from stable_baselines3.common.callbacks import BaseCallback
    except ImportError as err:  # optional extra
        raise ImportError(
            'the DQN baseline needs stable-baselines3: pip install "wm-agents[bench]"'
        ) from err

    evals: list[EvalPoint] = []
    eval_seed = 1_000_000 + seed * 1_000  # the planner's evaluation seeds (runner.run_gym)

    class EvalEvery(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % eval_every == 0:
                rets = evaluate_policy_greedy(
                    lambda o: int(self.model.predict(o, deterministic=True)[0]),
                    env_id,
                    eval_episodes,
                    eval_seed,
                )
                evals.append(EvalPoint(self.num_timesteps, rets))
            return True

    t0 = time.perf_counter()
    params = dict(ZOO_CARTPOLE_DQN if hyperparams is None else hyperparams)
    model = DQN("MlpPolicy", gym.make(env_id), seed=seed, verbose=0, device="cpu", **params)
    model.learn(total_timesteps=total_steps, callback=EvalEvery())
    return CurveRun("sb3_dqn", seed, evals, time.perf_counter() - t0, {"hyperparams": params})
