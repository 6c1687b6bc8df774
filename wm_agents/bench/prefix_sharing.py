"""Shared prefixes: a benchmark-only rollout that computes each distinct action prefix once.

With discrete actions a CEM population repeats itself: candidates that start alike, and the
particles of one candidate on one member, run the same first steps.  :func:`shared_prefix_rollout`
groups each member's rows by their action prefix, one depth at a time (:class:`PrefixTree`), and
computes every group once, on the library's folded planning weights
(:func:`~wm_agents.neural.rollout.planning_weights`, :func:`~wm_agents.neural.rollout.folded_step`),
so it gives the dense rollout's numbers up to float32 rounding (the matmuls see other batch
shapes; tested).

It lived inside the library's rollout as ``share_prefixes`` until issue 12: only this benchmark
switched it on (the ``-shared`` mode of ``wm-agents bench plan``), so it moved here, and the
library's hot loop no longer carries its branches.  Measured (``BENCHMARKS.md``, planning speed):
1.3-6.8x at 5-20 particles, about nothing at one particle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from wm_agents.neural.network import EnsembleNetwork
from wm_agents.neural.rollout import (
    ImaginedRollout,
    folded_step,
    particle_rows,
    per_particle,
    planning_weights,
    rollout,
    search_dtype,
)
from wm_agents.planning.optimizers import Objective
from wm_agents.spaces import ActionSpec

__all__ = ["PrefixTree", "shared_prefix_objective", "shared_prefix_rollout"]

_DENSE_FRACTION = 0.7
_NODE_ROUND = 8  # node counts are padded to a multiple of this: fewer distinct matmul shapes


def _take(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Per-member rows: ``x[e, index[e, j]]`` for ``x`` ``[E, U, ...]``, ``index`` ``[E, V]``.

    One ``index_select`` on the flattened rows (several times faster than advanced indexing or
    ``gather`` for these sizes; same values).
    """
    e, u = x.shape[:2]
    flat = (index + torch.arange(e)[:, None] * u).reshape(-1)
    return x.reshape(e * u, *x.shape[2:]).index_select(0, flat).view(*index.shape, *x.shape[2:])


class PrefixTree:
    """Rows of each member grouped by their action prefix, one depth at a time.

    ``step(t)`` returns, for the nodes at depth ``t`` (distinct ``(prefix up to t)`` per member,
    ordered by their first row), their parent node at depth ``t - 1`` and their action, both
    ``[E, U]`` (padded with copies of node 0 up to a multiple of ``_NODE_ROUND``).  Once nodes would
    be more than ``_DENSE_FRACTION`` of the rows, every row becomes its own node (``U == M``, in
    row order) and later steps are the identity: no more bookkeeping.
    """

    def __init__(self, idx: torch.Tensor, n_actions: int) -> None:
        self.idx = idx  # [E, M, H] action indices per row
        self.n = n_actions
        e, m, _ = idx.shape
        self.rows = torch.arange(m)
        self.member = torch.arange(e)[:, None].expand(e, m)
        self.node = torch.zeros(e, m, dtype=torch.long)  # row -> node at the last depth
        self.n_nodes = 1
        self.dense = False

    @classmethod
    def for_actions(
        cls, spec: ActionSpec, actions: torch.Tensor, cand: torch.Tensor
    ) -> PrefixTree | None:
        """A tree for ``[B, H, A]`` discrete actions assigned to rows by ``cand`` ``[E, M]``;
        ``None`` for Box actions (continuous sequences never share a prefix)."""
        if spec.kind != "discrete":
            return None
        idx = actions[..., 0].round().long().clamp_(0, spec.n - 1)
        return cls(idx[cand], spec.n)

    def step(self, t: int) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Parents (``None``: every row is its own node, nothing to gather) and actions."""
        e, m = self.node.shape
        a = self.idx[:, :, t]
        if self.dense:
            return None, a
        span = self.n_nodes * self.n
        key = (self.node * self.n + a + self.member * span).flatten()
        uniq, inv = torch.unique(key, return_inverse=True)  # sorted: grouped by member
        mem = uniq // span
        counts = torch.bincount(mem, minlength=e)
        if int(counts.max()) > _DENSE_FRACTION * m:
            parent, self.dense = self.node, True
            self.node = self.rows.expand(e, m)
            return parent, a
        # Order each member's nodes by their first row, so that when every row has its own
        # node the order is the row order.
        first_row = torch.full((len(uniq),), m, dtype=torch.long)
        first_row.scatter_reduce_(0, inv, self.rows.repeat(e), reduce="amin")
        perm = torch.argsort(mem * m + first_row)
        rank = torch.empty_like(perm)
        rank[perm] = torch.arange(len(perm))
        offsets = torch.cumsum(counts, 0) - counts
        mem_sorted = mem[perm]
        slot = torch.arange(len(perm)) - offsets[mem_sorted]
        rest = uniq[perm] - mem_sorted * span
        u = min(m, -(-int(counts.max()) // _NODE_ROUND) * _NODE_ROUND)
        parent = torch.zeros(e, u, dtype=torch.long)
        action = torch.zeros(e, u, dtype=torch.long)
        parent[mem_sorted, slot] = rest // self.n
        action[mem_sorted, slot] = rest % self.n
        self.node = (rank[inv] - offsets[self.member.flatten()]).view(e, m)
        self.n_nodes = u
        return parent, action

    def to_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Per-node values ``[E, U, ...]`` at the last depth -> per-row ``[E, M, ...]``."""
        return x if self.dense else _take(x, self.node)


@torch.no_grad()
def shared_prefix_rollout(
    model: EnsembleNetwork,
    obs: torch.Tensor | np.ndarray | Sequence[float],
    actions: torch.Tensor,
    *,
    particles: int | None = None,
    gamma: float = 1.0,
    terminal_value: Callable[[torch.Tensor], torch.Tensor] | None = None,
    dtype: torch.dtype | str = "float32",
) -> ImaginedRollout:
    """The mean rollout of :func:`~wm_agents.neural.rollout.rollout`, each distinct action prefix
    per member computed once.  Box actions (continuous sequences never share a prefix) and
    models with a ``reward_fn`` / ``termination_fn`` take the library's dense rollout."""
    spec = model.action_spec
    if spec.kind != "discrete" or model.reward_fn is not None or model.termination_fn is not None:
        return rollout(
            model,
            obs,
            actions,
            particles=particles,
            gamma=gamma,
            terminal_value=terminal_value,
            dtype=dtype,
        )
    obs_t = model.check_obs(obs)
    actions = spec.check_sequences(torch.as_tensor(actions, dtype=torch.float32))
    e, d = model.ensemble_size, model.obs_dim
    k = e if particles is None else int(particles)
    if k < 1:
        raise ValueError(f"particles must be >= 1, got {particles}")
    low = search_dtype(model, dtype)
    b, h, _ = actions.shape
    cand = particle_rows(b, k, e)
    tree = PrefixTree.for_actions(spec, actions, cand)
    assert tree is not None  # discrete actions
    w = planning_weights(model, low)
    r_lo, r_hi = w["reward_clip"]
    state = obs_t.expand(e, 1, d).contiguous()  # one node per member: the empty prefix
    alive = torch.ones(e, 1)
    ret = torch.zeros(e, 1)
    first = state
    discount = 1.0
    for t in range(h):
        parent, action = tree.step(t)  # [E, U] nodes at depth t
        if parent is not None:
            state, ret, alive = (_take(x, parent) for x in (state, ret, alive))
        step_a = nn.functional.one_hot(action, spec.n).float()
        pre = torch.baddbmm(w["b1"], torch.cat([state, step_a], dim=-1), w["w1"])
        state, out, cont = folded_step(w, pre, state, low)
        if t == 0:
            first = tree.to_rows(state)
        ret.addcmul_(alive, out[..., d].clamp_(r_lo, r_hi), value=discount)
        alive.mul_(cont)
        discount *= gamma
    state, ret, alive = tree.to_rows(state), tree.to_rows(ret), tree.to_rows(alive)
    if terminal_value is not None:
        ret.addcmul_(alive, terminal_value(state), value=discount)
    return ImaginedRollout(
        per_particle(ret, b, k), per_particle(alive, b, k), per_particle(first, b, k)
    )


def shared_prefix_objective(
    model: Any, obs: Any, *, particles: int | None = 1, gamma: float = 1.0
) -> Objective:
    """``[B, H, A] -> [B, K]`` returns by :func:`shared_prefix_rollout`, in the model's own
    search precision (``planning_dtype``): the ``-shared`` mode's objective."""
    obs_t = model.check_obs(obs)
    dtype = getattr(model, "planning_dtype", "auto")
    return lambda actions: (
        shared_prefix_rollout(
            model, obs_t, actions, particles=particles, gamma=gamma, dtype=dtype
        ).returns
    )
