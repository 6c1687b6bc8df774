"""EnsembleDynamicsModel, its trainer and the replay buffer."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from wm_agents.core import Outcome, Transition
from wm_agents.neural import (
    EnsembleDynamicsModel,
    EnsembleLinear,
    FitConfig,
    ModelFileError,
    ReplayBuffer,
    fit_ensemble,
)
from wm_agents.spaces import ActionSpec

# A known, stable linear system: s' = A s + B a, reward = sum(s).
A_MAT = np.array([[0.9, 0.1, 0.0], [-0.1, 0.9, 0.05], [0.0, 0.0, 0.8]])
B_MAT = np.array([[0.0], [0.5], [0.2]])
BOX1 = ActionSpec.box([-1.0], [1.0])
DISCRETE2 = ActionSpec.discrete(2)


def fill_linear(
    model: EnsembleDynamicsModel, episodes: int = 8, length: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Random-action episodes of the linear system into ``model.buffer``.

    Returns the state changes ``[N, 3]`` and rewards ``[N]``.
    """
    rng = np.random.default_rng(0)
    deltas, rewards = [], []
    for _ in range(episodes):
        s = rng.uniform(-1.0, 1.0, 3)
        for t in range(length):
            a = rng.uniform(-1.0, 1.0, 1)
            n = A_MAT @ s + B_MAT @ a
            model.buffer.add(s, a, float(s.sum()), n, False, t == length - 1)
            deltas.append(n - s)
            rewards.append(s.sum())
            s = n
    return np.asarray(deltas), np.asarray(rewards)


@pytest.fixture(scope="module")
def linear_fit() -> tuple[EnsembleDynamicsModel, object, np.ndarray, np.ndarray]:
    model = EnsembleDynamicsModel(3, BOX1, ensemble_size=3, hidden=64, layers=2, seed=0)
    deltas, rewards = fill_linear(model)
    report = fit_ensemble(
        model, model.buffer.all(), FitConfig(seed=0, batch_size=32, max_epochs=30)
    )
    return model, report, deltas, rewards


def test_fits_known_linear_system(linear_fit) -> None:
    model, report, deltas, rewards = linear_fit
    assert report.n_train + report.n_val == 400
    assert report.n_val == 80  # 20% held out, in contiguous chunks of 20
    assert bool(model.fitted)
    # A model that predicts "no change" scores var(delta); the fitted one is 100x better.
    assert report.val_mse < 0.01 * float(np.var(deltas))
    assert report.val_reward_mse < 0.01 * float(np.var(rewards))
    assert math.isfinite(report.val_multistep_mse)
    assert report.val_multistep_mse < 0.1 * float(np.var(deltas))
    assert report.val_term_accuracy == 1.0  # nothing terminates; nothing predicted to
    assert set(report.metrics()) >= {"val_mse", "val_mse_10step", "epochs", "n_train"}
    assert "one-step val MSE" in report.summary()


def test_fitted_model_predicts_unseen_state(linear_fit) -> None:
    model = linear_fit[0]
    s = np.array([0.3, -0.2, 0.5])
    a = np.array([0.4])
    with torch.no_grad():
        nxt, rew, _ = model.predict(
            torch.tensor(s, dtype=torch.float32).expand(3, 1, 3),
            torch.tensor(a, dtype=torch.float32).expand(3, 1, 1),
        )
    expected = A_MAT @ s + B_MAT @ a
    assert nxt.mean(0)[0].numpy() == pytest.approx(expected, abs=0.03)
    assert float(rew.mean()) == pytest.approx(s.sum(), abs=0.1)


def test_predict_keeps_no_autograd_graph_outside_no_grad(linear_fit) -> None:
    """Callers of predict (imagined rollouts, trust checks) need no gradient; the fit uses
    forward_normalized, which still has one."""
    model = linear_fit[0]
    obs, act = torch.zeros(3, 2, 3), torch.zeros(3, 2, 1)
    nxt, rew, term = model.predict(
        obs, act, sample=True, generator=torch.Generator().manual_seed(0)
    )
    assert not any(t.requires_grad for t in (nxt, rew, term))
    mean, _ = model.forward_normalized(model.normalize_inputs(obs, act))
    assert mean.requires_grad


def test_weights_shaped_member_in_out() -> None:
    model = EnsembleDynamicsModel(4, DISCRETE2, ensemble_size=5, hidden=16, layers=2, seed=0)
    first, second = model.hidden_layers
    assert first.weight.shape == (5, 4 + 2, 16)  # obs + one-hot action
    assert first.bias.shape == (5, 1, 16)
    assert second.weight.shape == (5, 16, 16)
    assert model.head.weight.shape == (5, 16, 2 * (4 + 1))
    layer = EnsembleLinear(3, 2, 7)
    layer.reset_parameters(torch.Generator().manual_seed(0))
    assert layer(torch.ones(3, 5, 2)).shape == (3, 5, 7)
    # Members are independent: different init per member.
    assert not torch.equal(first.weight[0], first.weight[1])


def test_same_seed_same_weights() -> None:
    a = EnsembleDynamicsModel(4, DISCRETE2, ensemble_size=2, hidden=8, layers=1, seed=3)
    b = EnsembleDynamicsModel(4, DISCRETE2, ensemble_size=2, hidden=8, layers=1, seed=3)
    c = EnsembleDynamicsModel(4, DISCRETE2, ensemble_size=2, hidden=8, layers=1, seed=4)
    assert torch.equal(a.head.weight, b.head.weight)
    assert not torch.equal(a.head.weight, c.head.weight)


def scrambled_model(spec: ActionSpec = DISCRETE2, e: int = 3) -> EnsembleDynamicsModel:
    """Untrained model with non-trivial normalizers, so the folded fast path is exercised."""
    model = EnsembleDynamicsModel(4, spec, ensemble_size=e, hidden=16, layers=2, seed=1)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        model.in_mean.copy_(torch.randn(model.in_mean.shape, generator=g))
        model.in_std.copy_(torch.rand(model.in_std.shape, generator=g) + 0.5)
        model.out_mean.copy_(0.1 * torch.randn(model.out_mean.shape, generator=g))
        model.out_std.copy_(torch.rand(model.out_std.shape, generator=g) + 0.5)
        # Termination bias well below zero so particles survive long enough to differ.
        model.term_layers[-1].bias.fill_(-2.0)
    return model


@torch.no_grad()
def per_member_returns(model, obs, actions, gamma=1.0):
    """Reference: every member rolls every sequence out with ``predict`` ([E, B] returns)."""
    e = model.ensemble_size
    b, h, _ = actions.shape
    state = torch.as_tensor(obs, dtype=torch.float32).expand(e, b, -1)
    ret = torch.zeros(e, b)
    alive = torch.ones(e, b)
    first = None
    for t in range(h):
        state, reward, term = model.predict(state, actions[:, t].expand(e, b, -1))
        if first is None:
            first = state
        ret = ret + gamma**t * alive * reward
        alive = alive * (1 - term)
    return ret, alive, first


OBS4 = [0.1, -0.2, 0.05, 0.3]


def test_rollout_shapes_and_particles_equal_members() -> None:
    model = scrambled_model()
    actions = torch.randint(0, 2, (6, 4, 1), generator=torch.Generator().manual_seed(0)).float()
    roll = model.rollout(OBS4, actions, particles=3, gamma=0.9)
    assert roll.returns.shape == (6, 3)
    assert roll.survival.shape == (6, 3)
    assert roll.first_obs.shape == (6, 3, 4)
    ref, alive, first = per_member_returns(model, OBS4, actions, gamma=0.9)
    # particles == E: particle i of every candidate is member i (round robin).
    torch.testing.assert_close(roll.returns, ref.T, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(roll.survival, alive.T, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(roll.first_obs, first.transpose(0, 1), rtol=1e-4, atol=1e-5)
    # The members really differ, so the assignment above is a real check.
    assert (roll.returns.max(dim=1).values - roll.returns.min(dim=1).values).min() > 1e-3
    # Default particles is one per member.
    torch.testing.assert_close(model.rollout(OBS4, actions, gamma=0.9).returns, roll.returns)


@pytest.mark.parametrize("particles", [1, 2, 5])
def test_rollout_round_robin_assignment(particles: int) -> None:
    model = scrambled_model()
    actions = torch.randint(0, 2, (5, 3, 1), generator=torch.Generator().manual_seed(1)).float()
    roll = model.rollout(OBS4, actions, particles=particles)
    assert roll.returns.shape == (5, particles)
    ref, _, _ = per_member_returns(model, OBS4, actions)
    for b in range(5):
        for i in range(particles):
            member = (b * particles + i) % model.ensemble_size
            assert float(roll.returns[b, i]) == pytest.approx(float(ref[member, b]), rel=1e-4)


def test_rollout_box_actions_matches_reference() -> None:
    spec = ActionSpec.box([-2.0, 0.0], [2.0, 1.0])
    model = scrambled_model(spec, e=2)
    actions = torch.rand(4, 3, 2, generator=torch.Generator().manual_seed(2))
    roll = model.rollout(OBS4, actions, particles=2)
    ref, _, _ = per_member_returns(model, OBS4, actions)
    torch.testing.assert_close(roll.returns, ref.T, rtol=1e-4, atol=1e-5)


def test_fast_and_slow_paths_agree() -> None:
    """A termination_fn equal to the learned head forces the step-by-step path: same numbers."""
    fast = scrambled_model()
    actions = torch.randint(0, 2, (4, 5, 1), generator=torch.Generator().manual_seed(3)).float()
    r_fast = fast.rollout(OBS4, actions, gamma=0.95)
    fast.termination_fn = lambda nxt: torch.sigmoid(fast.termination_logit(nxt))
    r_slow = fast.rollout(OBS4, actions, gamma=0.95)
    torch.testing.assert_close(r_fast.returns, r_slow.returns, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(r_fast.survival, r_slow.survival, rtol=1e-4, atol=1e-5)


def test_planning_weights_cache_follows_parameter_changes() -> None:
    model = scrambled_model()
    actions = torch.zeros(2, 3, 1)
    before = model.rollout(OBS4, actions).returns.clone()
    assert model.planning_weights() is model.planning_weights()
    with torch.no_grad():
        model.head.bias.add_(0.5)
    after = model.rollout(OBS4, actions).returns
    ref, _, _ = per_member_returns(model, OBS4, actions)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, ref.T, rtol=1e-4, atol=1e-5)


def test_termination_always_ends_after_first_step() -> None:
    model = scrambled_model()
    model.termination_fn = lambda nxt: torch.ones(nxt.shape[:-1])
    actions = torch.tensor([[[0.0], [1.0], [1.0]], [[1.0], [0.0], [1.0]]])
    roll = model.rollout(OBS4, actions)
    e = model.ensemble_size
    with torch.no_grad():
        _, reward, _ = model.predict(
            torch.tensor(OBS4).expand(e, 2, 4), actions[:, 0].expand(e, 2, 1)
        )
    torch.testing.assert_close(roll.returns, reward.T)
    assert torch.equal(roll.survival, torch.zeros(2, 3))
    (o,) = model.imagine(OBS4, [[0, 1, 1]], horizon=3)
    assert o.risk == 1.0


def test_reward_fn_and_never_terminating() -> None:
    model = scrambled_model()
    model.reward_fn = lambda obs, act, nxt: torch.ones(nxt.shape[:-1])
    model.termination_fn = lambda nxt: torch.zeros(nxt.shape[:-1])
    actions = torch.zeros(3, 7, 1)
    roll = model.rollout(OBS4, actions)
    assert torch.equal(roll.returns, torch.full((3, 3), 7.0))
    assert torch.equal(
        model.rollout(OBS4, actions, gamma=0.5).returns[0], torch.full((3,), 2 - 0.5**6)
    )
    assert torch.equal(roll.survival, torch.ones(3, 3))


def test_terminal_value_added_at_horizon() -> None:
    model = scrambled_model()
    model.reward_fn = lambda obs, act, nxt: torch.zeros(nxt.shape[:-1])
    model.termination_fn = lambda nxt: torch.zeros(nxt.shape[:-1])
    roll = model.rollout(
        OBS4,
        torch.zeros(2, 3, 1),
        gamma=0.5,
        terminal_value=lambda s: torch.full(s.shape[:-1], 8.0),
    )
    assert torch.equal(roll.returns, torch.full((2, 3), 1.0))  # 0.5**3 * 8


def test_input_validation() -> None:
    model = scrambled_model()
    actions = torch.zeros(2, 3, 1)
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.rollout([0.0, math.nan, 0.0, 0.0], actions)
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.imagine(np.array([0.0, 0.0, math.inf, 0.0]), [[0, 1]])
    with pytest.raises(ValueError, match="observation must have 4 values"):
        model.rollout([0.0, 0.0, 0.0], actions)
    with pytest.raises(ValueError, match="no candidates"):
        model.imagine(OBS4, [])
    with pytest.raises(ValueError, match="empty"):
        model.rollout(OBS4, torch.zeros(0, 3, 1))
    with pytest.raises(ValueError, match="particles must be >= 1"):
        model.rollout(OBS4, actions, particles=0)
    with pytest.raises(ValueError, match="one shape"):
        model.imagine(OBS4, [[0, 1], [0, 1, 1]])
    with pytest.raises(ValueError, match="integer action indices"):
        model.imagine(OBS4, [[0, 2]])


def test_imagine_outcomes() -> None:
    model = scrambled_model()
    cands = [[0, 1, 1, 0], [1, 1, 0, 0], np.array([0, 0, 0, 0])]
    outcomes = model.imagine(OBS4, cands, horizon=4)
    assert len(outcomes) == 3
    roll = model.rollout(OBS4, model.candidates_to_tensor(cands))
    for i, o in enumerate(outcomes):
        assert isinstance(o, Outcome) and o.status == "ok"
        assert len(o.member_values) == model.ensemble_size
        assert o.member_values == pytest.approx(roll.returns[i].tolist(), rel=1e-6)
        assert o.value == pytest.approx(float(np.mean(o.member_values)), rel=1e-9)
        assert o.uncertainty == pytest.approx(float(np.std(o.member_values)), rel=1e-6)
        assert o.uncertainty > 0
        assert o.risk == pytest.approx(1.0 - float(roll.survival[i].mean()), rel=1e-5)
        assert o.prediction["termination_prob"] == o.risk
        assert len(o.prediction["next_obs"]) == 4
        assert o.candidate == np.asarray(cands[i], dtype=float).tolist()
    # horizon truncates longer sequences: a 1-step imagination equals the 1-step rollout.
    short = model.imagine(OBS4, cands, horizon=1)
    one = model.rollout(OBS4, model.candidates_to_tensor(cands)[:, :1])
    assert short[0].member_values == pytest.approx(one.returns[0].tolist(), rel=1e-6)


def test_imagine_non_finite_prediction_is_unknown() -> None:
    model = scrambled_model()
    with torch.no_grad():
        model.head.bias[1].fill_(math.nan)  # member 1 diverges
    (o,) = model.imagine(OBS4, [[0, 1]], horizon=2)
    assert o.status == "unknown"
    assert o.value == -math.inf and o.risk == 1.0
    assert "non-finite" in (o.reason or "")
    assert o.member_values[1] == -math.inf
    assert math.isfinite(o.member_values[0])


def test_imagine_accepts_h_by_a_candidates() -> None:
    model = scrambled_model()
    flat = model.imagine(OBS4, [[0, 1, 1]], horizon=3)
    nested = model.imagine(OBS4, [[[0], [1], [1]]], horizon=3)
    assert nested[0].member_values == flat[0].member_values
    assert nested[0].candidate == [[0.0], [1.0], [1.0]]


async def _aimagine(model, cands):
    return await model.aimagine(OBS4, cands, horizon=2)


def test_aimagine_matches_imagine() -> None:
    import asyncio

    model = scrambled_model()
    cands = [[0, 1], [1, 1]]
    assert asyncio.run(_aimagine(model, cands)) == model.imagine(OBS4, cands, horizon=2)


def test_learn_reports_and_fits() -> None:
    model = EnsembleDynamicsModel(
        3,
        BOX1,
        ensemble_size=2,
        hidden=16,
        layers=1,
        seed=0,
        fit_config=FitConfig(max_epochs=2, seed=0),
    )
    rng = np.random.default_rng(0)
    transitions = []
    s = rng.uniform(-1, 1, 3)
    for _ in range(30):
        a = rng.uniform(-1, 1, 1)
        n = A_MAT @ s + B_MAT @ a
        transitions.append(Transition(state=s.tolist(), action=a.tolist(), next_state=n.tolist()))
        s = n
    first = model.learn(transitions[:1])
    assert first.updated is False and first.n_transitions == 1
    assert "not enough data" in first.message
    report = model.learn(transitions[1:])
    assert report.updated is True and report.n_transitions == 29
    assert report.metrics["epochs"] == 2.0
    assert len(model.buffer) == 30
    assert model.last_fit is not None
    with pytest.raises(ValueError, match="needs next_state"):
        model.learn([Transition(state=[0.0] * 3, action=[0.0])])
    assert len(model.buffer) == 30


def test_learn_with_few_transitions_does_not_raise() -> None:
    model = EnsembleDynamicsModel(3, BOX1, ensemble_size=2, hidden=8, layers=1, seed=0)
    t = Transition(state=[0.0, 0.0, 0.0], action=[0.5], next_state=[0.0, 0.25, 0.1])
    report = model.learn([t] * 5)
    assert report.updated is False


# ---------------------------------------------------------------- persistence


def test_save_load_round_trip(tmp_path: Path, linear_fit) -> None:
    model = linear_fit[0]
    path = model.save(tmp_path / "sub" / "m.pt")
    assert path.exists()
    loaded = EnsembleDynamicsModel.load(path, expect_obs_dim=3, expect_action_spec=BOX1)
    assert loaded.config == model.config
    assert bool(loaded.fitted)
    actions = torch.rand(8, 5, 1, generator=torch.Generator().manual_seed(0)) * 2 - 1
    obs = [0.2, 0.1, -0.4]
    a, b = model.rollout(obs, actions), loaded.rollout(obs, actions)
    assert torch.equal(a.returns, b.returns)
    assert torch.equal(a.first_obs, b.first_obs)
    assert loaded.imagine(obs, actions.tolist(), horizon=5) == model.imagine(
        obs, actions.tolist(), horizon=5
    )


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no model file"):
        EnsembleDynamicsModel.load(tmp_path / "nope.pt")


def test_load_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.pt"
    path.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(ModelFileError, match="not a readable model file"):
        EnsembleDynamicsModel.load(path)


def test_load_foreign_torch_file(tmp_path: Path) -> None:
    path = tmp_path / "foreign.pt"
    torch.save({"a": 1}, path)
    with pytest.raises(ModelFileError, match=r"is not a wm_agents\.EnsembleDynamicsModel file"):
        EnsembleDynamicsModel.load(path)
    torch.save([1, 2, 3], path)
    with pytest.raises(ModelFileError, match="is not a wm_agents"):
        EnsembleDynamicsModel.load(path)


def test_load_mismatches(tmp_path: Path) -> None:
    model = EnsembleDynamicsModel(4, DISCRETE2, ensemble_size=2, hidden=8, layers=1, seed=0)
    path = model.save(tmp_path / "m.pt")
    with pytest.raises(ModelFileError, match="observations of size 4, expected 3"):
        EnsembleDynamicsModel.load(path, expect_obs_dim=3)
    with pytest.raises(ModelFileError, match="models actions"):
        EnsembleDynamicsModel.load(path, expect_action_spec=ActionSpec.discrete(3))
    assert EnsembleDynamicsModel.load(path, expect_obs_dim=4).obs_dim == 4


def test_load_wrong_version_and_bad_weights(tmp_path: Path) -> None:
    model = EnsembleDynamicsModel(4, DISCRETE2, ensemble_size=2, hidden=8, layers=1, seed=0)
    path = model.save(tmp_path / "m.pt")
    blob = torch.load(path, weights_only=True)
    torch.save({**blob, "version": 99}, tmp_path / "v.pt")
    with pytest.raises(ModelFileError, match="file version 99"):
        EnsembleDynamicsModel.load(tmp_path / "v.pt")
    torch.save({**blob, "config": {**blob["config"], "hidden": 9}}, tmp_path / "w.pt")
    with pytest.raises(ModelFileError, match="weights do not match"):
        EnsembleDynamicsModel.load(tmp_path / "w.pt")
    torch.save({**blob, "config": {**blob["config"], "obs_dim": 0}}, tmp_path / "c.pt")
    with pytest.raises(ModelFileError, match="invalid config"):
        EnsembleDynamicsModel.load(tmp_path / "c.pt")


@pytest.mark.parametrize(
    ("field", "value", "bound"),
    [("hidden", 10**9, "8192"), ("ensemble_size", 10**8, "100"), ("obs_dim", 10**7, "10000")],
)
def test_load_refuses_a_crafted_huge_config_before_allocating(
    tmp_path: Path, field: str, value: int, bound: str
) -> None:
    model = EnsembleDynamicsModel(4, DISCRETE2, ensemble_size=2, hidden=8, layers=1, seed=0)
    blob = torch.load(model.save(tmp_path / "m.pt"), weights_only=True)
    torch.save({**blob, "config": {**blob["config"], field: value}}, tmp_path / "huge.pt")
    with pytest.raises(
        ModelFileError, match=f"{field}: Input should be less than or equal to {bound}"
    ):
        EnsembleDynamicsModel.load(tmp_path / "huge.pt")


def test_model_size_is_bounded_as_a_whole_in_the_constructor(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hidden: Input should be less than or equal to 8192"):
        EnsembleDynamicsModel(4, DISCRETE2, hidden=10**9)
    # Every field within its bound, the whole too large: refused by parameter count.
    with pytest.raises(ValueError, match=r"parameters, more than the bound 268,435,456"):
        EnsembleDynamicsModel(4, DISCRETE2, ensemble_size=100, hidden=8192, layers=16)
    blob = torch.load(
        EnsembleDynamicsModel(4, DISCRETE2, ensemble_size=2, hidden=8, layers=1).save(
            tmp_path / "m.pt"
        ),
        weights_only=True,
    )
    big = {"ensemble_size": 100, "hidden": 8192, "layers": 16}
    torch.save({**blob, "config": {**blob["config"], **big}}, tmp_path / "big.pt")
    with pytest.raises(ModelFileError, match="invalid config: the network would have"):
        EnsembleDynamicsModel.load(tmp_path / "big.pt")
    # The count the bound is checked on is what the constructor allocates.
    for spec, d in ((DISCRETE2, 4), (ActionSpec.box([-1.0] * 3, [1.0] * 3), 11)):
        m = EnsembleDynamicsModel(d, spec, ensemble_size=3, hidden=40, layers=2)
        assert m.config.n_parameters == sum(p.numel() for p in m.parameters())


def test_out_of_bounds_box_actions_are_imagined_as_the_env_runs_them() -> None:
    model = EnsembleDynamicsModel(3, BOX1, ensemble_size=3, hidden=16, layers=1, seed=0)
    obs = [0.1, -0.2, 0.3]
    far, edge = model.imagine(obs, [[[5.0], [-7.0]], [[1.0], [-1.0]]], horizon=2)
    assert far.member_values == edge.member_values
    assert far.prediction == edge.prediction
    assert far.candidate == [[5.0], [-7.0]]  # the candidate as given
    a = torch.tensor([[[5.0]], [[1.0]]])
    roll = model.rollout(obs, a, particles=3)
    assert torch.equal(roll.returns[0], roll.returns[1])
    o = torch.zeros(3, 2, 3)
    nxt, rew, _ = model.predict(o, torch.tensor([[[3.0], [1.0]]]).expand(3, -1, -1))
    assert torch.equal(nxt[:, 0], nxt[:, 1]) and torch.equal(rew[:, 0], rew[:, 1])


# ---------------------------------------------------------------- buffer


def test_buffer_rejects_bad_rows() -> None:
    buf = ReplayBuffer(obs_dim=2, action_dim=1, capacity=4)
    with pytest.raises(ValueError, match="obs contains NaN"):
        buf.add([0.0, math.nan], [0.0], 0.0, [0.0, 0.0], False)
    with pytest.raises(ValueError, match="next_obs contains NaN"):
        buf.add([0.0, 0.0], [0.0], 0.0, [math.inf, 0.0], False)
    with pytest.raises(ValueError, match="action contains NaN"):
        buf.add([0.0, 0.0], [math.nan], 0.0, [0.0, 0.0], False)
    with pytest.raises(ValueError, match="reward must be finite"):
        buf.add([0.0, 0.0], [0.0], math.nan, [0.0, 0.0], False)
    with pytest.raises(ValueError, match=r"obs must have 2 values, got shape \(3,\)"):
        buf.add([0.0, 0.0, 0.0], [0.0], 0.0, [0.0, 0.0], False)
    with pytest.raises(ValueError, match="action must have 1 values"):
        buf.add([0.0, 0.0], [0.0, 1.0], 0.0, [0.0, 0.0], False)
    assert len(buf) == 0
    with pytest.raises(ValueError, match="must be positive"):
        ReplayBuffer(obs_dim=0, action_dim=1)


def test_buffer_add_transitions_is_all_or_nothing() -> None:
    buf = ReplayBuffer(obs_dim=1, action_dim=1)
    good = Transition(state=[0.0], action=[1.0], next_state=[1.0])
    bad = Transition(state=[math.nan], action=[1.0], next_state=[1.0])
    with pytest.raises(ValueError, match="state contains NaN"):
        buf.add_transitions([good, bad])
    assert len(buf) == 0
    assert buf.add_transitions([good, good]) == 2


def test_buffer_keeps_order_and_drops_oldest() -> None:
    buf = ReplayBuffer(obs_dim=1, action_dim=1, capacity=4)
    for i in range(6):
        buf.add([i], i % 2, float(i), [i + 1], terminated=i == 2, truncated=False)
    batch = buf.all()
    assert len(batch) == 4
    assert batch.obs[:, 0].tolist() == [2.0, 3.0, 4.0, 5.0]
    assert batch.next_obs[:, 0].tolist() == [3.0, 4.0, 5.0, 6.0]
    assert batch.reward.tolist() == [2.0, 3.0, 4.0, 5.0]
    assert batch.action[:, 0].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert batch.terminated.tolist() == [True, False, False, False]
    # Episode ends: the terminated step, and the newest step always closes its stretch.
    assert batch.episode_end.tolist() == [True, False, False, True]
    buf.mark_episode_end()
    buf.add([6], 0, 6.0, [7], False, truncated=True)
    batch = buf.all()
    assert batch.obs[:, 0].tolist() == [3.0, 4.0, 5.0, 6.0]
    assert batch.episode_end.tolist() == [False, False, True, True]


def test_fit_without_holdout_still_trains() -> None:
    model = EnsembleDynamicsModel(3, BOX1, ensemble_size=2, hidden=32, layers=2, seed=0)
    fill_linear(model, episodes=4)
    data = model.buffer.all()
    fit_ensemble(model, data, FitConfig(seed=0, batch_size=32, max_epochs=30, holdout=0.0))
    with torch.no_grad():
        nxt, _, _ = model.predict(
            torch.from_numpy(data.obs).expand(2, -1, -1),
            torch.from_numpy(data.action).expand(2, -1, -1),
        )
    train_mse = float(((nxt.mean(0) - torch.from_numpy(data.next_obs)) ** 2).mean())
    assert train_mse < 1e-3  # 30 epochs with the default holdout reach ~1e-4


def test_fit_needs_ten_transitions() -> None:
    model = EnsembleDynamicsModel(3, BOX1, ensemble_size=2, hidden=8, layers=1, seed=0)
    fill_linear(model, episodes=1, length=9)
    with pytest.raises(ValueError, match="at least 10 transitions"):
        fit_ensemble(model, model.buffer.all(), FitConfig(max_epochs=1))


# ---------------------------------------------------------------- Dyna schedule


def test_dyna_learner_refits_on_schedule_and_respects_budget() -> None:
    from wm_agents.neural.dyna import DynaLearner

    model = EnsembleDynamicsModel(3, BOX1, ensemble_size=2, hidden=8, layers=1, seed=0)
    learner = DynaLearner(model, refit_every=10, fit_config=FitConfig(max_epochs=1), budget=25)
    s = np.zeros(3)
    reports = []
    for i in range(25):
        reports.append(learner.observe(s, np.array([0.1]), 0.0, s + 0.1, False, False))
        assert learner.exhausted == (i == 24)
    fitted_at = [i + 1 for i, r in enumerate(reports) if r is not None]
    assert fitted_at == [10, 20, 25]  # on schedule, and once more when the budget is spent
    assert len(learner.fits) == 3
    assert learner.fits[-1].n_train + learner.fits[-1].n_val == 25
    with pytest.raises(RuntimeError, match="budget of 25 real steps is spent"):
        learner.observe(s, np.array([0.1]), 0.0, s, False, False)
    with pytest.raises(ValueError, match="refit_every must be >= 1"):
        DynaLearner(model, refit_every=0)


# ---------------------------------------------------------------- terminal value


def test_lambda_returns_by_hand() -> None:
    from wm_agents.neural.trainer import lambda_returns

    reward = np.array([1.0, 1.0, 1.0, 2.0], np.float32)
    terminated = np.array([False, False, True, False])
    episode_end = np.array([False, False, True, True])  # episode 1: steps 0-2; step 3 cut off
    next_value = np.array([10.0, 10.0, 10.0, 4.0], np.float32)
    g, lam = 0.5, 0.5
    out = lambda_returns(reward, terminated, episode_end, next_value, g, lam)
    g2 = 1.0  # terminated: no bootstrap
    g1 = 1.0 + g * ((1 - lam) * 10.0 + lam * g2)  # 1 + 0.5 * (5 + 0.5) = 3.75
    g0 = 1.0 + g * ((1 - lam) * 10.0 + lam * g1)  # 1 + 0.5 * (5 + 1.875) = 4.4375
    g3 = 2.0 + g * 4.0  # cut off: bootstrap fully from V(s')
    np.testing.assert_allclose(out, [g0, g1, g2, g3], rtol=1e-6)


def test_terminal_value_learns_return_to_go() -> None:
    """V(s) fitted on a chain whose return-to-go is known ranks states by it."""
    from wm_agents.neural.trainer import fit_value

    # A 1-D walk toward a wall: obs x in [0, 1), reward 1 per step, terminated at x >= 1.
    # Return-to-go (gamma 0.9) falls as x approaches the wall.
    model = EnsembleDynamicsModel(1, BOX1, ensemble_size=3, hidden=32, layers=2, seed=0)
    buf = model.buffer
    for _ in range(20):
        x = 0.0
        while True:
            nx = x + 0.1
            buf.add([x], [0.0], 1.0, [nx], nx >= 0.999, False)
            if nx >= 0.999:
                break
            x = nx
    fit_value(model, buf.all(), FitConfig(value_gamma=0.9, value_lambda=1.0, value_epochs=200))
    with torch.no_grad():
        v = model.value(torch.tensor([[[0.1], [0.5], [0.9]]]).expand(3, -1, -1)).mean(0)
    assert v[0] > v[1] > v[2], v
    # Monte-Carlo return-to-go from x=0.9 after one more step is 1 (then the wall): V(0.9) ~ 1.
    assert abs(float(v[2]) - 1.0) < 0.5, v


def test_terminal_value_from_the_newest_transitions() -> None:
    """``value_recent``: the value is the return of the recent episodes, not of the whole
    buffer's mixture (the same walk paid 0 a step at first, then 1)."""
    from wm_agents.neural.trainer import fit_value

    def walks(model: EnsembleDynamicsModel, reward: float, n: int) -> None:
        for _ in range(n):
            for i in range(10):
                x, nx = i / 10, (i + 1) / 10
                model.buffer.add([x], [0.0], reward, [nx], nx >= 0.999, False)

    values = []
    for recent in (None, 100):
        model = EnsembleDynamicsModel(1, BOX1, ensemble_size=3, hidden=32, layers=2, seed=0)
        walks(model, 0.0, 20)
        walks(model, 1.0, 10)
        cfg = FitConfig(value_gamma=0.9, value_lambda=1.0, value_epochs=200, value_recent=recent)
        fit_value(model, model.buffer.all(), cfg)
        with torch.no_grad():
            values.append(float(model.value(torch.tensor([[[0.9]]]).expand(3, -1, -1)).mean()))
    everything, newest = values
    # One step from the wall the newest episodes return 1; all 30 mix in 20 that returned 0.
    assert abs(newest - 1.0) < 0.3, values
    assert everything < 0.6, values
    with pytest.raises(ValueError, match="value_recent"):
        FitConfig(value_recent=0)
