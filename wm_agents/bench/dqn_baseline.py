"""Model-free baselines: Stable-Baselines3 with rl-baselines3-zoo's tuned settings.

Needs the optional extra ``pip install "wm-agents[bench]"`` (stable-baselines3).  The
hyperparameters are copied from rl-baselines3-zoo and used unchanged, each with the zoo's
``n_timesteps`` budget (:data:`ZOO`).  Every ``eval_every`` real steps the greedy policy
(``deterministic=True``) plays ``eval_episodes`` episodes on a separate env seeded the same way
as the planner's evaluations (``1_000_000 + 1_000 * seed + i``).

Each evaluation records the process CPU seconds of learning so far without those of the
evaluations (``EvalPoint.learn_cpu_s``), on one torch thread unless told otherwise.

Which algorithm per env: the zoo's benchmark table (``benchmark.md``) has DQN at 500 on
CartPole-v1 after 50k steps (PPO: 100k) and -76.6 on Acrobot-v1 after 100k (PPO: -73.5 after
1M); SAC at -157 on Pendulum-v1 after 20k (PPO: -172 after 100k) and 94.7 on
MountainCarContinuous-v0 after 50k (PPO: 88.3 after 20k, below the 90 threshold).  PPO's entry
is better on none of them, so the suite runs DQN for the discrete envs and SAC for the
continuous ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from wm_agents.bench.common import CurveRun, EvalPoint

__all__ = [
    "ZOO",
    "ZOO_CARTPOLE_DQN",
    "ZooEntry",
    "evaluate_policy_greedy",
    "run_dqn",
    "run_sb3",
    "zoo_entry",
]


@dataclass(frozen=True)
class ZooEntry:
    """One rl-baselines3-zoo entry: the SB3 algorithm, its keyword arguments (``policy`` is
    always ``"MlpPolicy"``) and the zoo's training budget ``n_timesteps``."""

    algo: str
    hyperparams: dict[str, Any]
    n_timesteps: int


# Copied from DLR-RM/rl-baselines3-zoo hyperparams/dqn.yml at commit
# ce95481b041fe5314c1b2f1a53940d169b9253fc (CartPole-v1 "Almost Tuned", Acrobot-v1 "Tuned").
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

#: Every env of the suite (``wm-agents bench suite``).  SAC entries: DLR-RM/rl-baselines3-zoo
#: hyperparams/sac.yml at commit c94924e5b31bce36920f29d3eb18b975231bdec4.  Pendulum-v1 sets
#: only the learning rate (SB3's SAC defaults otherwise); MountainCarContinuous-v0 ("Tuned")
#: explores with gSDE (``use_sde``, ``log_std_init=-3.67``, SB3's default
#: ``sde_sample_freq=-1``: the noise matrix is drawn once per rollout of ``train_freq`` steps),
#: exactly as the zoo trains it.  What differs from ``python -m rl_zoo3.train``: no Monitor
#: or evaluation callback of the zoo's, our own evaluation schedule and seeds instead.
ZOO: dict[str, ZooEntry] = {
    "CartPole-v1": ZooEntry("dqn", ZOO_CARTPOLE_DQN, ZOO_CARTPOLE_STEPS),
    "Acrobot-v1": ZooEntry(
        "dqn",
        {
            "learning_rate": 6.3e-4,
            "batch_size": 128,
            "buffer_size": 50_000,
            "learning_starts": 0,
            "gamma": 0.99,
            "target_update_interval": 250,
            "train_freq": 4,
            "gradient_steps": -1,
            "exploration_fraction": 0.12,
            "exploration_final_eps": 0.1,
            "policy_kwargs": {"net_arch": [256, 256]},
        },
        100_000,
    ),
    "Pendulum-v1": ZooEntry("sac", {"learning_rate": 1e-3}, 20_000),
    "MountainCarContinuous-v0": ZooEntry(
        "sac",
        {
            "learning_rate": 3e-4,
            "buffer_size": 50_000,
            "batch_size": 512,
            "ent_coef": 0.1,
            "train_freq": 32,
            "gradient_steps": 32,
            "gamma": 0.9999,
            "tau": 0.01,
            "learning_starts": 0,
            "use_sde": True,
            "policy_kwargs": {"log_std_init": -3.67, "net_arch": [64, 64]},
        },
        50_000,
    ),
}


def zoo_entry(env_id: str) -> ZooEntry:
    """The zoo's entry for ``env_id``; ``ValueError`` naming the known envs otherwise."""
    if env_id not in ZOO:
        raise ValueError(f"no rl-baselines3-zoo entry for {env_id!r}; known: {sorted(ZOO)}")
    return ZOO[env_id]


def evaluate_policy_greedy(
    predict: Callable[[np.ndarray], Any],
    env_id: str,
    episodes: int,
    seed: int,
    *,
    env_fn: Callable[[], gym.Env] | None = None,
) -> tuple[float, ...]:
    """Returns of ``episodes`` episodes of ``predict(obs) -> action``, env seeds ``seed + i``,
    on ``env_fn()`` (default ``gym.make(env_id)``)."""
    env = env_fn() if env_fn is not None else gym.make(env_id)
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


def _sb3(algo: str) -> tuple[Any, Any]:
    """The SB3 algorithm class and ``BaseCallback``, or an ``ImportError`` saying what to
    install."""
    try:
        import stable_baselines3
        from stable_baselines3.common.callbacks import BaseCallback
    except ImportError as err:  # optional extra
        raise ImportError(
            'the model-free baselines need stable-baselines3: pip install "wm-agents[bench]"'
        ) from err
    return getattr(stable_baselines3, algo.upper()), BaseCallback


def run_sb3(
    seed: int,
    *,
    env_id: str,
    algo: str | None = None,
    total_steps: int | None = None,
    eval_every: int = 1000,
    eval_episodes: int = 10,
    hyperparams: dict[str, Any] | None = None,
    threads: int = 1,
    progress: bool = False,
    env_fn: Callable[[], gym.Env] | None = None,
    policy: str = "MlpPolicy",
) -> CurveRun:
    """Train SB3 ``algo`` on ``env_id`` for ``total_steps`` real steps, evaluating every
    ``eval_every`` steps and once more at the end.

    ``algo``, ``hyperparams`` and ``total_steps`` default to the zoo's entry (:data:`ZOO`).
    ``env_fn`` makes the training and evaluation envs (default ``gym.make(env_id)``: e.g. the
    env seen as pixels, with ``policy="CnnPolicy"``).
    ``extra`` of the result holds the hyperparameters and ``cpu_seconds`` (the whole run) /
    ``learn_cpu_seconds`` (without the evaluations), process CPU time on ``threads`` torch
    threads.  ``progress``: a progress bar over real steps.
    """
    from tqdm.auto import tqdm

    if algo is None or hyperparams is None or total_steps is None:
        entry = zoo_entry(env_id)
        algo = algo or entry.algo
        hyperparams = entry.hyperparams if hyperparams is None else hyperparams
        total_steps = total_steps or entry.n_timesteps
    params, steps = dict(hyperparams), total_steps
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    Algo, BaseCallback = _sb3(algo)
    evals: list[EvalPoint] = []
    eval_seed = 1_000_000 + seed * 1_000  # the planner's evaluation seeds (runner.run_gym)
    bar = tqdm(
        total=steps,
        desc=f"{env_id} {algo} real steps",
        disable=not progress,
        unit="step",
        mininterval=1.0,
    )
    eval_cpu = 0.0
    cpu0 = time.process_time()

    class EvalEvery(BaseCallback):  # type: ignore[misc, valid-type]
        def _on_step(self) -> bool:
            nonlocal eval_cpu
            n = self.num_timesteps
            bar.update(1)
            if n % eval_every == 0 or n == steps:
                t = time.process_time()
                discrete = isinstance(self.model.action_space, gym.spaces.Discrete)
                rets = evaluate_policy_greedy(
                    lambda o: _greedy(self.model, o, discrete),
                    env_id,
                    eval_episodes,
                    eval_seed,
                    env_fn=env_fn,
                )
                now = time.process_time()
                eval_cpu += now - t
                evals.append(EvalPoint(n, rets, learn_cpu_s=now - cpu0 - eval_cpu))
                bar.set_postfix_str(f"eval mean {evals[-1].mean:.1f} at {n} steps")
            # Stop at the budget: SB3 collects whole rollouts of train_freq steps and would
            # run past it (to the next multiple of 256 for the zoo's CartPole DQN).
            return n < steps

    from wm_agents.torch_threads import torch_threads  # torch: not on import (--help)

    t0 = time.perf_counter()
    with torch_threads(threads), bar:
        env = env_fn() if env_fn is not None else gym.make(env_id)
        model = Algo(policy, env, seed=seed, verbose=0, device="cpu", **params)
        model.learn(total_timesteps=steps, callback=EvalEvery())
    cpu = time.process_time() - cpu0
    extra = {
        "algo": algo,
        "policy": policy,
        "hyperparams": params,
        "cpu_seconds": cpu,
        "learn_cpu_seconds": cpu - eval_cpu,
    }
    return CurveRun(f"sb3_{algo}", seed, evals, time.perf_counter() - t0, extra)


def _greedy(model: Any, obs: np.ndarray, discrete: bool) -> Any:
    action = model.predict(obs, deterministic=True)[0]
    return int(action) if discrete else action


def run_dqn(
    seed: int,
    *,
    env_id: str = "CartPole-v1",
    total_steps: int = ZOO_CARTPOLE_STEPS,
    eval_every: int = 1000,
    eval_episodes: int = 10,
    hyperparams: dict[str, Any] | None = None,
) -> CurveRun:
    """SB3 DQN for ``total_steps`` real steps (default: the zoo's CartPole-v1 settings),
    evaluating every ``eval_every`` steps (:func:`run_sb3`)."""
    return run_sb3(
        seed,
        env_id=env_id,
        algo="dqn",
        total_steps=total_steps,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        hyperparams=ZOO_CARTPOLE_DQN if hyperparams is None else hyperparams,
    )
