"""The planning graph builder, reusable world-model nodes, and the env planning graph."""

from wm_agents._lazy import lazy_exports

_EXPORTS = {
    "EnvLearner": "wm_agents.graph.env_graph",
    "EnvPlanningContext": "wm_agents.graph.env_graph",
    "EnvPlanningState": "wm_agents.graph.env_graph",
    "StepRecord": "wm_agents.graph.env_graph",
    "build_planning_graph": "wm_agents.graph.builder",
    "create_env_planning_graph": "wm_agents.graph.env_graph",
    "episode_config": "wm_agents.graph.env_graph",
    "make_decide_node": "wm_agents.graph.nodes",
    "make_imagine_node": "wm_agents.graph.nodes",
    "route_verdict": "wm_agents.graph.builder",
}
"""Each public name and the module it lives in (imported on first use)."""


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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
