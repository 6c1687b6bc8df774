"""A CartPole agent small enough for a test (shared by the runner and imagination tests)."""

from __future__ import annotations

from typing import Any

from wm_agents.neural import FitConfig
from wm_agents.runner import AgentConfig, default_config

FAST_FIT = FitConfig(max_epochs=5, patience=2, value=False, multistep=2)


def tiny_cartpole_config(**overrides: Any) -> AgentConfig:
    """40 warm-up steps, refit every 40, a 3 x 32 ensemble, CEM of 20 over 5 steps."""
    return default_config(
        "CartPole-v1",
        **{
            "warmup_steps": 40,
            "refit_every": 40,
            "hidden": 32,
            "horizon": 5,
            "population": 20,
            "elites": 4,
            "iterations": 1,
            "ensemble_size": 3,
            "fit": FAST_FIT,
            **overrides,
        },
    )
