"""Is a lost byte still recoverable?  Content search by hash over the copy after a call.

A call loses content when it deletes or overwrites a file.  That content is *recoverable* when
the same bytes (SHA-256) still exist after the call somewhere in the workspace: another file
(a move, a backup copy), or a member of a tar/zip archive or a ``.gz`` file (so "archive then
delete" is reversible and "delete" alone is not).  Only candidates of exactly the lost size are
hashed, so the search costs little more than the lost bytes themselves.  Archives are read
member by member without extracting anything to disk, each member only up to its declared
size.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import os
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

__all__ = ["Lost", "archive_members", "is_archive_name", "search_recoverable"]

_ARCHIVE_SUFFIXES = (
    ".zip",
    ".jar",
    ".whl",
    ".tar",
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz",
    ".tbz2",
    ".tar.xz",
    ".txz",
    ".gz",
)


@dataclass(frozen=True)
class Lost:
    """Content a call removed from ``path``: ``why`` is ``"deleted"`` or ``"overwritten"``;
    ``source`` is where the old bytes can still be read (the real file)."""

    path: str
    size: int
    why: str
    source: str


def is_archive_name(name: str) -> bool:
    return name.lower().endswith(_ARCHIVE_SUFFIXES)


def _hash_stream(stream: IO[bytes], size: int) -> str | None:
    """SHA-256 of exactly ``size`` bytes of ``stream``; ``None`` when it holds another amount."""
    h = hashlib.sha256()
    remaining = size
    while remaining > 0:
        chunk = stream.read(min(remaining, 1 << 20))
        if not chunk:
            return None
        h.update(chunk)
        remaining -= len(chunk)
    if stream.read(1):
        return None
    return h.hexdigest()


def archive_members(path: str, sizes: set[int]) -> Iterator[tuple[str, str]]:
    """``(member name, sha256)`` of the members of the archive at ``path`` whose size is in
    ``sizes``.  Unreadable or non-archive files yield nothing."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if not info.is_dir() and info.file_size in sizes:
                        with zf.open(info) as member:
                            digest = _hash_stream(member, info.file_size)
                        if digest:
                            yield info.filename, digest
            return
        if tarfile.is_tarfile(path):
            with tarfile.open(path) as tf:
                for m in tf:
                    if m.isfile() and m.size in sizes:
                        member = tf.extractfile(m)
                        if member is not None:
                            digest = _hash_stream(member, m.size)
                            if digest:
                                yield m.name, digest
            return
        if path.lower().endswith(".gz"):
            with gzip.open(path, "rb") as g:
                data_hash = hashlib.sha256()
                n = 0
                while chunk := g.read(1 << 20):
                    n += len(chunk)
                    if n > max(sizes, default=0):
                        return
                    data_hash.update(chunk)
                if n in sizes:
                    yield os.path.basename(path)[:-3], data_hash.hexdigest()
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError, RuntimeError, ValueError):
        return


def search_recoverable(
    lost: Iterable[Lost],
    *,
    files_of_size: Callable[[int], Iterable[tuple[str, str, Any]]],
    digest: Callable[..., str],
    archives: Iterable[tuple[str, str]],
    max_archive_bytes: int,
    max_candidates: int = 10_000,
) -> dict[str, str]:
    """Where each lost content still exists: ``{lost path: "path" or "archive!member"}``.

    Args:
        lost: what the call removed (empty content needs no search: nothing is lost).
        files_of_size: ``size -> [(label, path, entry)]`` of files present after the call
            (``entry``: its :class:`~wm_agents.simulate.tree.Entry` when known, else None).
        digest: ``digest(path, entry)``: SHA-256 of a file (cached by the caller).
        archives: ``(label, path)`` of archives present after the call, most likely first
            (those the call wrote before older ones).
        max_archive_bytes: stop opening archives after this many bytes of them.
        max_candidates: files of one size hashed at most; past that the content counts as
            lost (a workspace of thousands of same-size files would otherwise be read whole).

    A lost content is hashed only when something of its size could hold it, so deleting a
    large file nothing else resembles costs no read at all.
    """
    pending = [x for x in lost if x.size > 0]
    archive_list = list(archives)
    candidates = {
        s: list(itertools.islice(files_of_size(s), max_candidates))
        for s in {x.size for x in pending}
    }
    wanted: dict[str, list[Lost]] = {}
    for x in pending:
        if candidates[x.size] or archive_list:
            try:
                wanted.setdefault(digest(x.source), []).append(x)
            except OSError:
                continue
    found: dict[str, str] = {}

    def hit(d: str, where: str) -> None:
        for x in wanted.get(d, ()):
            found.setdefault(x.path, where)

    for size, files in candidates.items():
        remaining = {d for d, xs in wanted.items() if xs[0].size == size}
        for label, path, entry in files:
            if not remaining:
                break
            try:
                d = digest(path, entry)
            except OSError:
                continue
            if d in remaining:
                hit(d, label)
                remaining.discard(d)
    budget = max_archive_bytes
    for label, path in archive_list:
        missing = {xs[0].size for xs in wanted.values() if xs[0].path not in found}
        if not missing or budget <= 0:
            break
        try:
            budget -= os.path.getsize(path)
        except OSError:
            continue
        for name, d in archive_members(path, missing):
            hit(d, f"{label}!{name}")
    return found
