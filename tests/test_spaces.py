"""ActionSpec: gymnasium spaces -> [B, H, A] tensors and back."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

from wm_agents.spaces import ActionSpec, UnsupportedSpaceError, observation_dim


def test_from_discrete() -> None:
    spec = ActionSpec.from_space(spaces.Discrete(3))
    assert spec == ActionSpec(kind="discrete", dim=1, n=3)
    assert spec.encoded_dim == 3


def test_from_box() -> None:
    spec = ActionSpec.from_space(
        spaces.Box(low=np.array([-1.0, 0.0], np.float32), high=np.array([1.0, 2.0], np.float32))
    )
    assert spec.kind == "box"
    assert spec.dim == 2
    assert spec.n == 0
    assert spec.low == (-1.0, 0.0)
    assert spec.high == (1.0, 2.0)
    assert spec.encoded_dim == 2


def test_from_box_flattens_matrix_shape() -> None:
    spec = ActionSpec.from_space(spaces.Box(-2.0, 2.0, shape=(2, 3)))
    assert spec.dim == 6
    assert spec.low == (-2.0,) * 6


@pytest.mark.parametrize(
    "space",
    [
        spaces.MultiDiscrete([2, 3]),
        spaces.Dict({"a": spaces.Discrete(2)}),
        spaces.Tuple((spaces.Discrete(2),)),
        spaces.MultiBinary(3),
    ],
)
def test_unsupported_composite_spaces(space) -> None:
    with pytest.raises(UnsupportedSpaceError, match="Discrete and Box"):
        ActionSpec.from_space(space)


def test_unsupported_space_error_is_value_error() -> None:
    assert issubclass(UnsupportedSpaceError, ValueError)


def test_box_with_infinite_bounds() -> None:
    with pytest.raises(UnsupportedSpaceError, match="infinite bounds"):
        ActionSpec.from_space(spaces.Box(-np.inf, np.inf, shape=(2,)))
    with pytest.raises(UnsupportedSpaceError, match="ClipAction"):
        ActionSpec.box([0.0, -1.0], [math.inf, 1.0])


def test_discrete_with_nonzero_start() -> None:
    with pytest.raises(UnsupportedSpaceError, match="start=1"):
        ActionSpec.from_space(spaces.Discrete(3, start=1))


def test_direct_constructor_errors() -> None:
    with pytest.raises(ValueError, match="n >= 1"):
        ActionSpec.discrete(0)
    with pytest.raises(ValueError, match="equal in shape"):
        ActionSpec.box([0.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="non-empty"):
        ActionSpec.box([], [])
    with pytest.raises(ValueError, match="high > low"):
        ActionSpec.box([0.0, 1.0], [1.0, 1.0])


def test_observation_dim() -> None:
    assert observation_dim(spaces.Box(-1, 1, shape=(3, 2))) == 6
    with pytest.raises(UnsupportedSpaceError, match="Box observation"):
        observation_dim(spaces.Discrete(16))


DISCRETE = ActionSpec.discrete(3)
BOX = ActionSpec.box([-1.0, 0.0], [1.0, 2.0])


@pytest.mark.parametrize(
    ("spec", "actions", "match"),
    [
        (DISCRETE, torch.zeros(4, 1), r"shape \[B, H, 1\]"),  # rank 2
        (DISCRETE, torch.zeros(2, 3, 1, 1), r"shape \[B, H, 1\]"),  # rank 4
        (BOX, torch.zeros(2, 3, 1), r"shape \[B, H, 2\].*got \[2, 3, 1\]"),  # width
        (BOX, torch.zeros(0, 3, 2), "empty"),
        (BOX, torch.zeros(2, 0, 2), "horizon 0"),
        (BOX, torch.tensor([[[0.0, math.nan]]]), "NaN"),
        (BOX, torch.tensor([[[0.0, math.inf]]]), "infinite"),
        (DISCRETE, torch.tensor([[[0.5]]]), "integer action indices in \\[0, 2\\]"),
        (DISCRETE, torch.tensor([[[3.0]]]), "integer action indices"),
        (DISCRETE, torch.tensor([[[-1.0]]]), "integer action indices"),
    ],
)
def test_check_sequences_errors(spec, actions, match) -> None:
    with pytest.raises(ValueError, match=match):
        spec.check_sequences(actions)


def test_check_sequences_names_the_argument() -> None:
    with pytest.raises(ValueError, match=r"^candidates is empty"):
        BOX.check_sequences(torch.zeros(0, 1, 2), name="candidates")


def test_check_sequences_returns_float32() -> None:
    a = torch.tensor([[[0], [2]]], dtype=torch.int64)
    out = DISCRETE.check_sequences(a)
    assert out.dtype == torch.float32
    assert out.tolist() == [[[0.0], [2.0]]]
    # Box values outside the bounds are not an error here (the planners clip; to_env clips).
    b = torch.tensor([[[5.0, -5.0]]], dtype=torch.float64)
    assert BOX.check_sequences(b).dtype == torch.float32


def test_to_env_discrete() -> None:
    assert DISCRETE.to_env([1.0]) == 1
    assert isinstance(DISCRETE.to_env(torch.tensor([2.0])), int)
    assert DISCRETE.to_env([1.6]) == 2
    assert DISCRETE.to_env([7.0]) == 2
    assert DISCRETE.to_env(np.array([-3.0])) == 0


def test_to_env_box_clips_to_bounds() -> None:
    out = BOX.to_env([5.0, -5.0])
    assert out.dtype == np.float32
    assert out.tolist() == [1.0, 0.0]
    assert BOX.to_env(torch.tensor([0.25, 1.5])).tolist() == [0.25, 1.5]
    clipped = BOX.to_env([-1.5, 2.5])
    assert clipped.tolist() == [-1.0, 2.0]
    assert spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([1.0, 2.0], np.float32)).contains(
        clipped
    )


def test_to_env_and_from_env_width_errors() -> None:
    with pytest.raises(ValueError, match="width 2, got 3"):
        BOX.to_env([0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match=r"width 1, got shape \(2,\)"):
        DISCRETE.from_env([0, 1])
    assert DISCRETE.from_env(2).tolist() == [2.0]
    assert BOX.from_env(np.array([0.5, 1.0], dtype=np.float32)).tolist() == [0.5, 1.0]


def test_encode() -> None:
    a = torch.tensor([[[0.0], [2.0]], [[1.0], [1.0]]])
    enc = DISCRETE.encode(a)
    assert enc.shape == (2, 2, 3)
    assert enc.tolist() == [[[1, 0, 0], [0, 0, 1]], [[0, 1, 0], [0, 1, 0]]]
    b = torch.randn(2, 3, 2, generator=torch.Generator().manual_seed(0))
    # In bounds: unchanged; outside: clipped, as to_env does before env.step.
    assert torch.equal(BOX.encode(b), b.clamp(BOX.low_tensor(), BOX.high_tensor()))
    inside = torch.tensor([[BOX.low[0], BOX.high[1]]])
    assert torch.equal(BOX.encode(inside), inside)
