"""Shared fixtures for the learned outcome model: a small data set of tool calls run for real
(a few randomised workspaces under /tmp) and one model trained on it, built once per session
(training is the slow part; every test that only reads predictions shares it)."""

from __future__ import annotations

from typing import Any

import pytest

from wm_agents.bench.toolworld import TOOLS, CallSplit, ToolCallRecord, build_dataset, split_calls
from wm_agents.core import Transition
from wm_agents.learned import LearnedConfig, LearnedOutcomeModel

SMALL = LearnedConfig(
    ensemble_size=3,
    hidden=32,
    epochs=20,
    min_steps=120,
    calibration_folds=2,
    min_examples=20,
    min_tool_examples=3,
    seed=0,
)
"""A fast configuration for tests (the defaults are for thousands of calls)."""

TOOL_SPECS = [t.spec() for t in TOOLS.values()]


def as_transitions(rows: list[ToolCallRecord], **info: Any) -> list[Transition]:
    return [
        Transition(state=r.state(), action=r.call(), result=r.result, success=r.success, info=info)
        for r in rows
    ]


@pytest.fixture(scope="session")
def small_config() -> LearnedConfig:
    """:data:`SMALL`."""
    return SMALL


@pytest.fixture(scope="session")
def tool_specs() -> list[dict[str, Any]]:
    """The benchmark tools' metadata (their parameter schemas)."""
    return TOOL_SPECS


@pytest.fixture(scope="session")
def to_transitions() -> Any:
    """:func:`as_transitions`."""
    return as_transitions


@pytest.fixture(scope="session")
def small_calls() -> list[ToolCallRecord]:
    """About 480 real calls in 8 workspaces (a few seconds: every call really runs)."""
    return build_dataset(8, 60, seed=3)


@pytest.fixture(scope="session")
def small_split(small_calls: list[ToolCallRecord]) -> CallSplit:
    """3 of 8 workspaces and 40% of the argument families held out."""
    return split_calls(small_calls, 0, workspace_fraction=0.375, family_fraction=0.4)


@pytest.fixture(scope="session")
def trained(small_split: CallSplit) -> LearnedOutcomeModel:
    """A model trained (through ``learn``) on the training calls of :func:`small_split`."""
    model = LearnedOutcomeModel(SMALL, tools=TOOL_SPECS)
    report = model.learn(as_transitions(small_split.train))
    assert report.updated, report.message
    return model
