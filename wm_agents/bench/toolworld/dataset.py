"""The data set: tool calls drawn in randomised workspaces and run for real, and its split.

:func:`build_dataset` creates each workspace under a temporary folder (``/tmp``), draws calls
from the argument families, runs every call (a call that changes the workspace on a fresh copy,
so each call meets the workspace its context describes), records what really happened, and
removes the folders.  Same seed, same calls, same outcomes.

:func:`split_calls` holds out workspaces *and* argument families: the held-out calls come from
workspaces never seen in training and use argument patterns never seen in training.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from wm_agents.bench.toolworld.families import CallFamily, families_by_tool
from wm_agents.bench.toolworld.tools import TOOLS, run_tool
from wm_agents.bench.toolworld.workspace import Workspace, generate_workspace, materialize

__all__ = [
    "CallSplit",
    "SplitMode",
    "ToolCallRecord",
    "build_dataset",
    "dataset_digest",
    "split_calls",
]


@dataclass(frozen=True)
class ToolCallRecord:
    """One tool call and its real outcome.

    Attributes:
        id: ``"w<workspace seed>-<index>"``, unique in a data set.
        workspace: the workspace's seed.
        family: the argument family's key (``"read_file/typo"``).
        cause: what decides the family's outcome (``"read_file/missing"``).
        tool: the tool's name.
        args: the arguments, as the agent passed them.
        task: the agent's task.
        context: what the agent's context says about the workspace.
        success: whether the call really worked.
        result: the real result, or ``"ErrorType: message"``.
    """

    id: str
    workspace: int
    family: str
    cause: str
    tool: str
    args: dict[str, Any]
    task: str
    context: str
    success: bool
    result: str

    def state(self) -> dict[str, str]:
        """The situation, as a predictor's ``state``."""
        return {"task": self.task, "context": self.context}

    def call(self) -> dict[str, Any]:
        """The call, as a predictor's candidate."""
        return {"name": self.tool, "args": self.args}


def _draw_calls(
    rng: random.Random, ws: Workspace, n: int, by_tool: dict[str, list[CallFamily]]
) -> list[tuple[CallFamily, dict[str, Any]]]:
    tools = sorted(by_tool)
    seen: set[str] = set()
    out = []
    for _ in range(n * 20):
        if len(out) >= n:
            break
        family = rng.choice(by_tool[rng.choice(tools)])
        args = family.make(rng, ws)
        if args is None:
            continue
        key = json.dumps([family.tool, args], sort_keys=True, default=str)
        if key in seen:  # one call per distinct (tool, arguments) in a workspace
            continue
        seen.add(key)
        out.append((family, args))
    return out


def _execute(
    ws: Workspace, calls: list[tuple[CallFamily, dict[str, Any]]], tmp: Path
) -> list[ToolCallRecord]:
    template = materialize(ws, tmp / "template")
    rows = []
    for i, (family, args) in enumerate(calls):
        if TOOLS[family.tool].mutates:
            root = tmp / f"call-{i}"
            shutil.copytree(template, root, symlinks=True)
        else:
            root = template
        success, result = run_tool(root, family.tool, args)
        if root != template:
            shutil.rmtree(root)
        rows.append(
            ToolCallRecord(
                id=f"w{ws.seed}-{i}",
                workspace=ws.seed,
                family=family.key,
                cause=family.cause_key,
                tool=family.tool,
                args=args,
                task=ws.task,
                context=ws.context,
                success=success,
                result=result[:300],
            )
        )
    return rows


def build_dataset(
    n_workspaces: int, calls_per_workspace: int, *, seed: int = 0
) -> list[ToolCallRecord]:
    """Generate ``n_workspaces`` workspaces (seeds ``seed * 100_000 + i``), draw up to
    ``calls_per_workspace`` distinct calls in each, run them for real, return the records."""
    if n_workspaces < 1 or calls_per_workspace < 1:
        raise ValueError("need n_workspaces >= 1 and calls_per_workspace >= 1")
    by_tool = families_by_tool()
    rows: list[ToolCallRecord] = []
    for i in range(n_workspaces):
        ws_seed = seed * 100_000 + i
        ws = generate_workspace(ws_seed)
        calls = _draw_calls(random.Random(f"calls:{ws_seed}"), ws, calls_per_workspace, by_tool)
        with tempfile.TemporaryDirectory(prefix="wm-learned-ws-") as tmp:
            try:
                rows.extend(_execute(ws, calls, Path(tmp)))
            finally:
                # Read-only folders would stop nothing (root), but restore write bits so the
                # clean-up also works for a non-root user.
                for p in Path(tmp).rglob("*"):
                    if p.is_dir() and not p.is_symlink():
                        p.chmod(0o755)
    return rows


def dataset_digest(rows: Sequence[ToolCallRecord]) -> str:
    """SHA-256 over every record (to check that a rerun drew and ran the same calls)."""
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps(asdict(r), sort_keys=True, default=str).encode())
    return h.hexdigest()


SplitMode = Literal["pattern", "cause"]


@dataclass(frozen=True)
class CallSplit:
    """A split by workspace and by argument family.

    Attributes:
        train: calls from training workspaces using training families.
        test: held-out calls: held-out workspaces *and* held-out families.
        test_seen_families: held-out workspaces, training families (new situations, known
            argument patterns; reported separately).
        test_workspaces: seeds of the held-out workspaces.
        test_families: keys of the held-out families.
    """

    train: list[ToolCallRecord]
    test: list[ToolCallRecord]
    test_seen_families: list[ToolCallRecord]
    test_workspaces: frozenset[int]
    test_families: frozenset[str]


def _hold_out(groups: dict[str, set[str]], rng: random.Random, fraction: float) -> set[str]:
    """From every group with at least two members, ``fraction`` of them (at least one, at
    least one kept)."""
    out: set[str] = set()
    for key in sorted(groups):
        names = sorted(groups[key])
        if len(names) >= 2:
            k = min(len(names) - 1, max(1, round(fraction * len(names))))
            out |= set(rng.sample(names, k))
    return out


def _held_out_families(
    rows: Sequence[ToolCallRecord], rng: random.Random, mode: SplitMode, fraction: float
) -> set[str]:
    if mode == "pattern":  # within each cause, some of its families
        families: dict[str, set[str]] = {}
        for r in rows:
            families.setdefault(r.cause, set()).add(r.family)
        return _hold_out(families, rng, fraction)
    causes: dict[str, set[str]] = {}  # per tool, some of its causes, whole
    for r in rows:
        causes.setdefault(r.tool, set()).add(r.cause)
    held = _hold_out(causes, rng, fraction)
    return {r.family for r in rows if r.cause in held}


def split_calls(
    rows: Sequence[ToolCallRecord],
    seed: int,
    *,
    mode: SplitMode = "pattern",
    workspace_fraction: float = 0.4,
    family_fraction: float = 0.4,
) -> CallSplit:
    """Hold out workspaces and argument families, drawn with ``random.Random(seed)``.

    * ``workspace_fraction`` of the workspaces are held out;
    * ``mode="pattern"``: in every cause with at least two families, ``family_fraction`` of
      them (at least one; at least one kept) are held out: held-out calls reach known causes
      through argument patterns never seen in training;
    * ``mode="cause"``: per tool, ``family_fraction`` of its causes are held out whole (at
      least one; at least one kept): failure modes never seen in training.

    Held-out calls are in held-out workspaces *and* held-out families.  Calls from training
    workspaces that use held-out families are dropped (they would show the held-out patterns).
    """
    if not (0 < workspace_fraction < 1 and 0 < family_fraction < 1):
        raise ValueError("fractions must be in (0, 1)")
    if mode not in ("pattern", "cause"):
        raise ValueError(f"mode must be 'pattern' or 'cause', got {mode!r}")
    rng = random.Random(seed)
    workspaces = sorted({r.workspace for r in rows})
    n_test = max(1, round(workspace_fraction * len(workspaces)))
    test_ws = frozenset(rng.sample(workspaces, n_test))
    test_fam = _held_out_families(rows, rng, mode, family_fraction)
    train = [r for r in rows if r.workspace not in test_ws and r.family not in test_fam]
    test = [r for r in rows if r.workspace in test_ws and r.family in test_fam]
    seen = [r for r in rows if r.workspace in test_ws and r.family not in test_fam]
    return CallSplit(train, test, seen, test_ws, frozenset(test_fam))
