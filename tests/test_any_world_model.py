"""Any WorldModel plans: a toy model with only imagine / aimagine / learn drives the env graph
with CEM; the Controller / Gate protocols and plan_step hold for every controller; risky steps
go to a person (ask) or a fallback policy (refuse)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np
import pytest
import torch
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from point_world import BOX1, PointEnv, PointModel, point_controller

from wm_agents.core import (
    Controller,
    Decision,
    Gate,
    Outcome,
    WorldModel,
    plan_step,
)
from wm_agents.envs import GymActuator
from wm_agents.graph import EnvPlanningContext, create_env_planning_graph, episode_config
from wm_agents.graph.env_review import review_answer
from wm_agents.planning import AgreementGate, CEMPlanner, MPCController, imagined_objective
from wm_agents.serialization import checkpoint_serializer
from wm_agents.spaces import ActionSpec


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


# ---------------------------------------------------------------- ask / refuse on imagined risk


def review_graph(**options: Any):
    saver = InMemorySaver(serde=checkpoint_serializer())
    return create_env_planning_graph(**options).compile(checkpointer=saver)


def run_config(thread: str) -> dict[str, Any]:
    return episode_config(20, review=True, configurable={"thread_id": thread})


def test_a_risky_step_goes_to_a_person_who_approves_or_edits() -> None:
    # From 3.3 every plan starts in the danger zone: risk 1/6 > 0.1, so the gate asks once.
    controller = point_controller(max_risk=0.1, on_risk="ask")
    graph = review_graph(ask=True)
    for answer, first_action, source in (
        ("approve", None, "mpc"),
        ({"type": "edit", "action": [-1.0]}, -1.0, "person"),
    ):
        ctx = EnvPlanningContext(actuator=GymActuator(PointEnv()), controller=controller)
        config = run_config(f"ask-{source}")
        paused = graph.invoke({"seed": 0}, context=ctx, config=config)
        question = paused["__interrupt__"][0].value
        assert question["risk"] == pytest.approx(1 / 6) and question["step"] == 0
        assert question["observation"] == pytest.approx([3.3])
        assert question["action"][0] < -0.8 and "imagined risk 17%" in question["reason"]
        assert ctx.records == []  # nothing ran while the person thinks
        final = graph.invoke(Command(resume=answer), context=ctx, config=config)
        first = ctx.records[0]
        assert first.verdict == "ask" and first.source == source
        if first_action is not None:
            assert first.action == [first_action]
        # The rest of the episode is out of the danger zone: the planner acts alone.
        assert [r.verdict for r in ctx.records[1:]] == ["act"] * (len(ctx.records) - 1)
        assert final["terminated"] is True


def test_a_rejected_risky_step_ends_the_episode_without_a_refuse_node() -> None:
    controller = point_controller(max_risk=0.1, on_risk="ask")
    graph = review_graph(ask=True)
    ctx = EnvPlanningContext(actuator=GymActuator(PointEnv()), controller=controller)
    config = run_config("reject")
    graph.invoke({"seed": 0}, context=ctx, config=config)
    final = graph.invoke(Command(resume="reject"), context=ctx, config=config)
    assert final["done"] is True and final["step"] == 0 and ctx.records == []
    assert final["decision"].verdict == "refuse"
    assert "a person rejected it; the episode ends here" in final["decision"].reason
    with pytest.raises(ValueError, match="answer an env ask with 'approve'"):
        graph.invoke({"seed": 0}, context=ctx, config=run_config("bad"))
        graph.invoke(Command(resume="maybe"), context=ctx, config=run_config("bad"))


@pytest.mark.parametrize("via", ["gate", "person"])
def test_a_refused_risky_step_is_taken_by_the_fallback_policy(via: str) -> None:
    on_risk = "refuse" if via == "gate" else "ask"
    controller = point_controller(max_risk=0.1, on_risk=on_risk)
    graph = review_graph(ask=True, refuse=True)
    seen: list[np.ndarray] = []

    def fallback(obs: np.ndarray) -> list[float]:
        seen.append(obs)
        return [-0.25]  # a cautious step

    ctx = EnvPlanningContext(
        actuator=GymActuator(PointEnv()), controller=controller, fallback=fallback
    )
    config = run_config(f"fallback-{via}")
    final = graph.invoke({"seed": 0}, context=ctx, config=config)
    while "__interrupt__" in final:  # the person rejects every risky step
        final = graph.invoke(Command(resume={"type": "reject"}), context=ctx, config=config)
    # The cautious fallback takes four steps out of the danger zone (3.3 -> 2.3), then the
    # planner acts alone.
    assert [round(float(o[0]), 2) for o in seen] == [3.3, 3.05, 2.8, 2.55]
    for r in ctx.records[:4]:
        assert (r.verdict, r.source, r.action) == ("refuse", "fallback", [-0.25])
        assert math.isnan(r.prediction_error)  # the fallback's step was not imagined
    assert all((r.verdict, r.source) == ("act", "mpc") for r in ctx.records[4:])
    assert final["terminated"] is True


def test_a_refused_step_without_a_fallback_ends_the_episode() -> None:
    controller = point_controller(max_risk=0.1, on_risk="refuse")
    ctx = EnvPlanningContext(actuator=GymActuator(PointEnv()), controller=controller)
    final = review_graph(refuse=True).invoke({"seed": 0}, context=ctx, config=run_config("end"))
    assert final["done"] is True and ctx.records == []
    assert "refused; a fallback acts" in final["decision"].reason


def test_risk_verdicts_need_their_nodes_and_never_fuse() -> None:
    controller = point_controller(max_risk=0.1, on_risk="ask")
    ctx = EnvPlanningContext(actuator=GymActuator(PointEnv()), controller=controller)
    with pytest.raises(ValueError, match="verdict 'ask' but the graph has no 'ask' node"):
        create_env_planning_graph().compile().invoke({"seed": 0}, context=ctx)
    for options in ({"ask": True}, {"refuse": True}):
        with pytest.raises(ValueError, match=r"fuse=True .* cannot route to ask / refuse"):
            create_env_planning_graph(fuse=True, **options)


def test_agreement_gate_risk_options() -> None:
    outs = [Outcome(candidate=[[0.5]], value=1.0, uncertainty=0.0, risk=0.3)]
    calm = AgreementGate(action_spec=BOX1, max_risk=0.3).decide(outs)
    assert calm.verdict == "act"  # at the threshold is not above it
    asked = AgreementGate(action_spec=BOX1, max_risk=0.2).decide(outs)
    assert asked.verdict == "ask" and asked.action == [0.5]
    refused = AgreementGate(action_spec=BOX1, max_risk=0.2, on_risk="refuse").decide(outs)
    assert refused.verdict == "refuse" and "imagined risk 30% is above 20%" in refused.reason
    with pytest.raises(ValueError, match="max_risk"):
        AgreementGate(max_risk=1.5)
    with pytest.raises(ValueError, match="on_risk"):
        AgreementGate(on_risk="panic")  # type: ignore[arg-type]


def test_review_answers_are_checked_against_the_action_space() -> None:
    assert review_answer("approve", BOX1) == ("approve", None)
    assert review_answer({"type": "reject", "message": "no"}, BOX1) == ("reject", None)
    assert review_answer({"type": "edit", "action": [0.5]}, BOX1) == ("edit", [0.5])
    with pytest.raises(ValueError, match=r"shape \[B, H, 1\]"):
        review_answer({"type": "edit", "action": [0.5, 0.1]}, BOX1)
    with pytest.raises(ValueError, match="list of numbers"):
        review_answer({"type": "edit", "action": "left"}, BOX1)
    with pytest.raises(ValueError, match="integer action indices"):
        review_answer({"type": "edit", "action": [2.5]}, ActionSpec.discrete(3))


def test_plan_many_on_any_model_decides_as_plan_does_state_by_state() -> None:
    # A model with only imagine: each state's objective and imagine run on their own, with
    # the episode streams a batched evaluation gives them.
    controller = point_controller(seed=3)
    states = [[1.0], [-0.5], [2.0]]
    warm = [None, [[0.5], [0.5], [0.5]], None]
    generators = [controller.episode_generator(s) for s in (10, 11, 12)]
    steps = controller.plan_many(states, warm_starts=warm, generators=generators)
    for i, (state, step) in enumerate(zip(states, steps, strict=True)):
        alone = controller.for_episode(10 + i).plan(state, warm_start=warm[i])
        assert step.decision == alone.decision
        assert torch.equal(step.proposal.candidates, alone.proposal.candidates)
