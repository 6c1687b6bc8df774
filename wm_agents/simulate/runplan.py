"""Running a plan of tool calls in the guarded child, and reading its reports back.

The child's side, in order: install the write guard (before anything else runs, ``make_tools``
included), point temp files at a private folder, apply the environment, move into the copy,
rebind the tools with ``make_tools(copy)``, check every call of the plan (a known tool, declared
simulatable, a private copy for tools that run programs; a dry run answers alone), then run the
calls in order, stopping at the first failure, and report what the guard saw.  Every report is
one JSON message (see :mod:`wm_agents.simulate.child`); :func:`run_plan` turns them into a
:class:`PlanRun`.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wm_agents.llm.schemas import ToolCallCandidate
from wm_agents.simulate.calls import Plan, error_text, invoke_tool, value_text
from wm_agents.simulate.child import ChildResult, Send, file_size_exceeded, run_in_child
from wm_agents.simulate.declare import DRY_RUN_KEY, DryRun, declaration_of
from wm_agents.simulate.guard import ExecPolicy, WriteGuard

__all__ = [
    "Limits",
    "MakeTools",
    "PlanRun",
    "Workspace",
    "dry_run_answer",
    "map_paths",
    "run_dry_run",
    "run_plan",
]

MakeTools = Callable[[str], Sequence[Any]]
"""``make_tools(path) -> [BaseTool, ...]``: the user's tools, bound to ``path`` (a copy)."""


@dataclass(frozen=True)
class Limits:
    """Budgets of one simulated call: ``timeout_s`` (per call of a plan), ``max_bytes`` (the
    copy's growth; also each file's ``RLIMIT_FSIZE``), ``max_result_chars`` (per step)."""

    timeout_s: float
    max_bytes: int
    max_result_chars: int


@dataclass
class Workspace:
    """What one simulated run acts on, and what the child may do there.

    Attributes:
        tools_path: the path given to ``make_tools`` (a copied folder or database file).
        roots: folders the tool may change; the first is the copy (its changes are tracked),
            the rest (a private temp folder) are scratch space.
        shared: inodes shared with the real workspace (copied up before writes).
        links: shared inodes several copy paths link to (absolute paths), copied up together.
        private: the copy shares nothing with the real workspace, so programs may write it.
        allow_exec: the child's baseline policy for starting programs.
        cwd: the child's working folder (``None``: unchanged).
        env: environment changes in the child (``None`` removes a variable).
        path_map: ``(copy path, real path)`` pairs replaced in result texts, so a simulated
            result names real paths as the real call would.
    """

    tools_path: str
    roots: list[str]
    shared: set[tuple[int, int]] | None = None
    links: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    private: bool = False
    allow_exec: bool | ExecPolicy = False
    cwd: str | None = None
    env: dict[str, str | None] = field(default_factory=dict)
    path_map: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class PlanRun:
    """What came back from running a plan in the child.

    Attributes:
        steps: one JSON dict per executed call (``tool``, ``success``, ``result``...).
        modes: the declared mode of every tool ``make_tools`` returned.
        touched: copy paths the guard let the tool change; ``None`` when not known completely
            (the child was killed, or programs were allowed to run).
        denied: what the guard refused (``kind``, ``what``, ``detail``).
        budget: why the size budget stopped the call, if it did.
        cause, reason: why the plan did not run to an exact outcome (``None``: it did).
        dry_run: a dry run's answer (``result``, ``success``, ...), when one ran instead.
        child: the raw child result (timing, fate).
    """

    steps: list[dict[str, Any]] = field(default_factory=list)
    modes: dict[str, str] = field(default_factory=dict)
    touched: list[str] | None = None
    denied: list[dict[str, str]] = field(default_factory=list)
    budget: str | None = None
    cause: str | None = None
    reason: str = ""
    dry_run: dict[str, Any] | None = None
    child: ChildResult | None = None


def dry_run_answer(fn: Callable[[dict[str, Any]], Any], args: dict[str, Any], limit: int) -> dict:
    """A dry run's answer as JSON: ``result`` text, ``success``, and, from a
    :class:`~wm_agents.simulate.declare.DryRun`, ``side_effects``/``reversible``/``harm``."""
    try:
        value = fn(dict(args))
    except Exception as exc:  # the dry run says the call would fail
        return {
            "result": error_text(exc)[:limit],
            "success": False,
            "error_type": type(exc).__name__,
        }
    if isinstance(value, DryRun):
        return {
            "result": value_text(value.result, limit),
            "success": bool(value.success),
            "side_effects": value.side_effects,
            "reversible": value.reversible,
            "harm": float(value.harm),
        }
    return {"result": value_text(value, limit), "success": True}


def _enter(ws: Workspace) -> WriteGuard:
    """The child's first steps: the guard (before anything else runs), temp files, env, cwd."""
    guard = WriteGuard(ws.roots, shared=ws.shared, links=ws.links, allow_exec=ws.allow_exec)
    guard.install()
    sys.dont_write_bytecode = True
    if len(ws.roots) > 1:
        tempfile.tempdir = ws.roots[1]
        os.environ["TMPDIR"] = ws.roots[1]
    for key, value in ws.env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if ws.cwd:
        os.chdir(ws.cwd)
    return guard


def _check(
    plan: Plan, by_name: Mapping[str, Any], modes: Mapping[str, str], ws: Workspace
) -> tuple[str, str] | None:
    """Why the plan may not run here, as ``(cause, reason)``, or ``None``."""
    for call in plan:
        mode = modes.get(call.name)
        if call.name not in by_name:
            valid = ", ".join(sorted(by_name))
            return "unknown_tool", f"unknown tool {call.name!r}; valid tools: {valid}"
        if mode == "never":
            return "not_simulatable", call.name
        if mode == "subprocess" and not ws.private:
            return "needs_private", call.name
        if mode == "dry_run" and len(plan) > 1:
            return "chained_dry_run", call.name
    return None


def _child_body(
    plan: Plan, ws: Workspace, make_tools: MakeTools, known: Mapping[str, str], limits: Limits
) -> Callable[[Send], None]:
    limit = limits.max_result_chars

    def body(send: Send) -> None:
        guard = _enter(ws)

        def report() -> None:
            over = (
                f"a write went past {limits.max_bytes} bytes (max_bytes)"
                if file_size_exceeded()
                else None
            )
            send(
                {
                    "type": "guard",
                    "touched": sorted(guard.touched),
                    "exec_allowed": guard.allow_exec is not False,
                    "denied": guard.denied,
                    "budget": guard.budget or over,
                }
            )

        try:
            tools = list(make_tools(ws.tools_path))
        except Exception as exc:  # the user's factory failed: a fault of this run
            reason = f"make_tools failed: {error_text(exc)}"
            send({"type": "stop", "cause": "crashed", "reason": reason})
            report()
            return
        by_name: dict[str, Any] = {}
        modes: dict[str, str] = {}
        for tool in tools:
            name = getattr(tool, "name", None)
            if not isinstance(name, str) or not hasattr(tool, "invoke"):
                continue
            by_name[name] = tool
            try:
                modes[name] = known.get(name) or declaration_of(tool).mode
            except ValueError:
                modes[name] = "never"  # a bad declaration declares nothing
        send({"type": "modes", "modes": modes})
        stop = _check(plan, by_name, modes, ws)
        if stop is not None:
            send({"type": "stop", "cause": stop[0], "reason": stop[1]})
            report()
            return
        if modes[plan[0].name] == "dry_run":  # a plan of one call (checked above)
            fn = (getattr(by_name[plan[0].name], "metadata", None) or {}).get(DRY_RUN_KEY)
            send({"type": "dry_run", **dry_run_answer(fn, plan[0].args, limit)})
            return
        if any(modes[c.name] == "subprocess" for c in plan):
            guard.allow_exec = True  # on a private copy programs cannot reach the real one
        for i, call in enumerate(plan):
            step = invoke_tool(by_name[call.name], call, i, limit)
            send({"type": "step", **step})
            if not step["success"]:
                break
        report()

    return body


def map_paths(text: str, ws: Workspace) -> str:
    """``text`` with the copy's paths replaced by the real ones."""
    for copy_path, real_path in ws.path_map:
        text = text.replace(copy_path, real_path)
    return text


def _parse(child: ChildResult, ws: Workspace) -> PlanRun:
    run = PlanRun(child=child)
    for m in child.messages:
        kind = m.get("type")
        if kind == "step":
            step = {k: v for k, v in m.items() if k != "type"}
            step["result"] = map_paths(str(step.get("result", "")), ws)
            run.steps.append(step)
        elif kind == "modes" and isinstance(m.get("modes"), dict):
            run.modes = {str(k): str(v) for k, v in m["modes"].items()}
        elif kind == "guard":
            touched = m.get("touched")
            if isinstance(touched, list) and not m.get("exec_allowed"):
                run.touched = [str(p) for p in touched]
            run.denied = list(m.get("denied") or [])
            run.budget = m.get("budget")
        elif kind == "stop":
            run.cause = str(m.get("cause"))
            run.reason = str(m.get("reason"))
        elif kind == "dry_run":
            run.dry_run = {k: v for k, v in m.items() if k != "type"}
            run.dry_run["result"] = map_paths(str(run.dry_run.get("result", "")), ws)
    if child.cause is not None:
        run.cause, run.reason = child.cause, child.detail
        run.touched = None
    return run


def run_plan(
    plan: Plan,
    ws: Workspace,
    *,
    make_tools: MakeTools,
    known_modes: Mapping[str, str],
    limits: Limits,
    watch: str,
) -> PlanRun:
    """Run ``plan`` in a forked child on ``ws``; never raises for what happens in the child.

    ``known_modes`` are the simulator's own declarations (they win over the rebound tools'
    metadata); ``watch`` is a path whose file system's growth is polled.
    """
    child = run_in_child(
        _child_body(plan, ws, make_tools, known_modes, limits),
        timeout_s=limits.timeout_s * len(plan),
        max_file_bytes=limits.max_bytes + 1,
        watch=watch,
        max_growth_bytes=2 * limits.max_bytes,
    )
    return _parse(child, ws)


def run_dry_run(
    call: ToolCallCandidate, fn: Callable[[dict[str, Any]], Any], *, limits: Limits
) -> PlanRun:
    """Ask a dry run in a forked child: no copy, no guard (it is declared side-effect free),
    but the time budget."""
    limit = limits.max_result_chars

    def body(send: Send) -> None:
        send({"type": "dry_run", **dry_run_answer(fn, call.args, limit)})

    child = run_in_child(body, timeout_s=limits.timeout_s)
    run = PlanRun(child=child)
    for m in child.messages:
        if m.get("type") == "dry_run":
            run.dry_run = {k: v for k, v in m.items() if k != "type"}
    if child.cause is not None:
        run.cause, run.reason = child.cause, f"the dry run of {call.name}: {child.detail}"
    return run
