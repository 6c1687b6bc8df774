"""Planning modes of the fast rollout: prefix sharing and low-precision search.

The default (float32, no sharing) is the reference: sharing must give the same numbers up to
float32 rounding, and a bfloat16 search must stay close and never leak into ``imagine``.
"""

from __future__ import annotations

import pytest
import torch

from wm_agents.neural.ensemble import EnsembleDynamicsModel
from wm_agents.spaces import ActionSpec


@pytest.fixture(scope="module")
def model() -> EnsembleDynamicsModel:
    m = EnsembleDynamicsModel(
        4, ActionSpec.discrete(3), ensemble_size=3, hidden=32, layers=2, seed=0
    )
    # Non-trivial normalizers and a termination head that fires, so survival matters.
    with torch.no_grad():
        m.in_std.fill_(0.5)
        m.out_std.fill_(0.3)
        m.term_layers[-1].bias.fill_(-1.0)
    return m


def sequences(b: int, h: int, n: int, seed: int) -> torch.Tensor:
    """Discrete sequences with many shared prefixes (a few base plans, sparse flips)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(0, n, (4, h, 1), generator=g)
    pick = torch.randint(0, 4, (b,), generator=g)
    flips = torch.rand(b, h, 1, generator=g) < 0.15
    other = torch.randint(0, n, (b, h, 1), generator=g)
    return torch.where(flips, other, base[pick]).float()


@pytest.mark.parametrize(("b", "h", "k"), [(50, 6, 1), (40, 9, 3), (7, 5, 8), (1, 3, 2)])
def test_shared_prefixes_match_dense(model, b: int, h: int, k: int) -> None:
    obs = torch.tensor([0.1, -0.2, 0.05, 0.3])
    acts = sequences(b, h, 3, seed=b + h + k)
    tv = lambda s: s.sum(-1)  # noqa: E731  a terminal value that depends on the final state
    dense = model.rollout(obs, acts, particles=k, gamma=0.9, terminal_value=tv)
    shared = model.rollout(
        obs, acts, particles=k, gamma=0.9, terminal_value=tv, share_prefixes=True
    )
    for a, s in zip(
        (dense.returns, dense.survival, dense.first_obs),
        (shared.returns, shared.survival, shared.first_obs),
        strict=True,
    ):
        torch.testing.assert_close(s, a, rtol=1e-6, atol=1e-6)


def test_defaults_are_float32_dense_and_model_attributes_apply(model) -> None:
    obs = torch.zeros(4)
    acts = sequences(30, 5, 3, seed=1)
    ref = model.rollout(obs, acts, particles=2, dtype=torch.float32, share_prefixes=False)
    assert torch.equal(model.rollout(obs, acts, particles=2).returns, ref.returns)
    model.share_prefixes = True
    try:
        via_attr = model.rollout(obs, acts, particles=2).returns
    finally:
        model.share_prefixes = False
    torch.testing.assert_close(via_attr, ref.returns, rtol=1e-6, atol=1e-6)


def test_bfloat16_search_is_close_and_imagine_stays_float32(model) -> None:
    obs = torch.tensor([0.1, -0.2, 0.05, 0.3])
    acts = sequences(30, 5, 3, seed=2)
    ref = model.rollout(obs, acts, particles=3)
    low = model.rollout(obs, acts, particles=3, dtype=torch.bfloat16, share_prefixes=True)
    assert low.returns.dtype == torch.float32 and low.survival.dtype == torch.float32
    torch.testing.assert_close(low.returns, ref.returns, rtol=0.05, atol=0.05)
    cands = acts[:4, :, 0].tolist()
    expected = [o.member_values for o in model.imagine(obs, cands, horizon=5)]
    model.planning_dtype = torch.bfloat16
    try:
        got = [o.member_values for o in model.imagine(obs, cands, horizon=5)]
    finally:
        model.planning_dtype = torch.float32
    assert got == expected


def test_box_actions_ignore_sharing() -> None:
    m = EnsembleDynamicsModel(
        3, ActionSpec.box([-1.0], [1.0]), ensemble_size=2, hidden=16, layers=2, seed=0
    )
    acts = torch.rand(10, 4, 1, generator=torch.Generator().manual_seed(0)) * 2 - 1
    a = m.rollout(torch.zeros(3), acts, particles=2).returns
    b = m.rollout(torch.zeros(3), acts, particles=2, share_prefixes=True).returns
    assert torch.equal(a, b)


def test_bad_dtype_is_rejected(model) -> None:
    with pytest.raises(ValueError, match="dtype"):
        model.rollout(torch.zeros(4), sequences(2, 2, 3, 0), dtype=torch.int32)
