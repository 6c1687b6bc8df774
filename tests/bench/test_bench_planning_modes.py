"""Planning modes: the benchmark's prefix-sharing rollout and the library's low-precision search.

The library's dense float32 rollout is the reference: the benchmark's shared-prefix rollout must
give the same numbers up to float32 rounding, and a bfloat16 search must stay close and never
leak into ``imagine``.
"""

from __future__ import annotations

import pytest
import torch

from wm_agents.bench.prefix_sharing import shared_prefix_objective, shared_prefix_rollout
from wm_agents.neural import EnsembleDynamicsModel
from wm_agents.neural import rollout as rollout_module
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
    shared = shared_prefix_rollout(model, obs, acts, particles=k, gamma=0.9, terminal_value=tv)
    for a, s in zip(
        (dense.returns, dense.survival, dense.first_obs),
        (shared.returns, shared.survival, shared.first_obs),
        strict=True,
    ):
        torch.testing.assert_close(s, a, rtol=1e-6, atol=1e-6)


def test_defaults_are_float32_and_the_model_attribute_applies(model) -> None:
    obs = torch.zeros(4)
    acts = sequences(30, 5, 3, seed=1)
    ref = model.rollout(obs, acts, particles=2, dtype=torch.float32)
    assert torch.equal(model.rollout(obs, acts, particles=2).returns, ref.returns)
    shared = shared_prefix_objective(model, obs, particles=2)(acts)
    torch.testing.assert_close(shared, ref.returns, rtol=1e-6, atol=1e-6)
    model.planning_dtype = torch.bfloat16
    try:
        via_attr = model.rollout(obs, acts, particles=2).returns
    finally:
        model.planning_dtype = torch.float32
    assert not torch.equal(via_attr, ref.returns)
    torch.testing.assert_close(via_attr, ref.returns, rtol=0.05, atol=0.05)


def test_bfloat16_search_is_close_and_imagine_stays_float32(model) -> None:
    obs = torch.tensor([0.1, -0.2, 0.05, 0.3])
    acts = sequences(30, 5, 3, seed=2)
    ref = model.rollout(obs, acts, particles=3)
    low = shared_prefix_rollout(model, obs, acts, particles=3, dtype=torch.bfloat16)
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
    a = m.rollout(torch.zeros(3), acts, particles=2, dtype="float32").returns
    b = shared_prefix_rollout(m, torch.zeros(3), acts, particles=2).returns
    assert torch.equal(a, b)


def test_bad_dtype_is_rejected(model) -> None:
    with pytest.raises(ValueError, match="dtype"):
        model.rollout(torch.zeros(4), sequences(2, 2, 3, 0), dtype=torch.int32)


def test_auto_precision_reads_hardware_and_width_only(monkeypatch) -> None:
    ens = rollout_module
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


CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu sse2 avx2 avx512f {extra}
processor\t: 1
"""


@pytest.mark.parametrize(
    ("extra", "native"),
    [("avx512_bf16", True), ("amx_tile amx_bf16", True), ("avx512vl", False)],
)
def test_native_bfloat16_reads_the_public_cpu_flags(tmp_path, monkeypatch, extra, native) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO.format(extra=extra))
    monkeypatch.setattr(rollout_module, "_CPUINFO", info)
    # torch's private probes are not asked when the public flags answer.
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: not native, raising=False)
    assert rollout_module.native_bfloat16() is native


def test_native_bfloat16_without_cpuinfo_falls_back_to_torch_then_to_false(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(rollout_module, "_CPUINFO", tmp_path / "absent")
    for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda: False, raising=False)
    assert rollout_module.native_bfloat16() is False
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert rollout_module.native_bfloat16() is True
    for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        monkeypatch.delattr(torch.cpu, name, raising=False)  # a torch without the probes
    assert rollout_module.native_bfloat16() is False


def test_planning_weights_without_tensor_versions_are_rebuilt_and_equal(model, monkeypatch) -> None:
    """``Tensor._version`` is private: without it the cache is off, the numbers the same."""
    obs = torch.tensor([0.1, -0.2, 0.05, 0.3])
    acts = sequences(12, 4, 3, seed=3)
    cached = model.rollout(obs, acts, particles=2, dtype="float32").returns
    assert model.planning_weights() is model.planning_weights()  # cached while unchanged
    monkeypatch.setattr(rollout_module, "_tensor_version", lambda t: None)
    first = model.planning_weights()
    assert first is not model.planning_weights()  # rebuilt on every call
    assert torch.equal(model.rollout(obs, acts, particles=2, dtype="float32").returns, cached)
    # A changed parameter is seen at once, as the versioned cache sees it.
    with torch.no_grad():
        model.head.bias.add_(0.5)
    try:
        changed = model.rollout(obs, acts, particles=2, dtype="float32").returns
        assert not torch.equal(changed, cached)
        monkeypatch.undo()
        assert torch.equal(model.rollout(obs, acts, particles=2, dtype="float32").returns, changed)
    finally:
        with torch.no_grad():
            model.head.bias.sub_(0.5)
