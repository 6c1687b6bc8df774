"""The batched-evaluation benchmark at a tiny size: both modes give the same returns both ways."""

from __future__ import annotations

import argparse

import pytest

from wm_agents.bench.batch_eval import add_arguments, measure, measure_agents


def test_agents_mode_tiny() -> None:
    out = measure_agents(agents=[1, 2], episodes=1, reps=1, seed=0, warmup_steps=60)
    assert [r["agents"] for r in out["by_agents"]] == [1, 2]
    for row in out["by_agents"]:
        assert row["same_returns"]
        assert len(row["returns"]) == row["agents"]
        assert set(row["median_seconds"]) == {"separate", "together"}


def test_agent_counts_are_parsed_and_checked(capsys: pytest.CaptureFixture[str]) -> None:
    p = argparse.ArgumentParser()
    add_arguments(p)
    assert p.parse_args(["--agents", "1,2,5"]).agents == [1, 2, 5]
    for bad, why in (("0,2", "must be >= 1"), ("two", "numbers like 1,2,5")):
        with pytest.raises(SystemExit):
            p.parse_args(["--agents", bad])
        assert why in capsys.readouterr().err


def test_workers_mode_tiny() -> None:
    out = measure(episodes=3, reps=1, seed=0, model_path=None, warmup_steps=60, workers=2)
    assert out["same_returns"]
    assert set(out["median_seconds"]) == {"batched", "2 workers"}
    assert len(out["returns"]) == 3 and out["workers"] == 2
