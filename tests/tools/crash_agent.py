"""A tool agent that the at-most-once tests kill with SIGKILL in the middle of a tool call.

python crash_agent.py PATH MODE TOOL ANSWER

* PATH: the run database (SQLite checkpoints + Store); ``PATH.marker`` gets one line per real
  execution of the tool (the side effect), written before the tool blocks.
* MODE: ``graph`` (the tool agent graph) or ``middleware`` (``create_agent`` with
  ``ImagineToolCallsMiddleware``).
* TOOL: ``append`` (no hints: may not run twice unasked) or ``append_idempotent``.
* ANSWER: ``start`` (a new run; the tool blocks until killed when ``CRASH_BLOCK=1``),
  ``resume`` (continue, leave an ask pending), ``approve`` / ``reject`` (answer the pending
  ask).

Prints one JSON line: the pending interrupt's reason (or null) and whether the run ended.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import StructuredTool
from langgraph.types import Command

from wm_agents.testing import ScriptedToolCallingModel, scripted_predictor
from wm_agents.tools import FixedPlanProposer, ToolAgentContext, create_tool_agent_graph
from wm_agents.tools.persistence import open_sqlite


def make_tools(marker: Path) -> list:
    def append(text: str) -> str:
        """Append a line to the log."""
        with marker.open("a") as f:
            f.write(text + "\n")
        if os.environ.get("CRASH_BLOCK") == "1":
            time.sleep(600)  # the test kills the process here, after the side effect
        return f"appended {text}"

    def append_idempotent(text: str) -> str:
        """Append a line to the log (declared idempotent)."""
        return append(text)

    return [
        StructuredTool.from_function(append),
        StructuredTool.from_function(
            append_idempotent, metadata={"wm_hints": {"idempotent": True}}
        ),
    ]


class ToolThenDone(ScriptedToolCallingModel):
    """Calls the tool until a result is in the conversation, then answers (any process)."""

    tool: str = "append"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        from langchain_core.outputs import ChatGeneration, ChatResult

        if any(isinstance(m, ToolMessage) for m in messages):
            reply = AIMessage("done")
        else:
            call = {"name": self.tool, "args": {"text": "x"}, "id": "call_0"}
            reply = AIMessage("", tool_calls=[call])
        return ChatResult(generations=[ChatGeneration(message=reply)])


def main() -> None:
    path, mode, tool, answer = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    marker = path.with_suffix(".marker")
    tools = make_tools(marker)
    saver, store = open_sqlite(path)
    predictor = scripted_predictor({}, tools=tools)
    config = {"configurable": {"thread_id": "run-1"}}
    if mode == "graph":
        plan = [[{"name": tool, "args": {"text": "x"}}], "done"]
        ctx = ToolAgentContext(proposer=FixedPlanProposer(plan), predictor=predictor, tools=tools)
        graph = create_tool_agent_graph().compile(checkpointer=saver, store=store)

        def invoke(payload):
            return graph.invoke(payload, config, context=ctx)
    else:
        from langchain.agents import create_agent

        from wm_agents.tools import ImagineToolCallsMiddleware

        agent = create_agent(
            ToolThenDone(tool=tool),
            tools,
            middleware=[ImagineToolCallsMiddleware(predictor, tools=tools)],
            checkpointer=saver,
            store=store,
        )

        def invoke(payload):
            return agent.invoke(payload, config)

    if answer == "start":
        payload = {"task": "append x"} if mode == "graph" else {"messages": [("user", "append x")]}
    elif answer == "resume":
        payload = None
    else:
        payload = Command(resume={"type": answer})
    out = invoke(payload)
    interrupts = out.get("__interrupt__") or []
    print(
        json.dumps(
            {
                "pending": interrupts[0].value.get("reason") if interrupts else None,
                "ended": not interrupts,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
