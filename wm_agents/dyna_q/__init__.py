"""Tabular Dyna-Q: a learned count model, k imagined Q-updates per real step, the Dyna maze."""

from wm_agents._lazy import lazy_exports

_EXPORTS = {
    "DYNA_MAZE_ID": "wm_agents.dyna_q.maze",
    "DynaMazeEnv": "wm_agents.dyna_q.maze",
    "DynaQAgent": "wm_agents.dyna_q.agent",
    "DynaQConfig": "wm_agents.dyna_q.agent",
    "DynaRunResult": "wm_agents.dyna_q.runner",
    "DynaTask": "wm_agents.dyna_q.runner",
    "ModelPrediction": "wm_agents.dyna_q.model",
    "TabularModel": "wm_agents.dyna_q.model",
    "dyna_task": "wm_agents.dyna_q.runner",
    "evaluate_greedy": "wm_agents.dyna_q.runner",
    "make_discrete_env": "wm_agents.dyna_q.runner",
    "run_dyna": "wm_agents.dyna_q.runner",
    "shortest_path_length": "wm_agents.dyna_q.maze",
}
"""Each public name and the module it lives in (imported on first use)."""


__all__ = [
    "DYNA_MAZE_ID",
    "DynaMazeEnv",
    "DynaQAgent",
    "DynaQConfig",
    "DynaRunResult",
    "DynaTask",
    "ModelPrediction",
    "TabularModel",
    "dyna_task",
    "evaluate_greedy",
    "make_discrete_env",
    "run_dyna",
    "shortest_path_length",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
