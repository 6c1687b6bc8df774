"""The imagination benchmark's report: reach / hold against each env's bar, trust events."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "dyna_q.py"


@pytest.fixture
def dyna_q(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("dyna_q_bench", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RESULTS", tmp_path)
    return module


def run(agent: str, means: list[float], **extra) -> dict:
    return {
        "agent": agent,
        "seed": 0,
        "evals": [{"real_steps": 300 * (i + 1), "mean": m} for i, m in enumerate(means)],
        "eval_mean": means[-1],
        "act_ms_median": 0.2 if agent != "mpc" else 10.0,
        "seconds": 1.0,
        **extra,
    }


def test_pendulum_report_uses_its_own_bar(dyna_q, tmp_path: Path) -> None:
    runs = [
        run("mpc", [-900.0, -180.0, -150.0]),
        run(
            "hybrid",
            [-800.0, -150.0, -250.0, -160.0],
            action_sources={"policy": 90, "mpc": 10},
            rollouts={"acting_policy": "sac"},
            trust_log=[[400, "trusted"]],
        ),
    ]
    (tmp_path / "imagination_pendulum.json").write_text(json.dumps({"runs": runs}))
    text = dyna_q.report("pendulum", plot=False)
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if "| 0 |" in line}
    # mpc: reaches -200 at 600 and holds; hybrid reaches at 600, dips, holds from 1200.
    assert "| mpc | 0 | 600 | 600 | -150.0 |" in rows["| mpc"]
    assert "| hybrid | 0 | 600 | 1200 | -160.0 | 0.2 | 0.900 | sac | T@400 |" in rows["| hybrid"]
    assert "first reach -200" in text
