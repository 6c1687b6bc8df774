"""Simulate tool calls before acting.

* :func:`create_tool_agent_graph`: the tool agent through the one planning graph
  (propose -> imagine -> decide -> act / ask / refuse -> learn), resumable with a checkpointer.
* :class:`ToolGate` with :class:`ToolHints` / :class:`ToolPolicy`: act, ask a person, or refuse.
* :class:`ImagineToolCallsMiddleware` (``create_agent``) and :class:`ImagineToolCalls`
  (``ToolNode(wrap_tool_call=...)``): the same gate for agents that already exist.
* :class:`LLMProposer`: the agent's LLM proposes candidate calls (native tool calling or a JSON
  schema); :class:`TraceEntry` / :func:`trace_table`: the decision trace.
"""

from wm_agents._lazy import lazy_exports

_EXPORTS = {
    "Assessment": "wm_agents.tools.gate",
    "CompositeToolModel": "wm_agents.tools.composite",
    "FixedPlanProposer": "wm_agents.tools.propose",
    "GatedModel": "wm_agents.tools.guard",
    "ImagineToolCalls": "wm_agents.tools.middleware",
    "ImagineToolCallsMiddleware": "wm_agents.tools.middleware",
    "Intent": "wm_agents.tools.intents",
    "IntentLog": "wm_agents.tools.intents",
    "LLMProposer": "wm_agents.tools.propose",
    "PlanSearchProposer": "wm_agents.tools.propose",
    "Proposal": "wm_agents.tools.propose",
    "Proposer": "wm_agents.tools.propose",
    "Review": "wm_agents.tools.guard",
    "RunDatabaseError": "wm_agents.tools.persistence",
    "RunInUseError": "wm_agents.tools.persistence",
    "RunLease": "wm_agents.tools.persistence",
    "ToolAgentContext": "wm_agents.tools.graph",
    "ToolAgentState": "wm_agents.tools.graph",
    "ToolGate": "wm_agents.tools.gate",
    "ToolHints": "wm_agents.tools.hints",
    "ToolPolicy": "wm_agents.tools.hints",
    "TraceCandidate": "wm_agents.tools.trace",
    "TraceEntry": "wm_agents.tools.trace",
    "ask_for_review": "wm_agents.tools.guard",
    "blocked_message": "wm_agents.tools.guard",
    "call_hints_from_tool": "wm_agents.tools.hints",
    "call_text": "wm_agents.tools.gate",
    "check_run_database": "wm_agents.tools.persistence",
    "create_tool_agent_graph": "wm_agents.tools.graph",
    "hints_from_tool": "wm_agents.tools.hints",
    "make_sandbox_tools": "wm_agents.tools.sandbox",
    "merge_trace": "wm_agents.tools.trace",
    "not_simulated_outcome": "wm_agents.tools.gate",
    "open_sqlite": "wm_agents.tools.persistence",
    "parse_review": "wm_agents.tools.guard",
    "proposal_json_schema": "wm_agents.tools.propose",
    "recovery": "wm_agents.tools.intents",
    "run_outcomes": "wm_agents.tools.summary",
    "summarize_tool_calls": "wm_agents.tools.summary",
    "supports_native_tools": "wm_agents.tools.propose",
    "tool_result": "wm_agents.tools.guard",
    "trace_rows": "wm_agents.tools.trace",
    "trace_table": "wm_agents.tools.trace",
}
"""Each public name and the module it lives in (imported on first use)."""


__all__ = [
    "Assessment",
    "CompositeToolModel",
    "FixedPlanProposer",
    "GatedModel",
    "ImagineToolCalls",
    "ImagineToolCallsMiddleware",
    "Intent",
    "IntentLog",
    "LLMProposer",
    "PlanSearchProposer",
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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
