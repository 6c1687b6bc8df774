"""Any WorldModel plans: a toy model with only imagine / aimagine / learn drives the env graph
with CEM, and the Controller / Gate protocols and plan_step hold for every controller."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from wm_agents.core import (
    Controller,
    Decision,
    Gate,
    LearnReport,
    Outcome,
    WorldModel,
    plan_step,
)
from wm_agents.envs import GymActuator
from wm_agents.graph import EnvPlanningContext, create_env_planning_graph, episode_config
from wm_agents.planning import AgreementGate, CEMPlanner, MPCController, imagined_objective
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
    """The toy world model: exact point dynamics, nothing else (no rollout, no check_obs)."""

    def imagine(self, state: Any, candidates, *, horizon: int = 1) -> list[Outcome]:
        out = []
        for cand in candidates:
            x, total, seq = float(np.asarray(state).reshape(-1)[0]), 0.0, []
            for a in np.asarray(cand, dtype=float).reshape(-1)[:horizon]:
                x += float(np.clip(a, -1.0, 1.0))
                total -= abs(x)
                seq.append([x])
            pred = {"next_obs": seq[0]}
            out.append(Outcome(candidate=cand, prediction=pred, value=total, uncertainty=0, risk=0))
        return out

    async def aimagine(self, state: Any, candidates, *, horizon: int = 1) -> list[Outcome]:
        return self.imagine(state, candidates, horizon=horizon)

    def learn(self, transitions) -> LearnReport:
        return LearnReport(n_transitions=len(transitions), updated=False)


def point_controller(seed: int = 0) -> MPCController:
    planner = CEMPlanner(BOX1, horizon=5, population=64, elites=8, iterations=3, seed=seed)
    return MPCController(PointModel(), planner)


@pytest.mark.parametrize("fuse", [False, True])
def test_a_toy_world_model_plans_a_toy_env_through_the_env_graph_with_cem(fuse: bool) -> None:
    model = PointModel()
    assert isinstance(model, WorldModel) and not hasattr(model, "check_obs")
    controller = point_controller()
    assert isinstance(controller, Controller)
    actuator = GymActuator(PointEnv())
    ctx = EnvPlanningContext(actuator=actuator, controller=controller)
    graph = create_env_planning_graph(fuse=fuse).compile()
    final = graph.invoke({"seed": 0}, context=ctx, config=episode_config(20))
    # From 3.3 the best possible is 4 steps (1, 1, 1, 0.3); CEM gets there in a few more.
    assert final["terminated"] is True
    assert abs(final["observation"][0]) < 0.05
    assert len(ctx.records) <= 8
    assert all(r.source == "mpc" and r.verdict == "act" for r in ctx.records)
    assert all(r.action[0] < -0.8 for r in ctx.records[:3])  # full speed towards 0 first
    # The toy model's exact prediction of the first step is what happened.
    assert all(r.prediction_error < 1e-10 for r in ctx.records)


def test_a_toy_world_model_plans_without_a_graph() -> None:
    controller = point_controller(seed=1)
    d = controller.act([0.4])
    assert d.source == "mpc" and d.verdict == "act" and d.plan_ms > 0
    assert d.action[0] == pytest.approx(-0.4, abs=0.1)
    assert controller.warm_plan is not None and controller.warm_plan.shape == (5, 1)
    controller.reset()
    assert controller.warm_plan is None


def test_imagined_objective_reads_member_values_or_values() -> None:
    class Members:
        def imagine(self, state, candidates, *, horizon=1):
            return [
                Outcome(candidate=c, value=1.0, uncertainty=1.0, risk=0.0, member_values=[0, 2])
                if i
                else Outcome.unknown(c, "diverged")
                for i, c in enumerate(candidates)
            ]

    actions = torch.zeros(3, 2, 1)
    returns = imagined_objective(Members(), [0.0], horizon=2)(actions)  # type: ignore[arg-type]
    assert returns.shape == (3, 2)
    assert returns[0].tolist() == [-math.inf, -math.inf] and returns[1].tolist() == [0.0, 2.0]
    values = imagined_objective(PointModel(), [1.0], horizon=2)(torch.full((4, 2, 1), -0.5))
    assert values.tolist() == [-0.5] * 4  # |0.5| + |0.0|, the [B] form

    class Short:
        def imagine(self, state, candidates, *, horizon=1):
            return []

    with pytest.raises(ValueError, match="returned 0 outcomes for 3 sequences"):
        imagined_objective(Short(), [0.0], horizon=2)(actions)  # type: ignore[arg-type]


def test_a_custom_objective_factory_replaces_the_default() -> None:
    calls: list[Any] = []

    def factory(obs: Any):
        calls.append(obs)
        return lambda actions: -(actions[:, 0, 0] - 0.25).abs()  # best first action: 0.25

    planner = CEMPlanner(BOX1, horizon=2, population=64, elites=8, iterations=4, seed=0)
    controller = MPCController(PointModel(), planner, objective=factory)
    d = controller.act([2.0])
    assert calls == [[2.0]]
    assert d.action[0] == pytest.approx(0.25, abs=0.1)


def test_every_library_gate_is_a_gate_and_decides_without_extra_arguments() -> None:
    outs = [Outcome(candidate=[[0.5]], value=1.0, uncertainty=0.0, risk=0.0)]
    gates: list[Gate] = [AgreementGate(action_spec=BOX1), point_controller()]
    for gate in gates:
        assert gate.decide(outs, replans=0).action == [0.5]
    assert point_controller().gate == AgreementGate(action_spec=BOX1)  # bound to the planner's


def test_plan_step_runs_rounds_until_the_gate_stops_replanning() -> None:
    seen: list[tuple[str, int]] = []

    def propose(r: int) -> str:
        seen.append(("propose", r))
        return f"p{r}"

    def imagine(p: str) -> list[Outcome]:
        return [Outcome(candidate=p, value=0.0, uncertainty=0.0, risk=0.0)]

    def decide(outcomes, r: int) -> Decision:
        return Decision(verdict="replan" if r < 3 else "act", source=outcomes[0].candidate)

    step = plan_step(propose, imagine, decide, first_round=1)
    assert step.rounds == 3 and step.proposal == "p3" and step.decision.source == "p3"
    assert seen == [("propose", 1), ("propose", 2), ("propose", 3)]
    # A graph node may write the decision as a mapping.
    assert plan_step(propose, imagine, lambda o, r: {"verdict": "ask"}).rounds == 1

    with pytest.raises(RuntimeError, match="re-plans in a row"):
        plan_step(propose, imagine, lambda o, r: Decision(verdict="replan"))


def test_the_toy_model_async_path() -> None:
    out = asyncio.run(PointModel().aimagine([1.0], [[[-1.0]]], horizon=1))
    assert out[0].value == 0.0
