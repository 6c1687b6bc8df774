"""Side effects of a call on a folder, as data: what was created, modified, deleted, what
content was lost, and whether all of it is recoverable.

The JSON shape (``prediction["side_effects"]`` of a simulated outcome; lists are capped at
``max_listed`` entries each, the rest counted in ``truncated``)::

    {
      "summary": "created 1 file (12 B); deleted 2 files (40 B, 40 B lost)",
      "created":  [{"path", "kind", "size"}],
      "modified": [{"path", "kind", "size_before", "size_after"}],
      "deleted":  [{"path", "kind", "size", "recoverable"}],
      "mode_changed": [{"path", "mode_before", "mode_after"}],     # octal strings
      "lost": [{"path", "size", "why"}],      # content gone for good ("deleted"/"overwritten")
      "recovered_from": {"path": "where the same bytes still are"},
      "totals": {"files_created", "bytes_created", "dirs_created", "files_modified",
                 "bytes_overwritten", "files_deleted", "bytes_deleted", "dirs_deleted",
                 "modes_changed", "files_lost", "bytes_lost", "bytes_added"},
      "truncated": {"created": n, ...}        # only when a list was cut
    }

``bytes_added`` is the copy's growth (created bytes plus size increases), which the size
budget bounds.  A symlink counts as a file of its target's length.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from wm_agents.simulate.recover import Lost, is_archive_name, search_recoverable
from wm_agents.simulate.snapshot import TreeChanges
from wm_agents.simulate.tree import HashCache, Manifest

__all__ = ["TOTALS", "FolderEffects", "folder_effects", "human_bytes", "summary"]

TOTALS = (
    "files_created",
    "bytes_created",
    "dirs_created",
    "files_modified",
    "bytes_overwritten",
    "files_deleted",
    "bytes_deleted",
    "dirs_deleted",
    "modes_changed",
    "files_lost",
    "bytes_lost",
    "bytes_added",
)
"""The keys of ``side_effects["totals"]`` (counts and bytes)."""


def human_bytes(n: float) -> str:
    """``1536 -> "1.5 KB"`` (powers of 1024, one decimal above bytes)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover - the loop returns at GB


@dataclass
class FolderEffects:
    """The side effects of one call (or a whole plan) on a folder.

    Attributes:
        side_effects: the JSON described in the module docstring.
        reversible: every deleted or overwritten byte still exists somewhere after the call.
        bytes_lost: bytes that do not.
        bytes_added: the copy's growth (for the size budget).
    """

    side_effects: dict[str, Any] = field(default_factory=dict)
    reversible: bool = True
    bytes_lost: int = 0
    bytes_added: int = 0

    @property
    def changed(self) -> bool:
        t = self.side_effects.get("totals", {})
        return any(v for k, v in t.items() if k != "bytes_added")


def _size(e: Any) -> int:
    return int(e.size) if e is not None and e.kind in ("file", "link") else 0


def _sniff_archive(path: str) -> bool:
    try:
        return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)
    except OSError:
        return False


def folder_effects(
    changes: TreeChanges,
    *,
    real_root: str,
    copy_root: str,
    manifest: Manifest,
    hashes: HashCache,
    max_listed: int = 100,
    max_archive_bytes: int = 256 << 20,
    extra_recover: Callable[[list[Lost]], dict[str, str]] | None = None,
    current_entries: bool = True,
) -> FolderEffects:
    """Turn :class:`TreeChanges` into :class:`FolderEffects` (see the module docstring).

    The lost content is hashed from the real folder (which imagination never changes), the
    candidates from the real folder where the copy still holds the same bytes, else from the
    copy.  ``extra_recover(still_lost) -> {path: location}`` may find the rest elsewhere
    (e.g. in a git object store).  ``current_entries=False`` says the manifest's file facts
    may be stale (a hard-link shadow's, see
    :meth:`~wm_agents.simulate.snapshot.Shadow.sync`): hashes then key on a fresh
    ``lstat``.
    """
    created: list[dict[str, Any]] = []
    modified: list[dict[str, Any]] = []
    deleted: list[dict[str, Any]] = []
    mode_changed: list[dict[str, Any]] = []
    lost: list[Lost] = []
    written: list[tuple[str, int]] = []  # copy files created or rewritten: (rel, size)
    gone: set[str] = set()  # real paths whose content the copy no longer holds
    t = dict.fromkeys(TOTALS, 0)

    def delete(rel: str, e: Any) -> None:
        gone.add(rel)
        if e.kind == "dir":
            t["dirs_deleted"] += 1
        else:
            t["files_deleted"] += 1
            t["bytes_deleted"] += _size(e)
        deleted.append({"path": rel, "kind": e.kind, "size": _size(e)})
        if e.kind == "file" and e.size > 0:
            lost.append(Lost(rel, e.size, "deleted", os.path.join(real_root, rel)))

    def create(rel: str, e: Any) -> None:
        if e.kind == "dir":
            t["dirs_created"] += 1
        else:
            t["files_created"] += 1
            t["bytes_created"] += _size(e)
            t["bytes_added"] += _size(e)
        created.append({"path": rel, "kind": e.kind, "size": _size(e)})
        if e.kind == "file":
            written.append((rel, e.size))

    for c in changes.changes:
        before, after = c.before, c.after
        if c.path == ".":
            pass
        elif before is None:
            create(c.path, after)
        elif after is None:
            delete(c.path, before)
        elif before.kind != after.kind:
            delete(c.path, before)
            create(c.path, after)
        elif c.content:
            gone.add(c.path)
            t["files_modified"] += 1
            t["bytes_overwritten"] += _size(before)
            t["bytes_added"] += max(0, _size(after) - _size(before))
            modified.append(
                {
                    "path": c.path,
                    "kind": before.kind,
                    "size_before": _size(before),
                    "size_after": _size(after),
                }
            )
            if before.kind == "file":
                written.append((c.path, after.size))
                if before.size > 0:
                    source = os.path.join(real_root, c.path)
                    lost.append(Lost(c.path, before.size, "overwritten", source))
        if c.meta and before is not None and after is not None and before.kind == after.kind:
            t["modes_changed"] += 1
            entry: dict[str, Any] = {
                "path": c.path,
                "mode_before": oct(before.mode),
                "mode_after": oct(after.mode),
            }
            if (before.uid, before.gid) != (after.uid, after.gid):
                entry["owner_before"] = [before.uid, before.gid]
                entry["owner_after"] = [after.uid, after.gid]
            mode_changed.append(entry)

    def files_of_size(size: int) -> Iterable[tuple[str, str, Any]]:
        for rel, s in written:
            if s == size:
                yield rel, os.path.join(copy_root, rel), None
        for rel in manifest.files_of_size(size):
            if rel not in gone:
                yield (
                    rel,
                    os.path.join(real_root, rel),
                    (manifest.entries[rel] if current_entries else None),
                )

    def archives() -> Iterable[tuple[str, str]]:
        for rel, _ in written:
            path = os.path.join(copy_root, rel)
            if is_archive_name(rel) or _sniff_archive(path):
                yield rel, path
        for rel in manifest.archives():
            if rel not in gone:
                yield rel, os.path.join(real_root, rel)

    found = (
        search_recoverable(
            lost,
            files_of_size=files_of_size,
            digest=hashes.digest,
            archives=archives(),
            max_archive_bytes=max_archive_bytes,
        )
        if lost
        else {}
    )
    if extra_recover is not None and any(x.path not in found for x in lost):
        found.update(extra_recover([x for x in lost if x.path not in found]))
    really_lost = [x for x in lost if x.path not in found and x.size > 0]
    lost_paths = {x.path for x in really_lost}
    for d in deleted:
        d["recoverable"] = d["path"] not in lost_paths
    t["files_lost"] = len(really_lost)
    t["bytes_lost"] = sum(x.size for x in really_lost)
    side_effects: dict[str, Any] = {"summary": summary(t)}
    truncated: dict[str, int] = {}
    for name, items in (
        ("created", created),
        ("modified", modified),
        ("deleted", deleted),
        ("mode_changed", mode_changed),
        ("lost", [{"path": x.path, "size": x.size, "why": x.why} for x in really_lost]),
    ):
        side_effects[name] = items[:max_listed]
        if len(items) > max_listed:
            truncated[name] = len(items) - max_listed
    recovered = {x.path: found[x.path] for x in lost if x.path in found}
    side_effects["recovered_from"] = dict(list(recovered.items())[:max_listed])
    side_effects["totals"] = t
    if truncated:
        side_effects["truncated"] = truncated
    return FolderEffects(
        side_effects=side_effects,
        reversible=not really_lost,
        bytes_lost=t["bytes_lost"],
        bytes_added=t["bytes_added"],
    )


def summary(t: dict[str, int]) -> str:
    """One line a person can read: ``"created 1 file (12 B); deleted 2 files (40 B lost)"``."""

    def files(n: int) -> str:
        return f"{n} file" + ("" if n == 1 else "s")

    parts = []
    if t["files_created"]:
        parts.append(f"created {files(t['files_created'])} ({human_bytes(t['bytes_created'])})")
    if t["dirs_created"]:
        parts.append(f"created {t['dirs_created']} folder(s)")
    if t["files_modified"]:
        parts.append(
            f"modified {files(t['files_modified'])} "
            f"({human_bytes(t['bytes_overwritten'])} overwritten)"
        )
    if t["files_deleted"]:
        parts.append(f"deleted {files(t['files_deleted'])} ({human_bytes(t['bytes_deleted'])})")
    if t["dirs_deleted"]:
        parts.append(f"deleted {t['dirs_deleted']} folder(s)")
    if t["modes_changed"]:
        parts.append(f"changed the mode of {t['modes_changed']} path(s)")
    if not parts:
        return "no changes"
    text = "; ".join(parts)
    if t["bytes_lost"] or t["files_lost"]:
        return f"{text}; not reversible: {human_bytes(t['bytes_lost'])} lost for good"
    return f"{text}; reversible"
