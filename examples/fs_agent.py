"""A sandboxed file-system agent that imagines every tool call before it runs.

The scenario (a fixed plan, because the embedded model is too small to plan; set
OPENAI_BASE_URL / OPENAI_API_KEY and pass ``--proposer llm`` to let a real model propose):

1. list the sandbox: a safe, read-only call runs;
2. read missing.txt: it fails for real, and the failure is stored as experience;
3. read missing.txt again: predicted to fail from that experience, refused with the reason
   (the agent's LLM reads it as the tool's answer);
4. choose between two safe calls: the better imagined one runs;
5. wipe the sandbox: the tool declares itself destructive, so a person is asked.

Run:  python examples/fs_agent.py            (asks you at a terminal)
      python examples/fs_agent.py --on-ask reject
The same agent is ``wm-agents tools``; this file shows the few lines it is made of.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver
from rich.console import Console
from rich.text import Text

from wm_agents.demos.fs_agent import DEMO_TASK, build_fs_context, drive
from wm_agents.llm import open_chat_model
from wm_agents.serialization import checkpoint_serializer
from wm_agents.tools import create_tool_agent_graph, trace_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--on-ask", choices=["approve", "reject"], default=None)
    parser.add_argument("--proposer", choices=["plan", "llm"], default="plan")
    args = parser.parse_args()
    # Calls, reasons and results come from models and tools: print them as text, not markup.
    console = Console(highlight=False, markup=False)

    def answer(payload: dict) -> dict:
        call = payload["tool_call"]
        console.print(
            Text.assemble(
                ("the gate asks", "yellow"), f" about {call['name']}: {payload['reason']}"
            )
        )
        if args.on_ask:
            return {"type": args.on_ask}
        reply = input("approve or reject? [a/r] ").strip().lower()
        return {"type": "approve" if reply.startswith("a") else "reject"}

    sandbox = Path(tempfile.mkdtemp(prefix="fs-agent-"))
    with open_chat_model(server_options={"threads": 1}) as chat:  # OPENAI_* or embedded
        context = build_fs_context(sandbox, chat, proposer=args.proposer, samples=1, seed=0)
        graph = create_tool_agent_graph().compile(
            checkpointer=InMemorySaver(serde=checkpoint_serializer())
        )
        config = {"configurable": {"thread_id": "fs-demo"}}
        report = drive(graph, config, context, {"task": DEMO_TASK}, answer)
    console.print(trace_table(report.state["trace"]))
    console.print(f"answer: {report.state['answer']}")
    console.print(f"sandbox now holds: {sorted(p.name for p in sandbox.iterdir())}")


if __name__ == "__main__":
    main()
