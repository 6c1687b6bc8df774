"""Neural world model: batched ensemble dynamics model, its trainer and replay buffer."""

from wm_agents.neural.buffer import ReplayBuffer, TransitionBatch
from wm_agents.neural.ensemble import (
    EnsembleConfig,
    EnsembleDynamicsModel,
    EnsembleLinear,
    ImaginedRollout,
    ModelFileError,
)
from wm_agents.neural.trainer import FitConfig, FitReport, fit_ensemble, multistep_mse

__all__ = [
    "EnsembleConfig",
    "EnsembleDynamicsModel",
    "EnsembleLinear",
    "FitConfig",
    "FitReport",
    "ImaginedRollout",
    "ModelFileError",
    "ReplayBuffer",
    "TransitionBatch",
    "fit_ensemble",
    "multistep_mse",
]
