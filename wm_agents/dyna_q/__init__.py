"""Tabular Dyna-Q: a learned count model, k imagined Q-updates per real step, the Dyna maze."""

from wm_agents.dyna_q.agent import DynaQAgent, DynaQConfig
from wm_agents.dyna_q.maze import DYNA_MAZE_ID, DynaMazeEnv, shortest_path_length
from wm_agents.dyna_q.model import ModelPrediction, TabularModel
from wm_agents.dyna_q.runner import (
    DynaRunResult,
    DynaTask,
    dyna_task,
    evaluate_greedy,
    make_discrete_env,
    run_dyna,
)

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
