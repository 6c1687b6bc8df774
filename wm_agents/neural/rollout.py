"""Imagining action sequences with the ensemble: the planner's fast rollout and its search dtype.

:func:`rollout` imagines ``B`` action sequences ``[B, H, A]`` from one observation with ``K``
particles each, every candidate x particle x step as ``H`` batched steps.  The mean prediction
(what a planner's search runs thousands of times a decision) takes a fast path
(:func:`planning_weights`): normalizers folded into the first and last layers, the
log-variance half of the head dropped, the action part of the first layer computed for the
whole horizon at once, so one model step is ~15 small ops (:func:`folded_step`).

Shapes (E members, M rows per member, D obs size, A action width, H horizon, B candidates,
K particles per candidate): candidate sequences ``[B, H, A]``; rows ``[E, M]`` (particle ``j``
of the flat particle index is row ``j // E`` of member ``j % E``, see :func:`particle_rows`);
per-particle results ``[B, K]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from wm_agents.neural.network import EnsembleNetwork, TerminalValue

__all__ = [
    "ImaginedRollout",
    "folded_step",
    "native_bfloat16",
    "particle_rows",
    "per_particle",
    "planning_weights",
    "rollout",
    "search_dtype",
]


@dataclass(frozen=True)
class ImaginedRollout:
    """Result of imagining B action sequences with K particles each.

    Attributes:
        returns: ``[B, K]`` discounted return per particle (reward stops after a predicted end).
        survival: ``[B, K]`` probability the episode is still running after the horizon.
        first_obs: ``[B, K, D]`` predicted observation after the first action.
        clipped: ``[B, K]`` whether a particle's reward or terminal value was clipped to the
            range of the real data (``None`` when not counted, see ``count_clipped``).
    """

    returns: torch.Tensor
    survival: torch.Tensor
    first_obs: torch.Tensor
    clipped: torch.Tensor | None = None


def _tensor_version(t: torch.Tensor) -> int | None:
    """torch's in-place version counter of ``t``: ``Tensor._version``, not a public API, so
    read defensively; ``None`` where a torch build lacks it (see :func:`planning_weights`)."""
    return getattr(t, "_version", None)


def planning_weights(model: EnsembleNetwork, dtype: torch.dtype | None = None) -> dict[str, Any]:
    """Weights with the input/output normalizers folded in, for the fast mean rollout.

    Cached on the model and rebuilt only when a parameter or normalizer changed (torch's
    tensor versions, bumped by every in-place write: an optimizer step, ``load_state_dict``,
    the trainer's normalizers), so a planning step runs ~15 small ops per model step instead of
    ~25.  Where a torch build has no version counters the weights are rebuilt on every call:
    the same numbers, a little slower.

    With a low-precision ``dtype`` the matmul weights come converted (cached too); the action
    part of the first layer (``w1a``, ``b1``) stays float32.
    """
    tensors = [*model.parameters(), *model.buffers()]
    versions = [_tensor_version(t) for t in tensors]
    key = None if None in versions else tuple(versions) + tuple(id(t) for t in tensors)
    cached = getattr(model, "_plan_cache", None)
    if key is not None and cached is not None and cached[0] == key:
        return _weights_in(cached[1], dtype)
    d = model.obs_dim
    with torch.no_grad():
        w1, b1 = model.hidden_layers[0].weight, model.hidden_layers[0].bias
        w1n = w1 / model.in_std[None, :, None]
        b1n = b1 - ((model.in_mean / model.in_std) @ w1).unsqueeze(1)  # [E, 1, H]
        wh = model.head.weight[..., : d + 1] * model.out_std
        bh = model.head.bias[..., : d + 1] * model.out_std + model.out_mean
        t1 = model.term_layers[0]
        wt1 = t1.weight / model.in_std[None, :d, None]
        bt1 = t1.bias - ((model.in_mean[:d] / model.in_std[:d]) @ t1.weight).unsqueeze(1)
        weights = {
            "w1": w1n.contiguous(),  # state and (encoded) action inputs together
            "w1s": w1n[:, :d].contiguous(),
            "w1a": w1n[:, d:].contiguous(),
            "b1": b1n.contiguous(),
            "mid": [(m.weight.detach(), m.bias.detach()) for m in model.hidden_layers[1:]],
            "wh": wh.contiguous(),
            "bh": bh.contiguous(),
            "term": [
                (wt1.contiguous(), bt1.contiguous()),
                (model.term_layers[1].weight.detach(), model.term_layers[1].bias.detach()),
            ],
            # Negated so that sigmoid gives the probability of *continuing*.
            "term_out": (
                -model.term_layers[2].weight.detach(),
                -model.term_layers[2].bias.detach(),
            ),
            "reward_clip": model.reward_bounds(),
        }
    if key is not None:
        model._plan_cache = (key, weights)
    return _weights_in(weights, dtype)


def folded_step(
    w: dict[str, Any], pre: torch.Tensor, state: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One mean model step on :func:`planning_weights` ``w``.

    ``pre`` is the first layer's pre-activation ``[E, M, hidden]`` (state and action in, bias
    added), ``state`` the rows' states ``[E, M, D]``.  Returns the next states ``[E, M, D]``, the
    head's output ``[E, M, D + 1]`` (its last column the raw, unclipped reward) and the
    probability of continuing ``[E, M]``.  A low-precision ``dtype`` runs the hidden x hidden
    layers and the head in it; states and the termination classifier stay float32.
    """
    low = dtype != torch.float32
    silu = nn.functional.silu
    x = silu(pre, inplace=True)
    if low:
        x = x.to(dtype)
    for wm, bm in w["mid"]:
        x = silu(torch.baddbmm(bm, x, wm), inplace=True)
    out = torch.baddbmm(w["bh"], x, w["wh"])
    if low:
        out = out.float()
    state = state + out[..., : state.shape[-1]]
    (wt1, bt1), (wt2, bt2) = w["term"]
    wt3, bt3 = w["term_out"]
    z = silu(torch.baddbmm(bt1, state, wt1), inplace=True)
    z = silu(torch.baddbmm(bt2, z, wt2), inplace=True)
    cont = torch.sigmoid(torch.baddbmm(bt3, z, wt3)[..., 0])
    return state, out, cont


def _fast_rollout(
    model: EnsembleNetwork,
    obs_t: torch.Tensor,
    actions: torch.Tensor,
    cand: torch.Tensor,
    gamma: float,
    terminal_value: Callable[[torch.Tensor], torch.Tensor] | None,
    dtype: torch.dtype,
    count_clipped: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Mean-prediction rollout on folded weights: ``[E, M]`` returns, survival, first obs,
    and (with ``count_clipped``) which rows had a reward or terminal value clipped.

    Rewards are clamped to the model's reward bounds at every step (one op, paid for by doing
    the return and survival updates in place: measured within a few percent of the unclipped
    loop); the model's own terminal value clips its members' values.  Counting clipped rows
    costs one more op per step (the unclipped return, accumulated beside the clipped one: the
    two differ only where a clip changed a reward), so only ``imagine``'s reference rollout
    counts.  Discrete actions enter the first layer as a one-hot beside the state (one
    ``K = D + n`` matmul with the bias per step).
    """
    w = planning_weights(model, dtype)
    r_lo, r_hi = w["reward_clip"]
    e, m = cand.shape
    h = actions.shape[1]
    d = model.obs_dim
    spec = model.action_spec
    discrete = spec.kind == "discrete"
    if discrete:
        # State and one-hot action enter the first layer as one [D + n] input: one small
        # matmul with the bias, no gather of per-action rows.
        idx = actions[..., 0].round().long().clamp_(0, spec.n - 1)[cand]
        onehot = nn.functional.one_hot(idx, spec.n).float()  # [E, M, H, n]
    else:
        act = spec.encode(actions[cand])  # [E, M, H, A']
        # First-layer action contributions for every step at once: [E, M, H, hidden].
        act_in = torch.bmm(act.reshape(e, m * h, -1), w["w1a"]).view(e, m, h, -1)
        act_in = act_in + w["b1"].unsqueeze(2)
    state = obs_t.expand(e, m, d).contiguous()
    alive = torch.ones(e, m)
    ret = torch.zeros(e, m)
    first = state
    discount = 1.0
    raw = ret.clone() if count_clipped else None  # the return without clipping
    for t in range(h):
        if discrete:
            pre = torch.baddbmm(w["b1"], torch.cat([state, onehot[:, :, t]], dim=-1), w["w1"])
        else:
            pre = torch.baddbmm(act_in[:, :, t], state, w["w1s"])
        state, out, cont = folded_step(w, pre, state, dtype)
        if t == 0:
            first = state
        if raw is not None:
            raw.addcmul_(alive, out[..., d], value=discount)
        # In place (the rows are this loop's own tensors): pays for the clamp's extra op.
        ret.addcmul_(alive, out[..., d].clamp_(r_lo, r_hi), value=discount)
        alive.mul_(cont)
        discount *= gamma
    clipped = None
    if raw is not None:
        clipped = (raw != ret) & ~torch.isnan(raw)
    if terminal_value is not None:
        v, hit = _terminal(terminal_value, state, clipped is not None)
        if hit is not None and clipped is not None:
            clipped |= hit
        ret.addcmul_(alive, v, value=discount)
    return ret, alive, first, clipped


def particle_rows(b: int, k: int, e: int) -> torch.Tensor:
    """``[E, M]``: the candidate each member's row imagines, for ``b`` candidates x ``k``
    particles over ``e`` members (PETS's TS-infinity, round-robin over the flat particle index;
    the last row is padded with the last candidate)."""
    m = -(-(b * k) // e)  # rows per member
    cand = torch.arange(m * e) // k
    return cand.clamp_(max=b - 1).view(m, e).T  # [E, M]: particle j = row * E + member


def per_particle(x: torch.Tensor, b: int, k: int) -> torch.Tensor:
    """Rows ``[E, M, ...]`` (laid out by :func:`particle_rows`) -> particles ``[B, K, ...]``."""
    e, m = x.shape[:2]
    rest = x.shape[2:]
    return x.transpose(0, 1).reshape(m * e, *rest)[: b * k].reshape(b, k, *rest)


@torch.no_grad()
def rollout(
    model: EnsembleNetwork,
    obs: torch.Tensor | np.ndarray | Sequence[float],
    actions: torch.Tensor,
    *,
    particles: int | None = None,
    gamma: float = 1.0,
    sample: bool = False,
    generator: torch.Generator | None = None,
    terminal_value: Callable[[torch.Tensor], torch.Tensor] | None = None,
    dtype: torch.dtype | str = "auto",
    count_clipped: bool = False,
) -> ImaginedRollout:
    """Imagine ``[B, H, A]`` action sequences from one observation ``[D]``.

    Particles are assigned to members round-robin over the flat particle index (PETS's
    TS-infinity): with ``particles == E`` every member rolls out every candidate once, which
    is what risk-aware scoring (mean - lambda * std over members) needs; with
    ``particles == 1`` each candidate is imagined by one member (cheap, for search).  All
    candidates x particles x horizon run as ``H`` batched steps, never one candidate at a
    time.  Reward after a predicted termination is weighted by the probability of still
    running.  ``terminal_value`` (``[E, M, D] -> [E, M]``, e.g. the model's ``value``) adds
    ``gamma^H * survival * V(s_H)`` at the horizon.

    Imagined rewards (learned ones; a ``reward_fn`` is known) are clipped to the model's
    ``reward_bounds``, and the members' values inside the model's own terminal value
    (``terminal_value_fn``) to its ``value_bounds``: the range of the real data, with a margin
    (:mod:`wm_agents.neural.bounds`); a caller's own ``terminal_value`` is used as given.
    ``count_clipped`` fills ``ImaginedRollout.clipped`` and the model's ``clip_stats``; the
    search leaves it off (one op per step less).

    ``dtype`` is the search precision of the mean rollout (``sample=False``, learned heads):
    ``torch.float32`` (the reference numbers), ``torch.bfloat16`` (the wide matmuls in
    bfloat16, about 3x the float32 throughput on CPUs with AMX / AVX512-BF16; states, returns
    and survival accumulate in float32; returns move by about 1e-2, so keep the final choice in
    float32, as ``imagine`` does), or ``"auto"`` (:func:`search_dtype`).
    """
    obs_t = model.check_obs(obs)
    actions = model.action_spec.check_sequences(torch.as_tensor(actions, dtype=torch.float32))
    e = model.ensemble_size
    k = e if particles is None else int(particles)
    if k < 1:
        raise ValueError(f"particles must be >= 1, got {particles}")
    dtype = search_dtype(model, dtype)
    b, h, _ = actions.shape
    cand = particle_rows(b, k, e)
    m = cand.shape[1]
    clipped: torch.Tensor | None
    if not sample and model.reward_fn is None and model.termination_fn is None:
        ret, alive, first, clipped = _fast_rollout(
            model, obs_t, actions, cand, gamma, terminal_value, dtype, count_clipped
        )
    else:
        state = obs_t.expand(e, m, -1)
        alive = torch.ones(e, m)
        ret = torch.zeros(e, m)
        clipped = torch.zeros(e, m, dtype=torch.bool)
        first = state
        discount = 1.0
        for t in range(h):
            a = actions[cand, t]  # [E, M, A]
            state, reward, term, hit = model.predict_with_clipped(
                state, a, sample=sample, generator=generator
            )
            if hit is not None:
                clipped |= hit
            if t == 0:
                first = state
            ret = ret + discount * alive * reward
            alive = alive * (1.0 - term)
            discount *= gamma
        if terminal_value is not None:
            v, hit = _terminal(terminal_value, state, count_clipped)
            if hit is not None:
                clipped |= hit
            ret = ret + discount * alive * v

    rows_clipped = None
    if count_clipped and clipped is not None:
        rows_clipped = per_particle(clipped, b, k)
        model.clip_stats.add(rows_clipped.numel(), rows_clipped.sum())
    return ImaginedRollout(
        per_particle(ret, b, k), per_particle(alive, b, k), per_particle(first, b, k), rows_clipped
    )


def _terminal(
    terminal_value: Callable[[torch.Tensor], torch.Tensor], state: torch.Tensor, count: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A rollout's terminal values, and (when counting, for the model's own value) which rows
    had a member's value clipped; a caller's own ``terminal_value`` is used as given."""
    if count and isinstance(terminal_value, TerminalValue):
        return terminal_value.with_clipped(state)
    return terminal_value(state), None


# ---------------------------------------------------------------------- search precision

_PLANNING_DTYPES = (torch.float32, torch.bfloat16)
_BF16_MIN_HIDDEN = 128  # below this width bfloat16 matmuls cost more than they save (measured)
_BF16_CPU_FLAGS = frozenset({"amx_tile", "avx512_bf16"})
_CPUINFO = Path("/proc/cpuinfo")


def _cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags from ``/proc/cpuinfo`` (Linux); ``None`` where there is none."""
    try:
        text = _CPUINFO.read_text()
    except OSError:
        return None
    flags: set[str] = set()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            flags.update(value.split())
    return frozenset(flags)


def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AMX or AVX512-BF16).

    Read from the CPU's flags (``/proc/cpuinfo``, a public interface of the OS).  Where there
    is no such file (macOS, Windows) torch's own probes answer if this build has them
    (``torch.cpu._is_amx_tile_supported`` / ``_is_avx512_bf16_supported``: private, so looked
    up defensively); without either the answer is ``False`` and planning stays float32.
    """
    flags = _cpu_flags()
    if flags is not None:
        return bool(flags & _BF16_CPU_FLAGS)
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def search_dtype(model: EnsembleNetwork, dtype: torch.dtype | str) -> torch.dtype:
    """Resolve a search precision: a dtype is checked, ``"auto"`` picks one.

    ``"auto"`` is bfloat16 when the CPU runs it natively (:func:`native_bfloat16`) and the
    model's hidden layers are at least 128 wide, float32 otherwise.  The rule reads only the
    hardware and the model's shape, never a timing, so a run repeats exactly on one machine.
    """
    if dtype == "auto":
        wide = model.config.hidden >= _BF16_MIN_HIDDEN
        return torch.bfloat16 if wide and native_bfloat16() else torch.float32
    if isinstance(dtype, str):
        named = {"float32": torch.float32, "bfloat16": torch.bfloat16}
        if dtype not in named:
            raise ValueError(f"dtype must be 'auto', 'float32' or 'bfloat16', got {dtype!r}")
        dtype = named[dtype]
    if dtype not in _PLANNING_DTYPES:
        raise ValueError(
            f"dtype must be one of {_PLANNING_DTYPES} or 'auto' (the search precision), got {dtype}"
        )
    return dtype


def _weights_in(weights: dict[str, Any], dtype: torch.dtype | None) -> dict[str, Any]:
    """The float32 planning weights, or a cached copy with the wide matmuls' in ``dtype``.

    Only the hidden x hidden layers and the head are converted: the first layer (``K = D`` plus
    the action) and the termination classifier are small matmuls, faster in float32.
    """
    if dtype is None or dtype == torch.float32:
        return weights
    low = weights.setdefault("_low", {})
    if dtype not in low:
        low[dtype] = {
            **{k: v for k, v in weights.items() if k != "_low"},
            "mid": [(a.to(dtype), b.to(dtype)) for a, b in weights["mid"]],
            "wh": weights["wh"].to(dtype),
            "bh": weights["bh"].to(dtype),
        }
    return low[dtype]
