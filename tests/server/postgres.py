"""A throwaway PostgreSQL server for the tests: ``initdb`` into a temp folder, ``postgres`` on a
free port on 127.0.0.1, stopped by its PID and the folder removed."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path


def postgres_bin() -> Path | None:
    """The folder holding ``initdb`` and ``postgres``: on PATH, else Debian's
    ``/usr/lib/postgresql/<version>/bin`` (the newest)."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(versions[-1]).parent if versions else None


class LocalPostgres:
    """``initdb`` + ``postgres`` as an unprivileged user when the tests run as root (PostgreSQL
    refuses to run as root)."""

    def __init__(self, bindir: Path, port: int) -> None:
        self.bindir, self.port = bindir, port
        # Not under pytest's tmp_path: its parents are private to root, and the server may
        # run as another user who must reach its data folder.
        self.dir = Path(tempfile.mkdtemp(prefix="wm-agents-test-pg-"))
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres" if _user_exists("postgres") else "nobody"
            entry = pwd.getpwnam(self.user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self.proc: subprocess.Popen | None = None
        self.uri = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def start(self, wait_s: float = 60.0) -> str:
        data = self.dir / "data"
        log = self.dir / "initdb.log"
        with log.open("wb") as out:
            subprocess.run(
                [str(self.bindir / "initdb"), "-D", str(data), "-U", "postgres",
                 "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"],
                check=True, stdout=out, stderr=subprocess.STDOUT, user=self.user,
            )  # fmt: skip
        with (self.dir / "postgres.log").open("wb") as out:
            self.proc = subprocess.Popen(
                [str(self.bindir / "postgres"), "-D", str(data), "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1", "-k", str(self.dir), "-c", "fsync=off"],
                stdout=out, stderr=subprocess.STDOUT, user=self.user, start_new_session=True,
            )  # fmt: skip
        import psycopg

        deadline = time.monotonic() + wait_s
        while self.proc.poll() is None and time.monotonic() < deadline:
            try:
                psycopg.connect(self.uri, connect_timeout=2).close()
                return self.uri
            except psycopg.OperationalError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"postgres did not start: {(self.dir / 'postgres.log').read_text()}")

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster's PID), then remove the data folder."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
