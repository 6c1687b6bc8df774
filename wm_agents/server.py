"""Persistence behind the LangGraph server (``langgraph dev`` / Studio): the checkpointer and
Store factories that ``langgraph.json`` (SQLite) and ``langgraph.postgres.json`` (Postgres)
name under ``"checkpointer"`` / ``"store"``.

Why our own and not the server's: the server's checkpointer serializes with its own
serializer, which revives the library's state types (``Outcome``, ``Decision``, ``TraceEntry``)
only with a "will be blocked in a future version" warning; these use
:func:`~wm_agents.serialization.checkpoint_serializer`, which allows exactly those types.  And
both survive a server that is killed: a run waiting for review resumes after a restart, and the
Store keeps the tool intents that stop a tool from running twice
(:mod:`wm_agents.tools.intents`).

Settings (environment variables, read when the server starts):

* ``WM_AGENTS_SERVER_DB``: the SQLite file (default ``.langgraph_api/wm_agents.sqlite``, beside
  the dev server's own files, relative to the folder the server runs in); checkpoints and Store
  share it.
* ``WM_AGENTS_SANDBOX``: the tool agent's sandbox folder (``graphs/tool_agent.py``; default
  ``.langgraph_api/wm-agents-sandbox``).  One folder for every start of the server, like the
  runs that act on it: a run resumed after a restart finds the files its calls left.
* ``WM_AGENTS_POSTGRES_URI``: the Postgres connection string for ``langgraph.postgres.json``
  (e.g. ``postgresql://user@127.0.0.1:5432/db``); required there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from wm_agents.serialization import checkpoint_serializer
from wm_agents.tools.persistence import _pid_alive

__all__ = [
    "DEFAULT_SANDBOX",
    "DEFAULT_SQLITE_PATH",
    "postgres_checkpointer",
    "postgres_store",
    "postgres_uri",
    "process_scratch",
    "sandbox_path",
    "sqlite_checkpointer",
    "sqlite_path",
    "sqlite_store",
]

DEFAULT_SQLITE_PATH = ".langgraph_api/wm_agents.sqlite"
DEFAULT_SANDBOX = ".langgraph_api/wm-agents-sandbox"


def sqlite_path() -> Path:
    """The server's SQLite file (``WM_AGENTS_SERVER_DB``), its folder created."""
    path = Path(os.environ.get("WM_AGENTS_SERVER_DB") or DEFAULT_SQLITE_PATH)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def sandbox_path() -> Path:
    """The tool agent's sandbox (``WM_AGENTS_SANDBOX``), as an absolute path (created)."""
    path = Path(os.environ.get("WM_AGENTS_SANDBOX") or DEFAULT_SANDBOX).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def process_scratch(base: str | os.PathLike[str]) -> Path:
    """A scratch folder for this process, ``base/<pid>``, after removing those of processes
    that no longer exist (a server that was killed could not remove its own)."""
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    for old in base.iterdir():
        if old.name.isdigit() and int(old.name) != os.getpid() and not _pid_alive(int(old.name)):
            shutil.rmtree(old, ignore_errors=True)
    mine = base / str(os.getpid())
    mine.mkdir(exist_ok=True)
    return mine


def postgres_uri() -> str:
    """The Postgres connection string (``WM_AGENTS_POSTGRES_URI``).

    Raises:
        ValueError: it is not set.
    """
    uri = os.environ.get("WM_AGENTS_POSTGRES_URI", "").strip()
    if not uri:
        raise ValueError(
            "langgraph.postgres.json needs WM_AGENTS_POSTGRES_URI, e.g. "
            "postgresql://user:password@127.0.0.1:5432/dbname"
        )
    return uri


@asynccontextmanager
async def sqlite_checkpointer() -> AsyncIterator[Any]:
    """An ``AsyncSqliteSaver`` on :func:`sqlite_path`, with the library's serializer."""
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async with aiosqlite.connect(str(sqlite_path())) as conn:
        saver = AsyncSqliteSaver(conn, serde=checkpoint_serializer())
        await saver.setup()
        yield saver


@asynccontextmanager
async def sqlite_store() -> AsyncIterator[Any]:
    """An ``AsyncSqliteStore`` on :func:`sqlite_path` (experience, decisions, tool intents)."""
    from langgraph.store.sqlite.aio import AsyncSqliteStore

    async with AsyncSqliteStore.from_conn_string(str(sqlite_path())) as store:
        await store.setup()
        yield store


@asynccontextmanager
async def postgres_checkpointer() -> AsyncIterator[Any]:
    """An ``AsyncPostgresSaver`` on :func:`postgres_uri`, with the library's serializer."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    async with AsyncPostgresSaver.from_conn_string(
        postgres_uri(), serde=checkpoint_serializer()
    ) as saver:
        await saver.setup()
        yield saver


@asynccontextmanager
async def postgres_store() -> AsyncIterator[Any]:
    """An ``AsyncPostgresStore`` on :func:`postgres_uri`."""
    from langgraph.store.postgres.aio import AsyncPostgresStore

    async with AsyncPostgresStore.from_conn_string(postgres_uri()) as store:
        await store.setup()
        yield store
