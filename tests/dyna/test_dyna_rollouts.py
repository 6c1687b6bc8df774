"""Branched imagined rollouts stop exactly where the ensemble's members disagree too much."""

from __future__ import annotations

import math

import pytest
import torch

from wm_agents.imagination import (
    ImaginationConfig,
    TensorReplay,
    branched_rollouts,
    ensemble_disagreement,
)
from wm_agents.neural import EnsembleDynamicsModel
from wm_agents.spaces import ActionSpec

SPREAD = math.sqrt(2 / 3)  # population std of the member offsets (-1, 0, 1)


class FanningModel:
    """Three members that agree on a counter (dim 0) and fan out on dim 1.

    Predicted next obs of member e: ``(c + 1, (e - 1) * (c + 1))`` where ``c`` is the counter, so
    the members' disagreement about a step from counter ``c`` is ``SPREAD * (c + 1)``; reward
    is the counter; the episode ends on reaching ``end_at``.
    """

    ensemble_size = 3

    def __init__(self, end_at: float = math.inf) -> None:
        self.end_at = end_at

    def predict(self, obs: torch.Tensor, act: torch.Tensor):
        c = obs[..., 0]
        offset = (torch.arange(3.0) - 1.0).view(3, 1)
        nxt = torch.stack([c + 1, offset * (c + 1)], dim=-1)
        return nxt, c.clone(), (nxt[..., 0] >= self.end_at).float()


def zero_policy(obs: torch.Tensor) -> torch.Tensor:
    return torch.zeros(obs.shape[0], 1)


def roll(model, starts, length, threshold, seed=0):
    return branched_rollouts(
        model,
        torch.tensor(starts, dtype=torch.float32),
        zero_policy,
        length,
        threshold=threshold,
        generator=torch.Generator().manual_seed(seed),
        scale=torch.ones(2),
    )


def test_disagreement_is_largest_member_spread_per_dimension() -> None:
    nxt = torch.tensor([[[0.0, 1.0]], [[2.0, 1.0]]])  # 2 members, 1 row: spreads 1 and 0
    assert ensemble_disagreement(nxt).tolist() == [1.0]
    assert ensemble_disagreement(nxt, torch.tensor([4.0, 1.0])).tolist() == [0.25]
    with pytest.raises(ValueError, match=r"\[E, N, D\]"):
        ensemble_disagreement(torch.zeros(3, 2))


def test_rollouts_stop_before_the_first_step_past_the_threshold() -> None:
    # From counter 0 the step spreads are 0.82, 1.63, 2.45: threshold 2 keeps two steps.
    # From counter 1: 1.63, 2.45: one step.  From counter 3: 3.27: none.
    batch = roll(FanningModel(), [[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]], 5, threshold=2.0)
    assert batch.lengths.tolist() == [2, 1, 0]
    assert batch.stopped.tolist() == [True, True, True]
    assert len(batch) == 3
    assert batch.disagreement.tolist() == pytest.approx([SPREAD, 2 * SPREAD, 2 * SPREAD])
    assert max(batch.disagreement) <= 2.0
    # Kept transitions chain: the second step of row 0 starts where its first step ended.
    assert batch.obs[:, 0].tolist() == [0.0, 1.0, 1.0]
    assert batch.next_obs[:, 0].tolist() == [1.0, 2.0, 2.0]
    assert batch.reward.tolist() == [0.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("threshold", "lengths"),
    [(0.0, [0]), (SPREAD, [1]), (3 * SPREAD, [3]), (math.inf, [6])],
)
def test_rollout_length_follows_the_threshold(threshold: float, lengths: list[int]) -> None:
    batch = roll(FanningModel(), [[0.0, 0.0]], 6, threshold=threshold + 1e-6)
    assert batch.lengths.tolist() == lengths
    assert batch.stopped.tolist() == [lengths[0] < 6]


def test_predicted_termination_ends_a_branch_and_is_kept() -> None:
    batch = roll(FanningModel(end_at=3.0), [[0.0, 0.0]], 10, threshold=math.inf)
    assert batch.lengths.tolist() == [3]
    assert batch.terminated.tolist() == [0.0, 0.0, 1.0]
    assert batch.stopped.tolist() == [False]


def test_rollouts_on_the_ensemble_model_are_batched_and_seeded() -> None:
    model = EnsembleDynamicsModel(4, ActionSpec.discrete(2), ensemble_size=3, hidden=16, seed=0)
    starts = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))

    def policy(obs: torch.Tensor) -> torch.Tensor:
        return (obs[:, :1] > 0).float()

    g = torch.Generator
    full = branched_rollouts(
        model, starts, policy, 3, threshold=math.inf, generator=g().manual_seed(0)
    )
    # The untrained termination head predicts ~0.5; count rows that ended early.
    assert int(full.lengths.sum()) == len(full) and len(full) >= 8
    assert not full.stopped.any()
    again = branched_rollouts(
        model, starts, policy, 3, threshold=math.inf, generator=g().manual_seed(0)
    )
    assert torch.equal(full.next_obs, again.next_obs)
    none = branched_rollouts(model, starts, policy, 3, threshold=0.0, generator=g().manual_seed(0))
    assert len(none) == 0 and none.stopped.all()
    with pytest.raises(ValueError, match="rollout length"):
        branched_rollouts(model, starts, policy, 0, threshold=1.0, generator=g())


def test_tensor_replay_keeps_the_newest_rows() -> None:
    buf = TensorReplay(2, 1, capacity=4)
    batch = roll(FanningModel(), [[0.0, 0.0]], 6, threshold=math.inf)
    buf.add(batch)
    assert len(buf) == 4
    assert sorted(buf.obs[:, 0].tolist()) == [2.0, 3.0, 4.0, 5.0]
    rows = buf.sample(16, torch.Generator().manual_seed(0))
    assert rows[0].shape == (16, 2) and set(rows[0][:, 0].tolist()) <= {2.0, 3.0, 4.0, 5.0}
    with pytest.raises(ValueError, match="empty"):
        TensorReplay(2, 1, capacity=4).sample(1, torch.Generator())


def test_imagination_config_validation() -> None:
    with pytest.raises(ValueError, match="real_ratio"):
        ImaginationConfig(real_ratio=1.5)
    with pytest.raises(ValueError, match="disagreement_threshold"):
        ImaginationConfig(disagreement_threshold=-1.0)
