"""Where runs write their files: checked before any work, and never lost at the end.

A run that trains for minutes and then cannot write its model (the ``--out`` folder is a file,
read-only, or under a file) must fail in the first second, not at the end with a traceback.
:func:`check_output_dir` / :func:`check_output_file` find those mistakes up front without
creating anything.  What the check cannot foresee (the disk fills, the folder is removed during
the run) is caught at the end by :func:`save_with_fallback`, which writes to a fresh temporary
folder instead and says where on stderr: a finished run's results are not thrown away.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

__all__ = [
    "OutputPathError",
    "check_output_dir",
    "check_output_file",
    "save_with_fallback",
    "write_text_with_fallback",
]

T = TypeVar("T")


class OutputPathError(ValueError):
    """An output path a run could not write to (found before the run starts)."""


def check_output_dir(path: str | Path, files: Sequence[str] = ()) -> Path:
    """``path`` as a folder a run can write ``files`` into; raises :class:`OutputPathError`.

    The folder may exist (files in it are overwritten, as before) or be creatable; a file at
    ``path`` or at any folder above it, a place where nothing can be created, or one of
    ``files`` being a folder (or read-only) is an error.  Nothing is created.
    """
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise OutputPathError(f"cannot write results to {p}: it is a file, not a folder")
    _check_writable_from(p, p)
    for name in files:
        _check_target(p / name)
    return p


def check_output_file(path: str | Path) -> Path:
    """``path`` as a file a run can write (overwriting it); raises :class:`OutputPathError`."""
    p = Path(path).expanduser()
    _check_target(p)
    _check_writable_from(p.parent, p)
    return p


def save_with_fallback(folder: str | Path, write: Callable[[Path], T], *, what: str) -> T | None:
    """``write(folder)``; when that raises, ``write`` into a new temporary folder instead.

    The fallback is said on stderr (one ``warning:`` line naming both places).  When even that
    fails, a second warning says so and ``None`` is returned: the caller still has its
    in-memory results to print.
    """
    try:
        return write(Path(folder))
    except Exception as err:
        fallback = Path(tempfile.mkdtemp(prefix="wm-agents-"))
        try:
            written = write(fallback)
        except Exception as err2:
            _warn(
                f"could not save {what} to {folder} ({_one_line(err)}) nor to {fallback} "
                f"({_one_line(err2)}); they are lost"
            )
            return None
        _warn(f"could not save {what} to {folder} ({_one_line(err)}); saved to {fallback} instead")
        return written


def write_text_with_fallback(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` (creating its folder), or to a temporary file when that fails
    (said on stderr, see :func:`save_with_fallback`); returns the path written."""
    path = Path(path)

    def write(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / path.name
        target.write_text(text)
        return target

    written = save_with_fallback(path.parent, write, what=path.name)
    if written is None:
        raise OSError(f"could not write {path} nor a temporary copy")
    return written


def _check_target(p: Path) -> None:
    """A file the run will (over)write: not a folder, and writable if it exists."""
    if p.is_dir():
        raise OutputPathError(f"cannot write {p}: it is a folder")
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputPathError(f"cannot write {p}: it is read-only")


def _check_writable_from(p: Path, target: Path) -> None:
    """Something can be created at ``p`` (or in it, when it is a folder that exists)."""
    existing = p
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(f"cannot write {target}: {existing} is a file, not a folder")
    try:
        # A real attempt (then removed): permission bits say nothing for root or read-only mounts.
        with tempfile.TemporaryDirectory(dir=existing, prefix=".wm-agents-check-"):
            pass
    except OSError as err:
        raise OutputPathError(
            f"cannot write {target}: nothing can be created in {existing} ({err.strerror})"
        ) from err


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__
