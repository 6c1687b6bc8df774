"""Exploration by disagreement: the search's optimism where the ensemble's members part."""

from __future__ import annotations

import math

import pytest
import torch

from wm_agents.neural import EnsembleDynamicsModel, FitConfig, fit_ensemble
from wm_agents.neural.rollout import rollout, rollout_many
from wm_agents.planning import CEMPlanner, MPCController
from wm_agents.runner import AgentConfig, build_agent
from wm_agents.spaces import ActionSpec

LEFT_RIGHT = ActionSpec.discrete(2)


def line_model(seed: int = 0) -> EnsembleDynamicsModel:
    """Members fitted on a line walked only at ``x <= 0``: ``x += 0.1`` (action 1, reward
    -0.05) or ``-= 0.1`` (action 0, reward 0).  Left of 0 they agree; right of it none has
    seen anything."""
    model = EnsembleDynamicsModel(1, LEFT_RIGHT, ensemble_size=5, hidden=32, layers=2, seed=seed)
    g = torch.Generator().manual_seed(seed)
    for _ in range(400):
        x = -float(torch.rand(1, generator=g))  # [-1, 0]
        a = int(torch.randint(0, 2, (1,), generator=g))
        nx = min(x + (0.1 if a else -0.1), 0.0)
        model.buffer.add([x], [a], -0.05 * a, [nx], False)
    fit_ensemble(model, model.buffer.all(), FitConfig(max_epochs=60, value=False, seed=seed))
    return model


@pytest.fixture(scope="module")
def model() -> EnsembleDynamicsModel:
    return line_model()


def walks(h: int) -> torch.Tensor:
    """``[2, h, 1]``: always left, always right."""
    return torch.stack([torch.zeros(h, 1), torch.ones(h, 1)])


def test_the_bonus_is_the_members_disagreement_where_they_have_no_data(
    model: EnsembleDynamicsModel,
) -> None:
    obs = torch.tensor([0.0])
    plain = rollout(model, obs, walks(8), particles=None, dtype=torch.float32).returns
    bonus = rollout(model, obs, walks(8), particles=None, dtype=torch.float32, explore=1.0)
    gain = (bonus.returns - plain).mean(dim=1)  # over members (each weighs by its survival)
    # Walking right leaves the data: the members part there, far more than on the left.
    assert gain[1] > 3 * gain[0]
    assert gain[1] > 0.5  # in typical one-step changes, summed over 8 steps
    # Linear in the weight.
    twice = rollout(model, obs, walks(8), particles=None, dtype=torch.float32, explore=2.0)
    assert torch.allclose(twice.returns - plain, 2 * (bonus.returns - plain), atol=1e-4)


def test_identical_members_add_nothing(model: EnsembleDynamicsModel) -> None:
    clone = line_model()
    with torch.no_grad():
        for p in clone.parameters():  # every member member 0 (the cache sees the versions)
            if p.ndim and p.shape[0] == clone.ensemble_size:
                p.copy_(p[:1].expand_as(p).clone())
    obs = torch.tensor([0.0])
    plain = rollout(clone, obs, walks(6), particles=None, dtype=torch.float32).returns
    bonus = rollout(clone, obs, walks(6), particles=None, dtype=torch.float32, explore=3.0)
    assert torch.allclose(bonus.returns, plain, atol=1e-6)


def test_many_observations_get_each_its_own_bonus(model: EnsembleDynamicsModel) -> None:
    obs = torch.tensor([[0.0], [-0.5], [-0.9]])
    acts = torch.stack([walks(8)] * 3)
    many = rollout_many(model, obs, acts, particles=None, dtype=torch.float32, explore=0.5)
    for o, roll in zip(obs, many, strict=True):
        alone = rollout(model, o, walks(8), particles=None, dtype=torch.float32, explore=0.5)
        assert torch.allclose(roll.returns, alone.returns, atol=1e-6)


def test_bad_weights_and_one_particle_are_refused(model: EnsembleDynamicsModel) -> None:
    obs = torch.tensor([0.0])
    with pytest.raises(ValueError, match="every member to imagine every candidate"):
        rollout(model, obs, walks(4), particles=1, explore=1.0)
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="explore must be a finite weight"):
            rollout(model, obs, walks(4), particles=None, explore=bad)
        with pytest.raises(ValueError, match="explore must be a finite weight"):
            MPCController(model, CEMPlanner(LEFT_RIGHT, horizon=4), explore=bad)
        with pytest.raises(ValueError, match="explore must be a finite weight"):
            AgentConfig(explore=bad)


def test_an_exploring_search_heads_for_what_the_model_has_not_seen(
    model: EnsembleDynamicsModel,
) -> None:
    """Walking right costs a little: without the bonus the search walks left; with it, it
    walks right, off the data, from every start (six steps left stay in the data: left of
    -1 would be unseen too, and as good a place to explore)."""

    def first_actions(explore: float) -> list[int]:
        out = []
        for i, x in enumerate((-0.05, -0.2, -0.35)):
            planner = CEMPlanner(LEFT_RIGHT, horizon=6, population=60, seed=i)
            c = MPCController(model, planner, use_value=False, explore=explore)
            out.append(int(c.propose([x]).plan[0, 0]))
        return out

    assert first_actions(0.0) == [0, 0, 0]
    assert first_actions(1.0) == [1, 1, 1]


def test_the_runner_explores_in_training_only() -> None:
    from wm_agents.envs import GymActuator, make_env
    from wm_agents.runner import build_controller, default_config

    actuator = GymActuator(make_env("CartPole-v1"))
    try:
        config = AgentConfig(explore=0.5)
        model, controller = build_agent(actuator, config, seed=0)
    finally:
        actuator.close()
    assert controller.explore == 0.5
    # run_gym's evaluation twin is build_controller without the training options.
    assert build_controller(model, config, seed=7_777).explore == 0.0
    assert AgentConfig().explore == 0.0
    assert default_config("MountainCarContinuous-v0").explore == 1.0
