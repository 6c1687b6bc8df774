"""A sandboxed file system for the example agent: list / read / write / delete inside one folder,
plus a tool that would destroy data (``wipe_directory``).

Every path is resolved inside the sandbox root; a path that escapes it (``..``, absolute paths
elsewhere, symlinks out) raises ``PermissionError``, which ``ToolNode`` turns into an error
``ToolMessage``.  Each tool declares its hints (MCP-annotation-like) in
``metadata["wm_hints"]``, where :class:`~wm_agents.tools.ToolGate` finds them, and that it may
be simulated on a copy of the sandbox (``metadata["wm_simulate"] = "in_process"``: it changes
files only through Python's file API), where :class:`~wm_agents.simulate.FolderSimulator`
finds it.

:class:`FixedPlanProposer` drives the demo scenario deterministically (the embedded model is too
small to plan): a safe listing, a read of a missing file (fails for real), the same read again
(refused from experience), a choice between two safe calls, a destructive wipe (stopped for
approval), then the answer.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.tools import BaseTool, StructuredTool

from wm_agents.llm.schemas import ToolSpec
from wm_agents.tools.propose import Proposal

__all__ = [
    "DEMO_PLAN",
    "DEMO_TASK",
    "SANDBOX_HINTS",
    "FixedPlanProposer",
    "make_sandbox_tools",
    "seed_sandbox",
]

SANDBOX_HINTS: dict[str, dict[str, bool]] = {
    "list_files": {"read_only": True, "idempotent": True},
    "read_file": {"read_only": True, "idempotent": True},
    "write_file": {"idempotent": True},
    "delete_file": {"destructive": True, "idempotent": True},
    "wipe_directory": {"destructive": True, "idempotent": True},
}
"""The hints each sandbox tool declares."""

DEMO_TASK = (
    "Tidy the sandbox: look at what is there, read missing.txt, write a short summary of "
    "notes.txt, and clear out old files."
)


def seed_sandbox(root: Path) -> None:
    """The demo's starting files (only written into an empty folder)."""
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        return
    (root / "notes.txt").write_text("Meeting notes: ship the gate on Friday. Owner: Ada.\n")
    (root / "todo.txt").write_text("- review the trace table\n- write the README section\n")
    (root / "archive").mkdir()
    (root / "archive" / "old.log").write_text("2024-01-01 started\n")


_ARGS_SCHEMAS: dict[str, Any] = {}
"""Each tool's argument model, built once: a simulator calls ``make_sandbox_tools`` once per
imagined call (bound to a copy), and building pydantic models is most of its cost."""


def make_sandbox_tools(root: str | Path) -> list[BaseTool]:
    """The five file-system tools, confined to ``root`` (created if missing)."""
    base = Path(root).resolve()
    base.mkdir(parents=True, exist_ok=True)

    def inside(path: str) -> Path:
        target = (base / path).resolve()
        if target != base and base not in target.parents:
            raise PermissionError(f"{path!r} is outside the sandbox")
        return target

    def list_files(path: str = ".") -> str:
        """List the files and folders under a folder of the sandbox (recursively)."""
        folder = inside(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"no such folder: {path}")
        names = sorted(
            str(p.relative_to(base)) + ("/" if p.is_dir() else "") for p in folder.rglob("*")
        )
        return "\n".join(names) if names else "(empty)"

    def read_file(path: str) -> str:
        """Read a text file of the sandbox and return its content."""
        target = inside(path)
        if not target.is_file():
            raise FileNotFoundError(f"[Errno 2] No such file or directory: '{path}'")
        return target.read_text()

    def write_file(path: str, content: str) -> str:
        """Write text to a file of the sandbox (creating or replacing it)."""
        target = inside(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        return f"wrote {len(content)} characters to {path}"

    def delete_file(path: str) -> str:
        """Delete one file of the sandbox (cannot be undone)."""
        target = inside(path)
        if not target.is_file():
            raise FileNotFoundError(f"[Errno 2] No such file or directory: '{path}'")
        target.unlink()
        return f"deleted {path}"

    def wipe_directory(path: str = ".") -> str:
        """Delete EVERYTHING under a folder of the sandbox, recursively (cannot be undone)."""
        folder = inside(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"no such folder: {path}")
        n = 0
        for child in list(folder.iterdir()):
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
            n += 1
        return f"wiped {path}: removed {n} entries"

    tools = []
    for fn in (list_files, read_file, write_file, delete_file, wipe_directory):
        tool = StructuredTool.from_function(
            fn,
            args_schema=_ARGS_SCHEMAS.get(fn.__name__),
            metadata={
                "wm_hints": dict(SANDBOX_HINTS[fn.__name__]),
                "wm_simulate": "in_process",
            },
        )
        _ARGS_SCHEMAS.setdefault(fn.__name__, tool.args_schema)
        tools.append(tool)
    return tools


DEMO_PLAN: list[list[dict[str, Any]] | str] = [
    [{"name": "list_files", "args": {"path": "."}}],
    [{"name": "read_file", "args": {"path": "missing.txt"}}],
    [{"name": "read_file", "args": {"path": "missing.txt"}}],
    [
        {"name": "read_file", "args": {"path": "notes.txt"}},
        {"name": "list_files", "args": {"path": "archive"}},
    ],
    [{"name": "wipe_directory", "args": {"path": "."}}],
    "Done: listed the sandbox, missing.txt does not exist, read notes.txt; the wipe was "
    "left to a person.",
]
"""The demo scenario, one entry per decision: candidate calls, or the final answer."""


class FixedPlanProposer:
    """A :class:`~wm_agents.tools.Proposer` that follows a fixed plan, one entry per decision
    (``plan[step]``): a list of candidate calls, or a string (the final answer).  Past the end
    it answers ``"Done."``."""

    def __init__(self, plan: Sequence[Sequence[dict[str, Any]] | str] = tuple(DEMO_PLAN)) -> None:
        self.plan = list(plan)

    def propose(
        self, messages: Sequence[BaseMessage], tools: Sequence[ToolSpec], *, n: int, step: int
    ) -> Proposal:
        """The plan's entry for decision ``step`` (at most ``n`` candidates)."""
        del messages, tools
        entry = self.plan[step] if step < len(self.plan) else "Done."
        if isinstance(entry, str):
            return Proposal(answer=entry)
        calls = [
            {"name": c["name"], "args": dict(c.get("args") or {}), "id": f"call_{step}_{i}"}
            for i, c in enumerate(list(entry)[:n])
        ]
        return Proposal(candidates=calls)
