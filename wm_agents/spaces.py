"""Action specifications: the one place that knows how gymnasium spaces map to tensors.

Planners and models see every action sequence as a float tensor ``[B, H, A]``.  For a
``Discrete(n)`` space ``A == 1`` and the value is the action index; for a ``Box`` space ``A`` is
the flattened action size.  The model one-hot encodes discrete actions itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

__all__ = ["ActionSpec", "UnsupportedSpaceError", "observation_dim"]


class UnsupportedSpaceError(ValueError):
    """Raised for a gymnasium space this library cannot plan in."""


@dataclass(frozen=True)
class ActionSpec:
    """What a valid action looks like.

    Attributes:
        kind: ``"discrete"`` or ``"box"``.
        dim: width ``A`` of an action in a ``[B, H, A]`` sequence tensor (1 for discrete).
        n: number of discrete actions (0 for box).
        low, high: per-dimension bounds of a box action (empty for discrete).
    """

    kind: Literal["discrete", "box"]
    dim: int
    n: int = 0
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

    @classmethod
    def discrete(cls, n: int) -> ActionSpec:
        if n < 1:
            raise ValueError(f"a discrete action space needs n >= 1 actions, got {n}")
        return cls(kind="discrete", dim=1, n=int(n))

    @classmethod
    def box(cls, low: Any, high: Any) -> ActionSpec:
        lo = np.asarray(low, dtype=np.float64).reshape(-1)
        hi = np.asarray(high, dtype=np.float64).reshape(-1)
        if lo.shape != hi.shape or lo.size == 0:
            raise ValueError(
                f"box bounds must be non-empty and equal in shape: {lo.shape} vs {hi.shape}"
            )
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise UnsupportedSpaceError(
                "Box action spaces with infinite bounds cannot be sampled by the planners; "
                "wrap the env with gymnasium.wrappers.ClipAction or give finite bounds"
            )
        if np.any(hi <= lo):
            raise ValueError(f"box action space needs high > low everywhere: low={lo}, high={hi}")
        return cls(kind="box", dim=int(lo.size), low=tuple(lo.tolist()), high=tuple(hi.tolist()))

    @classmethod
    def from_space(cls, space: Any) -> ActionSpec:
        """Build from a gymnasium space; raises :class:`UnsupportedSpaceError` with a fix hint."""
        from gymnasium import spaces

        if isinstance(space, spaces.Discrete):
            if int(space.start) != 0:
                raise UnsupportedSpaceError(
                    f"Discrete spaces must start at 0 (got start={space.start}); "
                    "wrap the env to shift its actions"
                )
            return cls.discrete(int(space.n))
        if isinstance(space, spaces.Box):
            return cls.box(space.low, space.high)
        raise UnsupportedSpaceError(
            f"unsupported action space {space!r}: wm_agents plans in Discrete and Box "
            "action spaces; "
            "flatten MultiDiscrete/Dict/Tuple spaces with a gymnasium wrapper first (a vector "
            "env's batched space is not one env's: pass its single_action_space, or one env)"
        )

    @property
    def encoded_dim(self) -> int:
        """Width of the model's action input (one-hot size for discrete)."""
        return self.n if self.kind == "discrete" else self.dim

    def low_tensor(self, **kw: Any) -> torch.Tensor:
        return torch.tensor(self.low, **kw)

    def high_tensor(self, **kw: Any) -> torch.Tensor:
        return torch.tensor(self.high, **kw)

    def encode(self, actions: torch.Tensor) -> torch.Tensor:
        """``[..., A]`` actions -> ``[..., encoded_dim]`` model inputs (one-hot for discrete).

        Box actions outside the bounds are clipped to them, as :meth:`to_env` clips them before
        ``env.step``: a model imagines (and learns from) the action the env really runs.
        Rejecting them instead would refuse plans the real env accepts, and leave an imagined
        ``a = 5`` on Pendulum (``[-2, 2]``) extrapolating a torque that never happens.
        """
        if self.kind == "discrete":
            idx = actions[..., 0].round().long().clamp_(0, self.n - 1)
            return torch.nn.functional.one_hot(idx, self.n).to(actions.dtype)
        lo = torch.tensor(self.low, dtype=actions.dtype)
        hi = torch.tensor(self.high, dtype=actions.dtype)
        return actions.clamp(lo, hi)

    def check_sequences(self, actions: torch.Tensor, *, name: str = "actions") -> torch.Tensor:
        """Validate a ``[B, H, A]`` batch of action sequences; return it as float32.

        Raises ``ValueError`` with what was expected, so a bad candidate fails where it enters.
        """
        if actions.ndim != 3 or actions.shape[-1] != self.dim:
            raise ValueError(
                f"{name} must have shape [B, H, {self.dim}] (B candidates, H steps, "
                f"action width {self.dim}), got {list(actions.shape)}"
            )
        if actions.shape[0] == 0:
            raise ValueError(f"{name} is empty: at least one candidate is needed")
        if actions.shape[1] == 0:
            raise ValueError(f"{name} has horizon 0: at least one step is needed")
        if not torch.isfinite(actions).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        if self.kind == "discrete":
            bad = (actions < 0) | (actions > self.n - 1) | (actions != actions.round())
            if bad.any():
                raise ValueError(f"{name} must hold integer action indices in [0, {self.n - 1}]")
        return actions.float()

    def to_env(self, action: torch.Tensor | np.ndarray | list[float]) -> Any:
        """One ``[A]`` action -> what ``env.step`` takes (an int, or a float32 array in bounds)."""
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.size != self.dim:
            raise ValueError(f"expected an action of width {self.dim}, got {a.size}")
        if self.kind == "discrete":
            return int(np.clip(round(float(a[0])), 0, self.n - 1))
        return np.clip(a, self.low, self.high).astype(np.float32)

    def from_env(self, action: Any) -> np.ndarray:
        """An env action (int or array) -> ``[A]`` float array."""
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.size != self.dim:
            raise ValueError(
                f"expected an env action of width {self.dim}, got shape {np.shape(action)}"
            )
        return a


def observation_dim(space: Any) -> int:
    """Flat size of a Box observation space; raises for other spaces."""
    from gymnasium import spaces

    if not isinstance(space, spaces.Box):
        raise UnsupportedSpaceError(
            f"unsupported observation space {space!r}: dynamics models need a Box observation "
            "space (vectors); use the tabular Dyna-Q agent for Discrete observations"
        )
    return int(np.prod(space.shape))
