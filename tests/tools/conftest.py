"""Fixtures for the tool-agent tests: scripted predictors (no network), counting tools."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from langchain_core.tools import BaseTool, StructuredTool

from wm_agents.llm.predictor import LLMOutcomePredictor
from wm_agents.llm.testing import FakeCall, Reply, ScriptedChatModel, prediction_reply

SAFE = prediction_reply(True, 0.95, predicted_result="ok", goal_progress=0.8)
FAILS = prediction_reply(False, 0.05, predicted_result="FileNotFoundError")
HARMS = prediction_reply(
    True, 0.9, risk_level="high", reversible=False, predicted_result="everything deleted"
)

_CALL = re.compile(r"^Call: (.*)$", re.MULTILINE)


def scripted_predictor(
    rules: Mapping[str, Reply], default: Reply = SAFE, **options: Any
) -> LLMOutcomePredictor:
    """A predictor whose fake LLM answers with the first rule whose key is in the call line."""

    def script(call: FakeCall) -> Reply:
        match = _CALL.search(call.user)
        line = match.group(1) if match else call.user
        for key, reply in rules.items():
            if key in line:
                return reply
        return default

    options.setdefault("samples", 2)
    options.setdefault("backoff_s", 0.0)
    return LLMOutcomePredictor(ScriptedChatModel(script=script), **options)


@pytest.fixture
def counting_tools() -> tuple[list[BaseTool], Counter[str]]:
    """``read_note`` (read-only), ``send_mail`` (no hints), ``drop_table`` (destructive),
    ``ping`` (never simulated); ``runs`` counts real executions by tool name."""
    runs: Counter[str] = Counter()

    def read_note(name: str) -> str:
        """Read a note by name."""
        runs["read_note"] += 1
        if name == "missing":
            raise FileNotFoundError(f"no note {name!r}")
        return f"note {name}: buy milk"

    def send_mail(to: str, body: str) -> str:
        """Send an e-mail."""
        runs["send_mail"] += 1
        return f"sent to {to}"

    def drop_table(table: str) -> str:
        """Drop a database table (cannot be undone)."""
        runs["drop_table"] += 1
        return f"dropped {table}"

    def ping() -> str:
        """Ping the server."""
        runs["ping"] += 1
        return "pong"

    hints: dict[str, dict[str, bool]] = {
        "read_note": {"read_only": True, "idempotent": True},
        "drop_table": {"destructive": True},
        "ping": {"never_simulate": True, "read_only": True},
    }
    tools: list[BaseTool] = []
    fn: Callable[..., str]
    for fn in (read_note, send_mail, drop_table, ping):
        meta = {"wm_hints": hints[fn.__name__]} if fn.__name__ in hints else None
        tools.append(StructuredTool.from_function(fn, metadata=meta))
    return tools, runs
