"""Simulate tool calls before acting.

* :func:`create_tool_agent_graph`: the tool agent through the one planning graph
  (propose -> imagine -> decide -> act / ask / refuse -> learn), resumable with a checkpointer.
* :class:`ToolGate` with :class:`ToolHints` / :class:`ToolPolicy`: act, ask a person, or refuse.
* :class:`ImagineToolCallsMiddleware` (``create_agent``) and :class:`ImagineToolCalls`
  (``ToolNode(wrap_tool_call=...)``): the same gate for agents that already exist.
* :class:`LLMProposer`: the agent's LLM proposes candidate calls (native tool calling or a JSON
  schema); :class:`TraceEntry` / :func:`trace_table`: the decision trace.
"""

from wm_agents.tools.gate import Assessment, ToolGate, call_text, not_simulated_outcome
from wm_agents.tools.graph import ToolAgentContext, ToolAgentState, create_tool_agent_graph
from wm_agents.tools.guard import (
    GatedModel,
    Review,
    ask_for_review,
    blocked_message,
    parse_review,
    tool_result,
)
from wm_agents.tools.hints import ToolHints, ToolPolicy, call_hints_from_tool, hints_from_tool
from wm_agents.tools.intents import Intent, IntentLog, recovery
from wm_agents.tools.middleware import ImagineToolCalls, ImagineToolCallsMiddleware
from wm_agents.tools.persistence import (
    RunDatabaseError,
    RunInUseError,
    RunLease,
    check_run_database,
    open_sqlite,
)
from wm_agents.tools.propose import (
    FixedPlanProposer,
    LLMProposer,
    Proposal,
    Proposer,
    proposal_json_schema,
    supports_native_tools,
)
from wm_agents.tools.sandbox import make_sandbox_tools
from wm_agents.tools.summary import run_outcomes, summarize_tool_calls
from wm_agents.tools.trace import TraceCandidate, TraceEntry, merge_trace, trace_rows, trace_table

__all__ = [
    "Assessment",
    "FixedPlanProposer",
    "GatedModel",
    "ImagineToolCalls",
    "ImagineToolCallsMiddleware",
    "Intent",
    "IntentLog",
    "LLMProposer",
    "Proposal",
    "Proposer",
    "Review",
    "RunDatabaseError",
    "RunInUseError",
    "RunLease",
    "ToolAgentContext",
    "ToolAgentState",
    "ToolGate",
    "ToolHints",
    "ToolPolicy",
    "TraceCandidate",
    "TraceEntry",
    "ask_for_review",
    "blocked_message",
    "call_hints_from_tool",
    "call_text",
    "check_run_database",
    "create_tool_agent_graph",
    "hints_from_tool",
    "make_sandbox_tools",
    "merge_trace",
    "not_simulated_outcome",
    "open_sqlite",
    "parse_review",
    "proposal_json_schema",
    "recovery",
    "run_outcomes",
    "summarize_tool_calls",
    "supports_native_tools",
    "tool_result",
    "trace_rows",
    "trace_table",
]
