"""A JSON context for graphs that build their own heavy context (LangGraph server / Studio).

The LangGraph server's clients can only send JSON, and the server passes every run a context
dict (``{}`` when the client sent none), never ``None``.  LangGraph turns a dict into the
graph's ``context_schema`` with ``context_schema(**context)`` when that schema is a dataclass or
pydantic model, so a graph whose schema is a dataclass with required fields (an env, a model)
fails before its first node.  A graph built with a ``default_context`` therefore declares a
light ``TypedDict`` schema instead (:func:`json_context_schema`), which LangGraph passes through
as a dict, and its nodes resolve it (:func:`resolve_context`):

* an instance of the real context type: used as it is (programmatic callers);
* ``None`` or ``{}``: the default context, built once;
* a dict with keys: the default context with those fields replaced.  The keys allowed are the
  context's fields that have a default and a JSON scalar type (``int``, ``float``, ``str``,
  ``bool``, optionally ``None``), e.g. ``{"max_steps": 20}``; any other key is an error that
  lists them.  Studio shows exactly these keys in its context form.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from typing import Any, Union, get_args, get_origin, get_type_hints

from pydantic import TypeAdapter, ValidationError
from typing_extensions import TypedDict

__all__ = ["json_context_fields", "json_context_schema", "resolve_context"]

_SCALARS = (int, float, str, bool)


def _json_scalar(hint: Any) -> bool:
    """``int``/``float``/``str``/``bool``, or one of them ``| None``."""
    if hint in _SCALARS:
        return True
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        return len(args) == 1 and args[0] in _SCALARS
    return False


def json_context_fields(context_type: type) -> dict[str, Any]:
    """The fields of a dataclass context that a JSON context may set: name -> type hint."""
    if not dataclasses.is_dataclass(context_type):
        raise TypeError(f"{context_type.__name__} is not a dataclass")
    hints = get_type_hints(context_type)
    return {
        f.name: hints[f.name]
        for f in dataclasses.fields(context_type)
        if f.init
        and not f.name.startswith("_")
        and (f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING)
        and _json_scalar(hints[f.name])
    }


def json_context_schema(context_type: type) -> type:
    """A ``TypedDict`` (all keys optional) of the fields a JSON context may set."""
    return TypedDict(  # type: ignore[operator]
        f"{context_type.__name__}JSON", json_context_fields(context_type), total=False
    )


def resolve_context(
    context: Any,
    context_type: type,
    default_context: Callable[[], Any] | None,
    cache: list[Any],
    hint: str,
) -> Any:
    """The context a node runs with (see the module doc).  ``cache`` holds the default
    context once built.

    Raises:
        ValueError: no default context and no real one (says ``hint``), a key the JSON context
            may not set (lists those it may), or a value of the wrong type.
    """
    if context is not None and not isinstance(context, dict):
        return context
    if default_context is None:
        raise ValueError(f"this graph needs {hint}")
    overrides = dict(context or {})
    allowed = json_context_fields(context_type)
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ValueError(
            f"context keys {unknown} are not accepted here: a JSON context may set only "
            f"{sorted(allowed)} (an empty context uses the graph's default)"
        )
    if overrides:
        try:
            overrides = TypeAdapter(json_context_schema(context_type)).validate_python(overrides)
        except ValidationError as exc:
            raise ValueError(f"invalid context: {exc}") from exc
    if not cache:
        cache.append(default_context())
    if not overrides:
        return cache[0]
    return dataclasses.replace(cache[0], **overrides)
