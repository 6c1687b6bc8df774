"""The planner, given the TRUE CartPole dynamics as its objective, keeps the pole up.

This separates planner quality from model quality: if this fails, the optimizer (or the way it
reads discrete actions) is broken, whatever the learned model does.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import gymnasium as gym
import torch

from wm_agents.planning import CEMPlanner, RandomShootingPlanner
from wm_agents.spaces import ActionSpec

# gymnasium/envs/classic_control/cartpole.py (CartPole-v1, euler integrator).
GRAVITY = 9.8
MASSCART = 1.0
MASSPOLE = 0.1
TOTAL_MASS = MASSPOLE + MASSCART
LENGTH = 0.5  # half the pole's length
POLEMASS_LENGTH = MASSPOLE * LENGTH
FORCE_MAG = 10.0
TAU = 0.02
THETA_THRESHOLD = 12 * 2 * math.pi / 360
X_THRESHOLD = 2.4


def cartpole_step(state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched CartPole step: ``[B, 4]`` states, ``[B]`` action indices -> next ``[B, 4]``,
    terminated ``[B]`` (bool)."""
    x, x_dot, theta, theta_dot = state.unbind(-1)
    force = torch.where(action == 1, FORCE_MAG, -FORCE_MAG).to(state.dtype)
    costheta, sintheta = torch.cos(theta), torch.sin(theta)
    temp = (force + POLEMASS_LENGTH * theta_dot**2 * sintheta) / TOTAL_MASS
    thetaacc = (GRAVITY * sintheta - costheta * temp) / (
        LENGTH * (4.0 / 3.0 - MASSPOLE * costheta**2 / TOTAL_MASS)
    )
    xacc = temp - POLEMASS_LENGTH * thetaacc * costheta / TOTAL_MASS
    x = x + TAU * x_dot
    x_dot = x_dot + TAU * xacc
    theta = theta + TAU * theta_dot
    theta_dot = theta_dot + TAU * thetaacc
    nxt = torch.stack([x, x_dot, theta, theta_dot], dim=-1)
    terminated = (x.abs() > X_THRESHOLD) | (theta.abs() > THETA_THRESHOLD)
    return nxt, terminated


def true_objective(obs) -> Callable[[torch.Tensor], torch.Tensor]:
    """``[B, H, 1]`` action sequences -> ``[B]`` survival-weighted returns.

    The reward per step while alive is 1 minus small penalties for a leaning pole and an
    off-centre cart.  Why: with pure survival every sequence that lasts a short horizon ties,
    and the cart drifts until it is too fast to stop within the horizon (seen in 1 of 3
    episodes); an x penalty alone makes the myopic planner hold the pole leaning.
    """
    start = torch.as_tensor(obs, dtype=torch.float64)

    def objective(actions: torch.Tensor) -> torch.Tensor:
        b, h, _ = actions.shape
        state = start.expand(b, 4)
        alive = torch.ones(b, dtype=torch.float64)
        ret = torch.zeros(b, dtype=torch.float64)
        for t in range(h):
            state, terminated = cartpole_step(state, actions[:, t, 0])
            alive = alive * (~terminated)
            lean = (state[:, 2] / THETA_THRESHOLD) ** 2
            off_centre = (state[:, 0] / X_THRESHOLD) ** 2
            ret = ret + alive * (1.0 - 0.5 * lean - 0.1 * off_centre)
        return ret

    return objective


def test_batched_dynamics_match_gymnasium() -> None:
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=3)
    state = torch.as_tensor(obs, dtype=torch.float64)[None]
    actions = [1, 1, 0, 1, 0, 0, 0, 1, 1, 1]
    for a in actions:
        obs, _, terminated, _, _ = env.step(a)
        state, term = cartpole_step(state, torch.tensor([a]))
        assert torch.allclose(state[0], torch.as_tensor(obs, dtype=torch.float64), atol=1e-5)
        assert bool(term[0]) == terminated
    env.close()


def run_mpc(planner, steps: int = 200, seed: int = 0) -> tuple[float, bool]:
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=seed)
    total, terminated, plan = 0.0, False, None
    for _ in range(steps):
        warm = planner.shift(plan) if plan is not None else None
        proposal = planner.propose(true_objective(obs), warm_start=warm)
        plan = proposal.plan
        obs, reward, terminated, truncated, _ = env.step(int(plan[0, 0]))
        total += float(reward)
        if terminated or truncated:
            break
    env.close()
    return total, terminated


def test_cem_balances_cartpole_with_true_dynamics() -> None:
    planner = CEMPlanner(
        ActionSpec.discrete(2), horizon=15, population=60, elites=6, iterations=3, seed=0
    )
    total, terminated = run_mpc(planner)
    assert not terminated
    assert total == 200.0


def test_random_shooting_balances_cartpole_with_true_dynamics() -> None:
    planner = RandomShootingPlanner(ActionSpec.discrete(2), horizon=15, population=100, seed=0)
    total, terminated = run_mpc(planner)
    assert not terminated
    assert total == 200.0
