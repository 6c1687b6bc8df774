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


def test_auto_precision_reads_hardware_and_width_only(monkeypatch) -> None:
    from wm_agents.neural import ensemble as ens

    narrow = EnsembleDynamicsModel(4, ActionSpec.discrete(2), ensemble_size=2, hidden=64)
    wide = EnsembleDynamicsModel(4, ActionSpec.discrete(2), ensemble_size=2, hidden=128)
    monkeypatch.setattr(ens, "native_bfloat16", lambda: True)
    assert ens.search_dtype(narrow, "auto") == torch.float32
    assert ens.search_dtype(wide, "auto") == torch.bfloat16
    assert ens.search_dtype(wide, "float32") == torch.float32
    monkeypatch.setattr(ens, "native_bfloat16", lambda: False)
    assert ens.search_dtype(wide, "auto") == torch.float32  # emulated bfloat16 never pays
    with pytest.raises(ValueError, match=r"dtype must be .* got 'float16'"):
        ens.search_dtype(wide, "float16")


def _ending_model() -> EnsembleDynamicsModel:
    """A hand-set model: action 2 pushes obs[0] up by ~1 a step; obs[0] >= ~2 ends the episode.

    So a row ends after two or three 2s and rows with fewer keep running: rows end at
    different steps, which is what skipping ended rows has to handle.
    """
    m = EnsembleDynamicsModel(4, ActionSpec.discrete(3), ensemble_size=3, hidden=8, layers=2)
    with torch.no_grad():
        for layer in [*m.hidden_layers, m.head, *m.term_layers]:
            layer.weight.zero_()
            layer.bias.zero_()
        first, mid = m.hidden_layers
        first.weight[:, 4 + 2, 0] = 5.0  # one-hot action 2 -> hidden unit 0
        mid.weight[:, 0, 0] = 1.0
        m.head.weight[:, 0, 0] = 0.2  # delta obs[0]
        m.head.bias[:, 0, 4] = 1.0  # reward 1 per step
        t1, t2, t3 = m.term_layers
        t1.weight[:, 0, 0] = 1.0
        t2.weight[:, 0, 0] = 1.0
        t3.weight[:, 0, 0] = 4.0
        t3.bias.fill_(-6.0)  # bias [E, 1, out]
    return m


def test_skipping_ended_rows_changes_returns_by_at_most_the_bound(monkeypatch) -> None:
    from wm_agents.neural import ensemble as ens

    m = _ending_model()
    obs = torch.zeros(4)
    acts = sequences(60, 10, 3, seed=5)
    tv = lambda s: 10.0 + s.abs().sum(-1)  # noqa: E731
    full = m.rollout(obs, acts, particles=2, gamma=0.95, terminal_value=tv, min_survival=0.0)
    eps = 1e-3
    compactions: list[int] = []
    select = ens._Compactor.select
    monkeypatch.setattr(
        ens._Compactor, "select", lambda self, o: (compactions.append(o.shape[1]), select(self, o))
    )
    skip = m.rollout(obs, acts, particles=2, gamma=0.95, terminal_value=tv, min_survival=eps)
    ended = full.survival < eps
    assert 0.2 < float(ended.float().mean()) < 0.9
    assert compactions and compactions[-1] < 40  # 40 rows per member at the start
    # Rows still running are computed exactly; ended rows lose at most eps x what remained.
    torch.testing.assert_close(skip.returns[~ended], full.returns[~ended])
    torch.testing.assert_close(skip.first_obs, full.first_obs)
    remaining = 10 * 1.0 + float(tv(torch.full((4,), 10.0)))
    diff = (skip.returns - full.returns).abs()
    assert float(diff.max()) <= eps * remaining
    assert torch.all(skip.survival[ended] < eps)
    with pytest.raises(ValueError, match="min_survival"):
        m.rollout(obs, acts, min_survival=1.5)
