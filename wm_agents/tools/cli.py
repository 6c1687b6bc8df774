"""``wm-agents tools``: the sandboxed file-system agent that imagines tool calls before acting.

wm-agents tools --task TEXT [--db FILE] [--json] [--on-ask approve|reject] [--resume ID]

Runs are checkpointed in SQLite (``--db``; a kept temporary file by default): a run left waiting
for approval, or killed, continues with ``--db FILE --resume ID``.  At a terminal the person is
asked when the gate asks; ``--on-ask`` answers for non-interactive runs, and without it a
non-interactive run stops at the first ask (exit code 3) so it can be resumed.  The decision
trace is printed as a table (to stderr with ``--json``, whose last stdout line is one JSON
object).  The LLM: ``OPENAI_BASE_URL``/``OPENAI_API_KEY``/``WM_AGENTS_LLM_MODEL``, else the
embedded offline model.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

__all__ = ["add_tools_subparser", "main"]

EXIT_PENDING = 3
"""Exit code of a run that stopped waiting for approval."""


def add_tools_subparser(subparsers: Any) -> None:
    """Add the ``tools`` command to an argparse subparsers object (sets ``func(args) -> int``)."""
    p = subparsers.add_parser(
        "tools",
        help="run the sandboxed file-system agent that imagines tool calls before acting",
        description="A file-system agent in a sandbox folder: every tool call is imagined by "
        "the LLM predictor and gated (act / ask a person / refuse) before it runs.",
    )
    p.add_argument("--task", default=None, help="what the agent should do (default: the demo)")
    p.add_argument("--db", default=None, help="SQLite file for checkpoints and experience")
    p.add_argument("--resume", default=None, metavar="ID", help="continue the stored run ID")
    p.add_argument(
        "--on-ask",
        choices=["approve", "reject"],
        default=None,
        help="answer every ask this way (default: ask at a terminal, else stop and wait)",
    )
    p.add_argument(
        "--proposer",
        choices=["auto", "plan", "llm"],
        default="auto",
        help="who proposes tool calls: the demo plan, or the LLM (auto: plan for the embedded "
        "model, which is too small to plan; llm otherwise)",
    )
    p.add_argument("--samples", type=int, default=2, help="predictions per candidate (2)")
    p.add_argument("--seed", type=int, default=0, help="predictor seed (0)")
    p.add_argument("--max-steps", type=int, default=10, help="decisions per run (10)")
    p.add_argument("--json", action="store_true", help="end with one JSON object on stdout")
    p.set_defaults(func=_run)


def _ask_person(payload: dict[str, Any]) -> Any:
    from rich.console import Console

    console = Console(stderr=True, highlight=False)
    call = payload.get("tool_call") or {}
    console.print(
        f"\n[bold yellow]The gate asks:[/bold yellow] run {call.get('name')}"
        f"({json.dumps(call.get('args'))})?\n  why: {payload.get('reason')}\n"
        f"  imagined: {payload.get('predicted_result')} "
        f"(p(ok)={payload.get('success_probability')}, risk={payload.get('risk'):.2f})"
    )
    while True:
        reply = input("approve / edit / reject [a/e/r]: ").strip().lower()
        if reply in ("a", "approve"):
            return {"type": "approve"}
        if reply in ("r", "reject"):
            message = input("reason (optional): ").strip()
            return {"type": "reject", "message": message}
        if reply in ("e", "edit"):
            text = input("new arguments as JSON: ").strip()
            try:
                args = json.loads(text)
            except json.JSONDecodeError as exc:
                console.print(f"not JSON: {exc}")
                continue
            if isinstance(args, dict):
                return {"type": "edit", "args": args}
            console.print("arguments must be a JSON object")


def _run(args: argparse.Namespace) -> int:
    from langgraph.types import Command
    from rich.console import Console

    from wm_agents.llm.config import open_chat_model, resolve_llm_settings
    from wm_agents.tools.demo import RunReport, build_fs_context, drive
    from wm_agents.tools.graph import create_tool_agent_graph
    from wm_agents.tools.persistence import open_sqlite
    from wm_agents.tools.sandbox import DEMO_TASK
    from wm_agents.tools.trace import trace_rows, trace_table

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.samples < 1 or args.max_steps < 1:
        print("error: --samples and --max-steps must be >= 1", file=sys.stderr)
        return 2
    console = Console(stderr=args.json, highlight=False)
    db = (
        Path(args.db)
        if args.db
        else Path(tempfile.mkdtemp(prefix="wm-agents-tools-")) / "runs.sqlite"
    )
    if args.resume and not db.exists():
        print(f"error: no run database at {db} (pass the --db of the run)", file=sys.stderr)
        return 2
    thread_id = args.resume or uuid.uuid4().hex[:8]
    sandbox = db.parent / f"{db.stem}-sandbox" / thread_id
    settings = resolve_llm_settings()
    proposer = (
        args.proposer if args.proposer != "auto" else ("plan" if settings.embedded else "llm")
    )
    interactive = sys.stdin.isatty() and args.on_ask is None

    def answer(payload: dict[str, Any]) -> Any:
        if args.on_ask is not None:
            return {"type": args.on_ask}
        return _ask_person(payload) if interactive else None

    saver, store = open_sqlite(db)
    try:
        console.print(f"LLM: {settings.describe()}; run {thread_id} in {db}; sandbox {sandbox}")
        with open_chat_model(settings, server_options={"parallel": 4, "threads": 1}) as chat:
            context = build_fs_context(
                sandbox,
                chat,
                proposer=proposer,
                native_tools=False,
                samples=args.samples,
                seed=args.seed,
                store=store,
                max_steps=args.max_steps,
                on_decision=lambda e: console.print(
                    f"decision {e.step}: {e.verdict} - {e.reason[:150]}"
                ),
            )
            graph = create_tool_agent_graph().compile(checkpointer=saver, store=store)
            config = {"configurable": {"thread_id": thread_id}, "recursion_limit": 200}
            first: Any = {"task": args.task or DEMO_TASK}
            report = None
            if args.resume:
                snapshot = graph.get_state(config)
                if not snapshot.values:
                    print(f"error: no stored run {args.resume!r} in {db}", file=sys.stderr)
                    return 2
                first = None  # no interrupt pending: a killed run continues from its checkpoint
                if snapshot.interrupts:
                    reply = answer(snapshot.interrupts[0].value)
                    if reply is None:
                        pending = snapshot.interrupts[0].value
                        report = RunReport(state=dict(snapshot.values), pending=pending)
                    else:
                        first = Command(resume=reply)
            if report is None:
                report = drive(graph, config, context, first, answer)
    finally:
        saver.conn.close()
        store.conn.close()

    trace = report.state.get("trace") or []
    console.print(trace_table(trace))
    if report.pending is not None:
        console.print(
            f"[yellow]waiting for approval[/yellow]: continue with "
            f"`wm-agents tools --db {db} --resume {thread_id} --on-ask approve|reject`"
        )
    else:
        console.print(f"answer: {report.state.get('answer')}")
    if args.json:
        summary = {
            "thread_id": thread_id,
            "db": str(db),
            "sandbox": str(sandbox),
            "answer": report.state.get("answer"),
            "done": bool(report.state.get("done")) and report.pending is None,
            "pending": report.pending,
            "n_interrupts": report.n_interrupts,
            "verdicts": [e.verdict for e in trace],
            "humans": [e.human for e in trace],
            "trace": trace_rows(trace),
            "model": settings.describe(),
            "proposer": proposer,
        }
        print(json.dumps(summary, default=str, allow_nan=False), flush=True)
    return EXIT_PENDING if report.pending is not None else 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: the full ``wm-agents`` CLI (argv starts with ``tools``)."""
    from wm_agents.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
