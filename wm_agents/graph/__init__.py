"""The planning graph builder, reusable world-model nodes, and the env planning graph."""

from wm_agents.graph.builder import build_planning_graph, route_verdict
from wm_agents.graph.env_graph import (
    EnvLearner,
    EnvPlanningContext,
    EnvPlanningState,
    StepRecord,
    create_env_planning_graph,
    episode_config,
)
from wm_agents.graph.nodes import make_decide_node, make_imagine_node

__all__ = [
    "EnvLearner",
    "EnvPlanningContext",
    "EnvPlanningState",
    "StepRecord",
    "build_planning_graph",
    "create_env_planning_graph",
    "episode_config",
    "make_decide_node",
    "make_imagine_node",
    "route_verdict",
]
