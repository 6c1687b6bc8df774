"""Solve/hold statistics of the benchmarks, on hand-made curves."""

from __future__ import annotations

import json

from wm_agents.bench.common import (
    CurveRun,
    EvalPoint,
    median_range,
    steps_to_hold,
    steps_to_reach,
    summarize_runs,
    write_json,
)


def curve(*pairs: tuple[int, float]) -> list[EvalPoint]:
    return [EvalPoint(s, (m,)) for s, m in pairs]


def test_reach_and_hold() -> None:
    c = curve((100, 10), (200, 480), (300, 400), (400, 500), (500, 475))
    assert steps_to_reach(c, 475) == 200
    assert steps_to_hold(c, 475) == 400  # the dip at 300 resets the hold


def test_never_held_when_last_eval_is_below() -> None:
    c = curve((100, 500), (200, 500), (300, 474.9))
    assert steps_to_reach(c, 475) == 100
    assert steps_to_hold(c, 475) is None
    assert steps_to_reach(curve((1, 0)), 475) is None


def test_median_range_counts_missing_as_late() -> None:
    assert median_range([100, 300, 200]) == {
        "n": 3,
        "reached": 3,
        "median": 200,
        "min": 100,
        "max": 300,
    }
    # 2 of 5 never got there: the median is the 3rd smallest, the max is "never" (None)
    assert median_range([100, None, 300, None, 200]) == {
        "n": 5,
        "reached": 3,
        "median": 300,
        "min": 100,
        "max": None,
    }
    assert median_range([None, None, 5])["median"] is None


def test_summary_and_json(tmp_path) -> None:
    runs = [CurveRun("m", s, curve((100, 500), (200, 500)), 1.0) for s in range(2)]
    s = summarize_runs(runs, 475)
    assert s["steps_to_hold"]["median"] == 100 and s["final_eval_mean"] == [500.0, 500.0]
    path = write_json(tmp_path / "x.json", {"runs": [r.to_json(475) for r in runs]})
    assert json.loads(path.read_text())["runs"][0]["steps_to_hold"] == 100
