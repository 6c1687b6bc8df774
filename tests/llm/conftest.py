"""Shared fixtures for the LLM predictor tests: scripted fake models (no network) and, for the
integration tier, one embedded LLM server per session (started lazily, stopped by PID)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from wm_agents.llm.predictor import LLMOutcomePredictor
from wm_agents.llm.server import EmbeddedLLMServer
from wm_agents.testing import ScriptedChatModel

TOOLS = [
    {
        "name": "read_file",
        "description": "Read a text file and return its content.",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
        },
    },
    {
        "name": "divide",
        "description": "Divide a by b.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    },
]

STATE = {"task": "Summarize the notes.", "context": "cwd has notes.txt only"}


@pytest.fixture
def tools() -> list[dict[str, Any]]:
    return [dict(t) for t in TOOLS]


@pytest.fixture
def state() -> dict[str, str]:
    return dict(STATE)


@pytest.fixture
def make_predictor():
    """``make_predictor(script, **options) -> (predictor, model)`` over a scripted model."""

    def make(script: Any, **options: Any) -> tuple[LLMOutcomePredictor, ScriptedChatModel]:
        model = ScriptedChatModel(script=script)
        options.setdefault("tools", TOOLS)
        options.setdefault("backoff_s", 0.0)
        return LLMOutcomePredictor(model, **options), model

    return make


@pytest.fixture(scope="session")
def embedded_server() -> Iterator[EmbeddedLLMServer]:
    """The embedded LLM on a free port for the whole session; stopped by PID at the end."""
    with EmbeddedLLMServer(parallel=4) as server:
        yield server
