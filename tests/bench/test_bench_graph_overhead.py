"""Graph-overhead benchmark at a tiny size: the three paths make the same decisions."""

from __future__ import annotations

from wm_agents.bench.graph_overhead import measure_overhead


def test_graph_overhead_tiny() -> None:
    out = measure_overhead(
        seeds=[0],
        train_steps=30,
        limit=4,
        population=40,
        horizon=3,
        warmup_steps=20,
        refit_every=20,
        hidden=16,
        ensemble_size=2,
    )
    s = out["summary"]
    assert s["same_decisions"]
    assert set(s["ms_per_step_median"]) == {"bare", "graph", "graph_sqlite"}
    ep = out["episodes"][0]
    assert ep["bare"]["return"] == ep["graph"]["return"] == ep["graph_sqlite"]["return"]
