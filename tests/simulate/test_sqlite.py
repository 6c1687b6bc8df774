"""SQLiteSimulator: rows and schema changes per table, reversibility, budgets, and a real
database that never changes."""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
from pathlib import Path

import pytest
from langchain_core.tools import BaseTool, StructuredTool

from wm_agents.core import Outcome
from wm_agents.simulate.sqlite import SQLiteSimulator


def make_db(path: Path, *, wal: bool = False) -> None:
    con = sqlite3.connect(path)
    if wal:
        con.execute("PRAGMA journal_mode=WAL")
    con.executescript(
        """
        CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, email TEXT);
        CREATE TABLE kv(k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID;
        CREATE TABLE notes(body TEXT);
        INSERT INTO users(name, email) VALUES ('ada', 'a@x'), ('bob', 'b@x'), ('cy', 'c@x');
        INSERT INTO kv VALUES ('alpha', x'00ff'), ('beta', 'two');
        INSERT INTO notes VALUES ('first'), ('second');
        """
    )
    con.commit()
    con.close()


def db_fingerprint(path: Path) -> tuple:
    files = [Path(str(path) + s) for s in ("", "-wal", "-shm", "-journal")]
    return tuple(
        (f.name, hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_mtime_ns)
        if f.exists()
        else (f.name, None)
        for f in files
    )


def make_sql_tools(db: str) -> list[BaseTool]:
    def run_sql(sql: str) -> str:
        """Run SQL statements on the database and commit."""
        con = sqlite3.connect(db)
        try:
            if sql.count(";") > 1:
                con.executescript(sql)
                return "ok"
            rows = con.execute(sql).fetchall()
            con.commit()
            return repr(rows)
        finally:
            con.close()

    def open_other(path: str) -> str:
        """Connect to another database file."""
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE IF NOT EXISTS pwned(x)")
        con.commit()
        return "opened"

    return [
        StructuredTool.from_function(f, metadata={"wm_simulate": "in_process"})
        for f in (run_sql, open_other)
    ]


def sql(statement: str) -> dict:
    return {"name": "run_sql", "args": {"sql": statement}}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"
    make_db(path)
    return path


def test_rows_per_table_and_schema_changes(db):
    before = db_fingerprint(db)
    with SQLiteSimulator(db, make_sql_tools) as sim:
        select, insert, update, delete, kv, schema, fail = sim.imagine(
            None,
            [
                sql("SELECT name FROM users ORDER BY id"),
                sql("INSERT INTO users(name, email) VALUES ('dee', 'd@x')"),
                sql("UPDATE users SET email = 'new@x' WHERE id = 2"),
                sql("DELETE FROM users WHERE id IN (1, 3)"),
                sql("UPDATE kv SET v = 'changed' WHERE k = 'alpha'"),
                sql(
                    "CREATE TABLE logs(line TEXT); CREATE INDEX users_name ON users(name); "
                    "DROP TABLE notes; ALTER TABLE users ADD COLUMN age INTEGER;"
                ),
                sql("SELEKT 1"),
            ],
        )
    assert db_fingerprint(db) == before
    for o in (select, insert, update, delete, kv, schema, fail):
        assert Outcome.model_validate_json(o.model_dump_json()) == o
    assert select.prediction["predicted_result"] == "[('ada',), ('bob',), ('cy',)]"
    assert select.prediction["side_effects"]["summary"] == "no changes"
    assert select.prediction["reversible"] is True and select.risk == 0.0

    t = insert.prediction["side_effects"]["tables"]["users"]
    assert (t["inserted"], t["updated"], t["deleted"], t["inserted_keys"]) == (1, 0, 0, [[4]])
    assert insert.prediction["reversible"] is True  # nothing removed

    t = update.prediction["side_effects"]["tables"]["users"]
    assert (t["updated"], t["updated_keys"]) == (1, [[2]])
    assert update.prediction["reversible"] is False  # bob's old email exists nowhere now
    assert update.prediction["side_effects"]["lost"] == {"users": 1}

    t = delete.prediction["side_effects"]["tables"]["users"]
    assert (t["deleted"], t["deleted_keys"], t["key"]) == (2, [[1], [3]], ["rowid"])
    assert delete.prediction["side_effects"]["totals"]["rows_deleted"] == 2
    assert delete.prediction["harm"] == 1.0 and delete.risk == 1.0

    t = kv.prediction["side_effects"]["tables"]["kv"]
    assert (t["key"], t["updated_keys"]) == (["k"], [["alpha"]])  # WITHOUT ROWID: by key

    s = schema.prediction["side_effects"]["schema"]
    assert s["tables_created"] == ["logs"] and s["tables_dropped"] == ["notes"]
    assert s["tables_altered"] == ["users"]
    assert s["other_created"] == [{"type": "index", "name": "users_name"}]
    assert schema.prediction["side_effects"]["tables"]["notes"]["deleted"] == 2
    assert schema.prediction["reversible"] is False

    assert fail.prediction["success"] is False and fail.status == "ok"
    assert fail.prediction["predicted_result"].startswith("OperationalError: near")


def test_copy_then_delete_is_reversible(db):
    with SQLiteSimulator(db, make_sql_tools) as sim:
        archived, gone = sim.imagine(
            None,
            [
                [
                    sql("CREATE TABLE old_users AS SELECT * FROM users WHERE id = 1"),
                    sql("DELETE FROM users WHERE id = 1"),
                ],
                [sql("DELETE FROM users WHERE id = 1")],
            ],
            horizon=2,
        )
    assert archived.prediction["reversible"] is True and archived.value == 0.5
    assert "table old_users created (1 rows)" in archived.prediction["side_effects"]["summary"]
    assert gone.prediction["reversible"] is False and gone.value == 0.0


def test_the_real_database_is_refused_and_unchanged(db, tmp_path):
    before = db_fingerprint(db)
    other = tmp_path / "other.db"
    with SQLiteSimulator(db, make_sql_tools) as sim:
        real, beside = sim.imagine(
            None,
            [
                {"name": "open_other", "args": {"path": str(db)}},
                {"name": "open_other", "args": {"path": str(other)}},
            ],
        )
    assert real.prediction["cause"] == "denied" and beside.prediction["cause"] == "denied"
    assert db_fingerprint(db) == before and not other.exists()


def test_budgets(db):
    with SQLiteSimulator(db, make_sql_tools, timeout_s=0.5, max_bytes=1 << 20) as sim:
        spin, big = sim.imagine(
            None,
            [
                sql(
                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                    "SELECT count(*) FROM c"
                ),
                sql("INSERT INTO notes VALUES (zeroblob(4000000))"),
            ],
        )
    assert spin.prediction["cause"] == "timeout"
    assert big.prediction["cause"] == "size_budget", big


@pytest.mark.parametrize("wal", [False, True])
def test_many_random_statements_leave_the_database_untouched(tmp_path, wal):
    db = tmp_path / "app.db"
    make_db(db, wal=wal)
    before = db_fingerprint(db)
    rng = random.Random(3)
    statements = [
        "INSERT INTO users(name) VALUES ('x')",
        "DELETE FROM users",
        "UPDATE users SET name = upper(name)",
        "DROP TABLE kv",
        "CREATE TABLE t(x)",
        "VACUUM",
        "PRAGMA journal_mode=DELETE",
        "BEGIN; DELETE FROM notes; COMMIT;",
        "SELECT * FROM users",
        "DELETE FROM nope",
    ]
    with SQLiteSimulator(db, make_sql_tools) as sim:
        for _ in range(6):
            plans = [[sql(rng.choice(statements)) for _ in range(rng.randint(1, 3))]] * 1
            plans = [
                [sql(rng.choice(statements)) for _ in range(rng.randint(1, 3))] for _ in range(8)
            ]
            outcomes = sim.imagine(None, plans, horizon=3)
            assert all(o.status == "ok" for o in outcomes), [o.reason for o in outcomes]
            assert db_fingerprint(db) == before
    assert not os.path.exists(sim._dir)
