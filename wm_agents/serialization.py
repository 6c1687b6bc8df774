"""Checkpoint serialization for the library's state types.

LangGraph's msgpack serializer only revives types it is told are safe; without this allowlist
``Outcome`` / ``Decision`` come back as plain dicts under ``LANGGRAPH_STRICT_MSGPACK`` (and log
"unregistered type" warnings otherwise), and nodes that read ``decision.action`` break on resume.
Pass ``serde=checkpoint_serializer()`` to any checkpointer used with the planning graphs.
"""

from __future__ import annotations

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

__all__ = ["STATE_TYPES", "checkpoint_serializer"]

STATE_TYPES: tuple[tuple[str, str], ...] = (
    ("wm_agents.core", "Outcome"),
    ("wm_agents.core", "Decision"),
    ("wm_agents.tools.trace", "TraceEntry"),
    ("wm_agents.tools.trace", "TraceCandidate"),
)
"""The library's own types that live in checkpointed state."""


def checkpoint_serializer() -> JsonPlusSerializer:
    """A serializer allowing exactly the library's state types besides LangGraph's built-ins."""
    return JsonPlusSerializer(allowed_msgpack_modules=list(STATE_TYPES))
