"""Shared pieces of the simulator tests: a workspace with every kind of file (hard links,
symlinks in and out, read-only, a database), a fingerprint of every file, shared-memory
counters that a forked child can increment, and tools that try everything a tool can do to a
workspace (write in place, append, truncate, replace, chmod, fail half-way, spin, fill the disk,
escape)."""

from __future__ import annotations

import hashlib
import mmap
import os
import random
import shutil
import socket
import sqlite3
import stat
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import BaseTool, StructuredTool


def _walk(root: Path):  # type: ignore[no-untyped-def]
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                content: Any = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            else:
                content = None
            yield p, st, content


def fingerprint(*roots: Path) -> dict[str, tuple[Any, ...]]:
    """Every path under ``roots`` (lstat, no following): kind, mode, mtime, link count, size,
    owner, and the SHA-256 of files / the target of symlinks."""
    out: dict[str, tuple[Any, ...]] = {}
    for root in roots:
        for p, st, content in _walk(root):
            out[p] = (
                stat.S_IFMT(st.st_mode),
                stat.S_IMODE(st.st_mode),
                st.st_mtime_ns,
                st.st_nlink,
                st.st_size,
                st.st_uid,
                content,
            )
        st = os.lstat(root)
        out[str(root)] = (stat.S_IMODE(st.st_mode), st.st_nlink)
    return out


class SharedCounter:
    """An integer in anonymous shared memory: a forked child's increments are seen here."""

    def __init__(self) -> None:
        self._mem = mmap.mmap(-1, 8)

    def add(self, n: int = 1) -> None:
        self.value = self.value + n

    @property
    def value(self) -> int:
        return struct.unpack("q", self._mem[:8])[0]

    @value.setter
    def value(self, v: int) -> None:
        self._mem[:8] = struct.pack("q", v)


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, Path]:
    """``(root, outside)``: a workspace and a folder beside it that tools must never reach."""
    root = tmp_path / "ws"
    outside = tmp_path / "outside"
    make_workspace(root, outside)
    return root, outside


def make_workspace(root: Path, outside: Path, *, seed: int = 0) -> None:
    rng = random.Random(seed)
    outside.mkdir(parents=True)
    (outside / "target.txt").write_text("outside: must never change\n")
    root.mkdir(parents=True)
    (root / "notes.txt").write_text("Meeting notes: ship on Friday.\n")
    (root / "data.bin").write_bytes(rng.randbytes(64 * 1024))
    (root / "empty.txt").write_bytes(b"")
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "sub" / "deep" / "file.txt").write_text("deep file\n" * 10)
    (root / "sub" / "link_in").symlink_to("../notes.txt")
    (root / "escape_link").symlink_to(outside / "target.txt")
    (root / "escape_dir").symlink_to(outside)
    (root / "ro.txt").write_text("read only\n")
    os.chmod(root / "ro.txt", 0o444)
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "run.sh", 0o755)
    (root / "twin_a.txt").write_text("twins share an inode\n")
    os.link(root / "twin_a.txt", root / "twin_b.txt")
    con = sqlite3.connect(root / "app.db")
    con.execute("CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT)")
    con.executemany("INSERT INTO items(name) VALUES (?)", [("a",), ("b",), ("c",)])
    con.commit()
    con.close()


EXISTING = [
    "notes.txt",
    "data.bin",
    "empty.txt",
    "sub/deep/file.txt",
    "sub/link_in",
    "ro.txt",
    "run.sh",
    "twin_a.txt",
    "twin_b.txt",
    "app.db",
]
NEW = ["new.txt", "sub/new.txt", "sub/deep/new2.txt", "fresh/dir/x.txt"]
ESCAPES = [
    "../outside/target.txt",
    "../escaped.txt",
    "sub/../../escaped.txt",
    "escape_link",
    "escape_dir/target.txt",
    "escape_dir/new.txt",
]


def hostile_tools(
    counters: dict[str, SharedCounter] | None = None, *, mode: str = "in_process"
) -> Callable[[str], list[BaseTool]]:
    """A ``make_tools(root)`` of tools that do everything to files, without any path checks
    (the guard must hold).  ``counters["never"]`` counts runs of the undeclared tool,
    ``counters["steps"]`` every tool run."""
    counters = counters or {}

    def make(root: str) -> list[BaseTool]:
        def p(path: str) -> str:
            return path if os.path.isabs(path) else os.path.join(root, path)

        def count() -> None:
            if "steps" in counters:
                counters["steps"].add()

        def read(path: str) -> str:
            """Read a file."""
            count()
            return Path(p(path)).read_text(errors="replace")[:200]

        def write(path: str, text: str) -> str:
            """Create or replace a file."""
            count()
            os.makedirs(os.path.dirname(p(path)), exist_ok=True)
            with open(p(path), "w") as f:
                f.write(text)
            return f"wrote {len(text)} to {path}"

        def write_in_place(path: str, text: str, offset: int = 0) -> str:
            """Overwrite bytes of an existing file in place."""
            count()
            with open(p(path), "r+b") as f:
                f.seek(offset)
                f.write(text.encode())
            return f"patched {path}"

        def append(path: str, text: str) -> str:
            """Append to a file."""
            count()
            with open(p(path), "a") as f:
                f.write(text)
            return f"appended to {path}"

        def truncate(path: str, size: int) -> str:
            """Truncate a file."""
            count()
            os.truncate(p(path), size)
            return f"truncated {path} to {size}"

        def replace_onto(path: str, text: str) -> str:
            """Write a temp file and os.replace it onto a path."""
            count()
            tmp = p(path) + ".tmp"
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, p(path))
            return f"replaced {path}"

        def chmod(path: str, mode: int) -> str:
            """Change a file's mode."""
            count()
            os.chmod(p(path), mode)
            return f"chmod {oct(mode)} {path}"

        def touch_times(path: str) -> str:
            """Set a file's times to the epoch."""
            count()
            os.utime(p(path), (0, 0))
            return f"utime {path}"

        def write_then_fail(path: str, text: str) -> str:
            """Write half of the text, then fail."""
            count()
            with open(p(path), "a") as f:
                f.write(text[: len(text) // 2 + 1])
            raise RuntimeError(f"failed half-way through {path}")

        def delete(path: str) -> str:
            """Delete a file or a tree."""
            count()
            if os.path.isdir(p(path)) and not os.path.islink(p(path)):
                shutil.rmtree(p(path))
            else:
                os.unlink(p(path))
            return f"deleted {path}"

        def rename(src: str, dst: str) -> str:
            """Rename a path."""
            count()
            os.makedirs(os.path.dirname(p(dst)), exist_ok=True)
            os.rename(p(src), p(dst))
            return f"renamed {src} to {dst}"

        def make_symlink(name: str, target: str, text: str) -> str:
            """Create a symlink, then write through it."""
            count()
            os.symlink(target, p(name))
            with open(p(name), "w") as f:
                f.write(text)
            return f"linked {name}"

        def hardlink_in(src: str, name: str, text: str) -> str:
            """Hard-link a file into the workspace, then write through the link."""
            count()
            os.link(src, p(name))
            with open(p(name), "a") as f:
                f.write(text)
            return f"hard-linked {name}"

        def fchmod_shared(path: str) -> str:
            """chmod through a descriptor opened for reading."""
            count()
            with open(p(path), "rb") as f:
                os.fchmod(f.fileno(), 0o600)
            return "fchmod"

        def dirfd_write(folder: str, name: str, text: str) -> str:
            """Write a file relative to a folder descriptor."""
            count()
            fd = os.open(p(folder), os.O_RDONLY)
            try:
                out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=fd)
                os.write(out, text.encode())
                os.close(out)
            finally:
                os.close(fd)
            return f"wrote {name} in {folder}"

        def mmap_write(path: str, text: str) -> str:
            """Write into a file through a shared memory map."""
            count()
            with open(p(path), "r+b") as f:
                m = mmap.mmap(f.fileno(), 0)
                m[: len(text)] = text.encode()[: len(m)]
                m.flush()
                m.close()
            return f"mapped {path}"

        def sql(statement: str) -> str:
            """Run SQL on the workspace database."""
            count()
            con = sqlite3.connect(p("app.db"))
            try:
                rows = con.execute(statement).fetchall()
                con.commit()
            finally:
                con.close()
            return repr(rows)

        def huge(path: str, mb: int) -> str:
            """Write a big file."""
            count()
            with open(p(path), "wb") as f:
                for _ in range(mb):
                    f.write(b"\0" * (1 << 20))
            return f"wrote {mb} MB"

        def spin() -> str:
            """Never return."""
            count()
            while True:
                pass

        def run_program(cmd: str) -> str:
            """Run a shell command."""
            count()
            return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout

        def connect(port: int) -> str:
            """Open a network connection."""
            count()
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return "connected"

        def bind_unix(path: str) -> str:
            """Bind a Unix socket (which creates a file at the path)."""
            count()
            with socket.socket(socket.AF_UNIX) as sock:
                sock.bind(p(path))
            return "bound"

        def never_tool(path: str) -> str:
            """Not declared simulatable: must never run in imagination."""
            if "never" in counters:
                counters["never"].add()
            Path(p(path)).write_text("the undeclared tool ran")
            return "ran"

        fns = [
            read,
            write,
            write_in_place,
            append,
            truncate,
            replace_onto,
            chmod,
            touch_times,
            write_then_fail,
            delete,
            rename,
            make_symlink,
            hardlink_in,
            fchmod_shared,
            dirfd_write,
            mmap_write,
            sql,
            huge,
            spin,
            run_program,
            connect,
            bind_unix,
        ]
        tools = [_tool(fn, {"wm_simulate": mode}) for fn in fns]
        tools.append(_tool(never_tool, None))
        return tools

    return make


_SCHEMAS: dict[str, Any] = {}


def _tool(fn: Callable[..., Any], metadata: dict[str, Any] | None) -> BaseTool:
    # make_tools runs once per simulated candidate: building each argument schema once keeps
    # it cheap (pydantic model creation is the slow part of StructuredTool.from_function).
    schema = _SCHEMAS.get(fn.__name__)
    tool = StructuredTool.from_function(fn, args_schema=schema, metadata=metadata)
    _SCHEMAS.setdefault(fn.__name__, tool.args_schema)
    return tool


def tree_state(root: Path) -> dict[str, tuple[Any, ...]]:
    """``{relative path: (kind, mode, sha256 | target | None)}`` for comparing two trees."""
    return {
        os.path.relpath(p, root): (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), content)
        for p, st, content in _walk(root)
    }
