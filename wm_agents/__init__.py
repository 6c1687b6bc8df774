"""wm_agents: LangGraph agents that imagine before they act.

One ``imagine`` interface (:class:`WorldModel`) over a learned ensemble dynamics model, an
LLM outcome predictor and a learned outcome model for tool calls; planners, gates and one
planning graph read only :class:`Outcome` and :class:`Decision`.
"""

from wm_agents.core import Decision, LearnReport, Outcome, Transition, Verdict, WorldModel
from wm_agents.envs import GymActuator
from wm_agents.graph import (
    EnvPlanningContext,
    build_planning_graph,
    create_env_planning_graph,
    make_decide_node,
    make_imagine_node,
)
from wm_agents.learned import LearnedConfig, LearnedOutcomeModel
from wm_agents.llm import (
    EmbeddedLLMServer,
    ExperienceMemory,
    LLMOutcomePredictor,
    LLMState,
    ToolCallCandidate,
    ToolSpec,
    open_chat_model,
    resolve_llm_settings,
)
from wm_agents.neural import (
    EnsembleDynamicsModel,
    FitConfig,
    ModelFileError,
    ReplayBuffer,
    fit_ensemble,
)
from wm_agents.neural.dyna import DynaLearner
from wm_agents.planning import (
    AgreementGate,
    CEMPlanner,
    MPCController,
    RandomShootingPlanner,
)
from wm_agents.runner import AgentConfig, default_config, run_gym
from wm_agents.serialization import checkpoint_serializer
from wm_agents.spaces import ActionSpec, UnsupportedSpaceError
from wm_agents.tools import (
    ImagineToolCalls,
    ImagineToolCallsMiddleware,
    LLMProposer,
    ToolAgentContext,
    ToolAgentState,
    ToolGate,
    ToolHints,
    ToolPolicy,
    TraceEntry,
    create_tool_agent_graph,
    trace_table,
)

__version__ = "0.1.0"

__all__ = [
    "ActionSpec",
    "AgentConfig",
    "AgreementGate",
    "CEMPlanner",
    "Decision",
    "DynaLearner",
    "EmbeddedLLMServer",
    "EnsembleDynamicsModel",
    "EnvPlanningContext",
    "ExperienceMemory",
    "FitConfig",
    "GymActuator",
    "ImagineToolCalls",
    "ImagineToolCallsMiddleware",
    "LLMOutcomePredictor",
    "LLMProposer",
    "LLMState",
    "LearnReport",
    "LearnedConfig",
    "LearnedOutcomeModel",
    "MPCController",
    "ModelFileError",
    "Outcome",
    "RandomShootingPlanner",
    "ReplayBuffer",
    "ToolAgentContext",
    "ToolAgentState",
    "ToolCallCandidate",
    "ToolGate",
    "ToolHints",
    "ToolPolicy",
    "ToolSpec",
    "TraceEntry",
    "Transition",
    "UnsupportedSpaceError",
    "Verdict",
    "WorldModel",
    "build_planning_graph",
    "checkpoint_serializer",
    "create_env_planning_graph",
    "create_tool_agent_graph",
    "default_config",
    "fit_ensemble",
    "make_decide_node",
    "make_imagine_node",
    "open_chat_model",
    "resolve_llm_settings",
    "run_gym",
    "trace_table",
]
