"""A family of thirteen real tools over a workspace folder: files, JSON, arithmetic, folders and
table lookups.

Each tool is a plain function ``fn(root, **args) -> str`` that raises on failure, as a real
tool would: a missing file, a folder where a file is expected, a missing parent folder, a name
too long, a file too large to read, bytes that are not UTF-8, JSON that does not parse, a key or
id that is not there, division by zero, the square root of a negative number, an argument of
the wrong type.  Paths resolve inside the workspace root; a path that escapes it raises
``PermissionError``.  Write permission is checked from the mode bits (root ignores them, so a
permission-aware tool checks them itself).
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wm_agents.bench.toolworld.workspace import MAX_READ_BYTES

__all__ = ["TOOLS", "WorkspaceTool", "object_schema", "run_tool"]


def _inside(root: Path, path: Any) -> Path:
    if not isinstance(path, str):
        raise TypeError(f"path must be a string, got {type(path).__name__}")
    if not path:
        raise ValueError("path is empty")
    base = root.resolve()
    target = (base / path).resolve()
    if target != base and base not in target.parents:
        raise PermissionError(f"{path!r} is outside the workspace")
    return target


def _check_writable(target: Path, display: str) -> None:
    """Creating, replacing or deleting ``target`` needs a writable folder; changing an existing
    file needs the file writable."""
    if target.exists() and not target.is_dir() and not target.stat().st_mode & 0o200:
        raise PermissionError(f"[Errno 13] Permission denied: {display!r} is read-only")
    parent = target.parent
    if parent.is_dir() and not parent.stat().st_mode & 0o200:
        raise PermissionError(f"[Errno 13] Permission denied: folder of {display!r} is read-only")


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    return float(value)


def read_file(root: Path, path: str) -> str:
    target = _inside(root, path)
    size = target.stat().st_size
    if target.is_file() and size > MAX_READ_BYTES:
        raise ValueError(f"{path} is {size} bytes, more than the {MAX_READ_BYTES} this tool reads")
    return target.read_text(encoding="utf-8")[:200]


def write_file(root: Path, path: str, content: str) -> str:
    if not isinstance(content, str):
        raise TypeError(f"content must be a string, got {type(content).__name__}")
    target = _inside(root, path)
    _check_writable(target, path)
    target.write_text(content, encoding="utf-8")  # no parents: a missing folder is an error
    return f"wrote {len(content)} characters to {path}"


def append_file(root: Path, path: str, text: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    target = _inside(root, path)
    if not target.exists():
        raise FileNotFoundError(f"[Errno 2] No such file: {path!r} (append needs an existing file)")
    _check_writable(target, path)
    with target.open("a", encoding="utf-8") as fh:
        fh.write(text)
    return f"appended {len(text)} characters to {path}"


def delete_file(root: Path, path: str) -> str:
    target = _inside(root, path)
    _check_writable(target, path)
    target.unlink()
    return f"deleted {path}"


def list_dir(root: Path, path: str) -> str:
    target = _inside(root, path)
    return ", ".join(sorted(p.name for p in target.iterdir())) or "(empty)"


def make_dir(root: Path, path: str) -> str:
    target = _inside(root, path)
    _check_writable(target, path)
    target.mkdir()  # no parents, and an existing name is an error
    return f"created {path}"


def copy_file(root: Path, src: str, dst: str) -> str:
    source = _inside(root, src)
    target = _inside(root, dst)
    _check_writable(target, dst)
    shutil.copyfile(source, target)
    return f"copied {src} to {dst}"


def _load_json(root: Path, path: str) -> Any:
    return json.loads(_inside(root, path).read_text(encoding="utf-8"))


def json_get(root: Path, path: str, key: str) -> str:
    if not isinstance(key, str):
        raise TypeError(f"key must be a string, got {type(key).__name__}")
    data = _load_json(root, path)
    if not isinstance(data, dict):
        raise TypeError(f"{path} holds a JSON {type(data).__name__}, not an object")
    return json.dumps(data[key])


def json_parse(root: Path, text: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    return f"parsed a JSON {type(json.loads(text)).__name__}"


def divide(root: Path, a: float, b: float) -> str:
    return repr(_number("a", a) / _number("b", b))


def sqrt(root: Path, x: float) -> str:
    return repr(math.sqrt(_number("x", x)))


def parse_int(root: Path, text: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    return repr(int(text))


def get_row(root: Path, table: str, id: int) -> str:
    if isinstance(id, bool) or not isinstance(id, int):
        raise TypeError(f"id must be an integer, got {type(id).__name__}")
    with _inside(root, table).open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "id" not in rows[0]:
        raise ValueError(f"{table} is not a table with an id column")
    for row in rows:
        if row["id"] == str(id):
            return json.dumps(row)
    raise KeyError(f"no row with id {id} in {table}")


@dataclass(frozen=True)
class WorkspaceTool:
    """A real tool: metadata for predictors, the function that runs it, and whether it changes
    the workspace (a changing call runs on a fresh copy, so every call meets the workspace its
    context describes)."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., str]
    mutates: bool = False

    def spec(self) -> dict[str, Any]:
        """``{"name", "description", "parameters"}`` (a :class:`~wm_agents.llm.ToolSpec`)."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


def object_schema(**props: str) -> dict[str, Any]:
    """A JSON schema of an object whose properties (all required) have these types."""
    return {
        "type": "object",
        "properties": {k: {"type": v} for k, v in props.items()},
        "required": list(props),
    }


TOOLS: dict[str, WorkspaceTool] = {
    t.name: t
    for t in (
        WorkspaceTool(
            "read_file",
            f"Read a UTF-8 text file (at most {MAX_READ_BYTES} bytes) and return its start.",
            object_schema(path="string"),
            read_file,
        ),
        WorkspaceTool(
            "write_file",
            "Write text to a file, replacing it; its folder must exist and be writable.",
            object_schema(path="string", content="string"),
            write_file,
            mutates=True,
        ),
        WorkspaceTool(
            "append_file",
            "Append text to an existing, writable file.",
            object_schema(path="string", text="string"),
            append_file,
            mutates=True,
        ),
        WorkspaceTool(
            "delete_file",
            "Delete a file (not a folder) from a writable folder.",
            object_schema(path="string"),
            delete_file,
            mutates=True,
        ),
        WorkspaceTool(
            "list_dir", "List the names in a folder.", object_schema(path="string"), list_dir
        ),
        WorkspaceTool(
            "make_dir",
            "Create one new folder inside an existing, writable folder.",
            object_schema(path="string"),
            make_dir,
            mutates=True,
        ),
        WorkspaceTool(
            "copy_file",
            "Copy a file to a new path (the target folder must exist and be writable).",
            object_schema(src="string", dst="string"),
            copy_file,
            mutates=True,
        ),
        WorkspaceTool(
            "json_get",
            "Read a JSON object file and return the value of one top-level key.",
            object_schema(path="string", key="string"),
            json_get,
        ),
        WorkspaceTool(
            "json_parse", "Parse a string as JSON.", object_schema(text="string"), json_parse
        ),
        WorkspaceTool("divide", "Divide a by b.", object_schema(a="number", b="number"), divide),
        WorkspaceTool("sqrt", "Square root of x.", object_schema(x="number"), sqrt),
        WorkspaceTool(
            "parse_int",
            "Parse a string as a base-10 integer.",
            object_schema(text="string"),
            parse_int,
        ),
        WorkspaceTool(
            "get_row",
            "Return the row with this id from a CSV table that has an id column.",
            object_schema(table="string", id="integer"),
            get_row,
        ),
    )
}
"""The thirteen tools, by name."""


def run_tool(root: Path, name: str, args: dict[str, Any]) -> tuple[bool, str]:
    """Run one call for real in ``root``: ``(success, result or "ErrorType: message")``.

    The workspace path is replaced by ``.`` in error messages (results do not depend on where
    the copy lives).
    """
    try:
        result = TOOLS[name].fn(root, **args)
        return True, result
    except Exception as exc:  # the real outcome of a failing tool is its error
        return False, f"{type(exc).__name__}: {exc}".replace(str(root.resolve()), ".").replace(
            str(root), "."
        )
