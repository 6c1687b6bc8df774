"""Persistence for tool-agent runs: SQLite checkpoints (resume after ``ask`` or a crash) and a
SQLite Store (experience, and every decision with its real outcome, for inspection/replay)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

__all__ = ["STATE_TYPES", "open_sqlite", "tool_agent_serializer"]

STATE_TYPES: tuple[tuple[str, str], ...] = (
    ("wm_agents.core", "Outcome"),
    ("wm_agents.core", "Decision"),
    ("wm_agents.tools.trace", "TraceEntry"),
    ("wm_agents.tools.trace", "TraceCandidate"),
)
"""The library's own types that live in checkpointed state."""


def tool_agent_serializer() -> JsonPlusSerializer:
    """A checkpoint serializer that allows exactly the library's state types (besides
    LangGraph's safe built-ins), so checkpoints load without "unregistered type" warnings and
    keep working when ``LANGGRAPH_STRICT_MSGPACK`` is on."""
    return JsonPlusSerializer(allowed_msgpack_modules=list(STATE_TYPES))


def open_sqlite(path: str | Path) -> tuple[Any, Any]:
    """``(SqliteSaver, SqliteStore)`` on one SQLite file (created if missing), each on its own
    connection (usable from LangGraph's worker threads).  Close them with ``.conn.close()``."""
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.store.sqlite import SqliteStore

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    saver_conn = sqlite3.connect(str(path), check_same_thread=False)
    store_conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    saver = SqliteSaver(saver_conn, serde=tool_agent_serializer())
    store = SqliteStore(store_conn)
    store.setup()
    return saver, store
