"""Neural world model: batched ensemble dynamics model, its trainer and replay buffer."""

from wm_agents._lazy import lazy_exports

_EXPORTS = {
    "EnsembleConfig": "wm_agents.neural.ensemble",
    "EnsembleDynamicsModel": "wm_agents.neural.ensemble",
    "EnsembleLinear": "wm_agents.neural.ensemble",
    "FitConfig": "wm_agents.neural.trainer",
    "FitReport": "wm_agents.neural.trainer",
    "ImaginedRollout": "wm_agents.neural.ensemble",
    "ModelFileError": "wm_agents.neural.ensemble",
    "ReplayBuffer": "wm_agents.neural.buffer",
    "TransitionBatch": "wm_agents.neural.buffer",
    "fit_ensemble": "wm_agents.neural.trainer",
    "multistep_mse": "wm_agents.neural.trainer",
}
"""Each public name and the module it lives in (imported on first use)."""


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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
