"""What a tool declares about being imagined: may it run on a copy, and how; or a dry run.

A simulator runs the *real* tool, so it must never run one that reaches outside what it can
copy (mail, payments, the web).  Nothing is simulated unless declared, in this order:

1. the simulator's ``simulate={name: mode}`` argument;
2. ``metadata["wm_simulate"]`` (and ``metadata["wm_dry_run"]``) of the tools given to the
   simulator as ``tools=`` (the real tools the agent holds);
3. the same metadata on the tools ``make_tools(copy)`` returns (read inside the simulating
   process, before anything runs).

Modes (:data:`SimulationMode`):

* ``"in_process"`` (or ``True``): the tool changes the workspace only through Python's own file
  API (``open``, ``os``, ``shutil``, ``pathlib``, ``sqlite3``), so it can run on a *shared*
  snapshot (hard links or reflinks) under the write guard, which copies a shared file up before
  any write and denies subprocesses, sockets and ``ctypes``;
* ``"subprocess"``: the tool may start programs (``git``, ``make``); it runs on a *private*
  plain copy (or reflink copy), since a program's writes cannot be seen or copied up;
* ``"dry_run"``: the tool has a ``metadata["wm_dry_run"]`` callable (``fn(args) -> result``,
  like ``terraform plan`` or a ``--dry-run`` flag) that predicts the call exactly without a copy;
* ``"never"`` (or ``False``, or nothing declared): never run in imagination; its outcome is
  unknown with a reason, for another model (an LLM) to predict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "DRY_RUN_KEY",
    "SIMULATE_KEY",
    "DryRun",
    "SimulationMode",
    "ToolDeclaration",
    "declaration_of",
    "parse_mode",
]

SimulationMode = Literal["in_process", "subprocess", "dry_run", "never"]

SIMULATE_KEY = "wm_simulate"
"""``metadata`` key of a tool's simulation mode (see :data:`SimulationMode`)."""

DRY_RUN_KEY = "wm_dry_run"
"""``metadata`` key of a tool's dry-run callable ``fn(args: dict) -> result | DryRun``."""

_MODES = ("in_process", "subprocess", "dry_run", "never")


@dataclass(frozen=True)
class DryRun:
    """What a dry-run callable may return to say more than the result text.

    Attributes:
        result: what the real call would return (any value; shown as text).
        success: whether the real call would succeed.
        side_effects: what it would change, JSON-serializable (e.g. a ``terraform plan``
            summary); ``None``: not reported.
        reversible: whether the changes could be undone (``None``: not known).
        harm: in ``[0, 1]``; 1.0 when data would be lost irreversibly.
    """

    result: Any
    success: bool = True
    side_effects: Any = None
    reversible: bool | None = None
    harm: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.harm) <= 1.0:
            raise ValueError(f"DryRun.harm must be in [0, 1], got {self.harm!r}")


@dataclass(frozen=True)
class ToolDeclaration:
    """How one tool may be imagined: its mode and, for ``"dry_run"``, the callable."""

    name: str
    mode: SimulationMode
    dry_run: Callable[[dict[str, Any]], Any] | None = None


def parse_mode(value: Any, *, where: str) -> SimulationMode:
    """A declared mode: ``True`` -> ``"in_process"``, ``False``/``None`` -> ``"never"``.

    Raises:
        ValueError: any other value, naming ``where`` it was declared.
    """
    if value is True:
        return "in_process"
    if value is False or value is None:
        return "never"
    if isinstance(value, str) and value in _MODES:
        return value  # type: ignore[return-value]
    raise ValueError(
        f"{where}: simulation mode must be one of {', '.join(_MODES)} (or True/False), "
        f"got {value!r:.80}"
    )


def _metadata(tool: Any) -> Mapping[str, Any]:
    if isinstance(tool, Mapping):
        meta = tool.get("metadata") or {}
    else:
        meta = getattr(tool, "metadata", None) or {}
    return meta if isinstance(meta, Mapping) else {}


def declaration_of(tool: Any, override: Any = None) -> ToolDeclaration:
    """The declaration of a LangChain tool (or a dict with ``name``/``metadata``).

    ``override`` (a mode from the simulator's ``simulate=`` argument) wins over the metadata; a
    ``"dry_run"`` override still takes the callable from ``metadata["wm_dry_run"]``.

    Raises:
        ValueError: a bad mode, or mode ``"dry_run"`` without a callable ``wm_dry_run``.
    """
    name = str(tool.get("name") if isinstance(tool, Mapping) else getattr(tool, "name", ""))
    meta = _metadata(tool)
    dry_run = meta.get(DRY_RUN_KEY)
    if dry_run is not None and not callable(dry_run):
        raise ValueError(f"tool {name!r}: metadata[{DRY_RUN_KEY!r}] must be callable")
    if override is not None:
        mode = parse_mode(override, where=f"simulate[{name!r}]")
    elif SIMULATE_KEY in meta:
        mode = parse_mode(meta[SIMULATE_KEY], where=f"tool {name!r} metadata[{SIMULATE_KEY!r}]")
    else:
        mode = "dry_run" if dry_run is not None else "never"
    if mode == "dry_run" and dry_run is None:
        raise ValueError(
            f"tool {name!r} is declared 'dry_run' but has no callable metadata[{DRY_RUN_KEY!r}]"
        )
    return ToolDeclaration(name=name, mode=mode, dry_run=dry_run if mode == "dry_run" else None)
