"""Neural world model: the batched ensemble network, its rollout, trainer, file and buffer.

``network`` (the weights and one-step prediction), ``rollout`` (the planner's fast imagination),
``trainer`` (fitting), ``persistence`` (the model file) and ``ensemble`` (the
:class:`~wm_agents.core.WorldModel` that ties them together) each hold one job.
"""

from wm_agents._lazy import lazy_exports

_EXPORTS = {
    "EnsembleConfig": "wm_agents.neural.model_config",
    "EnsembleDynamicsModel": "wm_agents.neural.ensemble",
    "EnsembleLinear": "wm_agents.neural.network",
    "EnsembleNetwork": "wm_agents.neural.network",
    "FitConfig": "wm_agents.neural.trainer",
    "FitReport": "wm_agents.neural.trainer",
    "ImaginedRollout": "wm_agents.neural.rollout",
    "ModelFileError": "wm_agents.neural.model_config",
    "ReplayBuffer": "wm_agents.neural.buffer",
    "TransitionBatch": "wm_agents.neural.buffer",
    "fit_ensemble": "wm_agents.neural.trainer",
    "multistep_mse": "wm_agents.neural.trainer",
    "search_dtype": "wm_agents.neural.rollout",
}
"""Each public name and the module it lives in (imported on first use)."""


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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
