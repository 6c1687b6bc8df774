"""The compiled tool-agent graph, for `langgraph dev` / LangGraph Studio.

Studio can only send JSON, so the heavy parts (sandbox tools, world model, proposer) are built
here on first use: the sandbox folder (``WM_AGENTS_SANDBOX``, default
``.langgraph_api/wm-agents-sandbox`` where the server runs: one folder for every start, like the
runs kept in ``.langgraph_api/wm_agents.sqlite``), whose tools are simulated on a copy kept in a
scratch folder beside it, and the LLM from OPENAI_BASE_URL / OPENAI_API_KEY /
WM_AGENTS_LLM_MODEL, or else the embedded offline model (started only if a call needs it, and
stopped when the server process exits).  Invoke with input ``{"task": "..."}`` and, optionally,
a context such as ``{"max_steps": 6}`` (see :mod:`wm_agents.graph.json_context`); asks appear
as interrupts to approve, edit or reject; decisions and their real outcomes are put in the
server's Store under ("wm_agents", "tool_decisions", <thread id>); plan searches show as the
state's ``plan_searches``.
"""

from __future__ import annotations

import atexit
import shutil

from wm_agents.demos.fs_agent import build_fs_context
from wm_agents.llm.config import chat_model_from_settings, resolve_llm_settings
from wm_agents.server import process_scratch, sandbox_path
from wm_agents.tools import ToolAgentContext, create_tool_agent_graph


def make_context() -> ToolAgentContext:
    """Sandbox + composite world model + proposer (the demo plan with the embedded model, else
    the LLM).  The sandbox tools are simulated; the embedded LLM starts only if a call needs
    it, and everything is closed when the server process exits."""
    settings = resolve_llm_settings()
    chat = None if settings.embedded else chat_model_from_settings(settings)
    sandbox = sandbox_path()
    # The simulator's copies, per process: a killed server's are removed by the next start.
    scratch = process_scratch(sandbox.with_name(sandbox.name + ".scratch"))
    proposer = "plan" if settings.embedded else "llm"
    context = build_fs_context(
        sandbox, chat, proposer=proposer, native_tools=not settings.embedded, scratch_dir=scratch
    )

    def close() -> None:
        context.predictor.close()
        shutil.rmtree(scratch, ignore_errors=True)

    atexit.register(close)
    return context


graph = create_tool_agent_graph(default_context=make_context).compile()
