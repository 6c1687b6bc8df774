"""What an :class:`~wm_agents.neural.EnsembleDynamicsModel` is built from, with size bounds.

The config is saved in every model file and rebuilt on load, so a file decides how much memory
loading it allocates.  A crafted file with ``hidden=10**9`` or ``ensemble_size=10**8`` asked torch
for petabytes and failed with a ``RuntimeError`` deep in ``torch.empty`` (or, on a machine that
overcommits, could exhaust its memory).  So every size has a bound, and so has the network as a
whole, checked before anything is allocated: in the constructor (``ValueError``) and on load
(:class:`ModelFileError`), each naming the field and its bound.

The bounds are far beyond any vector-observation task this library plans in (MuJoCo Humanoid:
376 observations, 17 actions; the defaults: 5 members of 3 x 200) and keep the largest network
allowed to :data:`MAX_PARAMETERS` float32 weights (1 GiB; training triples that with Adam).
"""

from __future__ import annotations

import itertools
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from wm_agents.spaces import ActionSpec

__all__ = [
    "MAX_PARAMETERS",
    "EnsembleConfig",
    "ModelFileError",
    "config_problem",
]

MAX_PARAMETERS = 2**28
"""Most weights a model may have (all members, every head): 268M, 1 GiB in float32."""


class ModelFileError(ValueError):
    """A model file is corrupt, not a wm_agents model, or does not match what was expected."""


class EnsembleConfig(BaseModel):
    """Everything needed to rebuild the network; saved with the weights.  Sizes are bounded
    (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    obs_dim: int = Field(gt=0, le=10_000)
    action_kind: Literal["discrete", "box"]
    action_dim: int = Field(gt=0, le=1_000)
    action_n: int = Field(default=0, ge=0, le=10_000)
    action_low: tuple[float, ...] = ()
    action_high: tuple[float, ...] = ()
    ensemble_size: int = Field(default=5, gt=0, le=100)
    hidden: int = Field(default=200, gt=0, le=8_192)
    layers: int = Field(default=3, gt=0, le=16)
    min_std: float = Field(default=1e-3, gt=0)
    # A head for the reward of the step that ends an episode, learned from the next state
    # (EnsembleNetwork.end_reward_of); False in files written before it existed.
    end_reward: bool = False

    @model_validator(mode="after")
    def _network_fits(self) -> EnsembleConfig:
        n = self.n_parameters
        if n > MAX_PARAMETERS:
            raise ValueError(
                f"the network would have {n:,} parameters, more than the bound {MAX_PARAMETERS:,} "
                f"(ensemble_size={self.ensemble_size}, hidden={self.hidden}, "
                f"layers={self.layers}, obs_dim={self.obs_dim})"
            )
        return self

    @property
    def action_spec(self) -> ActionSpec:
        if self.action_kind == "discrete":
            return ActionSpec.discrete(self.action_n)
        return ActionSpec.box(self.action_low, self.action_high)

    @property
    def n_parameters(self) -> int:
        """Weights of the model this config builds: trunk, head, termination and value nets
        (and the end-reward net, when on), log-variance bounds (what the constructor will
        allocate, before it does)."""
        e, d, h = self.ensemble_size, self.obs_dim, self.hidden
        encoded = self.action_n if self.action_kind == "discrete" else self.action_dim
        widths = [d + encoded] + [h] * self.layers
        trunk = sum(a * b + b for a, b in itertools.pairwise(widths))
        head = h * 2 * (d + 1) + 2 * (d + 1)

        def small_net(width: int) -> int:  # d -> width -> width -> 1
            return d * width + width + width * width + width + width + 1

        extra = small_net(max(32, h // 4)) + small_net(max(32, h // 2))
        if self.end_reward:
            extra += small_net(max(32, h // 4))
        return e * (trunk + head + extra) + 2 * (d + 1)


def config_problem(err: ValidationError) -> str:
    """A one-line account of what is wrong with a config: ``field: what it should be``."""
    parts = []
    for e in err.errors():
        field = ".".join(str(x) for x in e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ")
        parts.append(f"{field}: {msg}" if field else msg)
    return "; ".join(parts)
