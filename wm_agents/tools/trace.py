"""The decision trace: per decision, the candidates, their imagined outcomes, values,
uncertainty and the verdict, then what really happened.  Kept in graph state (small, frozen
records) and printable as a ``rich`` table."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from wm_agents.core import Decision, Outcome
from wm_agents.tools.gate import call_text

__all__ = [
    "TraceCandidate",
    "TraceEntry",
    "merge_trace",
    "plan_tree",
    "trace_entry",
    "trace_rows",
    "trace_table",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")


class TraceCandidate(_Frozen):
    """One candidate as imagined (``source``: which model imagined it: ``simulated``,
    ``dry_run``, ``learned``, ``llm``, ``composite``)."""

    call: dict[str, Any]
    status: str
    source: str | None = None
    predicted_result: str | None = None
    success_probability: float | None = None
    value: float
    uncertainty: float
    risk: float
    reason: str | None = None


class TraceEntry(_Frozen):
    """One decision and, once known, its real outcome.

    Attributes:
        id: unique within a run (``"<step>"``); entries with the same id replace each other.
        step: decision number in the run (0-based).
        candidates: what was imagined for each candidate.
        verdict: the gate's verdict; ``chosen``: index of the chosen candidate.
        reason: why, in words.
        human: the person's answer when the gate asked (``approve``/``edit``/``reject``).
        executed: the call that really ran (after an edit, the edited one).
        real_result, real_success: what the tool really returned, and whether it worked.
        prediction_error: ``|predicted success probability - real success|``.
        exact_match: for an exact (simulated) prediction, whether reality matched it (same
            success and result); ``None`` for guesses.  A mismatch means the tool is not
            deterministic or the workspace changed between imagining and acting.
    """

    id: str
    step: int
    candidates: list[TraceCandidate] = Field(default_factory=list)
    verdict: str
    chosen: int | None = None
    reason: str = ""
    uncertainty: float = 0.0
    risk: float = 0.0
    human: str | None = None
    executed: dict[str, Any] | None = None
    real_result: str | None = None
    real_success: bool | None = None
    prediction_error: float | None = None
    exact_match: bool | None = None


def _finite(x: float, default: float = 0.0) -> float:
    return x if math.isfinite(x) else default


def trace_entry(step: int, outcomes: Sequence[Outcome], decision: Decision) -> TraceEntry:
    """A trace entry for one decision (before its real outcome is known)."""
    candidates = []
    for o in outcomes:
        p = o.prediction
        candidates.append(
            TraceCandidate(
                call=dict(o.candidate) if isinstance(o.candidate, dict) else {"value": o.candidate},
                status=o.status if p.get("simulated") is not False else "not simulated",
                source=p.get("source"),
                predicted_result=p.get("predicted_result"),
                success_probability=p.get("success_probability"),
                value=o.value,
                uncertainty=o.uncertainty,
                risk=o.risk,
                reason=o.reason,
            )
        )
    return TraceEntry(
        id=str(step),
        step=step,
        candidates=candidates,
        verdict=decision.verdict,
        chosen=decision.chosen,
        reason=decision.reason,
        uncertainty=decision.uncertainty,
        risk=decision.risk,
    )


def merge_trace(
    left: list[TraceEntry] | None, right: list[TraceEntry] | TraceEntry | None
) -> list[TraceEntry]:
    """State reducer: append new entries; an entry whose id is already there replaces it."""
    out = list(left or [])
    if right is None:
        return out
    for entry in [right] if isinstance(right, TraceEntry) else right:
        if isinstance(entry, dict):
            entry = TraceEntry.model_validate(entry)
        ids = [e.id for e in out]
        if entry.id in ids:
            out[ids.index(entry.id)] = entry
        else:
            out.append(entry)
    return out


def trace_rows(entries: Sequence[TraceEntry]) -> list[dict[str, Any]]:
    """One flat JSON-serializable row per candidate per decision (non-finite numbers -> None)."""
    rows = []
    for e in entries:
        for i, c in enumerate(e.candidates):
            chosen = e.chosen == i
            rows.append(
                {
                    "step": e.step,
                    "candidate": i,
                    "call": call_text(c.call, 200),
                    "status": c.status,
                    "source": c.source,
                    "predicted_result": c.predicted_result,
                    "success_probability": c.success_probability,
                    "value": c.value if math.isfinite(c.value) else None,
                    "uncertainty": c.uncertainty if math.isfinite(c.uncertainty) else None,
                    "risk": c.risk,
                    "chosen": chosen,
                    "verdict": e.verdict,
                    "reason": e.reason,
                    "human": e.human if chosen or e.chosen is None else None,
                    "real_result": e.real_result if chosen else None,
                    "real_success": e.real_success if chosen else None,
                    "exact_match": e.exact_match if chosen else None,
                }
            )
    return rows


_SOURCE_SHORT = {"simulated": "sim", "dry_run": "dry-run", "composite": "mixed"}

_VERDICT_STYLE = {"act": "green", "lcb": "green", "ask": "yellow", "refuse": "red"}


def trace_table(entries: Sequence[TraceEntry], *, title: str = "decision trace") -> Any:
    """A ``rich.table.Table``: one row per candidate, the chosen one marked, verdicts coloured.

    Every cell is a ``rich.text.Text``: calls, predictions, reasons and results come from
    models, tools and users, and a ``[/red]`` in them is data, never markup.
    """
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title), title_justify="left", show_lines=True)
    for name, kw in [
        ("#", {"justify": "right"}),
        ("candidate", {"overflow": "fold", "max_width": 40}),
        ("source", {}),
        ("imagined outcome", {"overflow": "fold", "max_width": 40}),
        ("p(ok)", {"justify": "right"}),
        ("value", {"justify": "right"}),
        ("unc.", {"justify": "right"}),
        ("risk", {"justify": "right"}),
        ("verdict", {}),
        ("reason / real outcome", {"overflow": "fold", "max_width": 50}),
    ]:
        table.add_column(name, **kw)

    def num(x: float | None) -> Text:
        return Text("-" if x is None or not math.isfinite(x) else f"{x:.2f}")

    for e in entries:
        style = _VERDICT_STYLE.get(e.verdict, "")
        for i, c in enumerate(e.candidates):
            chosen = e.chosen == i
            imagined = c.predicted_result or (c.reason if c.status != "ok" else "") or "-"
            if c.status != "ok":
                imagined = f"[{c.status}] {imagined}"
            verdict = Text()
            detail = ""
            if chosen or (e.chosen is None and i == 0):
                verdict = Text(e.verdict, style=style)
                if e.human:
                    verdict.append(f" -> {e.human}")
                detail = e.reason
                if e.real_result is not None and e.real_success is not None:
                    mark = "ok" if e.real_success else "failed"
                    if e.exact_match is not None:
                        mark += ", as simulated" if e.exact_match else ", NOT as simulated"
                    detail += f"\nreal ({mark}): {e.real_result[:160]}"
                elif e.real_result is not None:
                    detail += f"\nnot run: {e.real_result[:160]}"
            table.add_row(
                Text(f"{e.step}{'*' if chosen else ''}"),
                Text(call_text(c.call)),
                Text(_SOURCE_SHORT.get(c.source or "", c.source or "-")),
                Text(imagined),
                num(c.success_probability),
                num(c.value),
                num(c.uncertainty),
                num(c.risk),
                verdict,
                Text(detail),
            )
    return table


def plan_tree(search: dict[str, Any], *, title: str = "imagined plans") -> Any:
    """A ``rich.tree.Tree`` of a plan search (``PlanSearchResult.as_dict()``): each imagined
    plan under the plan it extends, with what it does, whether it loses data and whether it
    reaches the goal; the chosen plan is marked.  Every label is plain text."""
    from rich.text import Text
    from rich.tree import Tree

    nodes = search.get("nodes") or []
    best = (search.get("best") or {}).get("id")
    header = Text(
        f"{title}: {search.get('n_imagined', len(nodes))} imagined in "
        f"{search.get('seconds', 0):.1f}s, stopped: {search.get('stopped')}"
    )
    tree = Tree(header)
    branches: dict[int | None, Any] = {None: tree}
    for node in nodes:
        last = node["calls"][-1]
        args = json.dumps(last.get("args") or {}, sort_keys=True, default=str)
        marks = []
        if not node.get("success"):
            marks.append("fails" if node.get("status") == "ok" else "unknown")
        if node.get("lost"):
            marks.append("loses data")
        if node.get("goal"):
            marks.append("reaches the goal")
        label = Text(f"{last['name']}({args})")
        label.append(f"  [{', '.join(marks) or 'ok'}] {str(node.get('summary') or '')[:120]}")
        if node["id"] == best:
            label = Text("chosen: ", style="bold green") + label
        parent = branches.get(node.get("parent"), tree)
        branches[node["id"]] = parent.add(label)
    return tree
