"""A folder tree as data: one :class:`Entry` per path (``lstat``, never following symlinks), and
content hashes cached by inode identity.

Paths are relative to the tree's root, ``/``-separated, without a leading ``./``; the root
itself is not an entry.  Special files (devices, FIFOs, sockets) are entries of kind
``"other"``: they are listed but never copied or hashed.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import stat
from collections.abc import Iterable, Iterator
from typing import Literal, NamedTuple

__all__ = ["Entry", "HashCache", "Manifest", "entry_of", "relist", "scan", "under"]

Kind = Literal["file", "dir", "link", "other"]


class Entry(NamedTuple):
    """One path's ``lstat`` facts (a named tuple: a walk makes one per path, and tuples are
    several times cheaper to build than frozen dataclasses).

    Attributes:
        kind: ``file``, ``dir``, ``link`` (symlink) or ``other``.
        mode: permission bits (``S_IMODE``).
        size: bytes (files), target length (links), 0 otherwise.
        mtime_ns, ctime_ns: modification and status-change times.
        dev, ino: inode identity (two paths share content when both match).
        nlink: hard-link count.
        uid, gid: owner.
        target: a symlink's target text (``None`` for other kinds).
    """

    kind: Kind
    mode: int
    size: int
    mtime_ns: int
    ctime_ns: int
    dev: int
    ino: int
    nlink: int
    uid: int
    gid: int
    target: str | None = None

    @property
    def identity(self) -> tuple[int, int]:
        return (self.dev, self.ino)


def entry_of(path: str, st: os.stat_result | None = None) -> Entry:
    """The :class:`Entry` of ``path`` (``lstat``)."""
    st = st if st is not None else os.lstat(path)
    m = st.st_mode
    target = None
    if stat.S_ISREG(m):
        kind: Kind = "file"
    elif stat.S_ISDIR(m):
        kind = "dir"
    elif stat.S_ISLNK(m):
        kind = "link"
        target = os.readlink(path)
    else:
        kind = "other"
    return Entry(
        kind=kind,
        mode=stat.S_IMODE(m),
        size=st.st_size if kind in ("file", "link") else 0,
        mtime_ns=st.st_mtime_ns,
        ctime_ns=st.st_ctime_ns,
        dev=st.st_dev,
        ino=st.st_ino,
        nlink=st.st_nlink,
        uid=st.st_uid,
        gid=st.st_gid,
        target=target,
    )


def _walk(
    root: str,
    rel: str,
    out: dict[str, Entry],
    exclude: frozenset[str],
    known: dict[str, Entry] | None = None,
) -> None:
    folder = os.path.join(root, rel) if rel else root
    try:
        it = os.scandir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return
    with it:
        for d in it:
            name = d.name
            r = f"{rel}/{name}" if rel else name
            if r in exclude:
                continue
            try:
                is_dir = d.is_dir(follow_symlinks=False)
                if known is not None and not is_dir:
                    # Same name, same inode (from the directory listing, no stat): the entry
                    # is reused; its inode-level facts may be stale (see relist).
                    old = known.get(r)
                    if old is not None and old.ino == d.inode() and old.kind != "dir":
                        out[r] = old
                        continue
                e = entry_of(d.path, d.stat(follow_symlinks=False))
            except FileNotFoundError:
                continue
            out[r] = e
            if e.kind == "dir":
                _walk(root, r, out, exclude, known)


def scan(root: str, sub: str = "", *, exclude: Iterable[str] = ()) -> dict[str, Entry]:
    """Every path under ``root`` (or only under ``root/sub``, ``sub`` included), excluding the
    relative paths in ``exclude`` and everything below them."""
    out: dict[str, Entry] = {}
    skip = frozenset(exclude)
    if sub:
        if sub in skip:
            return out
        try:
            e = entry_of(os.path.join(root, sub))
        except (FileNotFoundError, NotADirectoryError):
            return out
        out[sub] = e
        if e.kind != "dir":
            return out
    _walk(root, sub, out, skip)
    return out


def relist(root: str, known: dict[str, Entry], *, exclude: Iterable[str] = ()) -> dict[str, Entry]:
    """Like :func:`scan`, but a non-folder whose name and inode number (read from the folder
    listing, without a ``stat``) are unchanged keeps its entry from ``known``.

    Several times cheaper than :func:`scan` on large trees (one ``getdents`` per folder
    instead of one ``lstat`` per file), and exact about *which inode each path names*: a file
    replaced, created, deleted, renamed or relinked gets a fresh entry.  Not about what
    happened *inside* an inode (an in-place write, a chmod): those facts of a reused entry
    may be stale.  That is what a hard-link shadow needs (it shares those inodes, so their
    content is current in the copy by construction); a private copy needs :func:`scan`.
    """
    out: dict[str, Entry] = {}
    _walk(root, "", out, frozenset(exclude), known)
    return out


def under(keys: list[str], prefix: str) -> Iterator[str]:
    """The keys of a *sorted* list equal to ``prefix`` or below it (``prefix/...``); every key
    for the root prefix ``""``."""
    if not prefix:
        yield from keys
        return
    i = bisect.bisect_left(keys, prefix)
    if i < len(keys) and keys[i] == prefix:
        yield keys[i]
        i += 1
    # "a/b" sorts before "a/b/c" but after "a/b-c" and "a/b.c" (both < "/"): skip to "a/b/".
    lo = prefix + "/"
    i = bisect.bisect_left(keys, lo, lo=i)
    while i < len(keys) and keys[i].startswith(lo):
        yield keys[i]
        i += 1


class Manifest:
    """A scanned tree with its paths kept sorted (for subtree queries) and a size index."""

    def __init__(self, entries: dict[str, Entry]) -> None:
        self.entries = entries
        self.keys = sorted(entries)
        self._by_size: dict[int, list[str]] | None = None
        self._archives: list[str] | None = None

    def subtree(self, prefix: str) -> Iterator[str]:
        return under(self.keys, prefix)

    def archives(self) -> list[str]:
        """Files whose names say tar/zip/gz archive (found on first use)."""
        if self._archives is None:
            from wm_agents.simulate.recover import is_archive_name

            self._archives = [
                k for k in self.keys if self.entries[k].kind == "file" and is_archive_name(k)
            ]
        return self._archives

    def files_of_size(self, size: int) -> list[str]:
        """Files of exactly ``size`` bytes (the index is built on first use)."""
        if self._by_size is None:
            index: dict[int, list[str]] = {}
            for k, e in self.entries.items():
                if e.kind == "file":
                    index.setdefault(e.size, []).append(k)
            self._by_size = index
        return self._by_size.get(size, [])


class HashCache:
    """SHA-256 of file contents, cached by ``(dev, ino, size, mtime_ns, ctime_ns)``: the same
    key can only mean the same content (ctime cannot be set from user space)."""

    def __init__(self, max_items: int = 200_000) -> None:
        self._cache: dict[tuple[int, ...], str] = {}
        self.max_items = max_items
        self.bytes_hashed = 0

    def digest(self, path: str, entry: Entry | None = None) -> str:
        e = entry if entry is not None else entry_of(path)
        key = (e.dev, e.ino, e.size, e.mtime_ns, e.ctime_ns)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                self.bytes_hashed += len(chunk)
        digest = h.hexdigest()
        if len(self._cache) >= self.max_items:
            self._cache.clear()
        self._cache[key] = digest
        return digest
