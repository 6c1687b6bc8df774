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

import math
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
    "TerminalValueFn",
    "check_explore",
    "folded_step",
    "native_bfloat16",
    "one_each",
    "particle_rows",
    "per_particle",
    "planning_weights",
    "rollout",
    "rollout_many",
    "search_dtype",
    "shape_groups",
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


TerminalValueFn = Callable[[torch.Tensor], torch.Tensor]
"""A terminal value ``[E, M, D] -> [E, M]`` added at a rollout's horizon (e.g. the model's
``terminal_value_fn``)."""


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
    # The reward bounds are cached too: they follow reward_seen (a buffer) and the switch.
    key = (
        None if None in versions else (*versions, *(id(t) for t in tensors), model.clip_imagination)
    )
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
        weights = {
            "w1": w1n.contiguous(),  # state and (encoded) action inputs together
            "w1s": w1n[:, :d].contiguous(),
            "w1a": w1n[:, d:].contiguous(),
            "b1": b1n.contiguous(),
            "mid": [(m.weight.detach(), m.bias.detach()) for m in model.hidden_layers[1:]],
            "wh": wh.contiguous(),
            "bh": bh.contiguous(),
            "term": [
                _state_input(model, model.term_layers[0]),
                (model.term_layers[1].weight.detach(), model.term_layers[1].bias.detach()),
            ],
            # Negated so that sigmoid gives the probability of *continuing*.
            "term_out": (
                -model.term_layers[2].weight.detach(),
                -model.term_layers[2].bias.detach(),
            ),
            "reward_clip": model.reward_bounds(),
        }
        if model.end_layers is not None:
            # The end-reward net, folded as the termination classifier is: next-state
            # normalizer into its first layer, end_mean / end_std into its last.
            e1, e2, e3 = model.end_layers
            weights["end"] = [
                _state_input(model, e1),
                (e2.weight.detach(), e2.bias.detach()),
                (
                    (e3.weight * model.end_std).contiguous(),
                    (e3.bias * model.end_std + model.end_mean).contiguous(),
                ),
            ]
            # Per member, so stacked blocks of different models each shift by their own.
            weights["end_shift"] = model.term_log_weight.expand(e3.weight.shape[0], 1).clone()
    if key is not None:
        model._plan_cache = (key, weights)
    return _weights_in(weights, dtype)


def _state_input(model: EnsembleNetwork, layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The first layer of a small per-state net (termination, end reward) with the state
    normalizer folded in: ``(weight, bias)`` taking raw states."""
    d = model.obs_dim
    mean, std = model.in_mean[:d], model.in_std[:d]
    weight = layer.weight / std[None, :, None]
    bias = layer.bias - ((mean / std) @ layer.weight).unsqueeze(1)
    return weight.contiguous(), bias.contiguous()


def _state_mlp(
    state: torch.Tensor, layers: Sequence[tuple[torch.Tensor, torch.Tensor]]
) -> torch.Tensor:
    """A folded small per-state net (three ``(weight, bias)`` layers, SiLU between) on raw
    states ``[E, M, D]`` -> ``[E, M]``."""
    silu = nn.functional.silu
    (w1, b1), (w2, b2), (w3, b3) = layers
    z = silu(torch.baddbmm(b1, state, w1), inplace=True)
    z = silu(torch.baddbmm(b2, z, w2), inplace=True)
    return torch.baddbmm(b3, z, w3)[..., 0]


def folded_step(
    w: dict[str, Any],
    pre: torch.Tensor,
    state: torch.Tensor,
    dtype: torch.dtype,
    *,
    blocks: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One mean model step on :func:`planning_weights` ``w``.

    ``pre`` is the first layer's pre-activation ``[E, M, hidden]`` (state and action in, bias
    added), ``state`` the rows' states ``[E, M, D]``.  Returns the next states ``[E, M, D]``, the
    head's output ``[E, M, D + 1]`` (its last column the raw, unclipped reward; with the
    model's end-reward net, ``cont * r + (1 - cont) * r_end(s')``) and the probability of
    continuing ``[E, M]``.  A low-precision ``dtype`` runs the hidden x hidden
    layers and the head in it; states and the termination classifier stay float32.

    ``blocks > 1``: the rows are ``blocks`` independent ``[E, M]`` blocks stacked as
    ``[blocks * E, M]`` with weights tiled to match (:func:`rollout_many`); the sigmoid then
    runs block by block (see :func:`_sigmoid_blocks`).
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
    logit = _state_mlp(state, [*w["term"], w["term_out"]])
    if "end_shift" in w:  # calibrated (EnsembleNetwork.end_probability): logit less the weight
        logit = logit + w["end_shift"]
    cont = torch.sigmoid(logit) if blocks == 1 else _sigmoid_blocks(logit, blocks)
    if "end" in w:  # the reward is (1 - p_end) r(s, a) + p_end r_end(s')
        r_end = _state_mlp(state, w["end"])
        reward = out[..., -1]
        reward.copy_(torch.lerp(r_end, reward, cont))
    return state, out, cont


def _sigmoid_blocks(logit: torch.Tensor, blocks: int) -> torch.Tensor:
    """``sigmoid`` of each ``[E, M]`` block on its own.

    torch's CPU sigmoid computes a tensor's last ``numel % (2 * vector width)`` elements with
    the scalar ``exp`` and the rest with the vectorized one, and the two differ in the last bit
    for some inputs: one sigmoid over the stacked blocks would give a block's rows other bits
    than its rollout alone (measured: ``tests/test_rollout_many.py``).  Every other op of
    the step gives the same bits either way (also tested), so only this one runs per block.
    """
    parts = logit.view(blocks, -1, logit.shape[-1])
    return torch.stack([torch.sigmoid(p) for p in parts]).view_as(logit)


def _fast_rollout(
    models: Sequence[EnsembleNetwork],
    obs_t: torch.Tensor,
    actions: torch.Tensor,
    cand: torch.Tensor,
    gamma: float,
    terminal_values: Sequence[TerminalValueFn | None],
    dtype: torch.dtype,
    count_clipped: bool,
    explore: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Mean-prediction rollout on folded weights from ``N`` observations ``[N, D]`` at once,
    each with its own ``[B, H, A]`` sequences (``actions [N, B, H, A]``), observation ``n``
    imagined by ``models[n]`` (all of one architecture) with ``terminal_values[n]``: ``[N, E,
    M]`` returns, survival, ``[N, E, M, D]`` first obs, and (with ``count_clipped``) which rows
    had a reward or terminal value clipped.

    The ``N`` blocks of rows are stacked on the member axis (``[N * E, M]``, block ``n`` with
    its model's weights: :func:`_stacked`), so each block runs the same matmuls of the same
    shapes as a rollout from its observation alone and gets the same bits (``N == 1`` is
    exactly that rollout).  Rewards are clamped to each model's reward bounds at every step
    (one op per run of blocks sharing bounds, paid for by doing the return and survival
    updates in place: measured within a few percent of the unclipped loop); the model's own
    terminal value clips its members' values.  Counting clipped rows costs one more op per step
    (the unclipped return, accumulated beside the clipped one: the two differ only where a clip
    changed a reward), so only ``imagine``'s reference rollout counts.  Discrete actions enter
    the first layer as a one-hot beside the state (one ``K = D + n`` matmul with the bias per
    step).  ``explore > 0`` adds :func:`_disagreement` to every step's reward (``cand`` must
    give every member every candidate: ``particles == E``).
    """
    n_obs = obs_t.shape[0]
    # Once per model, not per block: checking that the cached weights are current reads
    # every parameter's version (measured ~6% of a 5-agent evaluation when done per block).
    by_model = {id(model): model for model in models}
    weights = {key: planning_weights(model, dtype) for key, model in by_model.items()}
    ws = [weights[id(model)] for model in models]
    w = _stacked(ws)
    e, m = cand.shape
    clip_runs = _runs([wn["reward_clip"] for wn in ws], e)
    h = actions.shape[2]
    d = models[0].obs_dim
    spec = models[0].action_spec
    discrete = spec.kind == "discrete"
    rows = n_obs * e
    if discrete:
        # State and one-hot action enter the first layer as one [D + n] input: one small
        # matmul with the bias, no gather of per-action rows.
        idx = actions[..., 0].round().long().clamp_(0, spec.n - 1)[:, cand]
        onehot = nn.functional.one_hot(idx, spec.n).float().view(rows, m, h, spec.n)
    else:
        act = spec.encode(actions[:, cand])  # [N, E, M, H, A']
        # First-layer action contributions for every step at once: [N * E, M, H, hidden].
        act_in = torch.bmm(act.reshape(rows, m * h, -1), w["w1a"]).view(rows, m, h, -1)
        act_in = act_in + w["b1"].unsqueeze(2)
    state = obs_t[:, None, None, :].expand(n_obs, e, m, d).reshape(rows, m, d)
    box = _stacked_boxes(models, obs_t, e)
    alive = torch.ones(rows, m)
    ret = torch.zeros(rows, m)
    first = state
    discount = 1.0
    raw = ret.clone() if count_clipped else None  # the return without clipping
    scale = _change_scale(models) if explore else None
    for t in range(h):
        if discrete:
            pre = torch.baddbmm(w["b1"], torch.cat([state, onehot[:, :, t]], dim=-1), w["w1"])
        else:
            pre = torch.baddbmm(act_in[:, :, t], state, w["w1s"])
        state, out, cont = folded_step(w, pre, state, dtype, blocks=n_obs)
        if t == 0:
            first = state
        if raw is not None:
            raw.addcmul_(alive, out[..., d], value=discount)
        # In place (the rows are this loop's own tensors): pays for the clamp's extra op.
        for rows_of, (r_lo, r_hi) in clip_runs:
            out[rows_of, :, d].clamp_(r_lo, r_hi)
        ret.addcmul_(alive, out[..., d], value=discount)
        if scale is not None:
            bonus = _disagreement(state.view(n_obs, e, m, d), scale).reshape(rows, m)
            ret.addcmul_(alive, bonus, value=explore * discount)
            if raw is not None:
                raw.addcmul_(alive, bonus, value=explore * discount)
        alive.mul_(cont)
        if box is not None:  # halted where the real data has not been
            alive.mul_(_inside(state, box))
        discount *= gamma
    clipped = None
    if raw is not None:
        clipped = (raw != ret) & ~torch.isnan(raw)
    valued = [(n, tv) for n, tv in enumerate(terminal_values) if tv is not None]
    if valued:
        # Per block: the value's members score all of a block's rows together.
        blocks = state.view(n_obs, e, m, d)
        values = [_terminal(tv, blocks[n], clipped is not None) for n, tv in valued]
        if clipped is not None:
            for (n, _), (_, hit) in zip(valued, values, strict=True):
                if hit is not None:
                    clipped.view(n_obs, e, m)[n] |= hit
        if len(valued) == n_obs:
            ret.addcmul_(alive, torch.stack([v for v, _ in values]).view(rows, m), value=discount)
        else:  # only the blocks whose model has a value (an unfitted one adds nothing)
            for (n, _), (v, _) in zip(valued, values, strict=True):
                ret.view(n_obs, e, m)[n].addcmul_(alive.view(n_obs, e, m)[n], v, value=discount)
    shaped = (n_obs, e, m)
    return (
        ret.view(shaped),
        alive.view(shaped),
        first.view(*shaped, d),
        None if clipped is None else clipped.view(shaped),
    )


def _stacked_boxes(
    models: Sequence[EnsembleNetwork], obs_t: torch.Tensor, e: int
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Each block's :meth:`~EnsembleNetwork.state_box` from its observation as ``[N * E, 1,
    D]`` bounds (unbounded for a model that does not halt); ``None`` when none halts."""
    boxes = [model.state_box(o) for model, o in zip(models, obs_t, strict=True)]
    if all(b is None for b in boxes):
        return None
    inf = torch.full_like(obs_t[0], torch.inf)
    lo = torch.stack([-inf if b is None else b[0] for b in boxes])
    hi = torch.stack([inf if b is None else b[1] for b in boxes])
    return tuple(  # type: ignore[return-value]
        x[:, None, None, :].expand(-1, e, 1, -1).reshape(-1, 1, x.shape[-1]) for x in (lo, hi)
    )


def _inside(state: torch.Tensor, box: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Whether each state ``[..., D]`` lies in ``box`` on every dimension (``[...]`` bools)."""
    return ((state >= box[0]) & (state <= box[1])).all(-1)


def check_explore(explore: float) -> float:
    """``explore`` if it is a finite weight >= 0 (the exploration bonus's weight, wherever it
    is set: a rollout, a controller, an agent config), else a ``ValueError``."""
    if not (math.isfinite(explore) and explore >= 0):
        raise ValueError(f"explore must be a finite weight >= 0, got {explore}")
    return explore


def _check_explore(explore: float, particles: int, members: int) -> None:
    """A ``ValueError`` unless ``explore`` is a weight (:func:`check_explore`) that the
    particles can carry (every member imagining every candidate)."""
    check_explore(explore)
    if explore and particles != members:
        raise ValueError(
            f"explore needs every member to imagine every candidate (their disagreement is "
            f"the bonus): particles must be None or the ensemble size {members}, got {particles}"
        )


def _change_scale(models: Sequence[EnsembleNetwork]) -> torch.Tensor:
    """``[N, 1, D]``: each block's typical one-step change per state dimension (the std of
    the state deltas its model was fitted on), the unit of :func:`_disagreement`."""
    d = models[0].obs_dim
    return torch.stack([m.out_std[:d].clamp_min(1e-6) for m in models])[:, None, :]


def _disagreement(states: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """How far the members' imagined states of one candidate lie apart: ``[N, E, M, D]``
    (member ``e``'s row ``j`` imagines candidate ``j``) -> ``[N, E, M]``, the std over members
    in units of ``scale`` ``[N, 1, D]`` averaged over dimensions, the same for every member.

    Where the members were fitted on data they agree; they part where none of them has seen
    what happens, so a planner that adds this to the reward goes where the model is ignorant
    (the disagreement bonus of Plan2Explore, Sekar et al. 2020, and MAX, Shyam et al. 2019).
    """
    spread = (states.std(dim=1, correction=0) / scale).mean(-1)  # [N, M]
    return spread[:, None].expand(-1, states.shape[1], -1)


def _stacked(ws: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Planning weights for stacked blocks of rows, block ``n`` with ``ws[n]``: every ``[E,
    ...]`` tensor of the blocks concatenated on the member axis.  Blocks of one model are its
    weights tiled (cached with the weights: a batched evaluation asks for the same ``N`` at
    every step); ``N == 1`` is the weights themselves."""
    first = ws[0]
    if all(wn is first for wn in ws):
        if len(ws) == 1:
            return first
        cache = first.setdefault("_tiled", {})
        if len(ws) not in cache:
            cache[len(ws)] = _joined(ws)
        return cache[len(ws)]
    return _joined(ws)


def _joined(ws: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """:func:`_stacked`'s concatenation (contiguous, so each block's matmul reads its weights
    as a rollout on them alone does)."""

    def join(parts: Sequence[Any]) -> Any:
        if isinstance(parts[0], torch.Tensor):
            return torch.cat(list(parts))
        return type(parts[0])(join([p[i] for p in parts]) for i in range(len(parts[0])))

    keys = (*_PER_MEMBER, "mid", "term", "term_out")
    if "end" in ws[0]:
        keys = (*keys, "end", "end_shift")
    return {k: join([wn[k] for wn in ws]) for k in keys}


_PER_MEMBER = ("w1", "w1s", "w1a", "b1", "wh", "bh")


def _runs(bounds: Sequence[tuple[float, float]], e: int) -> list[tuple[slice, tuple[float, float]]]:
    """Consecutive blocks with equal reward bounds as (row slice of ``[N * E]``, bounds): one
    clamp per run, so blocks of one model (or of agents fitted to the same rewards) clamp in
    one op."""
    runs: list[tuple[slice, tuple[float, float]]] = []
    start = 0
    for n in range(1, len(bounds) + 1):
        if n == len(bounds) or bounds[n] != bounds[start]:
            runs.append((slice(start * e, n * e), bounds[start]))
            start = n
    return runs


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
    explore: float = 0.0,
) -> ImaginedRollout:
    """Imagine ``[B, H, A]`` action sequences from one observation ``[D]``.

    Particles are assigned to members round-robin over the flat particle index (PETS's
    TS-infinity): with ``particles == E`` every member rolls out every candidate once, which
    is what risk-aware scoring (mean - lambda * std over members) needs; with
    ``particles == 1`` each candidate is imagined by one member (cheap, for search).  All
    candidates x particles x horizon run as ``H`` batched steps, never one candidate at a
    time.  Reward after a predicted termination is weighted by the probability of still
    running; with the model's ``halt_outside_data`` on, a row also ends where it leaves the
    real data's range (:meth:`~wm_agents.neural.network.EnsembleNetwork.state_box`).
    ``terminal_value`` (``[E, M, D] -> [E, M]``, e.g. the model's ``value``) adds
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

    ``explore`` (>= 0) is optimism where the model is ignorant: each step's reward gains
    ``explore`` times the members' disagreement about that step's imagined state (the std over
    members in typical one-step changes, averaged over dimensions: :func:`_disagreement`),
    weighted and discounted as the reward is.  It needs every member to imagine every
    candidate (``particles`` ``None`` or ``E``); with ``sample`` the disagreement includes
    the sampled noise.
    """
    obs_t = model.check_obs(obs)
    actions = model.action_spec.check_sequences(torch.as_tensor(actions, dtype=torch.float32))
    e = model.ensemble_size
    k = e if particles is None else int(particles)
    if k < 1:
        raise ValueError(f"particles must be >= 1, got {particles}")
    _check_explore(explore, k, e)
    dtype = search_dtype(model, dtype)
    b, h, _ = actions.shape
    cand = particle_rows(b, k, e)
    m = cand.shape[1]
    clipped: torch.Tensor | None
    if _fast_path(model, sample):
        ret, alive, first, clipped = (
            None if x is None else x[0]
            for x in _fast_rollout(
                [model],
                obs_t[None],
                actions[None],
                cand,
                gamma,
                [terminal_value],
                dtype,
                count_clipped,
                explore,
            )
        )
    else:
        state = obs_t.expand(e, m, -1)
        box = model.state_box(obs_t)
        alive = torch.ones(e, m)
        ret = torch.zeros(e, m)
        clipped = torch.zeros(e, m, dtype=torch.bool)
        first = state
        discount = 1.0
        scale = _change_scale([model]) if explore else None
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
            if scale is not None:
                ret = ret + explore * discount * alive * _disagreement(state[None], scale)[0]
            alive = alive * (1.0 - term)
            if box is not None:  # halted where the real data has not been
                alive = alive * _inside(state, box)
            discount *= gamma
        if terminal_value is not None:
            v, hit = _terminal(terminal_value, state, count_clipped)
            if hit is not None:
                clipped |= hit
            ret = ret + discount * alive * v

    return _imagined(model, ret, alive, first, clipped if count_clipped else None, b, k)


def _fast_path(model: EnsembleNetwork, sample: bool) -> bool:
    """Whether a rollout takes the folded mean rollout (learned heads, no sampling)."""
    return not sample and model.reward_fn is None and model.termination_fn is None


def _imagined(
    model: EnsembleNetwork,
    ret: torch.Tensor,
    alive: torch.Tensor,
    first: torch.Tensor,
    clipped: torch.Tensor | None,
    b: int,
    k: int,
) -> ImaginedRollout:
    """Rows ``[E, M]`` -> an :class:`ImaginedRollout` of ``[B, K]`` particles; counts the
    clipped rows in the model's ``clip_stats``."""
    rows_clipped = None
    if clipped is not None:
        rows_clipped = per_particle(clipped, b, k)
        model.clip_stats.add(rows_clipped.numel(), rows_clipped.sum())
    return ImaginedRollout(
        per_particle(ret, b, k), per_particle(alive, b, k), per_particle(first, b, k), rows_clipped
    )


@torch.no_grad()
def rollout_many(
    model: EnsembleNetwork | Sequence[EnsembleNetwork],
    obs: torch.Tensor | np.ndarray | Sequence[Sequence[float]],
    actions: torch.Tensor,
    *,
    particles: int | None = None,
    gamma: float = 1.0,
    terminal_value: TerminalValueFn | Sequence[TerminalValueFn | None] | None = None,
    dtype: torch.dtype | str = "auto",
    count_clipped: bool = False,
    explore: float = 0.0,
) -> list[ImaginedRollout]:
    """:func:`rollout` from ``N`` observations ``[N, D]`` at once, each with its own ``B``
    sequences (``actions [N, B, H, A]``): one batched pass, one :class:`ImaginedRollout` per
    observation, each what :func:`rollout` gives for that observation alone.

    ``model`` is one model for every observation, or one per observation: several models of
    one architecture (the agents of a sweep, each its own trained ensemble) imagine in the same
    pass, observation ``n`` by ``model[n]`` alone (its weights, reward bounds, clip counts).
    ``terminal_value`` likewise: one for all, or one (or ``None``) per observation.

    All ``N x B`` candidates x ``K`` particles x ``H`` steps run as ``H`` batched steps (the
    rows of observation ``n`` are block ``n`` of ``[N * E, M]``, laid out as :func:`rollout`
    lays out one, with its model's weights).  Models with a known ``reward_fn`` /
    ``termination_fn`` take :func:`rollout` once per observation (the same numbers, no
    speed-up).

    Bit for bit: every op of a block sees the same shapes as in :func:`rollout`, and the one op
    whose bits depend on a row's place in the tensor (the sigmoid) runs per block.  The matmuls
    are MKL's: on this project's CPU (AVX-512) a batched matmul gives each block the bits of a
    single one when the rows per member (``ceil(B * K / E)``) are a multiple of 4, as in the
    agents' searches (population 100 or 200, one particle, 5 members: 20 or 40 rows) and in
    ``imagine`` of 8 candidates (every member imagines each: 8 rows), and may differ in the
    last bit otherwise (``tests/test_rollout_many.py``): a decision changes only where two
    candidates' scores tie to the last bit.

    Raises:
        ValueError: wrong shapes, a model or terminal value list of another length than the
            observations, or models of different architectures.
    """
    obs_t = torch.as_tensor(obs, dtype=torch.float32)
    if obs_t.ndim != 2:
        raise ValueError(f"obs must be [N, D] (one observation per row), got {list(obs_t.shape)}")
    n_obs = obs_t.shape[0]
    acts = torch.as_tensor(actions, dtype=torch.float32)
    if acts.ndim != 4 or acts.shape[0] != n_obs:
        raise ValueError(
            f"actions must be [N, B, H, A] with N = {n_obs} (one batch of sequences "
            f"per observation), got {list(acts.shape)}"
        )
    models = one_each(model, n_obs, "model")
    values = one_each(terminal_value, n_obs, "terminal_value")
    if not all(_fast_path(m, False) for m in models):
        kw = dict(
            particles=particles,
            gamma=gamma,
            dtype=dtype,
            count_clipped=count_clipped,
            explore=explore,
        )
        return [
            rollout(m, o, a, terminal_value=tv, **kw)  # type: ignore[arg-type]
            for m, o, a, tv in zip(models, obs_t, acts, values, strict=True)
        ]
    first = models[0]
    dtype = search_dtype(first, dtype)
    for n, m in enumerate(models):
        if m is not first:
            _check_same_architecture(first, m, n)
    obs_t = torch.stack([first.check_obs(o) for o in obs_t])
    for a in acts:
        first.action_spec.check_sequences(a)
    e = first.ensemble_size
    k = e if particles is None else int(particles)
    if k < 1:
        raise ValueError(f"particles must be >= 1, got {particles}")
    _check_explore(explore, k, e)
    b = acts.shape[1]
    cand = particle_rows(b, k, e)
    ret, alive, first_obs, clipped = _fast_rollout(
        models, obs_t, acts, cand, gamma, values, dtype, count_clipped, explore
    )
    return [
        _imagined(
            models[i], ret[i], alive[i], first_obs[i], None if clipped is None else clipped[i], b, k
        )
        for i in range(n_obs)
    ]


def shape_groups(tensors: Sequence[torch.Tensor]) -> list[list[int]]:
    """Indices of ``tensors`` grouped by shape, in order of first appearance: the batches of
    sequences that can stack into one :func:`rollout_many` call (searches that re-plan with
    a wider population ask for more sequences than the others)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, t in enumerate(tensors):
        groups.setdefault(tuple(t.shape), []).append(i)
    return list(groups.values())


def one_each(x: Any, n: int, name: str) -> list[Any]:
    """``x`` as a list of ``n``: one ``x`` for every observation (state), or a sequence of
    ``n``, one each (a ``ValueError`` for another length)."""
    if isinstance(x, Sequence):
        if len(x) != n:
            raise ValueError(f"{len(x)} values of {name} for {n} observations (one each, or one)")
        return list(x)
    return [x] * n


def _check_same_architecture(first: EnsembleNetwork, other: EnsembleNetwork, n: int) -> None:
    """Models sharing one pass must stack: the same layer shapes and action space (a
    ``ValueError`` naming what differs)."""
    if other.config != first.config:
        ours, theirs = first.config.model_dump(), other.config.model_dump()
        diff = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs.get(k)}
        raise ValueError(
            f"model {n} has another architecture than model 0 ({diff}, as (model 0, model "
            f"{n})): only models of one architecture share a batched pass"
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
            **{k: v for k, v in weights.items() if not k.startswith("_")},  # no caches
            "mid": [(a.to(dtype), b.to(dtype)) for a, b in weights["mid"]],
            "wh": weights["wh"].to(dtype),
            "bh": weights["bh"].to(dtype),
        }
    return low[dtype]
