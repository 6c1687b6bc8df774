"""``rollout_many``: N observations in one batched pass, each bit for bit its own ``rollout``."""

from __future__ import annotations

import pytest
import torch

from wm_agents.neural import EnsembleDynamicsModel, FitConfig, fit_ensemble
from wm_agents.neural.rollout import rollout, rollout_many
from wm_agents.spaces import ActionSpec


def fitted_model(
    spec: ActionSpec, *, ensemble: int = 5, hidden: int = 64, seed: int = 1
) -> EnsembleDynamicsModel:
    """A model fitted (a little, value included) on random transitions, so the normalizers,
    the bounds and the terminal value are all in play; another ``seed``, other weights and
    data (and reward bounds)."""
    model = EnsembleDynamicsModel(
        4, spec, ensemble_size=ensemble, hidden=hidden, layers=2, seed=seed
    )
    g = torch.Generator().manual_seed(seed - 1)
    for i in range(120):
        o = torch.randn(4, generator=g).numpy()
        a = [i % 2] if spec.kind == "discrete" else [float(torch.rand(1, generator=g)) * 4 - 2]
        model.buffer.add(o, a, seed - 0.1 * (i % 3), o * 0.9 + 0.05, i % 25 == 24)
    fit_ensemble(model, model.buffer.all(), FitConfig(max_epochs=3, value_rounds=1, value_epochs=3))
    return model


def sequences(spec: ActionSpec, n: int, b: int, h: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if spec.kind == "discrete":
        return torch.randint(0, spec.n, (n, b, h, 1), generator=g).float()
    return torch.rand(n, b, h, 1, generator=g) * 5 - 2.5  # some outside the bounds


# The agents' search shapes: population 100 / 200 (a re-plan) / 40 with one particle over 5
# members, 20 / 40 / 8 rows per member; with 8 candidates x 5 particles, 8.  Blocks of other
# sizes (6 rows per member) are not always bit-identical: MKL's batched matmul handles rows
# beyond a multiple of 4 with another kernel than a single one does (measured on this
# machine's AVX-512 CPU; see rollout_many), a last-bit difference.
@pytest.mark.parametrize("kind", ["discrete", "box"])
@pytest.mark.parametrize(
    ("n", "b", "particles"),
    [(10, 100, 1), (7, 200, 1), (3, 40, 1), (3, 8, None), (1, 100, 1)],
)
def test_each_observation_gets_exactly_its_own_rollout(
    kind: str, n: int, b: int, particles: int | None
) -> None:
    spec = ActionSpec.discrete(2) if kind == "discrete" else ActionSpec.box([-2.0], [2.0])
    model = fitted_model(spec)
    obs = torch.randn(n, 4, generator=torch.Generator().manual_seed(2))
    actions = sequences(spec, n, b, 6, seed=3)
    tv = model.terminal_value_fn(1.0)
    assert tv is not None  # the value is fitted: the per-block terminal value is exercised
    kw = dict(particles=particles, gamma=0.99, terminal_value=tv, dtype=torch.float32)
    many = rollout_many(model, obs, actions, count_clipped=True, **kw)  # type: ignore[arg-type]
    counted = model.clip_stats.as_dict()
    model.clip_stats.rows = model.clip_stats.clipped = 0
    for i, got in enumerate(many):
        alone = rollout(model, obs[i], actions[i], count_clipped=True, **kw)  # type: ignore[arg-type]
        assert torch.equal(got.returns, alone.returns), i
        assert torch.equal(got.survival, alone.survival), i
        assert torch.equal(got.first_obs, alone.first_obs), i
        assert got.clipped is not None and alone.clipped is not None
        assert torch.equal(got.clipped, alone.clipped), i
    assert model.clip_stats.as_dict() == counted


@pytest.mark.parametrize("kind", ["discrete", "box"])
def test_several_models_share_a_pass_each_observation_by_its_own_model(kind: str) -> None:
    # Three agents' models (other weights, data and reward bounds), one without a fitted value:
    # observation n is imagined by models[n] alone, bit for bit, and counted in its clip stats.
    spec = ActionSpec.discrete(2) if kind == "discrete" else ActionSpec.box([-2.0], [2.0])
    agents = [fitted_model(spec, seed=s) for s in (1, 2, 3)]
    agents[2] = EnsembleDynamicsModel(4, spec, ensemble_size=5, hidden=64, layers=2, seed=3)
    assert len({m.reward_bounds() for m in agents}) == 3
    models = [agents[i] for i in (0, 0, 1, 2, 1, 0)]
    values = [m.terminal_value_fn(1.0) for m in models]
    assert values[5] is not None and values[3] is None  # a block without a value is exercised
    obs = torch.randn(len(models), 4, generator=torch.Generator().manual_seed(2))
    actions = sequences(spec, len(models), 100, 6, seed=3)
    kw = dict(particles=1, gamma=0.99, dtype=torch.float32, count_clipped=True)
    many = rollout_many(models, obs, actions, terminal_value=values, **kw)  # type: ignore[arg-type]
    counted = [m.clip_stats.as_dict() for m in agents]
    for m in agents:
        m.clip_stats.rows = m.clip_stats.clipped = 0
    for i, got in enumerate(many):
        alone = rollout(models[i], obs[i], actions[i], terminal_value=values[i], **kw)  # type: ignore[arg-type]
        assert torch.equal(got.returns, alone.returns), i
        assert torch.equal(got.survival, alone.survival), i
        assert torch.equal(got.first_obs, alone.first_obs), i
        assert torch.equal(got.clipped, alone.clipped), i  # type: ignore[arg-type]
    assert [m.clip_stats.as_dict() for m in agents] == counted


def test_models_of_another_architecture_or_count_are_refused() -> None:
    spec = ActionSpec.discrete(2)
    small = EnsembleDynamicsModel(4, spec, ensemble_size=2, hidden=8, layers=1)
    wide = EnsembleDynamicsModel(4, spec, ensemble_size=2, hidden=16, layers=1)
    obs, actions = torch.zeros(2, 4), torch.zeros(2, 3, 4, 1)
    with pytest.raises(ValueError, match=r"model 1 has another architecture.*'hidden': \(8, 16\)"):
        rollout_many([small, wide], obs, actions)
    with pytest.raises(ValueError, match="3 values of model for 2 observations"):
        rollout_many([small, small, small], obs, actions)
    with pytest.raises(ValueError, match="1 values of terminal_value for 2 observations"):
        rollout_many(small, obs, actions, terminal_value=[None])


def test_a_known_reward_function_takes_the_rollout_per_observation() -> None:
    spec = ActionSpec.discrete(2)
    model = EnsembleDynamicsModel(
        4, spec, ensemble_size=3, hidden=16, layers=1, reward_fn=lambda o, a, n: -(n**2).sum(-1)
    )
    obs = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    actions = sequences(spec, 3, 5, 4, seed=1)
    for i, got in enumerate(rollout_many(model, obs, actions, particles=3)):
        assert torch.equal(got.returns, rollout(model, obs[i], actions[i], particles=3).returns)


def test_shapes_are_checked_with_what_was_expected() -> None:
    model = EnsembleDynamicsModel(4, ActionSpec.discrete(2), ensemble_size=2, hidden=8, layers=1)
    with pytest.raises(ValueError, match=r"obs must be \[N, D\]"):
        rollout_many(model, torch.zeros(4), torch.zeros(1, 2, 3, 1))
    with pytest.raises(ValueError, match=r"actions must be \[N, B, H, A\] with N = 2"):
        rollout_many(model, torch.zeros(2, 4), torch.zeros(3, 2, 3, 1))
