"""A shadow copy of a folder: made once, kept equal to the real folder, restored after each
simulated call, and compared with the real folder to find what a call changed.

Strategies (:data:`Strategy`), chosen once per shadow:

* ``"reflink"``: every file is a copy-on-write clone (``ioctl(FICLONE)``; Btrfs, XFS, bcachefs,
  APFS-like file systems).  Private to the copy from the start: no copy-up, safe for programs.
  Probed once per device (:func:`reflink_supported`).  ext4 has none.
* ``"hardlink"``: every file is a hard link to the real one (no data written: the copy costs
  one directory entry per file).  A write through a link would write the real file (root
  ignores read-only modes), so tools run under :class:`~wm_agents.simulate.guard.WriteGuard`,
  which copies a file up before any write; only for tools declared ``"in_process"``.  While a
  hard-link shadow exists, real files show one more link (``st_nlink``) and linking updated
  their ``ctime``; contents, modes and mtimes are untouched.
* ``"copy"``: a plain copy (``shutil.copy2``: data, mode, times; owner when run as root).  Costs
  the workspace's bytes once per shadow, then only what calls change.

Why a *persistent* shadow rather than a fresh copy per call: making a copy costs a system call
per file (plus the bytes for ``"copy"``), deleting it as much again.  A shadow is made once;
at each ``imagine`` call :meth:`Shadow.sync` brings it up to date with the real folder,
repairing only what changed (a hard-link shadow re-reads folder listings only: which inode
each path names; a private copy ``lstat``-s every path, to see in-place writes), and after each
simulated call :meth:`Shadow.restore` puts back only the paths the call changed.  The cost per
call is then the call itself plus the changed paths (with the write guard's list of touched
paths) or one ``lstat`` walk of the copy (without it).  The real folder must not change
*during* an imagine call (between sync and the end of the last candidate); it may change freely
between calls.

Why one module of ~540 lines: :class:`Shadow`'s sync, restore, compare and rebuild all keep one
invariant together (the manifest of the real folder, and which copy paths are still pristine
links or clones of it, per strategy); split apart, each half would have to know the other's
rules.  Scanning and hashing trees already live in :mod:`wm_agents.simulate.tree`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from wm_agents.simulate.tree import Entry, HashCache, Manifest, entry_of, relist, scan

__all__ = [
    "PathChange",
    "Shadow",
    "Strategy",
    "StrategyChoice",
    "TreeChanges",
    "choose_strategy",
    "default_scratch",
    "force_rmtree",
    "reflink_supported",
]

Strategy = Literal["reflink", "hardlink", "copy"]
StrategyChoice = Literal["auto", "reflink", "hardlink", "copy"]

_FICLONE = 0x40049409  # _IOW(0x94, 9, int), Linux's FICLONE ioctl
_reflink_by_device: dict[int, bool] = {}
_probe_lock = threading.Lock()


def _reflink(src: str, dst: str) -> None:
    with open(src, "rb") as s, open(dst, "wb") as d:
        fcntl.ioctl(d.fileno(), _FICLONE, s.fileno())


def reflink_supported(folder: str) -> bool:
    """Can files in ``folder`` be cloned copy-on-write?  Probed once per device, cached."""
    dev = os.stat(folder).st_dev
    with _probe_lock:
        if dev not in _reflink_by_device:
            with tempfile.TemporaryDirectory(dir=folder, prefix=".wm-reflink-probe-") as d:
                src = os.path.join(d, "a")
                with open(src, "wb") as f:
                    f.write(b"probe")
                try:
                    _reflink(src, os.path.join(d, "b"))
                    ok = True
                except OSError:
                    ok = False
            _reflink_by_device[dev] = ok
        return _reflink_by_device[dev]


def default_scratch(root: str) -> str:
    """Where shadows of ``root`` live: the system temp folder when it is on the same device as
    ``root`` (hard links and reflinks need that), else ``root``'s parent folder when writable,
    else the temp folder anyway (then only plain copies are possible)."""
    tmp = tempfile.gettempdir()
    dev = os.stat(root).st_dev
    if os.stat(tmp).st_dev == dev:
        return tmp
    parent = os.path.dirname(os.path.realpath(root))
    if os.access(parent, os.W_OK) and os.stat(parent).st_dev == dev:
        return parent
    return tmp


def choose_strategy(choice: StrategyChoice, root: str, scratch: str, *, private: bool) -> Strategy:
    """The strategy for a shadow of ``root`` in ``scratch``.

    ``private=True`` asks for a copy that programs may write (tools declared
    ``"subprocess"``): reflink where available, else a plain copy, whatever ``choice`` says.

    Raises:
        ValueError: ``choice`` names a strategy this file system cannot do.
    """
    same_device = os.stat(root).st_dev == os.stat(scratch).st_dev
    if choice == "copy":
        return "copy"
    reflink = same_device and reflink_supported(scratch)
    if choice == "reflink" and not reflink:
        raise ValueError(
            f"strategy='reflink': the file system of {scratch} cannot clone files from {root} "
            "(ext4 has no reflink; use strategy='auto')"
        )
    if reflink:
        return "reflink"
    if choice == "hardlink" and not same_device:
        raise ValueError(
            f"strategy='hardlink': {scratch} is not on the same device as {root}; pass a "
            "scratch_dir on that device or use strategy='auto'"
        )
    if private:
        return "copy"
    return "hardlink" if same_device else "copy"


def force_rmtree(path: str) -> None:
    """Remove a tree even where a simulated tool removed permissions; ignore what is gone."""

    def retry(func, p, _exc):  # type: ignore[no-untyped-def]
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, 0o700)
            func(p)

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=retry)


@dataclass(frozen=True)
class PathChange:
    """How one path differs between the copy (after a call) and the real folder (before).

    ``before``/``after`` are the real and copy entries (``None``: absent).  ``content`` is
    true when a file's bytes or a symlink's target differ (always true when the kind
    changed); ``meta`` when mode or owner differ.
    """

    path: str
    before: Entry | None
    after: Entry | None
    content: bool
    meta: bool


@dataclass
class TreeChanges:
    """The changes a call made, plus what the shadow must restore.

    Attributes:
        changes: one :class:`PathChange` per changed path, sorted by path.
        dirty: paths where the copy is not pristine (changed, or copied up unchanged).
        breaches: paths whose *shared* inode changed (a write went through a hard link);
            never expected: the simulator reports it and rebuilds the shadow.
        scanned: paths compared.
    """

    changes: list[PathChange] = field(default_factory=list)
    dirty: set[str] = field(default_factory=set)
    breaches: list[str] = field(default_factory=list)
    scanned: int = 0


class Shadow:
    """A copy of ``root`` under ``scratch`` with strategy ``strategy`` (see the module).

    Args:
        root: the real folder.
        scratch: where the copy lives (same device as ``root`` for hard links and reflinks).
        strategy: a :data:`Strategy` (see :func:`choose_strategy`).
        exclude: top-level relative paths neither copied nor compared (e.g. ``.git``).
        hashes: a shared content-hash cache.
    """

    def __init__(
        self,
        root: str,
        scratch: str,
        strategy: Strategy,
        *,
        exclude: Iterable[str] = (),
        hashes: HashCache | None = None,
    ) -> None:
        self.root = os.path.realpath(root)
        self.strategy: Strategy = strategy
        self.exclude = frozenset(exclude)
        self.hashes = hashes if hashes is not None else HashCache()
        self.base = os.path.realpath(tempfile.mkdtemp(prefix="wm-sim-", dir=scratch))
        self.path = os.path.join(self.base, os.path.basename(self.root) or "root")
        self.manifest = Manifest({})
        self.shared: set[tuple[int, int]] = set()
        self.groups: dict[tuple[int, int], list[str]] = {}
        """Files hard-linked to each other in the real folder: identity -> their paths."""
        self.group_of: dict[str, list[str]] = {}
        self.builds = 0
        self._pristine: dict[str, tuple[int, int]] = {}
        self._built = False
        self._root_mode = 0
        self._synced_ns = 0

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Delete the copy (real files get their link counts back). Idempotent."""
        force_rmtree(self.base)
        self._built = False

    def sync(self) -> None:
        """Bring the copy up to date with the real folder (built on first use).

        A hard-link shadow only needs to know which inode each real path names (its files
        *are* those inodes), so it re-reads folder listings (:func:`~wm_agents.simulate.tree.
        relist`: no ``stat`` per unchanged file); a private copy must also see in-place
        writes, so it ``lstat``-s every path (:func:`~wm_agents.simulate.tree.scan`).
        """
        if self.strategy == "hardlink":
            known = self.manifest.entries if self._built else {}
            entries = relist(self.root, known, exclude=self.exclude)
        else:
            entries = scan(self.root, exclude=self.exclude)
        self._root_mode = stat.S_IMODE(os.stat(self.root).st_mode)
        self._synced_ns = time.time_ns()
        if not self._built or not os.path.isdir(self.path):
            self._rebuild(Manifest(entries))
            return
        old = self.manifest.entries
        changed = [
            rel
            for rel in old.keys() | entries.keys()
            if not self._same_real(old.get(rel), entries.get(rel))
        ]
        if changed:  # else the manifest (its sorted keys and indexes) stays as it is
            self._set_manifest(Manifest(entries))
            self._repair(changed)

    def restore(self, dirty: Iterable[str]) -> None:
        """Make the copy pristine again at ``dirty`` paths (and below them)."""
        if not os.path.isdir(self.path):
            self._rebuild(self.manifest)
            return
        if stat.S_IMODE(os.lstat(self.path).st_mode) != self._root_mode:
            os.chmod(self.path, self._root_mode)
        rels = set(dirty)
        if rels:
            self._repair(rels)

    def rebuild(self) -> None:
        """Throw the copy away and make it again from the current manifest."""
        self._rebuild(self.manifest)

    @property
    def built(self) -> bool:
        """The copy exists and matches the manifest (else the next :meth:`sync` makes it)."""
        return self._built

    def invalidate(self) -> None:
        """Mark the copy as unknown: the next :meth:`sync` makes it again from scratch (cheap
        now, for a copy a call may have left in any state; or an interrupted run)."""
        self._built = False

    def private_bytes(self) -> int:
        """Disk bytes the copy itself uses: its folders, symlinks and private files (files
        it shares with the real folder through hard links cost nothing)."""
        total = os.lstat(self.path).st_blocks * 512
        for e_path, _ in self._walk_copy():
            st = os.lstat(e_path)
            if (st.st_dev, st.st_ino) not in self.shared:
                total += st.st_blocks * 512
        return total

    # -- comparing --------------------------------------------------------------------------

    def changes(self, scope: Iterable[str] | None = None) -> TreeChanges:
        """What differs between the copy and the real folder's manifest, over the whole tree
        (``scope=None``) or only under the relative paths in ``scope``."""
        m = self.manifest
        if scope is None:
            copy_entries = scan(self.path, exclude=self.exclude)
            rels = set(copy_entries) | set(m.entries)
        else:
            copy_entries = {}
            rels = set()
            for prefix in scope:
                copy_entries.update(scan(self.path, prefix, exclude=self.exclude))
                rels.update(m.subtree(prefix))
            rels |= copy_entries.keys()
        out = TreeChanges(scanned=len(rels))
        root_mode = stat.S_IMODE(os.lstat(self.path).st_mode) if os.path.isdir(self.path) else 0
        if root_mode and root_mode != self._root_mode:
            root_entry = entry_of(self.root)
            out.changes.append(
                PathChange(".", root_entry, entry_of(self.path), content=False, meta=True)
            )
        for rel in sorted(rels):
            before, after = m.entries.get(rel), copy_entries.get(rel)
            change = self._compare(rel, before, after, out)
            if change is not None:
                out.changes.append(change)
        return out

    def _compare(
        self, rel: str, before: Entry | None, after: Entry | None, out: TreeChanges
    ) -> PathChange | None:
        if before is None and after is None:
            return None
        if before is None or after is None or before.kind != after.kind:
            out.dirty.add(rel)
            return PathChange(rel, before, after, content=True, meta=False)
        meta = (before.mode, before.uid, before.gid) != (after.mode, after.uid, after.gid)
        if before.kind == "dir" or before.kind == "other":
            if meta:
                out.dirty.add(rel)
                return PathChange(rel, before, after, content=False, meta=True)
            return None
        if self.strategy == "hardlink" and before.kind == "file":
            if after.identity == before.identity:
                # Still the real inode: a write since the sync means one went through the
                # link (or someone changed the real folder during the imagine call).
                if after.mtime_ns > self._synced_ns:
                    out.breaches.append(rel)
                return None
            # The manifest may hold stale facts of the real inode (see sync): read them now.
            try:
                before = entry_of(os.path.join(self.root, rel))
            except FileNotFoundError:
                out.breaches.append(rel)  # the real folder changed during the imagine call
                return None
            meta = (before.mode, before.uid, before.gid) != (after.mode, after.uid, after.gid)
        elif self._is_pristine(rel, after, before):
            return None
        out.dirty.add(rel)
        if before.kind == "link":
            content = before.target != after.target
        elif before.size != after.size:
            content = True
        else:
            real = os.path.join(self.root, rel)
            content = self.hashes.digest(real) != self.hashes.digest(
                os.path.join(self.path, rel), after
            )
        if content or meta:
            return PathChange(rel, before, after, content=content, meta=meta)
        return None

    def _is_pristine(self, rel: str, copy: Entry, real: Entry) -> bool:
        if copy.kind == "file" and self.strategy == "hardlink":
            return copy.identity == real.identity
        return self._pristine.get(rel) == (copy.ino, copy.ctime_ns)

    def _same_real(self, old: Entry | None, new: Entry | None) -> bool:
        if old is new:
            return True
        if old is None or new is None:
            return old is new
        if old.kind != new.kind:
            return False
        if old.kind == "file" and self.strategy == "hardlink":
            # Size, mode and times live in the inode the copy shares: only a new inode matters.
            return old.identity == new.identity
        if (old.mode, old.uid, old.gid) != (new.mode, new.uid, new.gid):
            return False
        if old.kind == "link":
            return old.target == new.target
        if old.kind == "file":
            return (old.identity, old.size, old.mtime_ns, old.ctime_ns) == (
                new.identity,
                new.size,
                new.mtime_ns,
                new.ctime_ns,
            )
        return True

    # -- making the copy --------------------------------------------------------------------

    def _set_manifest(self, manifest: Manifest) -> None:
        self.manifest = manifest
        # Files linked to each other: an inode seen at two or more paths (a hard-link shadow
        # adds one link to every file, so nlink alone cannot tell).
        seen: dict[tuple[int, int], str] = {}
        by_identity: dict[tuple[int, int], list[str]] = {}
        for rel in manifest.keys:
            e = manifest.entries[rel]
            if e.kind == "file" and e.nlink > 1:
                key = (e.dev, e.ino)
                first = seen.setdefault(key, rel)
                if first != rel:
                    by_identity.setdefault(key, [first]).append(rel)
        self.groups = by_identity
        self.group_of = {rel: group for group in self.groups.values() for rel in group}
        if self.strategy == "hardlink":
            self.shared = {(e.dev, e.ino) for e in manifest.entries.values() if e.kind == "file"}
        else:
            self.shared = set()

    def _rebuild(self, manifest: Manifest) -> None:
        self._built = False
        force_rmtree(self.path)
        self._set_manifest(manifest)
        self._pristine = {}
        os.mkdir(self.path, 0o700)
        dirs: list[tuple[str, Entry]] = []
        for rel in manifest.keys:
            self._materialize(rel, manifest.entries[rel], dirs)
        self._fix_dirs(dirs)
        os.chmod(self.path, self._root_mode or 0o755)
        self._built = True
        self.builds += 1

    def _materialize(self, rel: str, want: Entry, dirs: list[tuple[str, Entry]]) -> None:
        src = os.path.join(self.root, rel)
        dst = os.path.join(self.path, rel)
        try:
            if want.kind == "dir":
                os.mkdir(dst, 0o700)  # the real mode once its children exist (_fix_dirs)
                dirs.append((dst, want))
                return
            if want.kind == "link":
                os.symlink(want.target or "", dst)
            elif want.kind == "file":
                if self._link_to_twin(rel, want, dst):
                    return
                self._clone(src, dst, want)
            else:
                return
        except FileNotFoundError:
            return  # vanished from the real folder since the scan: the next sync repairs
        st = os.lstat(dst)
        if not (want.kind == "file" and self.strategy == "hardlink"):
            self._pristine[rel] = (st.st_ino, st.st_ctime_ns)

    def _link_to_twin(self, rel: str, want: Entry, dst: str) -> bool:
        """Keep the real folder's own hard links in a private copy: link ``dst`` to a pristine
        copy of a path that shares its real inode (so a write to one shows in the other, as
        for real).  False when there is none yet (the caller clones)."""
        group = self.groups.get(want.identity)
        if self.strategy == "hardlink" or not group:
            return False
        for other in group:
            if other == rel:
                continue
            twin = os.path.join(self.path, other)
            try:
                have = entry_of(twin)
            except FileNotFoundError:
                continue
            if have.kind == "file" and self._pristine.get(other) == (have.ino, have.ctime_ns):
                os.link(twin, dst, follow_symlinks=False)
                for member in group:  # linking changed the shared inode's ctime
                    with contextlib.suppress(FileNotFoundError):
                        st = os.lstat(os.path.join(self.path, member))
                        if st.st_ino == have.ino:
                            self._pristine[member] = (st.st_ino, st.st_ctime_ns)
                return True
        return False

    def _clone(self, src: str, dst: str, want: Entry) -> None:
        if self.strategy == "hardlink":
            os.link(src, dst, follow_symlinks=False)
            return
        if self.strategy == "reflink":
            _reflink(src, dst)
            shutil.copystat(src, dst, follow_symlinks=False)
        else:
            shutil.copy2(src, dst, follow_symlinks=False)
        if (want.uid, want.gid) != (os.getuid(), os.getgid()):
            with contextlib.suppress(PermissionError):
                os.chown(dst, want.uid, want.gid, follow_symlinks=False)
        # chown clears set-id bits and changes ctime: put the mode back, record after.
        os.chmod(dst, want.mode)

    @staticmethod
    def _fix_dirs(dirs: list[tuple[str, Entry]]) -> None:
        for dst, want in reversed(dirs):
            st = os.lstat(dst)
            if (st.st_uid, st.st_gid) != (want.uid, want.gid):
                with contextlib.suppress(PermissionError):
                    os.chown(dst, want.uid, want.gid, follow_symlinks=False)
            if stat.S_IMODE(st.st_mode) != want.mode:
                os.chmod(dst, want.mode)

    def _repair(self, rels: Iterable[str]) -> None:
        try:
            self._repair_paths(sorted(set(rels)))
        except OSError:
            # A copy we cannot repair path by path (a tool left it in an odd state): remake
            # it whole rather than simulate on a copy that differs from the real folder.
            self._rebuild(self.manifest)

    def _repair_paths(self, rels: list[str]) -> None:
        want_all = self.manifest.entries
        for rel in reversed(rels):  # children before parents
            dst = os.path.join(self.path, rel)
            try:
                have = entry_of(dst)
            except FileNotFoundError:
                self._pristine.pop(rel, None)
                continue
            want = want_all.get(rel)
            if want is not None and have.kind == want.kind:
                if have.kind == "dir" or self._is_pristine(rel, have, want):
                    continue
            if have.kind == "dir":
                force_rmtree(dst)
            else:
                os.unlink(dst)
            self._pristine.pop(rel, None)
        dirs: list[tuple[str, Entry]] = []
        for rel in rels:  # parents before children
            want = want_all.get(rel)
            if want is None:
                continue
            dst = os.path.join(self.path, rel)
            if os.path.lexists(dst):
                if want.kind == "dir":
                    dirs.append((dst, want))
                continue
            self._materialize(rel, want, dirs)
        self._fix_dirs(dirs)

    def _walk_copy(self) -> Iterable[tuple[str, Entry]]:
        for rel, e in scan(self.path, exclude=self.exclude).items():
            yield os.path.join(self.path, rel), e
