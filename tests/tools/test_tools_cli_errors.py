"""``wm-agents tools`` as a user runs it (subprocesses): a damaged or wrong ``--db`` is one
``error:`` line and exit 2 with the file untouched; a run driven by another live process is
refused with its PID (a real second process holds the lease) and taken over once that process
is gone; credentials in ``OPENAI_BASE_URL`` never reach the output."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

DEAD_URL = "http://alice:s3cret@127.0.0.1:9/v1?token=t0k3n"
"""An LLM nobody serves (port 9, discard): every prediction fails fast, so outcomes are
unknown and the gate asks; with credentials that must not be printed."""


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env |= {"OPENAI_BASE_URL": DEAD_URL, "OPENAI_API_KEY": "sk-test"}
    return subprocess.run(
        [sys.executable, "-m", "wm_agents", "tools", "--proposer", "plan", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def assert_clean_error(proc: subprocess.CompletedProcess[str], code: int, words: str) -> None:
    assert proc.returncode == code, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and words in errors[0], proc.stderr[-2000:]


def sqlite_file(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", [(f"row {i} " * 20,) for i in range(2000)])
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("kind", ["folder", "text", "truncated", "corrupt"])
def test_bad_db_is_one_error_line_and_the_file_is_untouched(tmp_path, kind):
    db = tmp_path / "runs.sqlite"
    if kind == "folder":
        db.mkdir()
        words = "is a folder"
    elif kind == "text":
        db.write_text("these are my notes, not a database\n" * 10)
        words = "not a SQLite database"
    else:
        data = sqlite_file(db).read_bytes()
        if kind == "truncated":
            data = data[: 4096 + 100]
        else:
            data = data[:8192] + b"\xff" * 4096 + data[12288:]
        db.write_bytes(data)
        words = "damaged SQLite database"
    before = None if db.is_dir() else db.read_bytes()
    proc = cli("--db", str(db), "--json")
    assert_clean_error(proc, 2, words)
    assert proc.stdout == ""
    if before is not None:
        assert db.read_bytes() == before


def test_unwritable_db_location_is_one_error_line(tmp_path):
    proc = cli("--db", "/proc/wm-agents-test/runs.sqlite")
    assert_clean_error(proc, 2, "run database")


def test_credentials_in_the_llm_url_are_never_printed(tmp_path):
    proc = cli("--db", str(tmp_path / "r.sqlite"), "--json", "--max-steps", "1")
    assert proc.returncode in (0, 3), proc.stderr[-2000:]
    for secret in ("s3cret", "alice", "t0k3n"):
        assert secret not in proc.stdout and secret not in proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["model"] == "default at http://***@127.0.0.1:9/v1?token=***"


def test_a_run_in_use_by_another_process_is_refused_with_its_pid(tmp_path):
    db = tmp_path / "r.sqlite"
    first = cli("--db", str(db), "--json")
    assert first.returncode == 3, first.stderr[-2000:]  # waits for a person at the wipe
    run_id = json.loads(first.stdout.strip().splitlines()[-1])["thread_id"]

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from wm_agents.tools.persistence import RunLease\n"
            f"lease = RunLease({str(db)!r}, {run_id!r}).acquire()\n"
            "print('held', flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = cli("--db", str(db), "--resume", run_id, "--on-ask", "approve")
        assert_clean_error(busy, 4, f"in use by PID {holder.pid}")
        # Nothing ran: the run still waits at the same ask.
        check = cli("--db", str(db), "--resume", run_id, "--json")
        assert check.returncode == 4
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    # The holder is gone (killed, so it never released): the lease is taken over at once.
    t0 = time.monotonic()
    resumed = cli("--db", str(db), "--resume", run_id, "--on-ask", "reject", "--json")
    assert resumed.returncode in (0, 3), resumed.stderr[-2000:]
    assert time.monotonic() - t0 < 60
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["humans"][-1] == "reject"
