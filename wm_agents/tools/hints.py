"""What a tool declares about itself, and how cautious the gate is with it.

:class:`ToolHints` follows the spirit of MCP tool annotations (``readOnlyHint``,
``destructiveHint``, ``idempotentHint``, ``openWorldHint``) plus two gate switches:
``always_ask`` (a human approves every call) and ``never_simulate`` (the tool is not imagined,
e.g. because its effect cannot be described in words or it is trivially safe).

:class:`ToolPolicy` holds the gate's per-tool thresholds.  Defaults depend on the hints: a
read-only tool can fail cheaply, so only experience (a call that already failed for real)
refuses it; a destructive tool always goes to a human.

Hints are found, in order, in the ``hints=`` mapping given to the gate, in a LangChain tool's
``metadata["wm_hints"]`` (a dict or :class:`ToolHints`), or else default to "nothing declared"
(MCP's own defaults: not read-only, possibly destructive, not idempotent, open world; the gate
then uses its ordinary thresholds).

Some hints depend on the call: writing a file is harmless when the file does not exist and
destroys data when it does.  A tool declares that with ``metadata["wm_call_hints"]``, a
function ``args -> {hint: value}`` whose answer refines its hints for one call (the tool
author's code, not the model's: a model cannot talk it out of "destructive").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ToolHints", "ToolPolicy", "call_hints_from_tool", "hints_from_tool"]


class ToolHints(BaseModel):
    """A tool's self-description (MCP-annotation-like) and gate switches.

    Attributes:
        read_only: the tool does not change its environment.
        destructive: the tool may destroy or irreversibly change data; the gate always asks a
            human before running it (unless the tool's policy says ``ask_if_destructive=False``).
        idempotent: calling it again with the same arguments has no further effect.
        open_world: the tool talks to an open world (web, other people) rather than a closed
            one (a local folder, a database).
        always_ask: a human approves every call, whatever the prediction.
        never_simulate: the call is not imagined; the gate decides on the hints alone.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False
    open_world: bool = False
    always_ask: bool = False
    never_simulate: bool = False

    @classmethod
    def from_any(cls, value: Any) -> ToolHints:
        """Accept a :class:`ToolHints`, a dict with these names, or MCP annotation names
        (``readOnlyHint``, ``destructiveHint``, ``idempotentHint``, ``openWorldHint``)."""
        if isinstance(value, ToolHints):
            return value
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise ValueError(f"tool hints must be a ToolHints or a dict, got {value!r:.100}")
        mcp = {
            "readOnlyHint": "read_only",
            "destructiveHint": "destructive",
            "idempotentHint": "idempotent",
            "openWorldHint": "open_world",
        }
        data = {mcp.get(k, k): v for k, v in value.items() if k != "title"}
        return cls(**data)


class ToolPolicy(BaseModel):
    """The gate's thresholds for one tool.

    Attributes:
        max_risk: ask a human when the predicted risk (failure or harm) is above this.
        max_uncertainty: ask a human when the predictions disagree more than this.
        min_success: a candidate whose predicted success probability is below this is
            "predicted to fail"; when every candidate fails or harms, the gate refuses.
        max_harm: a candidate whose predicted harm is at least this (and not predicted
            reversible) is "predicted to harm".
        refuse_failed_repeat: refuse an exact repeat of a call that failed for real (same tool,
            arguments and situation), whatever the LLM says.
        ask_if_destructive: a tool with ``destructive=True`` always goes to a human (when its
            outcome is a guess; see ``trust_simulation``).
        on_unknown: what to do when the outcome could not be predicted (status ``unknown``).
        trust_simulation: an *exact* outcome (the call was run on a throwaway copy, or a dry
            run answered) decides by what it shows, instead of the ``destructive`` hint (which
            only says the tool *may* destroy data) and the risk / uncertainty thresholds made
            for guesses: a wipe of an empty folder runs, a wipe that loses files is asked.
        ask_if_irreversible: an exact outcome that loses data for good (a deleted or
            overwritten byte, a row, a commit that exists nowhere afterwards) goes to a person,
            with the numbers.
        refuse_if_irreversible: such an outcome is refused instead of asked.
        max_deleted: an exact outcome that deletes more than this many files or rows goes to a
            person even when every byte is recoverable (``None``: no limit).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_risk: float = Field(default=0.6, ge=0.0, le=1.0)
    max_uncertainty: float = Field(default=0.6, ge=0.0, le=1.0)
    min_success: float = Field(default=0.3, ge=0.0, le=1.0)
    max_harm: float = Field(default=0.5, ge=0.0, le=1.0)
    refuse_failed_repeat: bool = True
    ask_if_destructive: bool = True
    on_unknown: Literal["ask", "refuse"] = "ask"
    trust_simulation: bool = True
    ask_if_irreversible: bool = True
    refuse_if_irreversible: bool = False
    max_deleted: int | None = Field(default=None, ge=0)

    @classmethod
    def default_for(cls, hints: ToolHints) -> ToolPolicy:
        """The default thresholds for a tool with these hints.

        A read-only tool can fail cheaply and harms nothing, so the LLM's guess alone never
        refuses it (``min_success=0``: only a real failure does) and more disagreement is
        tolerated; everything else uses the ordinary thresholds.
        """
        if hints.read_only and not hints.destructive:
            return cls(max_risk=0.9, max_uncertainty=0.9, min_success=0.0, max_harm=1.0)
        return cls()


def call_hints_from_tool(tool: Any) -> Callable[[dict[str, Any]], Mapping[str, Any]] | None:
    """The per-call hints function a LangChain tool declares (``metadata["wm_call_hints"]``).

    Raises:
        ValueError: the declared value is not callable.
    """
    metadata = getattr(tool, "metadata", None) or {}
    if isinstance(tool, Mapping):
        metadata = tool.get("metadata") or {}
    fn = metadata.get("wm_call_hints") if isinstance(metadata, Mapping) else None
    if fn is not None and not callable(fn):
        raise ValueError(
            f"metadata['wm_call_hints'] must be a function args -> hints, got {fn!r:.80}"
        )
    return fn


def hints_from_tool(tool: Any) -> ToolHints | None:
    """Hints declared on a LangChain tool (``metadata["wm_hints"]``), or None."""
    metadata = getattr(tool, "metadata", None) or {}
    if isinstance(tool, Mapping):
        metadata = tool.get("metadata") or {}
    raw = metadata.get("wm_hints") if isinstance(metadata, Mapping) else None
    return None if raw is None else ToolHints.from_any(raw)
