"""Fixtures for the tool-agent tests: tools that count their real executions.  Scripted
predictors and chat models (no network) are in :mod:`wm_agents.testing`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from langchain_core.tools import BaseTool, StructuredTool


@pytest.fixture
def counting_tools() -> tuple[list[BaseTool], Counter[str]]:
    """``read_note`` (read-only), ``send_mail`` (no hints), ``drop_table`` (destructive),
    ``ping`` (never simulated); ``runs`` counts real executions by tool name."""
    runs: Counter[str] = Counter()

    def read_note(name: str) -> str:
        """Read a note by name."""
        runs["read_note"] += 1
        if name == "missing":
            raise FileNotFoundError(f"no note {name!r}")
        return f"note {name}: buy milk"

    def send_mail(to: str, body: str) -> str:
        """Send an e-mail."""
        runs["send_mail"] += 1
        return f"sent to {to}"

    def drop_table(table: str) -> str:
        """Drop a database table (cannot be undone)."""
        runs["drop_table"] += 1
        return f"dropped {table}"

    def ping() -> str:
        """Ping the server."""
        runs["ping"] += 1
        return "pong"

    hints: dict[str, dict[str, bool]] = {
        "read_note": {"read_only": True, "idempotent": True},
        "drop_table": {"destructive": True},
        "ping": {"never_simulate": True, "read_only": True},
    }
    tools: list[BaseTool] = []
    fn: Callable[..., str]
    for fn in (read_note, send_mail, drop_table, ping):
        meta = {"wm_hints": hints[fn.__name__]} if fn.__name__ in hints else None
        tools.append(StructuredTool.from_function(fn, metadata=meta))
    return tools, runs
