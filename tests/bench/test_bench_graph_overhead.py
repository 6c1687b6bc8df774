"""Graph-overhead benchmark at a tiny size: every path makes the same decisions."""

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
    variants = {"bare", "graph", "graph_sqlite", "fused", "fused_sqlite"}
    assert set(s["ms_per_step_median"]) == variants
    ep = out["episodes"][0]
    assert len({ep[k]["return"] for k in variants}) == 1
    assert set(s["overhead_ms_per_step"]) == variants - {"bare"}
