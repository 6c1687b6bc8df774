"""Run a simulated call in a forked child process, under a time and a size budget.

Why a fork: the tool must run in a process of its own so that (a) the write guard's audit hook
(which can never be removed) and the resource limit stay out of the agent's process, (b) a
runaway tool can be killed (a thread cannot), and (c) the user's ``make_tools`` closures need no
pickling (``spawn``/``forkserver`` would need importable, picklable factories).  The child
inherits the parent's memory, so it starts in milliseconds.

The child talks back through a pipe in JSON lines (never pickle: a tool in the child can write
to the pipe, and the parent must not run what it reads).  Budgets:

* time: the parent kills the child's whole process group (``killpg`` with the child's PID, so
  programs it started die too) after ``timeout_s``;
* size: ``RLIMIT_FSIZE`` in the child caps any one file (with ``SIGXFSZ`` ignored, a write past
  it fails with ``EFBIG`` instead of killing the process, and is recorded: see
  :func:`file_size_exceeded`), and while it runs the parent polls
  the file system's used space and kills the child when it grew by more than
  ``max_growth_bytes`` (another process writing at the same moment can trigger this early
  stop; the outcome is then unknown, never wrong).  The simulator checks the copy's exact
  growth afterwards.

Caveat of forking a threaded process: a lock another thread held at the fork stays locked in
the child; a tool that needs it hangs, and the time budget turns that into an unknown outcome.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import resource
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wm_agents.simulate.calls import error_text

__all__ = ["ChildResult", "Send", "file_size_exceeded", "run_in_child"]

Send = Callable[[dict[str, Any]], None]
"""What the child body calls to report a JSON-serializable message to the parent."""

_POLL_S = 0.05
_xfsz: list[int] = []


def file_size_exceeded() -> bool:
    """In the child: did a write go past ``RLIMIT_FSIZE`` (a ``SIGXFSZ`` arrived)?"""
    return bool(_xfsz)


@dataclass
class ChildResult:
    """What came back from a child.

    Attributes:
        messages: the JSON messages the body sent, in order (without the end marker).
        ended: the body returned and the end marker arrived.
        cause: why it did not end cleanly: ``"timeout"``, ``"size_budget"``, ``"crashed"`` (an
            exception outside the tool, or death by a signal), ``"protocol"`` (unreadable
            output); ``None`` when it ended.
        detail: a sentence about ``cause``.
        elapsed_s: wall time from fork to reaping.
    """

    messages: list[dict[str, Any]] = field(default_factory=list)
    ended: bool = False
    cause: str | None = None
    detail: str = ""
    elapsed_s: float = 0.0


def _fs_used(path: str) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def _child_main(body: Callable[[Send], None], write_fd: int, max_file_bytes: int | None) -> None:
    code = 1

    def send(message: dict[str, Any]) -> None:
        data = (json.dumps(message, default=str) + "\n").encode()
        view = memoryview(data)
        while view:
            n = os.write(write_fd, view)
            view = view[n:]

    # A collection would touch every object inherited from the parent and copy its memory
    # page by page (copy-on-write): half the cost of a short simulated call.  The child lives
    # for one call, so it never collects.
    gc.disable()
    try:
        os.setpgid(0, 0)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        # Handled rather than fatal: the write fails with EFBIG, and the body can tell the
        # size budget stopped it even when the tool swallows the error.
        signal.signal(signal.SIGXFSZ, lambda *_: _xfsz.append(1))
        if max_file_bytes is not None:
            _soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
            limit = max_file_bytes if hard == resource.RLIM_INFINITY else min(hard, max_file_bytes)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        body(send)
        send({"type": "end"})
        code = 0
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            send({"type": "crash", "error": error_text(exc)})
    finally:
        os._exit(code)


def run_in_child(
    body: Callable[[Send], None],
    *,
    timeout_s: float,
    max_file_bytes: int | None = None,
    watch: str | None = None,
    max_growth_bytes: int | None = None,
    max_output_bytes: int = 64 << 20,
) -> ChildResult:
    """Fork, run ``body(send)`` in the child, collect its messages; never raises for a child
    that misbehaves (its fate is in :class:`ChildResult`).

    Args:
        body: runs in the child; reports with ``send(dict)``.  Its exceptions are a crash.
        timeout_s: wall-clock budget; the child's process group is killed after it.
        max_file_bytes: ``RLIMIT_FSIZE`` of the child (``None``: unchanged).
        watch: a path on the file system whose used space is polled.
        max_growth_bytes: kill when ``watch``'s file system grew by more than this.
        max_output_bytes: kill when the child sends more than this.
    """
    start = time.monotonic()
    read_fd, write_fd = os.pipe()  # both non-inheritable: exec'd programs do not get them
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        return ChildResult(cause="crashed", detail=f"could not fork: {exc}")
    if pid == 0:  # pragma: no cover - runs in the child, which never returns
        os.close(read_fd)
        _child_main(body, write_fd, max_file_bytes)
    os.close(write_fd)
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)  # also done by the child; whichever runs first wins the race
    result = ChildResult()
    buffer = bytearray()
    used0 = _fs_used(watch) if watch and max_growth_bytes is not None else None
    next_check = start + _POLL_S
    deadline = start + timeout_s
    poller = select.poll()
    poller.register(read_fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                result.cause = "timeout"
                result.detail = f"timed out after {timeout_s:g} s (process killed)"
                break
            wait = min(deadline - now, _POLL_S)
            if poller.poll(wait * 1000):
                chunk = os.read(read_fd, 1 << 16)
                if not chunk:
                    break
                buffer += chunk
                if len(buffer) > max_output_bytes:
                    result.cause = "protocol"
                    result.detail = f"the child sent more than {max_output_bytes} bytes"
                    break
            if used0 is not None and time.monotonic() >= next_check:
                next_check = time.monotonic() + _POLL_S
                grown = _fs_used(watch) - used0  # type: ignore[arg-type]
                if grown > max_growth_bytes:  # type: ignore[operator]
                    result.cause = "size_budget"
                    result.detail = (
                        f"the file system grew by {grown} bytes during the call, over the "
                        f"budget of {max_growth_bytes} bytes (process killed)"
                    )
                    break
    finally:
        os.close(read_fd)
        # The child is a zombie or still running, so its PID (= its group's id) cannot have
        # been reused: killing the group reaches only the child and what it started.
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    result.elapsed_s = time.monotonic() - start
    for line in bytes(buffer).splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            if result.cause is None:
                result.cause = "protocol"
                result.detail = "the child wrote something that is not a JSON message"
            continue
        if message.get("type") == "end":
            result.ended = True
        elif message.get("type") == "crash" and result.cause is None:
            result.cause = "crashed"
            result.detail = f"the simulation failed outside the tool: {message.get('error')}"
        else:
            result.messages.append(message)
    if result.cause is None and not result.ended:
        code = os.waitstatus_to_exitcode(status)
        result.cause = "crashed"
        result.detail = (
            f"the process died from signal {-code}" if code < 0 else f"it exited with {code}"
        ) + " before finishing"
    if result.cause is not None:
        result.ended = False
    return result
