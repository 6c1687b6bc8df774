"""A toy world for tests: a point on a line that must reach 0, and a 20-line world model of it
that implements only the WorldModel protocol (imagine / aimagine / learn)."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from wm_agents.core import LearnReport, Outcome
from wm_agents.planning import AgreementGate, CEMPlanner, MPCController
from wm_agents.spaces import ActionSpec

BOX1 = ActionSpec.box([-1.0], [1.0])


class PointEnv(gym.Env):
    """A point on a line that must reach 0: ``x += clip(a, -1, 1)``, reward ``-|x|``; the
    episode ends once ``|x| < 0.05`` (20 steps at most)."""

    observation_space = gym.spaces.Box(-10.0, 10.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed: int | None = None, options: Any = None):
        super().reset(seed=seed)
        self.x, self.t = 3.3, 0
        return np.array([self.x], np.float32), {}

    def step(self, action):
        self.x += float(np.clip(np.asarray(action).reshape(-1)[0], -1.0, 1.0))
        self.t += 1
        done = abs(self.x) < 0.05
        return np.array([self.x], np.float32), -abs(self.x), done, self.t >= 20, {}


class PointModel:
    """The toy world model: exact point dynamics, nothing else (no rollout, no check_obs).

    ``risk``: the share of the positions (the start included) farther than ``danger`` from 0.
    """

    def __init__(self, danger: float = math.inf) -> None:
        self.danger = danger

    def imagine(self, state: Any, candidates, *, horizon: int = 1) -> list[Outcome]:
        out = []
        for cand in candidates:
            x, total, seq = float(np.asarray(state).reshape(-1)[0]), 0.0, []
            far = [abs(x) > self.danger]
            for a in np.asarray(cand, dtype=float).reshape(-1)[:horizon]:
                x += float(np.clip(a, -1.0, 1.0))
                total -= abs(x)
                seq.append([x])
                far.append(abs(x) > self.danger)
            pred = {"next_obs": seq[0]}
            risk = float(np.mean(far))
            out.append(
                Outcome(candidate=cand, prediction=pred, value=total, uncertainty=0, risk=risk)
            )
        return out

    async def aimagine(self, state: Any, candidates, *, horizon: int = 1) -> list[Outcome]:
        return self.imagine(state, candidates, horizon=horizon)

    def learn(self, transitions) -> LearnReport:
        return LearnReport(n_transitions=len(transitions), updated=False)


def point_controller(seed: int = 0, **gate: Any) -> MPCController:
    planner = CEMPlanner(BOX1, horizon=5, population=64, elites=8, iterations=3, seed=seed)
    danger = 2.5 if gate else math.inf  # only 3.3, the start, is past it
    return MPCController(PointModel(danger), planner, AgreementGate(**gate) if gate else None)
