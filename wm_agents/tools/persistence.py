"""Persistence for tool-agent runs: SQLite checkpoints (resume after ``ask`` or a crash), a
SQLite Store (experience, intents, and every decision with its real outcome), and a lease so
that one process at a time drives a run.

Why a lease: two processes resuming the same run would both execute its pending call (the
checkpoint says "approved, run it" to each).  :class:`RunLease` is a row per run in the same
SQLite file, taken in an ``IMMEDIATE`` transaction (so two takers serialize), renewed by a
heartbeat while the run is driven, and released at the end.  A process that is killed cannot
release it: the lease then expires after ``ttl_s`` (or at once, when its holder was a process
on this host that no longer exists), so a dead run never blocks forever.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from wm_agents.serialization import checkpoint_serializer

__all__ = ["RunDatabaseError", "RunInUseError", "RunLease", "check_run_database", "open_sqlite"]

logger = logging.getLogger(__name__)

_SQLITE_MAGIC = b"SQLite format 3\x00"


class RunDatabaseError(ValueError):
    """The run database cannot be used (a folder, not SQLite, truncated or corrupt)."""


class RunInUseError(RuntimeError):
    """Another live process holds the run's lease."""

    def __init__(self, thread_id: str, pid: int, host: str, expires_in_s: float) -> None:
        self.thread_id, self.pid, self.host = thread_id, pid, host
        where = "" if host == socket.gethostname() else f" on host {host}"
        super().__init__(
            f"run {thread_id} is in use by PID {pid}{where} (its lease expires in "
            f"{max(0.0, expires_in_s):.0f}s unless renewed); wait for it to finish, or stop it"
        )


def check_run_database(path: str | Path) -> Path:
    """Check that ``path`` can hold runs: a missing file (created later), an empty file, or
    an intact SQLite database.  Returns the path.

    Raises:
        RunDatabaseError: a folder, a file that is not SQLite, or a truncated / corrupt one.
    """
    path = Path(path)
    if path.is_dir():
        raise RunDatabaseError(f"--db {path} is a folder; give a file path (e.g. {path}/runs.db)")
    if not path.exists() or path.stat().st_size == 0:
        return path
    try:
        with path.open("rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise RunDatabaseError(f"cannot read the run database {path}: {exc}") from exc
    if head != _SQLITE_MAGIC:
        raise RunDatabaseError(f"{path} is not a SQLite database (wrong header)")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise RunDatabaseError(f"{path} is a damaged SQLite database: {exc}") from exc
    if rows != [("ok",)]:
        problems = "; ".join(str(r[0]) for r in rows[:3])
        raise RunDatabaseError(f"{path} is a damaged SQLite database: {problems}")
    return path


def open_sqlite(path: str | Path) -> tuple[Any, Any]:
    """``(SqliteSaver, SqliteStore)`` on one SQLite file (created if missing), each on its own
    connection (usable from LangGraph's worker threads).  Close them with ``.conn.close()``.

    Raises:
        RunDatabaseError: the file is not a usable SQLite database (see
            :func:`check_run_database`).
    """
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.store.sqlite import SqliteStore

    path = check_run_database(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        saver_conn = sqlite3.connect(str(path), check_same_thread=False)
        store_conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise RunDatabaseError(f"cannot open the run database {path}: {exc}") from exc
    try:
        saver = SqliteSaver(saver_conn, serde=checkpoint_serializer())
        saver.setup()
        store = SqliteStore(store_conn)
        store.setup()
    except sqlite3.DatabaseError as exc:
        saver_conn.close()
        store_conn.close()
        raise RunDatabaseError(f"{path} cannot hold runs: {exc}") from exc
    return saver, store


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class RunLease:
    """One process at a time per run id, through a row in the run's SQLite file.

    Use as a context manager around everything that drives the run (``with RunLease(db,
    thread_id): ...``).  Entering raises :class:`RunInUseError` when another live process
    holds it.

    Args:
        path: the run database (the file of :func:`open_sqlite`).
        thread_id: the run id.
        ttl_s: how long a lease lives without renewal; the holder renews it every
            ``ttl_s / 3`` from a daemon thread.
    """

    _TABLE = "wm_agents_run_leases"

    def __init__(self, path: str | Path, thread_id: str, *, ttl_s: float = 30.0) -> None:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s}")
        self.path = Path(path)
        self.thread_id = thread_id
        self.ttl_s = float(ttl_s)
        self.token = uuid.uuid4().hex
        self.host = socket.gethostname()
        self.lost = False
        """True when the heartbeat found the lease taken over (this process stalled past
        its expiry)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self._TABLE} (thread_id TEXT PRIMARY KEY, "
            "pid INTEGER NOT NULL, host TEXT NOT NULL, token TEXT NOT NULL, expires REAL NOT NULL)"
        )
        return conn

    def acquire(self) -> RunLease:
        """Take the lease (or raise :class:`RunInUseError`) and start the heartbeat."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(
                f"SELECT pid, host, token, expires FROM {self._TABLE} WHERE thread_id = ?",
                (self.thread_id,),
            ).fetchone()
            now = time.time()
            if row is not None and row[2] != self.token:
                pid, host, _, expires = row
                dead = host == self.host and not _pid_alive(int(pid))
                if expires > now and not dead:
                    conn.execute("ROLLBACK")
                    raise RunInUseError(self.thread_id, int(pid), str(host), expires - now)
                logger.warning(
                    "taking over run %s from PID %s (%s)",
                    self.thread_id,
                    pid,
                    "process gone" if dead else "lease expired",
                )
            conn.execute(
                f"INSERT OR REPLACE INTO {self._TABLE} VALUES (?, ?, ?, ?, ?)",
                (self.thread_id, os.getpid(), self.host, self.token, now + self.ttl_s),
            )
            conn.execute("COMMIT")
        finally:
            conn.close()
        self._stop.clear()
        self._thread = threading.Thread(target=self._heartbeat, daemon=True, name="run-lease")
        self._thread.start()
        return self

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                conn = self._connect()
                try:
                    cur = conn.execute(
                        f"UPDATE {self._TABLE} SET expires = ? WHERE thread_id = ? AND token = ?",
                        (time.time() + self.ttl_s, self.thread_id, self.token),
                    )
                    if cur.rowcount == 0:
                        self.lost = True
                        logger.error("the lease of run %s was taken over", self.thread_id)
                        return
                finally:
                    conn.close()
            except sqlite3.Error:
                logger.exception("renewing the lease of run %s failed", self.thread_id)

    def release(self) -> None:
        """Stop the heartbeat and give the lease back (only if this process still holds it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with contextlib.suppress(sqlite3.Error):
            conn = self._connect()
            try:
                conn.execute(
                    f"DELETE FROM {self._TABLE} WHERE thread_id = ? AND token = ?",
                    (self.thread_id, self.token),
                )
            finally:
                conn.close()

    def __enter__(self) -> RunLease:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
