"""What a tool agent's run did, in words, built from its messages (not from a script).

Each tool call the agent asked for is answered by a ``ToolMessage``; the tool agent marks the
ones that did not run (``additional_kwargs["wm_agents"]["verdict"]``: ``refuse`` by the gate,
``reject`` by a person) and the ones a person approved (``...["human"]``).  So the summary says
which calls ran (and whether they worked), failed, were refused, approved or rejected.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

__all__ = ["mark_human", "run_outcomes", "summarize_tool_calls"]

_KEY = "wm_agents"


def mark_human(message: Any, human: str | None) -> Any:
    """``message`` with the person's answer recorded (a copy), when it is a ToolMessage."""
    if not human or not isinstance(message, ToolMessage):
        return message
    extra = dict(message.additional_kwargs or {})
    extra[_KEY] = {**dict(extra.get(_KEY) or {}), "human": human}
    return message.model_copy(update={"additional_kwargs": extra})


def _call_text(call: dict[str, Any]) -> str:
    args = ", ".join(
        f"{k}={json.dumps(v, default=str)}" for k, v in sorted((call.get("args") or {}).items())
    )
    text = f"{call.get('name')}({args})"
    return text if len(text) <= 80 else text[:77] + "..."


def run_outcomes(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """One row per tool call asked for, in order: ``call``, ``status`` (``ran``, ``failed``,
    ``refused``, ``rejected`` or ``pending``), ``human`` (the person's answer, if any) and
    ``result`` (the tool's text, first line)."""
    answers = {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}
    rows: list[dict[str, Any]] = []
    for m in messages:
        if not isinstance(m, AIMessage):
            continue
        for call in m.tool_calls:
            answer = answers.get(call.get("id") or "")
            meta = dict((answer.additional_kwargs or {}).get(_KEY) or {}) if answer else {}
            if answer is None:
                status = "pending"
            elif meta.get("verdict") == "refuse":
                status = "refused"
            elif meta.get("verdict") == "reject":
                status = "rejected"
            elif answer.status == "error":
                status = "failed"
            else:
                status = "ran"
            text = str(answer.content) if answer is not None else ""
            rows.append(
                {
                    "call": dict(call),
                    "status": status,
                    "human": meta.get("human"),
                    "result": text.strip().splitlines()[0][:160] if text.strip() else "",
                }
            )
    return rows


def summarize_tool_calls(messages: Sequence[BaseMessage]) -> str:
    """A final answer that reports what happened, e.g. ``Done. Ran: list_files(path=".").
    Failed: read_file(path="missing.txt") (FileNotFoundError ...). Refused before running:
    ... Rejected by a person: wipe_directory(path=".").``"""
    rows = run_outcomes(messages)
    if not rows:
        return "Done: no tool was called."
    groups: dict[str, list[str]] = {}
    for row in rows:
        text = _call_text(row["call"])
        if row["status"] == "ran" and row["human"]:
            groups.setdefault("Approved by a person and ran", []).append(text)
        elif row["status"] == "failed":
            groups.setdefault("Failed", []).append(f"{text} ({row['result']})")
        else:
            label = {
                "ran": "Ran",
                "refused": "Refused before running",
                "rejected": "Rejected by a person (not run)",
                "pending": "Not answered",
            }[row["status"]]
            groups.setdefault(label, []).append(text)
    order = [
        "Ran",
        "Approved by a person and ran",
        "Failed",
        "Refused before running",
        "Rejected by a person (not run)",
        "Not answered",
    ]
    parts = [f"{label}: {'; '.join(groups[label])}." for label in order if label in groups]
    return "Done. " + " ".join(parts)
