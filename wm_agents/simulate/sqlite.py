"""``SQLiteSimulator``: imagine tool calls on a SQLite database by running them on a copy.

Why a copy and not a savepoint on the real database: a tool that runs ``COMMIT`` (or opens its
own connection, or runs DDL that commits implicitly) would commit the savepoint's outer
transaction *for real*, and a tool that hangs would hold the real database's write lock.  So
once per ``imagine`` call the database is copied with SQLite's online backup API (consistent
even while others write), and each candidate runs on its own file copy of that snapshot, in a
forked child under the write guard (which refuses writes outside the copy's folder, including
``sqlite3.connect`` to the real database) and the time and size budgets.

Afterwards the copy is compared with the snapshot table by table, in SQL (``EXCEPT`` in both
directions, keyed by ``rowid``, or by the primary key of ``WITHOUT ROWID`` tables)::

    side_effects = {
      "summary": "users: 1 inserted, 2 deleted; not reversible: 2 rows lost",
      "tables": {"users": {"key": ["rowid"], "inserted": 1, "updated": 0, "deleted": 2,
                           "inserted_keys": [[7]], "updated_keys": [], "deleted_keys": [[1], [2]]}},
      "schema": {"tables_created": [...], "tables_dropped": [...], "tables_altered": [...],
                 "other_created": [{"type", "name"}], "other_dropped": [...],
                 "other_changed": [...]},
      "lost": {"users": 2},                  # rows whose values exist nowhere afterwards
      "totals": {"rows_inserted", "rows_updated", "rows_deleted", "tables_created",
                 "tables_dropped", "rows_lost", "bytes_added"},
      "file": {"size_before", "size_after"},
    }

Reversible: every deleted row, every old version of an updated row and every row of a dropped
table still exists afterwards as a row with the same values (all declared columns, in order)
in some table of the same width (so "copy into an archive table, then delete" is reversible);
a dropped column with data is always a loss.  Limits: the search reads at most
``max_scan_rows`` rows (past that, unverified rows count as lost), and a ``VACUUM`` that
renumbers implicit rowids shows as rows updated.  Tools that also write files next to the
database belong to a :class:`~wm_agents.simulate.FolderSimulator` of their folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import tempfile
import urllib.parse
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

from typing_extensions import Unpack

from wm_agents.core import Outcome
from wm_agents.simulate.base import SimulatorBase, SimulatorOptions
from wm_agents.simulate.calls import Plan
from wm_agents.simulate.runplan import MakeTools, Workspace
from wm_agents.simulate.snapshot import force_rmtree

__all__ = ["SQLiteSimulator", "default_scratch", "diff_databases"]


def _q(name: str) -> str:
    """A quoted SQL identifier (names come from the database: data, never SQL)."""
    return '"' + name.replace('"', '""') + '"'


def _read_uri(path: str) -> str:
    """A URI that reads ``path`` without creating files beside it.

    A read-only connection to a WAL database creates ``-wal``/``-shm`` files when none exist
    (no other connection is open).  Then the main file holds everything, so it is opened
    ``immutable`` (no locks, no side files).  When they exist, another connection is live and
    a normal read-only connection joins it (readers only update read marks in ``-shm``, the
    shared-memory index, never the data).
    """
    with open(path, "rb") as f:
        header = f.read(100)
    wal = len(header) >= 20 and header[18] == 2
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
    if wal and not os.path.exists(path + "-wal"):
        uri += "&immutable=1"
    return uri


def _json_value(v: Any) -> Any:
    if isinstance(v, bytes):
        return f"<{len(v)} bytes>"
    return v


def _schema(con: sqlite3.Connection, db: str) -> dict[tuple[str, str], str]:
    rows = con.execute(
        f"SELECT type, name, sql FROM {db}.sqlite_master WHERE name NOT LIKE 'sqlite_%'"
    ).fetchall()
    return {(t, n): s or "" for t, n, s in rows}


def _columns(con: sqlite3.Connection, db: str, table: str) -> list[tuple[str, int]]:
    """``[(name, pk position)]`` of a table (``pk`` 0 for non-key columns)."""
    rows = con.execute(f"PRAGMA {db}.table_info({_q(table)})").fetchall()
    return [(r[1], r[5]) for r in rows]


def _has_rowid(con: sqlite3.Connection, db: str, table: str) -> bool:
    try:
        con.execute(f"SELECT _rowid_ FROM {db}.{_q(table)} LIMIT 0")
        return True
    except sqlite3.OperationalError:
        return False


def _row_digest(row: Sequence[Any]) -> str:
    return hashlib.sha256(repr(tuple(row)).encode()).hexdigest()


class _Diff:
    def __init__(self, max_listed: int, max_scan_rows: int) -> None:
        self.max_listed = max_listed
        self.max_scan_rows = max_scan_rows
        self.tables: dict[str, dict[str, Any]] = {}
        self.lost_rows: dict[str, list[tuple[Any, ...]]] = {}
        self.lost_unverifiable: dict[str, int] = {}
        self.lost_columns: list[str] = []


def _table_rows(con: sqlite3.Connection, db: str, table: str) -> Iterator[tuple[Any, ...]]:
    cols = [c for c, _ in _columns(con, db, table)]
    sql = f"SELECT {', '.join(_q(c) for c in cols)} FROM {db}.{_q(table)}"
    yield from con.execute(sql)


def _diff_table(con: sqlite3.Connection, table: str, d: _Diff) -> None:
    before = _columns(con, "base", table)
    after = _columns(con, "main", table)
    names_after = {c for c, _ in after}
    common = [c for c, _ in before if c in names_after]
    if _has_rowid(con, "base", table) and _has_rowid(con, "main", table):
        key_sql, key_names = ["_rowid_"], ["rowid"]
    else:
        pk = sorted((p, c) for c, p in before if p > 0 and c in names_after)
        key_sql = [_q(c) for _, c in pk] or [_q(c) for c in common]
        key_names = [c for _, c in pk] or common
    cols_sql = ", ".join([*key_sql, *(_q(c) for c in common)])
    nk = len(key_sql)

    def except_rows(a: str, b: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        sql = (
            f"SELECT {cols_sql} FROM {a}.{_q(table)} EXCEPT SELECT {cols_sql} FROM {b}.{_q(table)}"
        )
        return {tuple(r[:nk]): tuple(r[nk:]) for r in con.execute(sql)}

    new = except_rows("main", "base")
    old = except_rows("base", "main")
    inserted = [k for k in new if k not in old]
    deleted = [k for k in old if k not in new]
    updated = [k for k in new if k in old]
    entry: dict[str, Any] = {
        "key": key_names,
        "inserted": len(inserted),
        "updated": len(updated),
        "deleted": len(deleted),
    }
    for name, keys in (("inserted", inserted), ("updated", updated), ("deleted", deleted)):
        entry[f"{name}_keys"] = [[_json_value(v) for v in k] for k in sorted(keys, key=repr)][
            : d.max_listed
        ]
    dropped_cols = [c for c, _ in before if c not in names_after]
    if dropped_cols:
        entry["columns_dropped"] = dropped_cols
        n = con.execute(f"SELECT count(*) FROM base.{_q(table)}").fetchone()[0]
        if n:
            d.lost_columns.append(table)
    if len(before) == len(common):
        # Whole old rows (every declared column) are searched for after the call.
        d.lost_rows[table] = [old[k] for k in deleted + updated]
    elif deleted or updated:
        d.lost_unverifiable[table] = len(deleted) + len(updated)
    if inserted or updated or deleted or dropped_cols or len(after) != len(common):
        d.tables[table] = entry


def _search_rows(con: sqlite3.Connection, d: _Diff) -> dict[str, int]:
    """Rows of ``d.lost_rows`` not found again after the call, per table."""
    wanted: dict[int, dict[str, list[str]]] = {}  # width -> digest -> tables
    for table, rows in d.lost_rows.items():
        for row in rows:
            wanted.setdefault(len(row), {}).setdefault(_row_digest(row), []).append(table)
    lost: dict[str, int] = dict(d.lost_unverifiable)
    if not wanted:
        return lost
    found: set[str] = set()
    budget = d.max_scan_rows
    tables = [n for (t, n) in _schema(con, "main") if t == "table"]
    for table in tables:
        width = len(_columns(con, "main", table))
        digests = wanted.get(width)
        if not digests or budget <= 0:
            continue
        for row in _table_rows(con, "main", table):
            budget -= 1
            h = _row_digest(row)
            if h in digests:
                found.add(h)
            if budget <= 0:
                break
    for digests in wanted.values():
        for h, tables_of in digests.items():
            if h not in found:
                for table in tables_of:
                    lost[table] = lost.get(table, 0) + 1
    return lost


def diff_databases(
    base: str, work: str, *, max_listed: int = 100, max_scan_rows: int = 1_000_000
) -> tuple[dict[str, Any], bool]:
    """Compare database ``work`` (after a call) with ``base`` (before): the side-effects JSON
    (see the module docstring) and whether every removed row is still recoverable."""
    con = sqlite3.connect(work)  # both files are the simulator's own copies
    try:
        con.execute("ATTACH DATABASE ? AS base", (base,))
        s_before, s_after = _schema(con, "base"), _schema(con, "main")
        tables_before = {n for (t, n) in s_before if t == "table"}
        tables_after = {n for (t, n) in s_after if t == "table"}
        d = _Diff(max_listed, max_scan_rows)
        schema: dict[str, list[Any]] = {
            "tables_created": sorted(tables_after - tables_before),
            "tables_dropped": sorted(tables_before - tables_after),
            "tables_altered": sorted(
                n
                for n in tables_before & tables_after
                if s_before[("table", n)] != s_after[("table", n)]
            ),
            "other_created": [
                {"type": t, "name": n}
                for (t, n) in sorted(s_after.keys() - s_before.keys())
                if t != "table"
            ],
            "other_dropped": [
                {"type": t, "name": n}
                for (t, n) in sorted(s_before.keys() - s_after.keys())
                if t != "table"
            ],
            "other_changed": [
                {"type": t, "name": n}
                for (t, n) in sorted(s_before.keys() & s_after.keys())
                if t != "table" and s_before[(t, n)] != s_after[(t, n)]
            ],
        }
        for table in sorted(tables_before & tables_after):
            _diff_table(con, table, d)
        rows_created = {}
        for table in schema["tables_created"]:
            n = con.execute(f"SELECT count(*) FROM main.{_q(table)}").fetchone()[0]
            rows_created[table] = n
            d.tables[table] = {
                "key": [],
                "inserted": n,
                "updated": 0,
                "deleted": 0,
                "created": True,
            }
        for table in schema["tables_dropped"]:
            rows = list(_table_rows(con, "base", table))
            d.tables[table] = {
                "key": [],
                "inserted": 0,
                "updated": 0,
                "deleted": len(rows),
                "dropped": True,
            }
            if rows:
                d.lost_rows[table] = rows
        lost = _search_rows(con, d)
        for table in d.lost_columns:
            lost.setdefault(table, 0)
    finally:
        con.close()
    totals = {
        "rows_inserted": sum(t["inserted"] for t in d.tables.values()),
        "rows_updated": sum(t["updated"] for t in d.tables.values()),
        "rows_deleted": sum(t["deleted"] for t in d.tables.values()),
        "tables_created": len(schema["tables_created"]),
        "tables_dropped": len(schema["tables_dropped"]),
        "rows_lost": sum(lost.values()),
    }
    reversible = not lost
    lost_text = (
        "; not reversible: "
        + ", ".join(
            f"{t}: {n} row(s) lost" if n else f"{t}: a column with data dropped"
            for t, n in sorted(lost.items())
        )
        if lost
        else ""
    )
    parts = []
    for name, t in sorted(d.tables.items()):
        if t.get("created"):
            parts.append(f"table {name} created ({t['inserted']} rows)")
        elif t.get("dropped"):
            parts.append(f"table {name} dropped ({t['deleted']} rows)")
        else:
            counts = [f"{t[k]} {k}" for k in ("inserted", "updated", "deleted") if t[k]]
            if t.get("columns_dropped"):
                counts.append(f"columns dropped: {', '.join(t['columns_dropped'])}")
            parts.append(f"{name}: {', '.join(counts) or 'schema changed'}")
    for key in ("other_created", "other_dropped", "other_changed"):
        for o in schema[key]:
            parts.append(f"{o['type']} {o['name']} {key.split('_')[1]}")
    summary = ("; ".join(parts) or "no changes") + (lost_text or ("; reversible" if parts else ""))
    return (
        {
            "summary": summary,
            "tables": d.tables,
            "schema": schema,
            "lost": lost,
            "totals": totals,
        },
        reversible,
    )


def default_scratch(db_size: int) -> str:
    """Where database copies live by default: ``/dev/shm`` (memory) when it exists and the
    database takes under a quarter of its free space, else the system temp folder.  Memory
    makes each candidate's commit cheap: SQLite syncs its journal and file to disk on every
    commit, which on a disk costs more than the rest of a small simulated call."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        st = os.statvfs(shm)
        if 4 * db_size < st.f_bavail * st.f_frsize:
            return shm
    return tempfile.gettempdir()


class SQLiteSimulator(SimulatorBase):
    """A :class:`~wm_agents.core.WorldModel` that runs tool calls on a copy of a SQLite
    database (see the module docstring).

    Args:
        db_path: the real database file.
        make_tools: ``make_tools(db_path) -> tools`` bound to a database path (called with
            the copy's path, in the simulating child).
        scratch_dir: where copies live (default: :func:`default_scratch`).
        max_scan_rows: rows read at most by the reversibility search.
        **options: see :class:`~wm_agents.simulate.base.SimulatorBase`.

    Raises:
        ValueError: ``db_path`` is not an existing file.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        make_tools: MakeTools,
        *,
        scratch_dir: str | os.PathLike[str] | None = None,
        max_scan_rows: int = 1_000_000,
        **options: Unpack[SimulatorOptions],
    ) -> None:
        super().__init__(make_tools, **options)
        if not os.path.isfile(db_path):
            raise ValueError(f"db_path must be an existing SQLite file, got {str(db_path)!r}")
        self.db_path = os.path.realpath(db_path)
        self.given_path = os.path.abspath(db_path)
        self.max_scan_rows = max_scan_rows
        scratch = (
            os.fspath(scratch_dir)
            if scratch_dir is not None
            else default_scratch(os.path.getsize(self.db_path))
        )
        self._dir = os.path.realpath(tempfile.mkdtemp(prefix="wm-sim-sqlite-", dir=scratch))
        self._finalizer = weakref.finalize(self, force_rmtree, self._dir)
        self._base = os.path.join(self._dir, "snapshot.db")

    def close(self) -> None:
        """Delete the snapshot and copies. Idempotent (a later ``imagine`` makes them
        again)."""
        force_rmtree(self._dir)

    def __enter__(self) -> SQLiteSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _begin(self) -> None:
        # One consistent snapshot per imagine call: the backup API copies page by page
        # inside a read transaction of the real database (it never writes it).
        if not os.path.isdir(self._dir):
            os.makedirs(self._dir)
        for suffix in ("", "-wal", "-shm", "-journal"):
            if os.path.exists(self._base + suffix):
                os.unlink(self._base + suffix)
        src = sqlite3.connect(_read_uri(self.db_path), uri=True)
        dst = sqlite3.connect(self._base)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file to copy
        finally:
            dst.close()
            src.close()

    def _simulate(self, plan: Plan, candidate: Any, *, private: bool) -> Outcome:
        del private  # the copy is always private
        work_dir = tempfile.mkdtemp(prefix="run-", dir=self._dir)
        tmp = tempfile.mkdtemp(prefix="tmp-", dir=self._dir)
        try:
            work = os.path.join(work_dir, os.path.basename(self.db_path))
            shutil.copyfile(self._base, work)
            ws = Workspace(
                tools_path=work,
                roots=[work_dir, tmp],
                private=True,
                path_map=[(work, self.given_path), (work_dir, os.path.dirname(self.given_path))],
            )
            run = self._run_plan(plan, ws, watch=work_dir)
            early = self._early_outcome(plan, candidate, run)
            if early is not None:
                return early
            side_effects, reversible = diff_databases(
                self._base, work, max_listed=self.max_listed, max_scan_rows=self.max_scan_rows
            )
            size_before = os.path.getsize(self._base)
            size_after = sum(
                os.path.getsize(work + s) for s in ("", "-wal") if os.path.exists(work + s)
            )
            side_effects["file"] = {"size_before": size_before, "size_after": size_after}
            added = max(0, size_after - size_before)
            side_effects["totals"]["bytes_added"] = added
            return self._finish(
                plan,
                candidate,
                run,
                side_effects=side_effects,
                reversible=reversible,
                bytes_added=added,
                extra={
                    "strategy": "sqlite_backup",
                    "child_ms": round(1000 * run.child.elapsed_s, 3) if run.child else None,
                },
            )
        finally:
            force_rmtree(work_dir)
            force_rmtree(tmp)
