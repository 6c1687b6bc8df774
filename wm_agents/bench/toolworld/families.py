"""Argument pattern families: how an agent's calls of each tool are drawn in a workspace.

A *family* is one way of choosing arguments (``read_file/typo``: the name of a file that
exists, with one letter changed; ``divide/zero_float``: ``b = 0.0``).  Families are grouped by
*cause*: what decides their outcome (``read_file/missing``: the file is not there, reached by a
typo, another extension, a fresh name or a missing folder).  The benchmark holds out whole
families, so held-out calls use argument patterns never seen in training; the primary split
keeps at least one family of every cause in training (a new way of reaching a known cause),
the harsh split holds out whole causes.  Outcomes within a family still vary (a listed file may
be read-only; a listing may be partial or missing).

Each ``make(rng, ws)`` returns the arguments, or ``None`` when the workspace has nothing the
family needs (no read-only folder, say).

Why one module of ~700 lines: it is the benchmark's data definition, one table of families
(:data:`FAMILIES`) with the small choosers they share; split by tool, the shared choosers and
the cause grouping the split reads would be spread over several files.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wm_agents.bench.toolworld.workspace import Entry, Workspace

__all__ = ["FAMILIES", "CallFamily", "families_by_tool"]

Args = dict[str, Any] | None
Chooser = Callable[[random.Random, Workspace], Any]
_WORDS = ("alpha", "beta", "report", "final", "copy", "new", "summary", "export", "temp", "old")
_MISSING_DIRS = ("backup", "archive2", "out", "results", "new", "staging", "cache")


@dataclass(frozen=True)
class CallFamily:
    """One argument pattern of one tool, and the cause that decides its outcome."""

    tool: str
    name: str
    cause: str
    make: Callable[[random.Random, Workspace], Args]

    @property
    def key(self) -> str:
        """``"tool/name"``, unique."""
        return f"{self.tool}/{self.name}"

    @property
    def cause_key(self) -> str:
        """``"tool/cause"``."""
        return f"{self.tool}/{self.cause}"


# -- choosing paths ------------------------------------------------------------------------------


def _pick(rng: random.Random, items: list[Entry]) -> Entry | None:
    return rng.choice(items) if items else None


def _join(folder: str, name: str) -> str:
    return name if folder in (".", "") else f"{folder}/{name}"


def _folders(ws: Workspace, writable: bool | None = None) -> list[str]:
    out = ["."] if writable in (None, True) else []
    return out + [d.path for d in ws.dirs() if writable is None or d.writable == writable]


def _file(
    *contents: str, writable: bool | None = None, folder_writable: bool | None = None
) -> Chooser:
    """An existing file (of these contents; this write permission; in a folder of this one)."""

    def choose(rng: random.Random, ws: Workspace) -> str | None:
        ok = set(_folders(ws, folder_writable))
        files = [
            f
            for f in ws.files(*contents)  # type: ignore[arg-type]
            if (writable is None or f.writable == writable) and f.parent in ok
        ]
        e = _pick(rng, files)
        return None if e is None else e.path

    return choose


def _folder(writable: bool | None = None, nested: bool | None = None) -> Chooser:
    def choose(rng: random.Random, ws: Workspace) -> str | None:
        dirs = [
            d
            for d in ws.dirs()
            if (writable is None or d.writable == writable)
            and (nested is None or ("/" in d.path) == nested)
        ]
        e = _pick(rng, dirs)
        return None if e is None else e.path

    return choose


def _typo_path(rng: random.Random, path: str) -> str:
    folder, _, name = path.rpartition("/")
    stem, dot, ext = name.partition(".")
    i = rng.randrange(len(stem))
    op = rng.choice(("drop", "swap", "replace"))
    if op == "drop" and len(stem) > 2:
        stem = stem[:i] + stem[i + 1 :]
    elif op == "swap" and i + 1 < len(stem) and stem[i] != stem[i + 1]:
        stem = stem[:i] + stem[i + 1] + stem[i] + stem[i + 2 :]
    else:
        stem = stem[:i] + rng.choice("aeiouxz".replace(stem[i], "")) + stem[i + 1 :]
    return _join(folder, stem + dot + ext)


def _typo(base: Chooser) -> Chooser:
    """``base``'s path with one letter changed (None if that happens to exist)."""

    def choose(rng: random.Random, ws: Workspace) -> str | None:
        path = base(rng, ws)
        if path is None:
            return None
        typo = _typo_path(rng, path)
        return None if ws.get(typo) is not None else typo

    return choose


def _other_ext(rng: random.Random, ws: Workspace) -> str | None:
    e = _pick(rng, ws.files())
    if e is None:
        return None
    stem, _, ext = e.path.rpartition(".")
    path = f"{stem}.{rng.choice([x for x in ('txt', 'md', 'json', 'csv', 'bak') if x != ext])}"
    return None if ws.get(path) is not None else path


def _fresh_name(rng: random.Random, ws: Workspace, folder: str, ext: str = "") -> str:
    for _ in range(50):
        name = f"{rng.choice(_WORDS)}_{rng.randint(1, 99)}{ext or rng.choice(('.txt', '.md'))}"
        if ws.get(_join(folder, name)) is None:
            return _join(folder, name)
    return _join(folder, f"fresh_{rng.randint(100, 10**6)}{ext or '.txt'}")


def _fresh(writable: bool | None = True, *, root: bool = False, ext: str = "") -> Chooser:
    """A new name in the root (``root``) or in a folder of this write permission."""

    def choose(rng: random.Random, ws: Workspace) -> str | None:
        if root:
            return _fresh_name(rng, ws, ".", ext)
        folders = [f for f in _folders(ws, writable) if f != "."]
        return _fresh_name(rng, ws, rng.choice(folders), ext) if folders else None

    return choose


def _missing_dir(rng: random.Random, ws: Workspace) -> str:
    for _ in range(50):
        name = rng.choice(_MISSING_DIRS)
        if ws.get(name) is None:
            return name
    return f"missing_{rng.randint(1, 10**6)}"


def _in_missing_dir(depth: int = 1) -> Chooser:
    def choose(rng: random.Random, ws: Workspace) -> str:
        folders = [_missing_dir(rng, ws)] + [rng.choice(_WORDS) for _ in range(depth - 1)]
        return "/".join(folders) + f"/{rng.choice(_WORDS)}.txt"

    return choose


def _long_name(prefix: str = "notes_", ext: str = ".txt", folder: Chooser | None = None) -> Chooser:
    def choose(rng: random.Random, ws: Workspace) -> str | None:
        name = prefix + "x" * rng.randint(250, 300) + ext
        if folder is None:
            return name
        parent = folder(rng, ws)
        return None if parent is None else f"{parent}/{name}"

    return choose


def _const(*values: Any) -> Chooser:
    return lambda rng, ws: rng.choice(values)


def _escape(rng: random.Random, ws: Workspace) -> str:
    return rng.choice(("../", "../../")) + rng.choice(_WORDS) + ".txt"


def _absolute(rng: random.Random, ws: Workspace) -> str:
    return rng.choice(("/etc/", "/tmp/", "/root/")) + rng.choice(_WORDS) + ".txt"


# -- families --------------------------------------------------------------------------------------

_PATH_ARGS = ("path", "src", "dst", "table")


def _decorate(rng: random.Random, ws: Workspace, path: str) -> str:
    """How agents write the same path differently: ``./`` in front (1 in 4 relative paths), a
    trailing ``/`` on a folder (1 in 3).  Random in every family, so no family is told apart by
    such surface alone."""
    if path.startswith(("/", "..", ".")) or len(path) > 200:
        return path
    entry = ws.get(path)
    if entry is not None and entry.kind == "dir" and rng.random() < 1 / 3:
        path += "/"
    if rng.random() < 0.25:
        path = "./" + path
    return path


def _fam(tool: str, name: str, cause: str, **args: Chooser) -> CallFamily:
    def make(rng: random.Random, ws: Workspace) -> Args:
        out = {}
        for key, choose in args.items():
            value = choose(rng, ws)
            if value is None and not getattr(choose, "allows_none", False):
                return None
            if key in _PATH_ARGS and isinstance(value, str):
                value = _decorate(rng, ws, value)
            out[key] = value
        return out

    return CallFamily(tool, name, cause, make)


def _none_value(rng: random.Random, ws: Workspace) -> None:
    return None


_none_value.allows_none = True  # type: ignore[attr-defined]


def _text(rng: random.Random, ws: Workspace) -> str:
    """Content an agent writes: words, sometimes several lines, sometimes JSON, sometimes empty."""
    kind = rng.random()
    if kind < 0.1:
        return ""
    if kind < 0.25:
        return '{"' + rng.choice(_WORDS) + '": ' + str(rng.randint(0, 99)) + "}"
    words = rng.choices(_WORDS, k=rng.randint(1, 12))
    return ("\n" if kind < 0.5 else " ").join(words)


def _number(rng: random.Random, ws: Workspace) -> float:
    """A numerator: any kind of number (so divisor families differ only by their divisor)."""
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randint(1, 99)
    if kind == 1:
        return -rng.randint(1, 99)
    if kind == 2:
        return round(rng.uniform(-500, 500), rng.randint(1, 3))
    if kind == 3:
        return rng.randint(10**6, 10**12)
    return 0


def _json_file_key(where: str, key: str) -> Callable[[random.Random, Workspace], Args]:
    """A JSON object file (in the root, in a folder or anywhere) and a key: one of its own
    (``listed``), one it lacks, or one of its own with the case changed."""

    def make(rng: random.Random, ws: Workspace) -> Args:
        files = [
            f for f in ws.files("json") if where == "any" or (f.parent == ".") == (where == "root")
        ]
        e = _pick(rng, files)
        if e is None:
            return None
        if key == "listed":
            k = rng.choice(e.keys)
        elif key == "case":
            k = rng.choice(e.keys)
            k = k.upper() if rng.random() < 0.5 else k.capitalize()
        else:
            pool = ("id", "title", "url", "host", "user", "count", "mode")
            k = rng.choice([x for x in pool if x not in e.keys])
        return {"path": _decorate(rng, ws, e.path), "key": k}

    return make


def _row(contents: tuple[str, ...], draw: Callable[[random.Random, tuple[int, int]], Any]):
    def make(rng: random.Random, ws: Workspace) -> Args:
        e = _pick(rng, ws.files(*contents))  # type: ignore[arg-type]
        if e is None:
            return None
        return {"table": _decorate(rng, ws, e.path), "id": draw(rng, e.ids or (1, 10))}

    return make


def _obj(rng: random.Random) -> str:
    return '{"' + rng.choice(_WORDS) + '": ' + str(rng.randint(0, 99)) + "}"


def _n(lo: int, hi: int) -> Chooser:
    return lambda rng, ws: rng.randint(lo, hi)


def _s(draw: Callable[[random.Random], Any]) -> Chooser:
    return lambda rng, ws: draw(rng)


def _new_dir_in(writable: bool) -> Chooser:
    def choose(rng: random.Random, ws: Workspace) -> str | None:
        folders = [f for f in _folders(ws, writable) if f != "."]
        return f"{rng.choice(folders)}/{_missing_dir(rng, ws)}" if folders else None

    return choose


def _in_folder(base: Chooser, nested: bool) -> Chooser:
    """``base``'s path, only when it is (``nested``) or is not inside a folder."""

    def choose(rng: random.Random, ws: Workspace) -> str | None:
        path = base(rng, ws)
        return path if path is not None and ("/" in path) == nested else None

    return choose


_ANY_FILE = _file()
_TEXTISH = ("text", "json", "csv")

FAMILIES: tuple[CallFamily, ...] = (
    # read_file
    _fam("read_file", "text_file", "readable", path=_file("text")),
    _fam("read_file", "json_file", "readable", path=_file("json", "json_corrupt", "json_empty")),
    _fam("read_file", "csv_file", "readable", path=_file("csv")),
    _fam("read_file", "typo", "missing", path=_typo(_ANY_FILE)),
    _fam("read_file", "other_ext", "missing", path=_other_ext),
    _fam("read_file", "fresh_name", "missing", path=_fresh(root=True)),
    _fam("read_file", "fresh_in_folder", "missing", path=_fresh(None)),
    _fam("read_file", "in_missing_folder", "missing", path=_in_missing_dir()),
    _fam("read_file", "top_folder", "folder", path=_folder(nested=False)),
    _fam("read_file", "nested_folder", "folder", path=_folder(nested=True)),
    _fam("read_file", "large_file", "too_large", path=_file("large")),
    _fam("read_file", "binary_file", "binary", path=_file("binary")),
    _fam("read_file", "escape", "escape", path=_escape),
    _fam("read_file", "absolute", "escape", path=_absolute),
    # write_file
    _fam("write_file", "new_in_root", "new", path=_fresh(root=True), content=_text),
    _fam("write_file", "new_in_folder", "new", path=_fresh(True), content=_text),
    _fam("write_file", "new_json", "new", path=_fresh(True, ext=".json"), content=_text),
    _fam(
        "write_file",
        "overwrite_text",
        "overwrite",
        path=_file("text", writable=True, folder_writable=True),
        content=_text,
    ),
    _fam(
        "write_file",
        "overwrite_data",
        "overwrite",
        path=_file("json", "csv", "json_empty", writable=True, folder_writable=True),
        content=_text,
    ),
    _fam("write_file", "new_in_readonly_folder", "read_only", path=_fresh(False), content=_text),
    _fam(
        "write_file",
        "overwrite_readonly_file",
        "read_only",
        path=_file(writable=False, folder_writable=True),
        content=_text,
    ),
    _fam(
        "write_file",
        "file_in_readonly_folder",
        "read_only",
        path=_file(writable=True, folder_writable=False),
        content=_text,
    ),
    _fam("write_file", "missing_parent", "missing_parent", path=_in_missing_dir(), content=_text),
    _fam(
        "write_file",
        "missing_deep_parent",
        "missing_parent",
        path=_in_missing_dir(2),
        content=_text,
    ),
    _fam("write_file", "top_folder", "folder", path=_folder(nested=False), content=_text),
    _fam("write_file", "nested_folder", "folder", path=_folder(nested=True), content=_text),
    _fam("write_file", "long_name", "long_name", path=_long_name(), content=_text),
    _fam(
        "write_file",
        "long_name_in_folder",
        "long_name",
        path=_long_name(folder=_folder(True)),
        content=_text,
    ),
    _fam("write_file", "numeric_content", "bad_type", path=_fresh(True), content=_n(0, 999)),
    _fam(
        "write_file",
        "list_content",
        "bad_type",
        path=_fresh(root=True),
        content=_s(lambda r: [r.choice(_WORDS)]),
    ),
    _fam("write_file", "null_content", "bad_type", path=_fresh(root=True), content=_none_value),
    _fam("write_file", "escape", "escape", path=_escape, content=_text),
    _fam("write_file", "absolute", "escape", path=_absolute, content=_text),
    # append_file
    _fam("append_file", "text_file", "existing", path=_file("text"), text=_text),
    _fam("append_file", "json_file", "existing", path=_file("json", "json_corrupt"), text=_text),
    _fam("append_file", "csv_file", "existing", path=_file("csv"), text=_text),
    _fam("append_file", "readonly_file", "read_only", path=_file(writable=False), text=_text),
    _fam("append_file", "missing_file", "missing", path=_fresh(root=True), text=_text),
    _fam("append_file", "typo", "missing", path=_typo(_file(*_TEXTISH)), text=_text),
    _fam("append_file", "top_folder", "folder", path=_folder(nested=False), text=_text),
    _fam("append_file", "nested_folder", "folder", path=_folder(nested=True), text=_text),
    _fam(
        "append_file",
        "list_text",
        "bad_type",
        path=_file("text"),
        text=_s(lambda r: [r.choice(_WORDS)]),
    ),
    _fam("append_file", "numeric_text", "bad_type", path=_file("text", "json"), text=_n(0, 99)),
    _fam("append_file", "null_text", "bad_type", path=_file("text", "csv"), text=_none_value),
    # delete_file
    _fam(
        "delete_file",
        "file_in_root",
        "deletable",
        path=_in_folder(_file(writable=True, folder_writable=True), False),
    ),
    _fam(
        "delete_file",
        "file_in_folder",
        "deletable",
        path=_in_folder(_file(writable=True, folder_writable=True), True),
    ),
    _fam(
        "delete_file",
        "readonly_file",
        "read_only",
        path=_file(writable=False, folder_writable=True),
    ),
    _fam("delete_file", "in_readonly_folder", "read_only", path=_file(folder_writable=False)),
    _fam("delete_file", "typo", "missing", path=_typo(_ANY_FILE)),
    _fam("delete_file", "fresh_name", "missing", path=_fresh(root=True)),
    _fam("delete_file", "in_missing_folder", "missing", path=_in_missing_dir()),
    _fam("delete_file", "top_folder", "folder", path=_folder(nested=False)),
    _fam("delete_file", "nested_folder", "folder", path=_folder(nested=True)),
    _fam("delete_file", "escape", "escape", path=_escape),
    _fam("delete_file", "absolute", "escape", path=_absolute),
    # list_dir
    _fam("list_dir", "top_folder", "folder", path=_folder(nested=False)),
    _fam("list_dir", "nested_folder", "folder", path=_folder(nested=True)),
    _fam("list_dir", "readonly_folder", "folder", path=_folder(writable=False)),
    _fam("list_dir", "root", "folder", path=_const(".", "./")),
    _fam("list_dir", "missing_folder", "missing", path=_missing_dir),
    _fam("list_dir", "typo", "missing", path=_typo(_folder())),
    _fam(
        "list_dir",
        "missing_nested",
        "missing",
        path=lambda r, ws: (
            None if not (fs := _folders(ws)[1:]) else f"{r.choice(fs)}/{_missing_dir(r, ws)}"
        ),
    ),
    _fam("list_dir", "file_in_root", "file", path=_in_folder(_ANY_FILE, False)),
    _fam("list_dir", "file_in_folder", "file", path=_in_folder(_ANY_FILE, True)),
    # make_dir
    _fam("make_dir", "new_in_root", "new", path=_missing_dir),
    _fam("make_dir", "new_in_folder", "new", path=_new_dir_in(True)),
    _fam("make_dir", "new_in_readonly_folder", "read_only", path=_new_dir_in(False)),
    _fam(
        "make_dir",
        "in_missing_parent",
        "missing_parent",
        path=lambda r, ws: f"{_missing_dir(r, ws)}/{r.choice(_WORDS)}",
    ),
    _fam(
        "make_dir",
        "in_missing_deep_parent",
        "missing_parent",
        path=lambda r, ws: f"{_missing_dir(r, ws)}/{r.choice(_WORDS)}/{r.choice(_WORDS)}",
    ),
    _fam("make_dir", "existing_folder", "exists", path=_folder()),
    _fam("make_dir", "existing_file", "exists", path=_ANY_FILE),
    _fam("make_dir", "long_name", "long_name", path=_long_name("dir_", "")),
    _fam(
        "make_dir", "long_name_in_folder", "long_name", path=_long_name("dir_", "", _folder(True))
    ),
    # copy_file
    _fam("copy_file", "to_new_in_folder", "copyable", src=_ANY_FILE, dst=_fresh(True)),
    _fam("copy_file", "to_new_in_root", "copyable", src=_ANY_FILE, dst=_fresh(root=True)),
    _fam(
        "copy_file",
        "overwrite",
        "copyable",
        src=_ANY_FILE,
        dst=_file(writable=True, folder_writable=True),
    ),
    _fam("copy_file", "src_typo", "src_missing", src=_typo(_ANY_FILE), dst=_fresh(True)),
    _fam("copy_file", "src_fresh", "src_missing", src=_fresh(root=True), dst=_fresh(True)),
    _fam("copy_file", "src_folder", "src_folder", src=_folder(), dst=_fresh(True)),
    _fam(
        "copy_file",
        "dst_missing_parent",
        "dst_missing_parent",
        src=_ANY_FILE,
        dst=_in_missing_dir(),
    ),
    _fam(
        "copy_file",
        "dst_missing_deep_parent",
        "dst_missing_parent",
        src=_ANY_FILE,
        dst=_in_missing_dir(2),
    ),
    _fam("copy_file", "dst_readonly_folder", "dst_read_only", src=_ANY_FILE, dst=_fresh(False)),
    _fam(
        "copy_file",
        "dst_readonly_file",
        "dst_read_only",
        src=_ANY_FILE,
        dst=_file(writable=False, folder_writable=True),
    ),
    _fam("copy_file", "dst_folder", "dst_folder", src=_ANY_FILE, dst=_folder()),
    _fam("copy_file", "dst_escape", "escape", src=_ANY_FILE, dst=_escape),
    _fam("copy_file", "dst_absolute", "escape", src=_ANY_FILE, dst=_absolute),
    _fam("copy_file", "src_escape", "escape", src=_escape, dst=_fresh(True)),
    # json_get
    CallFamily("json_get", "key_in_root_file", "key_present", _json_file_key("root", "listed")),
    CallFamily("json_get", "key_in_folder_file", "key_present", _json_file_key("folder", "listed")),
    CallFamily("json_get", "absent_key", "key_absent", _json_file_key("any", "absent")),
    CallFamily("json_get", "key_case_changed", "key_absent", _json_file_key("any", "case")),
    _fam(
        "json_get",
        "corrupt_file",
        "not_json",
        path=_file("json_corrupt"),
        key=_const("name", "port"),
    ),
    _fam(
        "json_get",
        "empty_file",
        "not_json",
        path=_file("json_empty"),
        key=_const("name", "version"),
    ),
    _fam("json_get", "text_file", "not_json", path=_file("text"), key=_const("name")),
    _fam("json_get", "csv_file", "not_json", path=_file("csv"), key=_const("id")),
    _fam("json_get", "numeric_key", "bad_type", path=_file("json"), key=_n(0, 3)),
    _fam("json_get", "null_key", "bad_type", path=_file("json"), key=_none_value),
    _fam(
        "json_get",
        "missing_file",
        "missing",
        path=_fresh(root=True, ext=".json"),
        key=_const("name", "port"),
    ),
    _fam("json_get", "typo_file", "missing", path=_typo(_file("json")), key=_const("name", "port")),
    # json_parse
    _fam("json_parse", "object", "valid", text=_s(_obj)),
    _fam(
        "json_parse",
        "array",
        "valid",
        text=_s(lambda r: "[" + ", ".join(str(r.randint(0, 9)) for _ in range(3)) + "]"),
    ),
    _fam("json_parse", "number", "valid", text=_s(lambda r: str(r.randint(-50, 500)))),
    _fam("json_parse", "string_literal", "valid", text=_s(lambda r: f'"{r.choice(_WORDS)}"')),
    _fam("json_parse", "padded_object", "valid", text=_s(lambda r: "  " + _obj(r) + "\n")),
    _fam("json_parse", "nan", "valid", text=_const("NaN", "Infinity")),
    _fam(
        "json_parse",
        "single_quotes",
        "invalid",
        text=_s(lambda r: "{'" + r.choice(_WORDS) + "': 1}"),
    ),
    _fam(
        "json_parse",
        "trailing_comma",
        "invalid",
        text=_s(lambda r: "[1, 2, " + str(r.randint(3, 9)) + ",]"),
    ),
    _fam("json_parse", "truncated", "invalid", text=_s(lambda r: _obj(r)[:-2])),
    _fam("json_parse", "empty", "invalid", text=_const("", " ")),
    _fam("json_parse", "python_literal", "invalid", text=_const("True", "None", "False")),
    _fam("json_parse", "bare_word", "invalid", text=_s(lambda r: r.choice(_WORDS))),
    _fam("json_parse", "number_not_string", "bad_type", text=_n(0, 99)),
    _fam("json_parse", "null_text", "bad_type", text=_none_value),
    # divide (every family draws its numerator the same way)
    _fam("divide", "int_divisor", "ok", a=_number, b=_n(1, 99)),
    _fam("divide", "float_divisor", "ok", a=_number, b=_s(lambda r: round(r.uniform(0.1, 9), 2))),
    _fam("divide", "negative_divisor", "ok", a=_number, b=_n(-99, -1)),
    _fam("divide", "huge_divisor", "ok", a=_number, b=_n(10**6, 10**12)),
    _fam("divide", "tiny_divisor", "ok", a=_number, b=_s(lambda r: 10 ** -r.randint(3, 9))),
    _fam("divide", "zero_int", "zero", a=_number, b=_const(0)),
    _fam("divide", "zero_float", "zero", a=_number, b=_const(0.0)),
    _fam("divide", "negative_zero", "zero", a=_number, b=_const(-0.0)),
    _fam("divide", "string_divisor", "bad_type", a=_number, b=_s(lambda r: str(r.randint(1, 99)))),
    _fam("divide", "null_divisor", "bad_type", a=_number, b=_none_value),
    _fam("divide", "bool_divisor", "bad_type", a=_number, b=_const(True, False)),
    _fam(
        "divide", "string_numerator", "bad_type", a=_s(lambda r: str(r.randint(1, 99))), b=_n(1, 99)
    ),
    # sqrt
    _fam("sqrt", "positive_int", "ok", x=_n(1, 10**4)),
    _fam("sqrt", "positive_float", "ok", x=_s(lambda r: round(r.uniform(0.01, 500), 3))),
    _fam("sqrt", "zero", "ok", x=_const(0, 0.0)),
    _fam("sqrt", "huge", "ok", x=_s(lambda r: 10 ** r.randint(12, 30))),
    _fam("sqrt", "negative_int", "negative", x=_n(-(10**4), -1)),
    _fam("sqrt", "negative_float", "negative", x=_s(lambda r: -round(r.uniform(0.01, 500), 3))),
    _fam("sqrt", "tiny_negative", "negative", x=_s(lambda r: -(10 ** -r.randint(6, 12)))),
    _fam("sqrt", "numeric_string", "bad_type", x=_s(lambda r: str(r.randint(1, 99)))),
    _fam("sqrt", "null", "bad_type", x=_none_value),
    _fam("sqrt", "bool", "bad_type", x=_const(True, False)),
    # parse_int
    _fam("parse_int", "digits", "valid", text=_s(lambda r: str(r.randint(0, 10**6)))),
    _fam(
        "parse_int", "signed", "valid", text=_s(lambda r: r.choice("-+") + str(r.randint(1, 999)))
    ),
    _fam("parse_int", "padded", "valid", text=_s(lambda r: f" {r.randint(0, 99)} ")),
    _fam(
        "parse_int",
        "underscored",
        "valid",
        text=_s(lambda r: f"{r.randint(1, 99)}_{r.randint(100, 999)}"),
    ),
    _fam(
        "parse_int",
        "float_text",
        "invalid",
        text=_s(lambda r: f"{r.randint(0, 99)}.{r.randint(1, 9)}"),
    ),
    _fam("parse_int", "word", "invalid", text=_s(lambda r: r.choice(_WORDS))),
    _fam("parse_int", "empty", "invalid", text=_const("", "  ")),
    _fam("parse_int", "hex", "invalid", text=_s(lambda r: f"0x{r.randint(16, 255):x}")),
    _fam(
        "parse_int",
        "thousands_comma",
        "invalid",
        text=_s(lambda r: f"{r.randint(1, 99)},{r.randint(100, 999)}"),
    ),
    _fam("parse_int", "number_not_string", "bad_type", text=_n(0, 999)),
    _fam("parse_int", "null_text", "bad_type", text=_none_value),
    # get_row
    CallFamily("get_row", "id_inside", "in_range", _row(("csv",), lambda r, ids: r.randint(*ids))),
    CallFamily("get_row", "id_first", "in_range", _row(("csv",), lambda r, ids: ids[0])),
    CallFamily("get_row", "id_last", "in_range", _row(("csv",), lambda r, ids: ids[1])),
    CallFamily(
        "get_row",
        "id_above",
        "out_of_range",
        _row(("csv",), lambda r, ids: ids[1] + r.randint(1, 20)),
    ),
    CallFamily(
        "get_row",
        "id_far_above",
        "out_of_range",
        _row(("csv",), lambda r, ids: ids[1] * 10 + r.randint(1, 999)),
    ),
    CallFamily(
        "get_row",
        "id_below",
        "out_of_range",
        _row(("csv",), lambda r, ids: ids[0] - r.randint(1, 5)),
    ),
    CallFamily(
        "get_row", "id_string", "bad_type", _row(("csv",), lambda r, ids: str(r.randint(*ids)))
    ),
    CallFamily(
        "get_row", "id_float", "bad_type", _row(("csv",), lambda r, ids: float(r.randint(*ids)))
    ),
    CallFamily("get_row", "id_bool", "bad_type", _row(("csv",), lambda r, ids: True)),
    CallFamily(
        "get_row",
        "json_table",
        "not_table",
        _row(("json", "json_corrupt"), lambda r, ids: r.randint(1, 10)),
    ),
    CallFamily(
        "get_row", "text_table", "not_table", _row(("text",), lambda r, ids: r.randint(1, 10))
    ),
    _fam("get_row", "missing_table", "missing", table=_fresh(root=True, ext=".csv"), id=_n(1, 20)),
    _fam("get_row", "typo_table", "missing", table=_typo(_file("csv")), id=_n(1, 20)),
)
"""Every family, in a fixed order."""


def families_by_tool() -> dict[str, list[CallFamily]]:
    """The families of each tool, in :data:`FAMILIES` order."""
    out: dict[str, list[CallFamily]] = {}
    for f in FAMILIES:
        out.setdefault(f.tool, []).append(f)
    return out
