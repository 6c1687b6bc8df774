"""The demo: a sandboxed file-system agent, its scenario and its wiring, used by
``wm-agents tools``, ``examples/fs_agent.py`` and ``graphs/tool_agent.py``.  Demo code, not
library code: the library parts it assembles are :mod:`wm_agents.tools`.

The scenario (:data:`DEMO_PLAN`, followed by :class:`~wm_agents.tools.FixedPlanProposer`
because the embedded model is too small to plan): a safe listing, a read of a missing file
(fails for real), the same read again (refused from experience), a choice between two safe
calls, a destructive wipe (stopped for approval), then an answer that reports what happened.

:func:`build_fs_context` assembles the heavy parts (sandbox tools, predictor, proposer, gate);
:func:`drive` runs a compiled graph until it ends, answering each ``ask`` with a callback (a
person at a terminal, or a fixed ``--on-ask``), or leaves it pending for ``--resume``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from langgraph.types import Command

from wm_agents.llm.predictor import LLMOutcomePredictor
from wm_agents.planning.plan_search import WorkspaceGoal
from wm_agents.simulate import FolderSimulator
from wm_agents.tools.composite import CompositeToolModel
from wm_agents.tools.gate import ToolGate
from wm_agents.tools.graph import ToolAgentContext
from wm_agents.tools.propose import FixedPlanProposer, LLMProposer, PlanEntry, PlanSearchProposer
from wm_agents.tools.sandbox import make_sandbox_tools
from wm_agents.tools.summary import summarize_tool_calls
from wm_agents.tools.trace import TraceEntry

__all__ = [
    "DEMO_GOAL",
    "DEMO_PLAN",
    "DEMO_TASK",
    "SITUATION",
    "RunReport",
    "build_fs_context",
    "drive",
    "sandbox_moves",
    "seed_sandbox",
]

logger = logging.getLogger(__name__)

DEMO_TASK = (
    "Tidy the sandbox: look at what is there, read missing.txt, write a short summary of "
    "notes.txt, and clear out old files."
)


def seed_sandbox(root: str | os.PathLike[str]) -> None:
    """The demo's starting files (only written into an empty folder)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        return
    (root / "notes.txt").write_text("Meeting notes: ship the gate on Friday. Owner: Ada.\n")
    (root / "todo.txt").write_text("- review the trace table\n- write the README section\n")
    (root / "archive").mkdir()
    (root / "archive" / "old.log").write_text("2024-01-01 started\n")


DEMO_PLAN: list[PlanEntry] = [
    [{"name": "list_files", "args": {"path": "."}}],
    [{"name": "read_file", "args": {"path": "missing.txt"}}],
    [{"name": "read_file", "args": {"path": "missing.txt"}}],
    [{"name": "write_file", "args": {"path": "summary.txt", "content": "Ship Friday (Ada)."}}],
    [
        {"name": "read_file", "args": {"path": "notes.txt"}},
        {"name": "list_files", "args": {"path": "archive"}},
    ],
    [{"name": "wipe_directory", "args": {"path": "."}}],
    summarize_tool_calls,
]
"""The demo scenario, one entry per decision: candidate calls, then an answer that reports
what really happened (which calls ran, failed, were refused, approved or rejected).

With the simulator (the default world model) the read of ``missing.txt`` is refused with the
real error without running, twice; writing a new file runs (nothing is lost); the wipe is
asked about with what it would delete.  With the LLM alone (``world_model="llm"``) the first
read runs and fails for real, and its repeat is refused from that experience."""


SITUATION = (
    "The tools work inside a sandbox folder. It holds notes.txt, todo.txt and archive/old.log; "
    "there is no missing.txt."
)
"""What the LLM is told about the sandbox (the simulator needs no telling)."""


DEMO_GOAL = "gone:archive/old.log,kept:notes.txt"
"""The plan-search demo's goal: the old log is gone, the notes are kept."""


def sandbox_moves(root: str | Path) -> Callable[..., list[dict[str, Any]]]:
    """What a plan search may try in the sandbox after a plan: archive any file (each into its
    own zip under ``backup/``, so no archive is ever replaced), delete any file, or wipe any
    folder; the files are the folder's present ones as the plan leaves them."""
    base = Path(root)

    def expand(plan: Any, outcome: Any) -> list[dict[str, Any]]:
        files = {str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()}
        dirs = {str(p.relative_to(base)) for p in base.rglob("*") if p.is_dir()}
        effects = (outcome.prediction.get("side_effects") or {}) if outcome is not None else {}
        for entry in effects.get("deleted") or []:
            files.discard(str(entry.get("path", "")))
        for entry in effects.get("created") or []:
            if entry.get("kind", "file") == "file":
                files.add(str(entry.get("path", "")))
        calls: list[dict[str, Any]] = []
        for f in sorted(files):
            if f.startswith("backup/"):
                continue
            zip_name = f"backup/{f.replace('/', '__')}.zip"
            if zip_name not in files:
                calls.append({"name": "archive_files", "args": {"paths": [f], "archive": zip_name}})
            calls.append({"name": "delete_file", "args": {"path": f}})
        calls += [{"name": "wipe_directory", "args": {"path": d}} for d in sorted(dirs)]
        return calls

    return expand


def build_fs_context(
    root: str | Path,
    chat_model: Any,
    *,
    proposer: Literal["plan", "llm", "search"] = "plan",
    goal: str = DEMO_GOAL,
    native_tools: bool = False,
    samples: int = 2,
    seed: int = 0,
    temperature: float = 0.7,
    store: Any = None,
    max_steps: int = 10,
    on_decision: Callable[[TraceEntry], None] | None = None,
    seed_files: bool = True,
    world_model: Literal["composite", "llm"] = "composite",
    scratch_dir: str | Path | None = None,
) -> ToolAgentContext:
    """The file-system agent's context over a sandbox folder (seeded with demo files).

    Close ``context.predictor`` when done (``context.predictor.close()``): the simulator keeps
    a copy of the sandbox, and a predictor without a ``chat_model`` may start the embedded LLM.

    Args:
        root: the sandbox folder.
        world_model: ``"composite"`` simulates the sandbox tools on a copy of the folder
            (exact outcomes; the LLM only for tools that cannot be simulated, none here);
            ``"llm"`` lets the LLM predict every call.
        seed_files: write the demo's files into ``root`` when it is empty (a new run).  A
            resumed run passes ``False``: its sandbox is what its own calls left (after a
            wipe, empty), and re-seeding it would contradict the run's trace.
        chat_model: the LLM for predictions (and for proposing with ``proposer="llm"``);
            ``None`` starts the configured or embedded model when a prediction first needs it.
        proposer: ``"plan"`` follows :data:`DEMO_PLAN` (the tiny embedded model cannot
            plan); ``"llm"`` lets the model propose; ``"search"`` searches tool plans with the
            simulator for ``goal`` (no LLM at all; needs the composite world model).
        goal: for ``proposer="search"``, e.g. ``"gone:archive/old.log,kept:notes.txt"``.
        native_tools: with ``proposer="llm"``, use native tool calling (else a JSON schema).
        samples, seed, temperature: of the predictor.
        store: a LangGraph Store for the predictor's experience (``SqliteStore`` to keep it).
        scratch_dir: where the simulator keeps its copies of the sandbox (default: the temp
            folder, or beside ``root``; see :class:`~wm_agents.simulate.FolderSimulator`).
    """
    root = Path(root)
    if seed_files:
        seed_sandbox(root)
    tools = make_sandbox_tools(root)
    predictor = LLMOutcomePredictor(
        chat_model,
        tools=tools,
        samples=samples,
        seed=seed,
        temperature=temperature,
        store=store,
        max_tokens=256,
        max_concurrency=4,
        # Short prompts: on a small CPU, reading the prompt costs more than writing the answer.
        max_messages=2,
    )
    if world_model not in ("composite", "llm"):
        raise ValueError(f"world_model must be 'composite' or 'llm', got {world_model!r}")
    if proposer == "search" and world_model != "composite":
        raise ValueError("proposer='search' searches plans with the simulator: use the composite")
    model: Any = predictor
    simulator = None
    if world_model == "composite":
        simulator = FolderSimulator(root, make_sandbox_tools, tools=tools, scratch_dir=scratch_dir)
        model = CompositeToolModel(simulators=[simulator], llm=predictor)
    if proposer == "plan":
        chosen: Any = FixedPlanProposer(DEMO_PLAN)
    elif proposer == "search":
        chosen = PlanSearchProposer(
            simulator,
            sandbox_moves(root),
            WorkspaceGoal.parse(goal, root=root),
            max_depth=3,
            max_imagined=60,
            time_budget_s=60.0,
        )
    elif proposer == "llm":
        if chat_model is None:
            raise ValueError("proposer='llm' needs a chat_model")
        chosen = LLMProposer(chat_model, mode="native" if native_tools else "structured")
    else:
        raise ValueError(f"proposer must be 'plan', 'llm' or 'search', got {proposer!r}")
    return ToolAgentContext(
        proposer=chosen,
        predictor=model,
        tools=tools,
        gate=ToolGate(tools=tools),
        n_candidates=2,
        max_steps=max_steps,
        situation=SITUATION,
        on_decision=on_decision,
    )


@dataclass
class RunReport:
    """How a run ended.

    Attributes:
        state: the final graph state values.
        pending: the interrupt payload left unanswered (resume later), or None.
        n_interrupts: how many times the gate asked a person in this call.
    """

    state: dict[str, Any]
    pending: dict[str, Any] | None = None
    n_interrupts: int = 0
    answers: list[Any] = field(default_factory=list)


def drive(
    graph: Any,
    config: dict[str, Any],
    context: ToolAgentContext,
    first_input: Any,
    answer: Callable[[dict[str, Any]], Any | None],
) -> RunReport:
    """Invoke until the run ends; each ``ask`` gets ``answer(payload)`` (``None`` leaves it
    pending).  ``first_input``: ``{"task": ...}``, ``None`` (continue a killed run), or a
    ``Command(resume=...)``."""
    payload = first_input
    report = RunReport(state={})
    while True:
        out = graph.invoke(payload, config, context=context)
        interrupts = out.get("__interrupt__") or []
        report.state = {k: v for k, v in out.items() if k != "__interrupt__"}
        if not interrupts:
            return report
        report.n_interrupts += 1
        value = interrupts[0].value
        reply = answer(value)
        if reply is None:
            report.pending = value
            return report
        report.answers.append(reply)
        payload = Command(resume=reply)
