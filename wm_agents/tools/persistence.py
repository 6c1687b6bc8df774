"""Persistence for tool-agent runs: SQLite checkpoints (resume after ``ask`` or a crash) and a
SQLite Store (experience, and every decision with its real outcome, for inspection/replay)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from wm_agents.serialization import checkpoint_serializer

__all__ = ["open_sqlite"]


def open_sqlite(path: str | Path) -> tuple[Any, Any]:
    """``(SqliteSaver, SqliteStore)`` on one SQLite file (created if missing), each on its own
    connection (usable from LangGraph's worker threads).  Close them with ``.conn.close()``."""
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.store.sqlite import SqliteStore

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    saver_conn = sqlite3.connect(str(path), check_same_thread=False)
    store_conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    saver = SqliteSaver(saver_conn, serde=checkpoint_serializer())
    store = SqliteStore(store_conn)
    store.setup()
    return saver, store
