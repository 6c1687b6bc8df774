"""Start and stop ``langgraph dev`` for the tests: a free port on 127.0.0.1 (the one the
server reports), a working directory of its own, stopped by PID."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LANGGRAPH = Path(sys.executable).with_name("langgraph")

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_API = re.compile(r"API: http://127\.0\.0\.1:(\d+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_config(name: str, workdir: Path) -> Path:
    """The project's ``name`` (``langgraph.json`` or a variant) with its paths made absolute,
    written into ``workdir``: the server then runs there (its ``.langgraph_api`` folder too)
    and loads the project's graphs."""
    config = json.loads((ROOT / name).read_text())

    def absolute(spec: str) -> str:
        path, _, attr = spec.partition(":")
        return f"{(ROOT / path).resolve()}:{attr}" if path.startswith(".") else spec

    config["dependencies"] = [str(ROOT)]
    config["graphs"] = {k: absolute(v) for k, v in config["graphs"].items()}
    for key in ("checkpointer", "store"):
        if "path" in config.get(key, {}):
            config[key]["path"] = absolute(config[key]["path"])
    out = workdir / "langgraph.json"
    out.write_text(json.dumps(config, indent=2))
    return out


class LangGraphServer:
    """One ``langgraph dev --no-browser`` process."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "LANGGRAPH_CLI_NO_ANALYTICS": "1",
            "LANGSMITH_TRACING": "false",
            **(env or {}),
        }
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.log = workdir / "server.log"
        self.starts = 0

    def start(self, wait_s: float = 120.0) -> str:
        """Start the server and wait until it answers; returns its URL."""
        for _ in range(3):  # the free port can be taken between choosing and binding it
            port = free_port()
            self.starts += 1
            log = self.workdir / f"server.{self.starts}.log"
            self.log = log
            with log.open("wb") as out:
                self.proc = subprocess.Popen(
                    [
                        str(LANGGRAPH),
                        "dev",
                        "--no-browser",
                        "--no-reload",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--config",
                        str(self.workdir / "langgraph.json"),
                    ],
                    cwd=self.workdir,
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and self.proc.poll() is None:
                got = _API.search(_ANSI.sub("", log.read_text(errors="replace")))
                if got and _answers(f"http://127.0.0.1:{got.group(1)}"):
                    self.url = f"http://127.0.0.1:{got.group(1)}"
                    return self.url
                time.sleep(0.2)
            self.stop()
            if "address already in use" not in log.read_text(errors="replace").lower():
                break
        raise RuntimeError(f"langgraph dev did not start; its log:\n{self.tail()}")

    def tail(self, n: int = 60) -> str:
        return "\n".join(_ANSI.sub("", self.log.read_text(errors="replace")).splitlines()[-n:])

    def output(self) -> str:
        """Everything every start of this server wrote."""
        return "\n".join(
            _ANSI.sub("", p.read_text(errors="replace"))
            for p in sorted(self.workdir.glob("server.*.log"))
        )

    def kill(self) -> None:
        """SIGKILL the server (a crash): nothing runs its shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, wait_s: float = 60.0) -> None:
        """Ctrl-C (SIGINT) to the server's PID, as a person stops it, and wait: its exit
        handlers run (SIGTERM would make uvicorn re-raise the signal and skip them).  SIGKILL
        to its process group if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            self.kill()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ok", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False
