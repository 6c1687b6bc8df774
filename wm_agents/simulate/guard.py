"""The write guard: an audit hook that keeps a simulated tool inside its copy of the workspace.

Installed only in the forked child that runs the simulated call (audit hooks cannot be
removed, so the agent's own process never gets one).  For every audited event
(``sys.addaudithook``, PEP 578) that could change something, it:

* **denies** (raises ``PermissionError``) a write, truncate, chmod/chown/utime, xattr change,
  rename, unlink, rmdir, mkdir, symlink, hard link or Unix-socket file whose target resolves
  outside the allowed roots (the copy and the child's private temp folder): escapes through
  ``..``, absolute paths into the real workspace, and symlinks (pre-existing ones pointing
  outside, or ones the tool creates) all resolve outside.  Writes to character devices and
  pipes (``/dev/null``, a terminal) are allowed; block devices are not.  Reading outside is
  allowed (the real files hold what the copy holds);
* **copies a shared file up** before it is written (open for w/a/x/+ or with
  ``O_WRONLY``/``O_RDWR``/``O_APPEND``/``O_CREAT``/``O_TRUNC``, ``os.truncate``, ``os.chmod``,
  ``os.chown``, ``os.utime``, xattrs, ``sqlite3.connect`` and its journal files, the source of
  ``os.link``): when the file's inode is one the copy shares with the real workspace (a hard
  link), it is copied to a temp file beside it and ``os.replace``-d over the link, so the write
  lands in a private inode.  ``os.replace``/``rename``/``unlink`` onto a shared file need no
  copy-up: they change the copy's directory, never the shared inode;
* **denies** starting programs (``subprocess``, ``os.system``, ``os.exec*``, ``os.posix_spawn``,
  ``os.spawn*``, ``pty.spawn``) unless ``allow_exec`` says yes, network connections
  (``socket.connect``/``sendto``/``sendmsg``), ``ctypes`` foreign calls (C code could write
  anything), signals to other processes, and raising resource limits (the size budget);
* **records** every path it let the tool change (``touched``), so the parent can diff and
  restore only those subtrees instead of walking the whole workspace.

``os.open`` is wrapped in the child because its audit event omits ``dir_fd``: a relative path
with ``dir_fd`` is made absolute first, so the hook resolves the real target.

Limits (what the guard cannot see): writes by C code that opens files itself (extension
modules other than ``sqlite3``), by programs when exec is allowed (hence "subprocess" tools run
on a private copy), through file descriptors inherited from the agent's process, FIFOs and
device nodes made with ``os.mkfifo``/``os.mknod`` (not audited), and races where a thread swaps
a symlink between the check and the system call.  Renaming or unlinking a shared file in the
copy changes the real inode's ``ctime`` (never its content, mode or mtime).  It protects the
workspace from ordinary tools and mistakes; it is not a security boundary against code written
to defeat it (which could, e.g., reach the hook's state through ``gc``).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = ["ExecPolicy", "WriteGuard", "is_write_open"]

ExecPolicy = Callable[[str, list[str], str, Mapping[str, str] | None], bool]
"""``allow(program, argv, cwd, env) -> bool``: may the simulated tool start this program?
(``env`` is the environment passed explicitly, ``None`` when inherited.)"""

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_O_TMPFILE = getattr(os, "O_TMPFILE", 0)


def is_write_open(mode: Any, flags: Any) -> bool:
    """Does an ``open`` event (mode string and/or flags) open for writing?"""
    if isinstance(flags, int):
        if flags & _WRITE_FLAGS:
            return True
        if _O_TMPFILE and flags & _O_TMPFILE == _O_TMPFILE:
            return True
        return False
    return isinstance(mode, str) and any(c in mode for c in "wax+")


def _abspath(path: Any, dir_fd: Any) -> str:
    p = os.fsdecode(path)
    if not os.path.isabs(p):
        if isinstance(dir_fd, int) and dir_fd >= 0:
            base = os.readlink(f"/proc/self/fd/{dir_fd}")
        else:
            base = os.getcwd()
        p = os.path.join(base, p)
    return p


def resolve(path: Any, dir_fd: Any = None, *, follow: bool = True) -> str:
    """The real absolute path an operation on ``path`` acts on.

    ``follow=False`` for operations on the name itself (unlink, rename, mkdir, symlink): the
    parent folder is resolved and the last component kept, so removing a symlink inside the
    copy that points outside is allowed (it removes the link, not its target).
    """
    p = _abspath(path, dir_fd)
    if follow:
        return os.path.realpath(p)
    head, tail = os.path.split(p.rstrip("/") or "/")
    if tail in ("", ".", ".."):
        return os.path.realpath(p)
    return os.path.join(os.path.realpath(head), tail)


class WriteGuard:
    """The audit hook's state and rules (see the module docstring).

    Args:
        roots: folders the tool may change (resolved here); the first is the copy, the others
            (a private temp folder) are allowed but not tracked.
        shared: ``(st_dev, st_ino)`` of inodes shared with the real workspace (hard links);
            such a file is copied up before any write.  ``None``/empty: nothing is shared
            (reflink or plain copy).
        links: shared inodes that several paths of the copy link to (files hard-linked to
            each other in the real workspace): all of them move to the one private copy, so a
            write through one shows in the others, as it would for real.
        allow_exec: ``True`` lets the tool start any program, ``False`` none, or a policy
            ``allow(program, argv, cwd, env)``.
        deny_ctypes: deny ``ctypes`` library loads and foreign calls.
    """

    def __init__(
        self,
        roots: Iterable[str],
        *,
        shared: set[tuple[int, int]] | None = None,
        links: Mapping[tuple[int, int], Sequence[str]] | None = None,
        allow_exec: bool | ExecPolicy = False,
        deny_ctypes: bool = True,
    ) -> None:
        self.roots = [os.path.realpath(r) for r in roots]
        if not self.roots:
            raise ValueError("WriteGuard needs at least one root")
        self.copy_root = self.roots[0]
        self.shared = shared or set()
        self.links = links or {}
        self.allow_exec = allow_exec
        self.deny_ctypes = deny_ctypes
        self.touched: set[str] = set()
        self.denied: list[dict[str, str]] = []
        self.budget: str | None = None
        self.copied_up = 0
        self._local = threading.local()
        self._handlers: dict[str, Callable[[tuple[Any, ...]], None]] = {
            "open": self._on_open,
            "os.truncate": self._fd_or_path("truncating", None),
            "os.chmod": self._fd_or_path("changing the mode of", 2),
            "os.chown": self._fd_or_path("changing the owner of", 3),
            "os.utime": self._fd_or_path("changing the times of", 3),
            "os.setxattr": self._fd_or_path("changing extended attributes of", None),
            "os.removexattr": self._fd_or_path("changing extended attributes of", None),
            "os.rename": self._on_rename,
            "os.remove": self._on_name,
            "os.rmdir": self._on_name,
            "os.mkdir": self._on_mkdir,
            "os.symlink": self._on_symlink,
            "os.link": self._on_link,
            "shutil.rmtree": self._on_rmtree,
            "sqlite3.connect": self._on_sqlite,
            "subprocess.Popen": self._on_popen,
            "os.system": self._on_exec_other,
            "os.exec": self._on_exec_other,
            "os.posix_spawn": self._on_exec_other,
            "os.spawn": self._on_exec_other,
            "os.forkpty": self._on_exec_other,
            "pty.spawn": self._on_exec_other,
            "socket.connect": self._on_network,
            "socket.sendto": self._on_network,
            "socket.sendmsg": self._on_network,
            "socket.bind": self._on_bind,
            "os.kill": self._on_kill,
            "os.killpg": self._on_kill,
            "signal.pthread_kill": self._on_thread_kill,
            "resource.setrlimit": self._on_rlimit,
            "resource.prlimit": self._on_rlimit,
        }
        if deny_ctypes:
            for event in ("ctypes.dlopen", "ctypes.dlsym", "ctypes.call_function"):
                self._handlers[event] = self._on_ctypes

    # -- installation ---------------------------------------------------------------------

    def install(self) -> None:
        """Add the audit hook (for the rest of this process) and wrap ``os.open``."""
        sys.addaudithook(self._hook)
        real_open = os.open
        guard = self

        def open_with_dir_fd(path: Any, flags: int, mode: int = 0o777, *, dir_fd: Any = None):
            # The "open" audit event carries no dir_fd: make the path absolute so the hook
            # checks the file that is really opened.
            if dir_fd is not None and not isinstance(path, int) and is_write_open(None, flags):
                p = os.fsdecode(path)
                if not os.path.isabs(p):
                    guard._local.busy = True
                    try:
                        base = os.readlink(f"/proc/self/fd/{dir_fd}")
                    finally:
                        guard._local.busy = False
                    path, dir_fd = os.path.join(base, p), None
            return real_open(path, flags, mode, dir_fd=dir_fd)

        os.open = open_with_dir_fd  # type: ignore[assignment]

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        handler = self._handlers.get(event)
        if handler is None or getattr(self._local, "busy", False):
            return
        self._local.busy = True  # our own file operations below must not re-enter the rules
        try:
            handler(args)
        finally:
            self._local.busy = False

    # -- rules ----------------------------------------------------------------------------

    def _inside(self, path: str) -> bool:
        return any(path == r or path.startswith(r + os.sep) for r in self.roots)

    def _deny(self, kind: str, what: str, detail: str) -> None:
        if len(self.denied) < 50:
            self.denied.append({"kind": kind, "what": what, "detail": detail})
        raise PermissionError(f"simulation denied {what}: {detail}")

    def _check(self, target: str, what: str, *, device_ok: bool = False) -> None:
        if self._inside(target):
            return
        if device_ok:
            try:
                mode = os.stat(target).st_mode
            except OSError:
                mode = 0
            if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
                return
        self._deny("escape", what, f"{target} is outside the workspace copy")

    def _track(self, target: str) -> None:
        root = self.copy_root
        if target == root or target.startswith(root + os.sep):
            self.touched.add(target)

    def copy_up(self, path: str) -> None:
        """Give ``path`` a private inode if it shares one with the real workspace."""
        if not self.shared:
            return
        try:
            st = os.lstat(path)
        except OSError:
            return
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) not in self.shared:
            return
        tmp = os.path.join(os.path.dirname(path), f".wm-copyup-{os.getpid()}-{self.copied_up}")
        try:
            shutil.copyfile(path, tmp)
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
            if (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
                os.chown(tmp, st.st_uid, st.st_gid)
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
            os.replace(tmp, path)
            for twin in self.links.get((st.st_dev, st.st_ino), ()):
                if twin == path:
                    continue
                try:
                    tw = os.lstat(twin)
                except OSError:
                    continue
                if (tw.st_dev, tw.st_ino) == (st.st_dev, st.st_ino):
                    os.link(path, tmp)
                    os.replace(tmp, twin)
                    self._track(twin)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if exc.errno == errno.EFBIG:
                self.budget = f"copying {path} ({st.st_size} bytes) up exceeds the size budget"
                raise PermissionError(f"simulation: {self.budget}") from exc
            # Never fall through to the write: it would land in the real workspace's inode.
            self._deny("copy_up", f"writing {path}", f"could not copy the file up: {exc}")
        self.copied_up += 1

    def _write(self, target: str, what: str, *, device_ok: bool = False) -> None:
        self._check(target, what, device_ok=device_ok)
        self.copy_up(target)
        self._track(target)

    def _on_open(self, args: tuple[Any, ...]) -> None:
        path, mode, flags = args
        if isinstance(path, int) or not is_write_open(mode, flags):
            return
        target = resolve(path)
        self._write(target, f"opening {os.fsdecode(path)} for writing", device_ok=True)

    def _fd_target(self, fd: int, what: str) -> None:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) in self.shared:
            self._deny(
                "shared_fd",
                what,
                "the descriptor refers to a file shared with the real workspace (opened for "
                "reading); open it for writing first",
            )
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return
        if os.path.isabs(target) and (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            self._check(target, what)
            self._track(target)

    def _fd_or_path(self, what: str, dir_fd_index: int | None) -> Callable[[tuple[Any, ...]], None]:
        """A handler for an event whose first argument is a path or a descriptor, and whose
        ``dir_fd`` (if any) is at ``dir_fd_index``."""

        def handler(args: tuple[Any, ...]) -> None:
            path = args[0]
            if isinstance(path, int):
                self._fd_target(path, f"{what} descriptor {path}")
                return
            dir_fd = args[dir_fd_index] if dir_fd_index is not None else None
            self._write(resolve(path, dir_fd), f"{what} {os.fsdecode(path)}")

        return handler

    def _on_name(self, args: tuple[Any, ...]) -> None:
        path, dir_fd = args[0], args[-1]
        target = resolve(path, dir_fd, follow=False)
        self._check(target, f"changing {os.fsdecode(path)}")
        self._track(target)

    def _on_mkdir(self, args: tuple[Any, ...]) -> None:
        path, dir_fd = args[0], args[-1]
        target = resolve(path, dir_fd, follow=False)
        self._check(target, f"creating the folder {os.fsdecode(path)}")
        # ``mkdir(parents=True, exist_ok=True)`` on an existing folder fails and changes
        # nothing; tracking it would make the parent diff the whole folder.
        if not os.path.isdir(target):
            self._track(target)

    def _on_rename(self, args: tuple[Any, ...]) -> None:
        src, dst, src_fd, dst_fd = args
        for path, fd in ((src, src_fd), (dst, dst_fd)):
            target = resolve(path, fd, follow=False)
            self._check(target, f"renaming {os.fsdecode(src)} to {os.fsdecode(dst)}")
        for path, fd in ((src, src_fd), (dst, dst_fd)):
            self._track(resolve(path, fd, follow=False))

    def _on_symlink(self, args: tuple[Any, ...]) -> None:
        _src, dst, dir_fd = args
        target = resolve(dst, dir_fd, follow=False)
        self._check(target, f"creating the symlink {os.fsdecode(dst)}")
        self._track(target)

    def _on_link(self, args: tuple[Any, ...]) -> None:
        src, dst, src_fd, dst_fd = args
        source = resolve(src, src_fd)
        # A link to an outside file would make it writable through the copy.
        self._check(source, f"hard-linking {os.fsdecode(src)}")
        target = resolve(dst, dst_fd, follow=False)
        self._check(target, f"creating the hard link {os.fsdecode(dst)}")
        self.copy_up(source)
        self._track(source)
        self._track(target)

    def _on_rmtree(self, args: tuple[Any, ...]) -> None:
        path, dir_fd = args[0], args[1] if len(args) > 1 else None
        target = resolve(path, dir_fd, follow=False)
        self._check(target, f"removing the tree {os.fsdecode(path)}")
        self._track(target)

    def _on_sqlite(self, args: tuple[Any, ...]) -> None:
        database = args[0]
        if isinstance(database, bytes):
            database = os.fsdecode(database)
        name = os.fspath(database) if not isinstance(database, str) else database
        if name in ("", ":memory:"):
            return
        if name.startswith("file:"):
            parsed = urllib.parse.urlparse(name)
            query = urllib.parse.parse_qs(parsed.query)
            if "memory" in query.get("mode", []):
                return
            name = urllib.parse.unquote(parsed.path)
        target = resolve(name)
        # A database outside the copy is refused even for reading: WAL readers write -shm.
        for suffix in ("", "-journal", "-wal", "-shm"):
            self._write(target + suffix, f"opening the database {name}")

    def _exec(
        self,
        program: str,
        argv: list[str],
        cwd: str | None,
        what: str,
        env: Mapping[str, str] | None = None,
    ) -> None:
        policy = self.allow_exec
        cwd = os.path.realpath(cwd) if cwd else os.getcwd()
        if policy is True or (callable(policy) and policy(program, argv, cwd, env)):
            return
        shown = " ".join(argv)[:200] if argv else program
        self._deny("exec", what, f"{shown!r} (programs are not allowed for this tool)")

    def _on_popen(self, args: tuple[Any, ...]) -> None:
        executable, argv, cwd, env = args
        if isinstance(argv, str | bytes | os.PathLike):
            argv_list = [os.fsdecode(argv)]
        else:
            argv_list = [os.fsdecode(a) for a in argv]
        program = os.fsdecode(executable) if executable else (argv_list[0] if argv_list else "")
        env_map = None
        if isinstance(env, Mapping):
            env_map = {os.fsdecode(k): os.fsdecode(v) for k, v in env.items()}
        self._exec(
            program, argv_list, os.fsdecode(cwd) if cwd else None, "starting a program", env_map
        )

    def _on_exec_other(self, args: tuple[Any, ...]) -> None:
        first = args[0] if args else ""
        program = os.fsdecode(first) if isinstance(first, str | bytes) else str(first)
        self._exec(program, [program], None, "starting a program")

    def _on_network(self, args: tuple[Any, ...]) -> None:
        self._deny("network", "a network connection", f"to {args[1]!r:.100}")

    def _on_bind(self, args: tuple[Any, ...]) -> None:
        address = args[1]
        # A Unix socket bound to a path creates a file there; abstract names (a leading NUL)
        # and network addresses create none.
        if isinstance(address, str | bytes) and address and address[:1] not in ("\0", b"\0"):
            target = resolve(address, follow=False)
            self._check(target, f"binding a socket at {os.fsdecode(address)}")
            self._track(target)

    def _on_kill(self, args: tuple[Any, ...]) -> None:
        pid = args[0]
        if pid in (0, os.getpid(), os.getpgrp()):
            return
        self._deny("signal", "signalling another process", f"pid {pid}")

    def _on_thread_kill(self, args: tuple[Any, ...]) -> None:
        if args[0] not in {t.ident for t in threading.enumerate()}:
            self._deny("signal", "signalling a thread", f"id {args[0]}")

    def _on_rlimit(self, args: tuple[Any, ...]) -> None:
        self._deny("rlimit", "changing resource limits", "the size budget is fixed")

    def _on_ctypes(self, args: tuple[Any, ...]) -> None:
        self._deny("ctypes", "a ctypes foreign call", "C code could write outside the copy")
