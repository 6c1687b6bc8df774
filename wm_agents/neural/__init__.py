"""Neural world model: the batched ensemble network, its rollout, trainer, file and buffer.

``network`` (the weights and one-step prediction), ``rollout`` (the planner's fast imagination),
``trainer`` (fitting), ``persistence`` (the model file) and ``ensemble`` (the
:class:`~wm_agents.core.WorldModel` that ties them together) each hold one job.
"""

from wm_agents.neural.buffer import ReplayBuffer, TransitionBatch
from wm_agents.neural.ensemble import EnsembleDynamicsModel
from wm_agents.neural.model_config import EnsembleConfig, ModelFileError
from wm_agents.neural.network import EnsembleLinear, EnsembleNetwork
from wm_agents.neural.rollout import ImaginedRollout, search_dtype
from wm_agents.neural.trainer import FitConfig, FitReport, fit_ensemble, multistep_mse

__all__ = [
    "EnsembleConfig",
    "EnsembleDynamicsModel",
    "EnsembleLinear",
    "EnsembleNetwork",
    "FitConfig",
    "FitReport",
    "ImaginedRollout",
    "ModelFileError",
    "ReplayBuffer",
    "TransitionBatch",
    "fit_ensemble",
    "multistep_mse",
    "search_dtype",
]
