"""Imagined rollouts may halt where the real data has not been (MOReL-style pessimism, issue 14).

A model's learned termination is least reliable where it has seen no data; with
``halt_outside_data`` on, an imagined state outside the per-dimension range of the observations
the model was fitted on counts as an episode end.  The reference below rolls every member out
with ``predict`` and ends each row by hand at its first state outside the box.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from wm_agents.neural import EnsembleDynamicsModel, FitConfig, fit_ensemble
from wm_agents.neural.network import NOTHING_SEEN
from wm_agents.neural.rollout import rollout_many
from wm_agents.spaces import ActionSpec

OBS = [0.1, -0.2, 0.05, 0.3]
E, H = 3, 6


def drifting_model(*, learned_termination: bool = True) -> EnsembleDynamicsModel:
    """An untrained model whose imagined states wander, rewarded 1 a step, never terminating."""
    model = EnsembleDynamicsModel(4, ActionSpec.discrete(2), ensemble_size=E, hidden=16, seed=1)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        model.out_mean.copy_(0.3 * torch.randn(model.out_mean.shape, generator=g))
        model.out_std.copy_(torch.rand(model.out_std.shape, generator=g) + 0.5)
        model.term_layers[-1].bias.fill_(-50.0)  # the learned head: never an end
        model.state_seen.copy_(torch.tensor([[-1.0] * 4, [1.0] * 4]))
    model.reward_fn = lambda obs, act, nxt: torch.ones(nxt.shape[:-1])
    if not learned_termination:  # a known termination function takes the step-by-step path
        model.termination_fn = lambda nxt: torch.zeros(nxt.shape[:-1])
    model.halt_outside_data = True
    return model


@torch.no_grad()
def halted_by_hand(model: EnsembleDynamicsModel, actions: torch.Tensor) -> torch.Tensor:
    """[E, B] undiscounted returns: 1 a step up to and including the first step out of the box."""
    b = actions.shape[0]
    state = torch.tensor(OBS).expand(E, b, 4)
    lo = torch.minimum(model.state_seen[0], torch.tensor(OBS))
    hi = torch.maximum(model.state_seen[1], torch.tensor(OBS))
    alive, ret = torch.ones(E, b), torch.zeros(E, b)
    for t in range(actions.shape[1]):
        state, _, _ = model.predict(state, actions[:, t].expand(E, b, -1))
        ret += alive
        alive = alive * ((state >= lo) & (state <= hi)).all(-1)
    return ret


def test_no_box_when_off_or_before_any_fit() -> None:
    model = EnsembleDynamicsModel(4, ActionSpec.discrete(2), ensemble_size=2, hidden=8)
    obs = torch.tensor(OBS)
    assert torch.equal(model.state_seen, torch.tensor(NOTHING_SEEN)[:, None].repeat(1, 4))
    assert model.state_box(obs) is None  # off by default
    model.halt_outside_data = True
    assert model.state_box(obs) is None  # nothing seen yet: nothing to halt on


@pytest.mark.parametrize("learned_termination", [True, False], ids=["fast", "step-by-step"])
def test_a_rollout_that_leaves_the_data_halts_there(learned_termination: bool) -> None:
    model = drifting_model(learned_termination=learned_termination)
    actions = torch.randint(0, 2, (8, H, 1), generator=torch.Generator().manual_seed(3)).float()
    roll = model.rollout(OBS, actions, particles=E)
    expected = halted_by_hand(model, actions)
    torch.testing.assert_close(roll.returns, expected.T)
    # The drift leaves the box mid-horizon (after step 1, before step H): not vacuous.
    assert bool(((expected > 1) & (expected < H)).all()), expected
    model.halt_outside_data = False
    free = model.rollout(OBS, actions, particles=E)
    assert torch.equal(free.returns, torch.full_like(free.returns, float(H)))
    assert bool((roll.survival <= free.survival).all()) and bool((roll.survival < 1).any())


def test_a_start_outside_the_data_still_plans_from_where_it_is() -> None:
    """The box takes in the start, so a real state the data has not reached is not an end."""
    model = drifting_model()
    with torch.no_grad():
        model.state_seen.copy_(torch.tensor([[-0.01] * 4, [0.01] * 4]))
    box = model.state_box(torch.tensor(OBS))
    assert box is not None
    assert torch.equal(box[0], torch.tensor([-0.01, -0.2, -0.01, -0.01]))
    assert torch.equal(box[1], torch.tensor([0.1, 0.01, 0.05, 0.3]))
    model.reward_fn = lambda obs, act, nxt: torch.ones(nxt.shape[:-1])
    with torch.no_grad():
        model.out_mean.zero_()
        model.out_std.fill_(1e-9)  # the imagined state stays at the start
    roll = model.rollout(OBS, torch.zeros(2, H, 1))
    assert torch.equal(roll.returns, torch.full_like(roll.returns, float(H)))


def test_several_models_in_one_pass_halt_each_by_its_own_box() -> None:
    halting, free = drifting_model(), drifting_model()
    free.halt_outside_data = False
    actions = torch.randint(0, 2, (2, 4, H, 1), generator=torch.Generator().manual_seed(4))
    rolls = rollout_many([halting, free], torch.tensor([OBS, OBS]), actions.float())
    assert torch.equal(rolls[0].returns, halting.rollout(OBS, actions[0].float()).returns)
    assert bool((rolls[0].returns < H).all())  # halted, though never terminated
    assert torch.equal(rolls[1].returns, torch.full_like(rolls[1].returns, float(H)))


def test_the_fit_records_the_data_range_and_the_file_keeps_it(tmp_path: Path) -> None:
    model = EnsembleDynamicsModel(4, ActionSpec.discrete(2), ensemble_size=2, hidden=16, layers=1)
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(61, 4, generator=g).numpy()
    for i in range(60):
        model.buffer.add(obs[i], [i % 2], 1.0, obs[i + 1], False)
    fit_ensemble(model, model.buffer.all(), FitConfig(max_epochs=2, value_rounds=0))
    expected = torch.stack([torch.from_numpy(obs).amin(0), torch.from_numpy(obs).amax(0)])
    torch.testing.assert_close(model.state_seen, expected)
    loaded = EnsembleDynamicsModel.load(model.save(tmp_path / "m.pt"))
    assert torch.equal(loaded.state_seen, model.state_seen)
    # A version-3 file (before the range was saved) loads with nothing seen: no halting.
    blob = torch.load(tmp_path / "m.pt", weights_only=True)
    state = {k: v for k, v in blob["state_dict"].items() if k != "state_seen"}
    torch.save({**blob, "version": 3, "state_dict": state}, tmp_path / "v3.pt")
    old = EnsembleDynamicsModel.load(tmp_path / "v3.pt")
    old.halt_outside_data = True
    assert old.state_box(torch.tensor(OBS)) is None


def test_a_margin_widens_the_box_by_a_share_of_each_range() -> None:
    model = drifting_model()
    with torch.no_grad():
        model.state_seen.copy_(torch.tensor([[-0.4, -1.0, -0.2, -2.0], [0.0, 1.0, 0.2, 2.0]]))
    model.halt_margin = 0.25
    box = model.state_box(torch.tensor([0.0, 0.0, 0.0, 0.0]))
    assert box is not None
    torch.testing.assert_close(box[0], torch.tensor([-0.5, -1.5, -0.3, -3.0]))
    torch.testing.assert_close(box[1], torch.tensor([0.1, 1.5, 0.3, 3.0]))
    # Wide enough, the same drifting rollout that halted mid-horizon runs to the end.
    model.state_seen.copy_(torch.tensor([[-1.0] * 4, [1.0] * 4]))
    model.halt_margin = 0.0
    actions = torch.zeros(4, H, 1)
    assert bool((model.rollout(OBS, actions).returns < H).all())
    model.halt_margin = 10.0
    assert torch.equal(model.rollout(OBS, actions).returns, torch.full((4, E), float(H)))


@pytest.mark.parametrize("margin", [-0.1, float("nan"), float("inf")])
def test_a_margin_must_be_finite_and_not_negative(margin: float) -> None:
    from wm_agents.runner import AgentConfig

    with pytest.raises(ValueError, match="halt_margin"):
        AgentConfig(halt_margin=margin)


def test_a_controller_may_search_and_imagine_with_its_own_margin() -> None:
    from wm_agents.planning import CEMPlanner, MPCController
    from wm_agents.planning.mpc import plan_together

    model = drifting_model()
    planner = CEMPlanner(model.action_spec, horizon=H, population=8, elites=2, iterations=1)
    own = MPCController(model, planner, use_value=False)
    wide = MPCController(model, planner, use_value=False, halt_margin=10.0)
    candidates = [[[0.0]] * H, [[1.0]] * H]
    full = sum(0.99**t for t in range(H))  # 1 a step, never halted
    halted = own.imagine(OBS, candidates)
    free = wide.imagine(OBS, candidates)
    assert all(v < full - 1e-4 for o in halted for v in o.member_values)
    assert all(v == pytest.approx(full) for o in free for v in o.member_values)
    assert model.halt_margin == 0.0  # the model's own margin is back after each call
    assert wide.propose(OBS).scores[0] == pytest.approx(full)
    assert own.propose(OBS).scores[0] < full - 1e-4
    assert model.halt_margin == 0.0
    gen = [torch.Generator().manual_seed(0)] * 2
    with pytest.raises(ValueError, match="different halt margins"):
        plan_together([own, wide], [OBS, OBS], warm_starts=[None, None], generators=gen)
    with pytest.raises(ValueError, match="halt_margin must be finite"):
        MPCController(model, planner, halt_margin=-1.0)


def test_the_training_controller_takes_the_train_margin() -> None:
    from wm_agents.envs.gym_actuator import GymActuator
    from wm_agents.envs.make import make_env
    from wm_agents.runner import AgentConfig, build_agent, build_controller, default_config

    cfg = default_config("CartPole-v1", train_halt_margin=0.25)
    model, training = build_agent(GymActuator(make_env("CartPole-v1")), cfg, seed=0)
    assert training.halt_margin == 0.25
    assert model.halt_margin == 0.0  # what the evaluations plan with
    assert build_controller(model, cfg, 7).halt_margin is None
    with pytest.raises(ValueError, match="train_halt_margin"):
        AgentConfig(train_halt_margin=float("nan"))
