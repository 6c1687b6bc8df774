"""The benchmark's tool calls: their recorded outcomes are what really happens when run."""

from __future__ import annotations

import pytest

from wm_agents.bench import llm_calibration as bench


def test_real_outcomes_match_the_data_set(tmp_path):
    data = bench.load_calls()
    calls = bench.execute_calls(data, tmp_path)
    assert len(calls) >= 20
    assert [c.success for c in calls] == [c.expected_success for c in calls]
    assert 0 < sum(c.success for c in calls) < len(calls)
    retries = [c for c in calls if c.repeat and not c.world_changed]
    assert len(retries) >= 5
    # Every repeat really repeats an earlier call in the same situation.
    seen = set()
    for c in calls:
        key = (c.state.situation_key(), c.call.name, c.call.args_key())
        assert c.repeat == (key in seen), c.index
        seen.add(key)
    # No absolute temporary paths leak into results.
    assert all(str(tmp_path) not in c.result for c in calls)


def test_summary_metrics_are_exact():
    rows = [
        {
            "success": True,
            "repeat": False,
            "world_changed": False,
            "p_before": 0.8,
            "p_after": 0.8,
            "p_after_exact_only": 0.8,
        },
        {
            "success": False,
            "repeat": True,
            "world_changed": False,
            "p_before": 0.6,
            "p_after": 0.1,
            "p_after_exact_only": 0.1,
        },
    ]
    summary = bench.summarize(rows)
    before = summary["all"]["before (LLM alone)"]
    after = summary["all"]["after (LLM + exact + similar)"]
    assert before == {"n": 2, "accuracy": 0.5, "brier": pytest.approx((0.04 + 0.36) / 2)}
    assert after["accuracy"] == 1.0 and after["brier"] == pytest.approx((0.04 + 0.01) / 2)
    assert "| all | 2 |" in bench.markdown(summary)
