"""The end-reward head: the reward of an episode's last step, learned from the state it lands in."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wm_agents.envs import GymActuator, make_env
from wm_agents.neural import EnsembleDynamicsModel, FitConfig, fit_ensemble
from wm_agents.neural.rollout import rollout, rollout_many
from wm_agents.neural.trainer import fit_end_reward
from wm_agents.runner import AgentConfig, build_agent, default_config
from wm_agents.spaces import ActionSpec

LEFT_RIGHT = ActionSpec.discrete(2)
GOAL, GOAL_REWARD, STEP_REWARD = 0.5, 10.0, -0.01


def goal_model(end_reward: bool, seed: int = 0) -> EnsembleDynamicsModel:
    """Members fitted on a line walked at ``x in [-1, 0.5)``: ``x += 0.1`` (action 1) or
    ``-= 0.1`` (action 0); a step reaching ``x >= 0.5`` ends the episode with reward 10, any
    other step gets -0.01.  The ends are rare (15-25 of 600 steps), as a goal is."""
    model = EnsembleDynamicsModel(
        1, LEFT_RIGHT, ensemble_size=5, hidden=32, layers=2, seed=seed, end_reward=end_reward
    )
    g = torch.Generator().manual_seed(seed)
    for _ in range(600):
        x = float(torch.rand(1, generator=g)) * 1.5 - 1.0
        a = int(torch.randint(0, 2, (1,), generator=g))
        nx = x + (0.1 if a else -0.1)
        end = nx >= GOAL
        model.buffer.add([x], [a], GOAL_REWARD if end else STEP_REWARD, [nx], end)
    fit_ensemble(model, model.buffer.all(), FitConfig(max_epochs=150, value=False, seed=seed))
    return model


@pytest.fixture(scope="module")
def with_end() -> EnsembleDynamicsModel:
    return goal_model(end_reward=True)


@pytest.fixture(scope="module")
def without_end() -> EnsembleDynamicsModel:
    return goal_model(end_reward=False)


def step_right(model: EnsembleDynamicsModel, x: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Every member's reward and end probability for stepping right from ``x``: ``[E]`` each."""
    e = model.ensemble_size
    _, reward, end = model.predict(torch.full((e, 1, 1), x), torch.ones(e, 1, 1))
    return reward[:, 0].detach(), end[:, 0].detach()


def test_the_goals_reward_is_learned_where_the_reward_head_alone_misses_it(
    with_end: EnsembleDynamicsModel, without_end: EnsembleDynamicsModel
) -> None:
    obs = torch.tensor([0.2])
    right, left = torch.ones(1, 6, 1), torch.zeros(1, 6, 1)  # the goal is 3 steps right

    def imagined(model: EnsembleDynamicsModel, walk: torch.Tensor) -> float:
        out = rollout(model, obs, walk, particles=None, dtype=torch.float32)
        return float(out.returns.mean())

    # The weighted classifier calls the step into the goal an end ...
    assert step_right(without_end, 0.45)[1].mean() > 0.8
    # ... but the Gaussian reward head takes the 10s for noise (the failure this head exists
    # for: MountainCarContinuous's +100 predicted as about 0), and spreads them on the steps
    # nearby: the walk into the goal is imagined well short of its 10.
    assert imagined(without_end, right) < 0.5 * GOAL_REWARD
    # The end-reward head learns the 10 from the state the step lands in, and the reward head,
    # fitted on the steps that went on, learns theirs: the walk is imagined at about its worth.
    assert float(with_end.end_reward_of(torch.full((5, 1, 1), 0.55)).detach().mean()) == (
        pytest.approx(GOAL_REWARD, abs=0.5)
    )
    assert imagined(with_end, right) == pytest.approx(GOAL_REWARD, abs=1.0)
    assert abs(imagined(with_end, left)) < 0.5
    # Away from the goal the end is unlikely, and the reward is the step's.
    r_mid, p_mid = step_right(with_end, -0.5)
    assert p_mid.mean() < 0.05
    assert abs(float(r_mid.mean()) - STEP_REWARD) < 0.3


def test_ends_are_imagined_at_the_classifiers_calibrated_odds(
    with_end: EnsembleDynamicsModel,
) -> None:
    # The termination loss weighted each end up by the data's ratio (capped): the end
    # probability divides the odds by it again, so a reward is not paid before the goal.
    x = torch.linspace(0.3, 0.7, 9).view(1, 9, 1).expand(5, -1, -1)
    weighted = torch.sigmoid(with_end.termination_logit(x)).detach()
    calibrated = with_end.end_probability(x).detach()
    odds = lambda p: p / (1 - p)  # noqa: E731
    ratio = odds(weighted) / odds(calibrated)
    assert torch.allclose(ratio, torch.exp(with_end.term_log_weight).expand_as(ratio), rtol=1e-3)
    # 15-25 ends in 600 steps: a ratio above the cap, so the weight is the cap.
    assert float(with_end.term_log_weight) == pytest.approx(math.log(20.0))
    nxt, _, term = with_end.predict(x - 0.1, torch.ones(5, 9, 1))
    assert torch.allclose(term, with_end.end_probability(nxt))


def test_the_fast_rollout_imagines_the_end_reward_as_predict_does(
    with_end: EnsembleDynamicsModel,
) -> None:
    g = torch.Generator().manual_seed(3)
    actions = torch.randint(0, 2, (32, 6, 1), generator=g).float()
    obs = torch.tensor([0.2])
    fast = rollout(with_end, obs, actions, particles=None, gamma=0.9, dtype=torch.float32)
    e = with_end.ensemble_size
    state = obs.expand(e, 32, 1)
    alive, ret, discount = torch.ones(e, 32), torch.zeros(e, 32), 1.0
    for t in range(6):
        state, reward, end = with_end.predict(state, actions[:, t][None].expand(e, -1, -1))
        ret = ret + discount * alive * reward
        alive = alive * (1 - end)
        discount *= 0.9
    assert torch.allclose(fast.returns, ret.detach().T, atol=1e-4)
    # Walking right reaches the goal inside the horizon: its imagined return holds the 10.
    right = rollout(with_end, obs, torch.ones(1, 6, 1), particles=None, dtype=torch.float32)
    assert right.returns.mean() > 0.7 * GOAL_REWARD


def test_a_batched_rollout_of_end_reward_models_is_each_alone(
    with_end: EnsembleDynamicsModel,
) -> None:
    other = goal_model(end_reward=True, seed=1)
    g = torch.Generator().manual_seed(4)
    actions = torch.randint(0, 2, (2, 16, 5, 1), generator=g).float()
    obs = torch.tensor([[0.1], [-0.3]])
    many = rollout_many([with_end, other], obs, actions, gamma=0.95, dtype=torch.float32)
    for n, model in enumerate([with_end, other]):
        alone = rollout(model, obs[n], actions[n], gamma=0.95, dtype=torch.float32)
        assert torch.equal(many[n].returns, alone.returns)
        assert torch.equal(many[n].survival, alone.survival)


def test_save_and_load_keep_the_head(with_end: EnsembleDynamicsModel, tmp_path) -> None:
    path = with_end.save(tmp_path / "model.pt")
    loaded = EnsembleDynamicsModel.load(path)
    assert loaded.config.end_reward
    x = torch.linspace(-1, 0.6, 9).view(1, 9, 1).expand(5, -1, -1)
    assert torch.equal(loaded.end_reward_of(x), with_end.end_reward_of(x))
    a = torch.ones(5, 9, 1)
    assert torch.equal(loaded.predict(x, a)[1], with_end.predict(x, a)[1])


def test_the_head_changes_nothing_else_about_a_model() -> None:
    plain = EnsembleDynamicsModel(3, LEFT_RIGHT, hidden=16, layers=2, seed=5)
    ended = EnsembleDynamicsModel(3, LEFT_RIGHT, hidden=16, layers=2, seed=5, end_reward=True)
    # The same initial weights for everything both have (the head is drawn last) ...
    ours = plain.state_dict()
    for name, tensor in ours.items():
        assert torch.equal(ended.state_dict()[name], tensor), name
    assert plain.end_layers is None
    assert {k for k in ended.state_dict() if k not in ours} >= {"end_mean", "end_std"}
    assert ended.config.n_parameters > plain.config.n_parameters
    assert sum(p.numel() for p in ended.parameters()) == ended.config.n_parameters
    with pytest.raises(ValueError, match="no end-reward head"):
        plain.end_reward_of(torch.zeros(5, 1, 3))
    with pytest.raises(ValueError, match="no end-reward head"):
        plain.end_probability(torch.zeros(5, 1, 3))


def test_with_no_end_seen_an_end_is_worth_the_mean_reward() -> None:
    model = EnsembleDynamicsModel(1, LEFT_RIGHT, hidden=16, layers=2, seed=0, end_reward=True)
    for i in range(50):
        model.buffer.add([0.01 * i], [i % 2], float(i % 3), [0.01 * i + 0.1], False)
    fit_end_reward(model, model.buffer.all(), FitConfig(seed=0))
    x = torch.randn(5, 7, 1, generator=torch.Generator().manual_seed(0))
    expected = float(np.mean([i % 3 for i in range(50)]))
    assert torch.allclose(model.end_reward_of(x), torch.full((5, 7), expected))


def test_the_agent_config_builds_the_head() -> None:
    actuator = GymActuator(make_env("CartPole-v1"))
    try:
        assert build_agent(actuator, AgentConfig(end_reward=True), seed=0)[0].config.end_reward
        assert build_agent(actuator, AgentConfig(), seed=0)[0].end_layers is None
    finally:
        actuator.close()
    assert default_config("MountainCarContinuous-v0").end_reward
    assert not default_config("CartPole-v1").end_reward
