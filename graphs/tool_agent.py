"""The compiled tool-agent graph, for `langgraph dev` / LangGraph Studio.

Studio can only send JSON, so the heavy parts (sandbox tools, world model, proposer) are built
here on first use: a sandbox folder in the temp directory whose tools are simulated on a copy,
and the LLM from OPENAI_BASE_URL / OPENAI_API_KEY / WM_AGENTS_LLM_MODEL, or else the embedded
offline model (started only if a call needs it, and stopped when the server process exits).
Invoke with input ``{"task": "..."}``; asks appear as interrupts to approve, edit or reject;
decisions and their real outcomes are put in the server's Store under
("wm_agents", "tool_decisions", <thread id>); plan searches show as the state's
``plan_searches``.
"""

from __future__ import annotations

import atexit
import tempfile
from pathlib import Path

from wm_agents.demos.fs_agent import build_fs_context
from wm_agents.llm.config import chat_model_from_settings, resolve_llm_settings
from wm_agents.tools import ToolAgentContext, create_tool_agent_graph


def make_context() -> ToolAgentContext:
    """Sandbox + composite world model + proposer (the demo plan with the embedded model, else
    the LLM).  The sandbox tools are simulated; the embedded LLM starts only if a call needs
    it, and everything is closed when the server process exits."""
    settings = resolve_llm_settings()
    chat = None if settings.embedded else chat_model_from_settings(settings)
    sandbox = Path(tempfile.mkdtemp(prefix="wm-agents-studio-sandbox-"))
    proposer = "plan" if settings.embedded else "llm"
    context = build_fs_context(sandbox, chat, proposer=proposer, native_tools=not settings.embedded)
    atexit.register(context.predictor.close)
    return context


graph = create_tool_agent_graph(default_context=make_context).compile()
