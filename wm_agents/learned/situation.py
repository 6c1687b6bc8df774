"""What a situation's text says exists: the paths it mentions, and what it says about each.

An agent's context often holds a listing of its workspace (the output of ``ls -l``, a tree, a
sentence: "the workspace holds notes.txt (120 B; read-only), data/ (folder) ...").  Whether a
call will work often turns on it: is the file there, is it a folder, is its folder read-only,
is the id inside the table's range.  :func:`parse_situation` reads such listings without
knowing their format:

* a *mention* is a path-like token (it has a ``/`` or a file extension, and a letter);
* in an indented tree (a line holding one name, indented under a folder line ``name/``) the
  full path is rebuilt from the folders above it;
* a mention's *attributes* are its line when that line mentions nothing else (``ls``, tree),
  else the text up to the next mention (prose): read-only marks (``read-only``, a mode without
  ``w`` for the owner), folder marks (a trailing ``/``, ``folder``), a size, JSON keys, an id
  range or a row count.

Nothing here raises on odd text: what is not understood is simply not a mention.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = ["Mention", "SituationFacts", "parse_situation"]

_MENTION = re.compile(r"(?<![\w./-])(?:\./)?[A-Za-z0-9_][\w.\-]*(?:/[\w.\-]+)*/?(?![\w/])")
_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,5}$")
_READ_ONLY = re.compile(r"read-?only|(?<![\w-])[d-]r-[-x][r-][w-][-x][r-][w-][-x]")
_FOLDER_WORD = re.compile(r"\b(?:folder|directory|dir)\b|(?<![\w-])d[r-][w-][x-]")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KB|kB|KiB|MB|MiB|GB|bytes)\b")
_LS_SIZE = re.compile(r"(?<![\w-])[d-][r-][w-][x-][r-][w-][x-][r-][w-][x-]\s+(\d+)\s")
_RANGE = re.compile(r"(-?\d+)\s*(?:-|\.\.|to|–)\s*(-?\d+)")
_ID_WORDS = re.compile(r"\bids?\b|\brows?\b", re.IGNORECASE)
_ROWS = re.compile(r"(\d+)\s+(?:rows|records|entries|lines)")
_KEYS = re.compile(r"\bkeys?\s*:?\s*([A-Za-z_][\w]*(?:\s*,\s*[A-Za-z_][\w]*)*)")
_PARTIAL = re.compile(r"showing\s+\d+\s+of\s+\d+|partial|truncated|\.\.\.\s*and\s+\d+\s+more")
_UNIT = {"B": 1, "bytes": 1, "KB": 1e3, "kB": 1e3, "KiB": 1024, "MB": 1e6, "MiB": 2**20, "GB": 1e9}
_WORD = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True)
class Mention:
    """One path the situation mentions, and what it says about it.

    Attributes:
        path: the path as rebuilt (no ``./`` prefix, no trailing ``/``).
        is_dir: written with a trailing ``/`` or called a folder.
        read_only: marked read-only.
        size: bytes, when a size is given.
        keys: JSON keys listed with it.
        id_range: an inclusive range given with it (``ids 1-37``), or ``(first, count)`` rows
            when only a row count is given (``37 rows`` -> ``(1, 37)``).
        attributes: the text its attributes were read from.
    """

    path: str
    is_dir: bool = False
    read_only: bool = False
    size: float | None = None
    keys: tuple[str, ...] = ()
    id_range: tuple[int, int] | None = None
    attributes: str = ""


@dataclass(frozen=True)
class SituationFacts:
    """What a situation's text says: its mentions, and a few facts about the listing.

    Attributes:
        mentions: path -> :class:`Mention` (the first mention of a path wins).
        words: lower-case words of the text (for "is this value mentioned at all").
        partial: the listing says it is partial ("showing 7 of 12 entries").
    """

    mentions: dict[str, Mention] = field(default_factory=dict)
    words: frozenset[str] = frozenset()
    partial: bool = False

    @property
    def has_listing(self) -> bool:
        """True when the text mentions at least one path."""
        return bool(self.mentions)

    def get(self, path: str) -> Mention | None:
        """The mention of ``path`` (``./`` and a trailing ``/`` ignored), or None."""
        return self.mentions.get(normalize_path(path))

    def folder_known(self, path: str) -> bool:
        """True when ``path`` is the root or a folder the text implies exists (mentioned as a
        folder, or the folder of a mentioned path)."""
        p = normalize_path(path)
        if p in ("", "."):
            return True
        m = self.mentions.get(p)
        if m is not None and m.is_dir:
            return True
        return any(k.startswith(p + "/") for k in self.mentions)

    def basenames(self) -> set[str]:
        """The last component of every mention."""
        return {k.rsplit("/", 1)[-1] for k in self.mentions}


def normalize_path(path: str) -> str:
    """``./a/b/`` -> ``a/b``; ``./`` -> ``.``."""
    p = path.strip()
    while p.startswith("./"):
        p = p[2:]
    p = p.rstrip("/")
    return p or "."


def _is_path_like(token: str) -> bool:
    if not re.search(r"[A-Za-z]", token):
        return False
    if token.endswith("/"):
        return True
    core = token.rstrip("/")
    return "/" in core or bool(_EXTENSION.search(core))


def _attributes(text: str) -> Mention:
    size = None
    m = _SIZE.search(text)
    if m:
        size = float(m.group(1)) * _UNIT[m.group(2)]
    else:
        m = _LS_SIZE.search(text)
        if m:
            size = float(m.group(1))
    id_range = None
    r = _RANGE.search(text)
    if r is not None and _ID_WORDS.search(text):
        lo, hi = int(r.group(1)), int(r.group(2))
        id_range = (min(lo, hi), max(lo, hi))
    elif (rows := _ROWS.search(text)) is not None:
        id_range = (1, int(rows.group(1)))
    keys: tuple[str, ...] = ()
    k = _KEYS.search(text)
    if k:
        keys = tuple(x.strip() for x in k.group(1).split(","))
    return Mention(
        path="",
        is_dir=bool(_FOLDER_WORD.search(text)),
        read_only=bool(_READ_ONLY.search(text)),
        size=size,
        keys=keys,
        id_range=id_range,
        attributes=text,
    )


@lru_cache(maxsize=4096)
def parse_situation(text: str) -> SituationFacts:
    """Read what ``text`` (task and context) says exists; see the module docstring.

    Cached: an agent imagines many candidates in one situation.
    """
    mentions: dict[str, Mention] = {}
    stack: list[tuple[int, str]] = []  # (indent, folder) of an indented tree
    for line in text.splitlines():
        found = [m for m in _MENTION.finditer(line) if _is_path_like(m.group(0))]
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        first = found[0] if found else None
        tree_line = (
            first is not None
            and first.start() == indent
            and "/" not in first.group(0).rstrip("/")
            and len(found) == 1
        )
        while stack and stack[-1][0] >= indent:
            stack.pop()
        for i, m in enumerate(found):
            token = m.group(0)
            if normalize_path(token) == ".":
                continue
            if len(found) == 1:
                attr_text = line[: m.start()] + " " + line[m.end() :]
            else:
                end = found[i + 1].start() if i + 1 < len(found) else len(line)
                attr_text = line[m.end() : end]
            path = normalize_path(token)
            if tree_line and stack:
                path = "/".join([stack[-1][1], path])
            attrs = _attributes(attr_text)
            is_dir = token.endswith("/") or attrs.is_dir
            if path not in mentions:
                mentions[path] = Mention(
                    path,
                    is_dir=is_dir,
                    read_only=attrs.read_only,
                    size=attrs.size,
                    keys=attrs.keys,
                    id_range=attrs.id_range,
                    attributes=attr_text.strip()[:200],
                )
            if tree_line and token.endswith("/"):
                stack.append((indent, path))
    words = frozenset(w.lower() for w in _WORD.findall(text))
    return SituationFacts(mentions, words, bool(_PARTIAL.search(text.lower())))
