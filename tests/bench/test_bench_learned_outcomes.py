"""The learned-outcomes benchmark's stages, end to end on a tiny data set (no LLM: a few
cached answers stand in for the LLM subset)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wm_agents.bench.toolworld import build_dataset


@pytest.fixture(scope="module")
def calls():
    return build_dataset(6, 60, seed=1)


def test_benchmark_stage_end_to_end(calls, tmp_path: Path):
    from wm_agents.bench.learned_outcomes import evaluate_seed, splits
    from wm_agents.bench.learned_outcomes_report import markdown, plot_reliability, summarize
    from wm_agents.learned import LearnedConfig

    config = LearnedConfig(
        ensemble_size=2, hidden=16, min_steps=30, calibration_folds=2, min_examples=20, seed=0
    )
    chosen = splits(calls, (0,))[0].test[:8]
    cache = {
        c.id: {"p_llm": 0.6 if i % 3 else None, "status": "ok" if i % 3 else "unknown"}
        for i, c in enumerate(chosen)
    }
    runs = [
        evaluate_seed(calls, seed, mode, cache, set(cache), config)
        for seed, mode in ((0, "pattern"), (1, "pattern"), (0, "cause"))
    ]
    first = runs[0]
    assert first["llm_subset"]["llm"]["n"] == 8 and first["llm_subset_unknown"] == 3
    assert first["held_out"]["learned"]["n"] == first["held_out"]["majority"]["n"] > 0
    results = {"pattern": runs[:2], "cause": runs[2:]}
    report = {"results": results, "split": {"report_seeds": [1]}}
    report["summary"] = summarize(results, (1,), (0,))
    text = markdown(report)
    assert "| learned |" in text and "held-out first-time calls" in text
    png = plot_reliability(report, tmp_path / "rel.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    json.dumps(report)  # the JSON the run stage writes
