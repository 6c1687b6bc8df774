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
import contextlib
import json
import logging
import re
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["configure"]

EXIT_PENDING = 3
"""Exit code of a run that stopped waiting for approval."""


def configure(p: argparse.ArgumentParser, rest: Sequence[str] | None = None) -> None:
    """Add the command's options to its parser (sets ``func(args) -> int``)."""
    del rest
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
    p.add_argument(
        "--world-model",
        choices=["composite", "llm"],
        default="composite",
        help="how calls are imagined: composite (default) runs the sandbox tools on a copy of "
        "the folder (exact; the LLM only for tools that cannot be simulated); llm lets the LLM "
        "predict every call",
    )
    p.add_argument(
        "--plan-search",
        action="store_true",
        help="no LLM proposer: search tool plans with the simulator for --goal and run the best",
    )
    p.add_argument(
        "--goal",
        default=None,
        help="with --plan-search: what must hold afterwards, e.g. "
        "'gone:archive/old.log,kept:notes.txt' (the default)",
    )
    p.add_argument("--samples", type=int, default=2, help="predictions per candidate (2)")
    p.add_argument("--seed", type=int, default=0, help="predictor seed (0)")
    p.add_argument("--max-steps", type=int, default=10, help="decisions per run (10)")
    p.add_argument("--json", action="store_true", help="end with one JSON object on stdout")
    p.set_defaults(func=_run)


def _ask_person(payload: dict[str, Any]) -> Any:
    from rich.console import Console
    from rich.text import Text

    # Everything shown here came from a model, a tool or a user: plain text, never markup.
    console = Console(stderr=True, highlight=False, markup=False)
    call = payload.get("tool_call") or {}
    risk = payload.get("risk")
    risk_text = f"{risk:.2f}" if isinstance(risk, int | float) else str(risk)
    console.print(
        Text.assemble(
            "\n",
            ("The gate asks:", "bold yellow"),
            f" run {call.get('name')}({json.dumps(call.get('args'), default=str)})?\n",
            f"  why: {payload.get('reason')}\n",
            f"  imagined: {payload.get('predicted_result')} "
            f"(p(ok)={payload.get('success_probability')}, risk={risk_text})",
        )
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


RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""What a run id may look like: it names a folder (the run's sandbox), so nothing that could
step outside one (``/``, ``..``)."""

EXIT_IN_USE = 4
"""Exit code when another process is driving the run (``--resume`` of a run in use)."""


def _error(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.text import Text

    from wm_agents.llm.config import resolve_llm_settings
    from wm_agents.tools.persistence import RunInUseError, RunLease, open_sqlite
    from wm_agents.tools.trace import plan_tree, trace_rows, trace_table

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.samples < 1 or args.max_steps < 1:
        return _error("--samples and --max-steps must be >= 1")
    if args.resume is not None and not RUN_ID.fullmatch(args.resume):
        return _error(
            f"--resume {args.resume!r} is not a run id (letters, digits, '-' and '_', at most "
            "64; the id printed when the run started)"
        )
    stream = sys.stderr if args.json else sys.stdout
    # A log or a pipe gets a table wide enough to read (rich would fold it into 80 columns).
    width = None if stream.isatty() else 160
    console = Console(stderr=args.json, highlight=False, markup=False, width=width)
    db = (
        Path(args.db)
        if args.db
        else Path(tempfile.mkdtemp(prefix="wm-agents-tools-")) / "runs.sqlite"
    )
    if args.resume and not db.exists():
        return _error(f"no run database at {db} (pass the --db of the run)")
    thread_id = args.resume or uuid.uuid4().hex[:8]
    sandboxes = (db.parent / f"{db.stem}-sandbox").resolve()
    sandbox = (sandboxes / thread_id).resolve()
    if sandbox.parent != sandboxes:  # belt and braces: the id was checked above
        return _error(f"run id {thread_id!r} would leave {sandboxes}")
    if args.resume and not sandbox.is_dir():
        return _error(
            f"the sandbox of run {thread_id} is gone ({sandbox}); a resumed run works on the "
            "files its own calls left, so it cannot go on without them"
        )
    settings = resolve_llm_settings()
    if args.plan_search:
        if args.proposer == "llm" or args.world_model == "llm":
            return _error(
                "--plan-search searches with the simulator: drop --proposer llm and "
                "--world-model llm"
            )
        proposer = "search"
        from wm_agents.planning.plan_search import WorkspaceGoal

        WorkspaceGoal.parse(args.goal or "gone:x")  # a bad goal fails before any work
    elif args.goal is not None:
        return _error("--goal goes with --plan-search")
    else:
        proposer = (
            args.proposer if args.proposer != "auto" else ("plan" if settings.embedded else "llm")
        )
    if args.task and proposer == "plan":
        print(
            "note: --task is not followed: the demo's fixed plan proposes the calls ("
            + (
                "the embedded model is too small to plan; set OPENAI_BASE_URL / OPENAI_API_KEY "
                "for a capable model"
                if settings.embedded
                else "--proposer plan"
            )
            + ", and --proposer llm lets the model follow your task)",
            file=sys.stderr,
        )
    interactive = sys.stdin.isatty() and args.on_ask is None

    def answer(payload: dict[str, Any]) -> Any:
        if args.on_ask is not None:
            return {"type": args.on_ask}
        return _ask_person(payload) if interactive else None

    saver, store = open_sqlite(db)  # RunDatabaseError (a ValueError): the CLI's error line
    try:
        with RunLease(db, thread_id):
            report = _drive_run(
                args,
                console,
                settings,
                proposer,
                db,
                thread_id,
                sandbox,
                saver,
                store,
                answer,
            )
    except RunInUseError as exc:
        return _error(str(exc), EXIT_IN_USE)
    finally:
        saver.conn.close()
        store.conn.close()
    if report is None:
        return _error(f"no stored run {args.resume!r} in {db}")

    trace = report.state.get("trace") or []
    console.print(trace_table(trace))
    for search in report.state.get("plan_searches") or []:
        console.print(plan_tree(search, title=f"imagined plans at decision {search['step']}"))
    mismatches = sum(e.exact_match is False for e in trace)
    checked = sum(e.exact_match is not None for e in trace)
    if checked:
        console.print(
            f"simulated calls that ran: {checked}, matched reality: {checked - mismatches}"
            + (f", MISMATCHED: {mismatches}" if mismatches else "")
        )
    if report.pending is not None:
        console.print(
            Text.assemble(
                ("waiting for approval", "yellow"),
                f": continue with `wm-agents tools --db {db} --resume {thread_id} "
                "--on-ask approve|reject`",
            )
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
            "world_model": args.world_model,
            "proposer": proposer,
            "mismatches": sum(e.exact_match is False for e in trace),
            "plan_searches": report.state.get("plan_searches") or [],
        }
        print(json.dumps(summary, default=str, allow_nan=False), flush=True)
    return EXIT_PENDING if report.pending is not None else 0


def _drive_run(
    args: argparse.Namespace,
    console: Any,
    settings: Any,
    proposer: str,
    db: Path,
    thread_id: str,
    sandbox: Path,
    saver: Any,
    store: Any,
    answer: Any,
) -> Any:
    """Build the agent and drive the run (new or resumed) under its lease; ``None`` when the
    run to resume is not in the database."""
    from wm_agents.demos.fs_agent import DEMO_GOAL, build_fs_context
    from wm_agents.llm.config import open_chat_model

    needs_llm = proposer == "llm" or args.world_model == "llm"
    what = (
        f"LLM {settings.describe()}"
        if needs_llm
        else f"simulated sandbox (LLM {settings.describe()} only for calls it cannot simulate)"
    )
    console.print(f"world model: {what}; run {thread_id} in {db}; sandbox {sandbox}")
    opened = (
        open_chat_model(settings, server_options={"parallel": 4, "threads": 1})
        if needs_llm
        else contextlib.nullcontext(None)
    )
    with opened as chat:
        context = build_fs_context(
            sandbox,
            chat,
            proposer=proposer,
            goal=args.goal or DEMO_GOAL,
            world_model=args.world_model,
            native_tools=False,
            samples=args.samples,
            seed=args.seed,
            store=store,
            max_steps=args.max_steps,
            on_decision=lambda e: console.print(
                f"decision {e.step}: {e.verdict} - {e.reason[:150]}"
            ),
            seed_files=not args.resume,
        )
        try:
            return _resume_or_start(args, context, saver, store, thread_id, answer)
        finally:
            close = getattr(context.predictor, "close", None)
            if callable(close):
                close()


def _resume_or_start(
    args: argparse.Namespace,
    context: Any,
    saver: Any,
    store: Any,
    thread_id: str,
    answer: Any,
) -> Any:
    from langgraph.types import Command

    from wm_agents.demos.fs_agent import DEMO_TASK, RunReport, drive
    from wm_agents.tools.graph import create_tool_agent_graph

    graph = create_tool_agent_graph().compile(checkpointer=saver, store=store)
    config = {"configurable": {"thread_id": thread_id}, "recursion_limit": 200}
    first: Any = {"task": args.task or DEMO_TASK}
    if args.resume:
        snapshot = graph.get_state(config)
        if not snapshot.values:
            return None
        first = None  # no interrupt pending: a killed run continues from its checkpoint
        if snapshot.interrupts:
            reply = answer(snapshot.interrupts[0].value)
            if reply is None:
                pending = snapshot.interrupts[0].value
                return RunReport(state=dict(snapshot.values), pending=pending)
            first = Command(resume=reply)
    return drive(graph, config, context, first, answer)
