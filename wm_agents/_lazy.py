"""Lazy package exports (PEP 562): ``import wm_agents`` and ``wm-agents --help`` stay fast.

Each package ``__init__`` names what it exports and the module each name lives in; a name is
imported on first use.  So importing the package, or one light module of it (a CLI's argument
definitions), does not load torch, LangGraph, LangChain or an LLM client until something needs
them.  ``from wm_agents import X`` and ``wm_agents.X`` work as before.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for a package exporting ``exports`` (name -> module)."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals_of_package = importlib.import_module(package).__dict__
        globals_of_package[name] = value  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(importlib.import_module(package).__dict__) | set(exports))

    return __getattr__, __dir__
