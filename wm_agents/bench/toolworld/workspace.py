"""Randomised workspaces: folders under /tmp created from a seed, and the text an agent's
context would hold about them.

A :class:`Workspace` is a plan (entries with their kind, size, permission, content kind, JSON
keys and table id ranges) plus the situation an agent sees: a task and a context that lists
what exists in one of four styles (``ls -l``-like lines, prose, an indented tree, or no listing
at all), sometimes only partially ("showing 7 of 12 entries").  :func:`materialize` writes the
plan to a real folder; the tools of :mod:`~wm_agents.bench.toolworld.tools` then run on it, so
every outcome is what really happens, not an invented label.

Read-only entries have no write bit.  Root ignores mode bits, so the tools check them
themselves (as a permission-aware tool would); everything else (missing files, a folder where a
file is expected, a missing parent folder, a name too long, a file too large, bytes that are not
UTF-8, JSON that does not parse) fails by itself.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

__all__ = [
    "MAX_READ_BYTES",
    "Entry",
    "Workspace",
    "generate_workspace",
    "materialize",
]

MAX_READ_BYTES = 64_000
"""``read_file`` refuses files larger than this (a tool guard an agent's tools typically have)."""

ContentKind = Literal["dir", "text", "json", "json_corrupt", "json_empty", "csv", "binary", "large"]
ListingStyle = Literal["ls", "prose", "tree", "none"]

_STEMS = (
    "notes", "report", "budget", "draft", "summary", "config", "settings", "users", "orders",
    "todo", "readme", "backup", "invoice", "plan", "roadmap", "metrics", "events", "inventory",
    "contacts", "schedule", "minutes", "results", "profile", "release", "changelog", "tasks",
)  # fmt: skip
_DIRS = (
    "docs", "data", "archive", "logs", "tmp", "src", "reports", "tables", "old", "inbox",
    "build", "locked", "shared", "private", "exports", "media", "drafts", "config",
)  # fmt: skip
_KEYS = (
    "name", "version", "port", "debug", "owner", "email", "timeout", "retries", "region",
    "enabled", "tags", "limit", "currency", "total", "created", "status", "path", "level",
)  # fmt: skip
_TEXT_EXT = (".txt", ".md", ".log")
_TASKS = (
    "Tidy the workspace and archive what is old.",
    "Summarise the configuration files for the team.",
    "Look up the rows the report needs and compute the totals.",
    "Back up the important files before the release.",
    "Clean up the logs and keep a copy of the latest results.",
    "Collect the settings and check that every value parses.",
    "Prepare the monthly report from the tables.",
    "Find the owner of each record and write a summary.",
)


@dataclass(frozen=True)
class Entry:
    """One file or folder of a workspace plan.

    Attributes:
        path: relative POSIX path (folders without a trailing slash).
        kind: ``"file"`` or ``"dir"``.
        content: what the file holds (``"dir"`` for folders).
        size: bytes the file will have (0 for folders).
        writable: False for a read-only entry (no write bit; the tools check it).
        keys: top-level keys of a JSON object file.
        ids: inclusive id range of a CSV table's ``id`` column.
    """

    path: str
    kind: Literal["file", "dir"]
    content: ContentKind
    size: int = 0
    writable: bool = True
    keys: tuple[str, ...] = ()
    ids: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def parent(self) -> str:
        return self.path.rsplit("/", 1)[0] if "/" in self.path else "."


@dataclass(frozen=True)
class Workspace:
    """A workspace plan and the situation an agent sees about it.

    Attributes:
        seed: the seed it was generated from (same seed, same workspace).
        entries: everything that exists, folders before their content.
        listed: the paths the context shows (all of them, a subset, or none).
        style: how the context lists them.
        task: the agent's task.
        context: what the agent's context says about the workspace.
    """

    seed: int
    entries: tuple[Entry, ...]
    listed: tuple[str, ...]
    style: ListingStyle
    task: str
    context: str
    _by_path: dict[str, Entry] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_path.update({e.path: e for e in self.entries})

    def get(self, path: str) -> Entry | None:
        """The entry at ``path`` (``"./"`` prefixes ignored), or None."""
        return self._by_path.get(path.removeprefix("./").rstrip("/"))

    def files(self, *contents: ContentKind) -> list[Entry]:
        """Files, optionally only those holding one of ``contents``."""
        return [
            e for e in self.entries if e.kind == "file" and (not contents or e.content in contents)
        ]

    def dirs(self) -> list[Entry]:
        """Folders."""
        return [e for e in self.entries if e.kind == "dir"]


def _size_text(size: int) -> str:
    if size >= 1_000_000:
        return f"{size / 1_000_000:.1f} MB"
    if size >= 1_000:
        return f"{size / 1_000:.1f} KB"
    return f"{size} B"


def _describe_prose(e: Entry) -> str:
    if e.kind == "dir":
        return f"{e.path}/ (read-only folder)" if not e.writable else f"{e.path}/ (folder)"
    bits = [_size_text(e.size)]
    if e.content in ("json", "json_corrupt", "json_empty") and e.keys:
        bits.append("keys: " + ", ".join(e.keys))
    if e.ids is not None:
        bits.append(f"{e.ids[1] - e.ids[0] + 1} rows, ids {e.ids[0]}-{e.ids[1]}")
    if not e.writable:
        bits.append("read-only")
    return f"{e.path} ({'; '.join(bits)})"


def _describe_ls(e: Entry) -> str:
    if e.kind == "dir":
        mode = "drwxr-xr-x" if e.writable else "dr-xr-xr-x"
        return f"{mode} {'-':>7} {e.path}/"
    mode = "-rw-r--r--" if e.writable else "-r--r--r--"
    line = f"{mode} {e.size:>7} {e.path}"
    if e.ids is not None:
        line += f"  # ids {e.ids[0]}-{e.ids[1]}"
    elif e.keys:
        line += "  # keys " + ",".join(e.keys)
    return line


def _describe_tree(e: Entry) -> str:
    indent = "  " * e.path.count("/")
    if e.kind == "dir":
        return f"{indent}{e.name}/" + ("" if e.writable else " [read-only]")
    extra = f" [{_size_text(e.size)}" + ("" if e.writable else ", read-only")
    if e.ids is not None:
        extra += f", ids {e.ids[0]}..{e.ids[1]}"
    return f"{indent}{e.name}{extra}]"


def _render_context(entries: list[Entry], total: int, style: ListingStyle) -> str:
    if style == "none":
        return "The agent works in a project folder; its content has not been listed yet."
    partial = len(entries) < total
    note = f" (showing {len(entries)} of {total} entries)" if partial else ""
    if style == "ls":
        lines = [f"$ ls -lR .{note}"] + [_describe_ls(e) for e in entries]
        return "\n".join(lines)
    if style == "tree":
        return "\n".join([f"Workspace tree{note}:", "./"] + [_describe_tree(e) for e in entries])
    return f"The workspace{note} holds " + ", ".join(_describe_prose(e) for e in entries) + "."


def _fresh(rng: random.Random, pool: tuple[str, ...], taken: set[str]) -> str:
    for _ in range(100):
        name = rng.choice(pool)
        if rng.random() < 0.3:
            name = f"{name}_{rng.randint(1, 9)}"
        if name not in taken:
            return name
    return f"{rng.choice(pool)}_{rng.randint(10, 10_000)}"


def generate_workspace(seed: int, *, max_listed: int = 10) -> Workspace:
    """A random workspace plan and its situation text, all drawn from ``seed``.

    Two to four folders (one maybe nested, some read-only), five to eleven files of mixed kinds
    (text, JSON that parses or not, CSV tables with an id range, binary, too large to read),
    listed in one of four styles, at most ``max_listed`` entries shown (so the context stays
    short enough for a small model's prompt).
    """
    rng = random.Random(seed)
    entries: list[Entry] = []
    taken: set[str] = set()
    for _ in range(rng.randint(2, 4)):
        name = _fresh(rng, _DIRS, taken)
        taken.add(name)
        entries.append(Entry(name, "dir", "dir", writable=rng.random() > 0.25))
    if rng.random() < 0.6:
        parent = rng.choice(entries)
        name = f"{parent.path}/{_fresh(rng, _DIRS, taken)}"
        taken.add(name)
        entries.append(Entry(name, "dir", "dir", writable=rng.random() > 0.2))
    folders = [".", *[e.path for e in entries]]
    kinds: list[ContentKind] = ["text", "json", "csv"]
    kinds += [
        rng.choice(["text", "text", "json", "json", "json_corrupt", "json_empty", "csv", "binary"])
        for _ in range(rng.randint(2, 7))
    ]
    if rng.random() < 0.5:
        kinds.append("large")
    for kind in kinds:
        folder = rng.choice(folders)
        ext = {
            "text": rng.choice(_TEXT_EXT),
            "json": ".json",
            "json_corrupt": ".json",
            "json_empty": ".json",
            "csv": ".csv",
            "binary": rng.choice((".bin", ".dat", ".png")),
            "large": rng.choice((".log", ".txt")),
        }[kind]
        stem = _fresh(rng, _STEMS, {p.rsplit("/", 1)[-1].split(".")[0] for p in taken})
        path = stem + ext if folder == "." else f"{folder}/{stem}{ext}"
        taken.add(path)
        keys: tuple[str, ...] = ()
        ids = None
        if kind == "json":
            keys = tuple(rng.sample(_KEYS, rng.randint(2, 5)))
            size = 20 + 14 * len(keys)
        elif kind == "json_corrupt":
            keys = tuple(rng.sample(_KEYS, rng.randint(2, 4)))
            size = 10 + 14 * len(keys)
        elif kind == "csv":
            start = rng.choice((0, 1, 1, 1, 100))
            n = rng.randint(3, 120)
            ids = (start, start + n - 1)
            size = 12 + 18 * n
        elif kind == "large":
            size = rng.randint(MAX_READ_BYTES + 1, 3 * MAX_READ_BYTES)
        elif kind == "binary":
            size = rng.randint(16, 4_000)
        elif kind == "json_empty":
            size = 0
        else:
            size = rng.choice((0, rng.randint(1, 200), rng.randint(200, 20_000)))
        entry = Entry(path, "file", kind, size, writable=rng.random() > 0.2, keys=keys, ids=ids)
        # The listing shows the real size of what materialize() writes.
        entries.append(replace(entry, size=len(_content(entry))))
    # Folders first, then files, each in path order (a stable listing, like ls -R).
    entries.sort(key=lambda e: (e.path.count("/"), e.kind != "dir", e.path))
    style: ListingStyle = rng.choice(("ls", "prose", "tree", "none"))
    shown = list(entries)
    if style != "none" and (len(shown) > max_listed or rng.random() < 0.3):
        k = min(max_listed, rng.randint(max(2, len(shown) // 2), len(shown)))
        keep = set(rng.sample(range(len(shown)), k))
        shown = [e for i, e in enumerate(shown) if i in keep]
    if style == "tree":
        # A tree cannot show a file without its folder; add the folders of shown files.
        paths = {e.path for e in shown}
        for e in list(shown):
            parts = e.path.split("/")
            paths |= {"/".join(parts[:i]) for i in range(1, len(parts))}
        shown = [e for e in entries if e.path in paths]
        shown.sort(key=lambda e: e.path)
    listed = () if style == "none" else tuple(e.path for e in shown)
    context = _render_context(shown, len(entries), style)
    return Workspace(seed, tuple(entries), listed, style, rng.choice(_TASKS), context)


def _content(e: Entry) -> bytes:
    rng = random.Random(f"{e.path}:{e.content}")
    if e.content == "json":
        obj = {k: rng.choice((rng.randint(0, 999), "x" * rng.randint(1, 8), True)) for k in e.keys}
        return json.dumps(obj).encode()
    if e.content == "json_corrupt":
        # Valid up to the last value, which is cut off: what a half-written file looks like.
        obj = {k: rng.randint(0, 999) for k in e.keys}
        return json.dumps(obj).encode()[:-3]
    if e.content == "json_empty":
        return b""
    if e.content == "csv":
        assert e.ids is not None
        rows = ["id,owner,total"] + [
            f"{i},{rng.choice(_STEMS)},{rng.randint(1, 9_999)}"
            for i in range(e.ids[0], e.ids[1] + 1)
        ]
        return ("\n".join(rows) + "\n").encode()
    if e.content == "binary":
        data = bytes([0x89, 0x50, 0x4E, 0x47, 0xFF, 0xFE]) + rng.randbytes(max(0, e.size - 6))
        return data[: e.size]
    words = " ".join(rng.choice(_STEMS) for _ in range(e.size // 4 + 1))
    return words.encode()[: e.size]


def materialize(ws: Workspace, root: str | Path) -> Path:
    """Write the workspace plan into ``root`` (which must be empty or missing); returns it.

    Read-only entries get mode ``0o444`` (files) or ``0o555`` (folders) after everything is
    written, so the folder can still be filled.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ValueError(f"materialize needs an empty folder, {root} is not empty")
    for e in ws.entries:
        target = root / e.path
        if e.kind == "dir":
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_content(e))
    for e in sorted(ws.entries, key=lambda e: -e.path.count("/")):
        if not e.writable:
            (root / e.path).chmod(0o555 if e.kind == "dir" else 0o444)
    return root
