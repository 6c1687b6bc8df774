"""A sandboxed file system: list / read / write / delete / archive inside one folder, plus a tool
that would destroy data (``wipe_directory``).

Every path is resolved inside the sandbox root; a path that escapes it (``..``, absolute paths
elsewhere, symlinks out) raises ``PermissionError``, which ``ToolNode`` turns into an error
``ToolMessage``.  Each tool declares its hints (MCP-annotation-like) in
``metadata["wm_hints"]``, where :class:`~wm_agents.tools.ToolGate` finds them, and that it may
be simulated on a copy of the sandbox (``metadata["wm_simulate"] = "in_process"``: it changes
files only through Python's file API), where :class:`~wm_agents.simulate.FolderSimulator`
finds it.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool

__all__ = ["SANDBOX_HINTS", "make_sandbox_tools"]

SANDBOX_HINTS: dict[str, dict[str, bool]] = {
    "list_files": {"read_only": True, "idempotent": True},
    "read_file": {"read_only": True, "idempotent": True},
    "write_file": {"idempotent": True},
    "delete_file": {"destructive": True, "idempotent": True},
    "archive_files": {"idempotent": True},
    "wipe_directory": {"destructive": True, "idempotent": True},
}
"""The hints each sandbox tool declares for every call.  ``write_file`` and ``archive_files``
also declare per-call hints: destructive when their target already exists (they overwrite
it), not when they create a new file."""


_ARGS_SCHEMAS: dict[str, Any] = {}
"""Each tool's argument model, built once: a simulator calls ``make_sandbox_tools`` once per
imagined call (bound to a copy), and building pydantic models is most of its cost."""


def make_sandbox_tools(root: str | Path) -> list[BaseTool]:
    """The six file-system tools, confined to ``root`` (created if missing)."""
    base = Path(root).resolve()
    base.mkdir(parents=True, exist_ok=True)

    def inside(path: str) -> Path:
        target = (base / path).resolve()
        if target != base and base not in target.parents:
            raise PermissionError(f"{path!r} is outside the sandbox")
        return target

    def list_files(path: str = ".") -> str:
        """List the files and folders under a folder of the sandbox (recursively)."""
        folder = inside(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"no such folder: {path}")
        names = sorted(
            str(p.relative_to(base)) + ("/" if p.is_dir() else "") for p in folder.rglob("*")
        )
        return "\n".join(names) if names else "(empty)"

    def read_file(path: str) -> str:
        """Read a text file of the sandbox and return its content."""
        target = inside(path)
        if not target.is_file():
            raise FileNotFoundError(f"[Errno 2] No such file or directory: '{path}'")
        return target.read_text()

    def write_file(path: str, content: str) -> str:
        """Write text to a file of the sandbox (creating or replacing it)."""
        target = inside(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        return f"wrote {len(content)} characters to {path}"

    def delete_file(path: str) -> str:
        """Delete one file of the sandbox (cannot be undone)."""
        target = inside(path)
        if not target.is_file():
            raise FileNotFoundError(f"[Errno 2] No such file or directory: '{path}'")
        target.unlink()
        return f"deleted {path}"

    def archive_files(paths: list[str], archive: str) -> str:
        """Copy files of the sandbox into a zip archive (created or replaced); the files stay."""
        target = inside(archive)
        sources = [(p, inside(p)) for p in paths]
        for name, source in sources:
            if not source.is_file():
                raise FileNotFoundError(f"[Errno 2] No such file or directory: '{name}'")
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for _, source in sources:
                z.write(source, arcname=str(source.relative_to(base)))
        return f"archived {len(sources)} file(s) into {archive}"

    def wipe_directory(path: str = ".") -> str:
        """Delete EVERYTHING under a folder of the sandbox, recursively (cannot be undone)."""
        folder = inside(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"no such folder: {path}")
        n = 0
        for child in list(folder.iterdir()):
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
            n += 1
        return f"wiped {path}: removed {n} entries"

    def overwrites(key: str) -> Any:
        # Replacing an existing file destroys its content; creating a new one destroys
        # nothing.  A path that escapes the sandbox raises, and the gate then counts the
        # call as destructive.
        return lambda args: {"destructive": inside(str(args.get(key, ""))).exists()}

    call_hints = {"write_file": overwrites("path"), "archive_files": overwrites("archive")}
    tools = []
    for fn in (list_files, read_file, write_file, delete_file, archive_files, wipe_directory):
        metadata: dict[str, Any] = {
            "wm_hints": dict(SANDBOX_HINTS[fn.__name__]),
            "wm_simulate": "in_process",
        }
        if fn.__name__ in call_hints:
            metadata["wm_call_hints"] = call_hints[fn.__name__]
        tool = StructuredTool.from_function(
            fn, args_schema=_ARGS_SCHEMAS.get(fn.__name__), metadata=metadata
        )
        _ARGS_SCHEMAS.setdefault(fn.__name__, tool.args_schema)
        tools.append(tool)
    return tools
