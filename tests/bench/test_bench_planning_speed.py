"""Planning-speed benchmark at a tiny size; the seed-style loop computes the same returns."""

from __future__ import annotations

import json

import pytest
import torch

from wm_agents.bench import planning_speed as ps
from wm_agents.bench import planning_speed_report, seed_loop
from wm_agents.cli import main


@pytest.fixture(scope="module")
def tiny():
    return ps.make_model(2, 16, 2, steps=80, epochs=2)


def test_seed_loop_matches_batched_rollout(tiny) -> None:
    model, states = tiny
    obs = states[3]
    actions = torch.randint(0, 2, (7, 4, 1), generator=torch.Generator().manual_seed(1)).float()
    for k in (1, 3):
        batched = model.rollout(obs, actions, particles=k, gamma=1.0).returns
        looped = seed_loop.seed_style_objective(model, obs, particles=k)(actions)
        torch.testing.assert_close(looped, batched, rtol=1e-4, atol=1e-4)
        as_written = seed_loop.seed_module_objective(model, obs, particles=k)(actions)
        torch.testing.assert_close(as_written, batched, rtol=1e-4, atol=1e-4)


def test_measure_tiny(tiny) -> None:
    model, states = tiny
    rows = ps.measure(
        population=20,
        horizon=3,
        ensemble=2,
        hidden=16,
        layers=2,
        iterations=2,
        particles=2,
        states=2,
        repeats=1,
        seed_loop=True,
        seed_modules=True,
        model=model,
        visited=states,
    )
    assert [r["mode"] for r in rows] == ["float32", "seed-loop", "seed-modules"]
    assert rows[0]["ms_median"] > 0 and len(rows[0]["actions"]) == 2
    # Same decision problem, same weights: the seed's loops pick the same actions, same work.
    assert rows[1]["match_first"] == rows[2]["match_first"] == 1.0
    assert rows[0]["evaluated_mean"] == rows[1]["evaluated_mean"] == rows[2]["evaluated_mean"]


def test_all_modes_tiny(tiny) -> None:
    model, states = tiny
    rows = ps.measure(
        population=20,
        horizon=4,
        ensemble=2,
        hidden=16,
        layers=2,
        iterations=2,
        particles=3,
        modes=ps.MODES,
        states=2,
        repeats=1,
        model=model,
        visited=states,
    )
    assert [r["mode"] for r in rows] == list(ps.MODES)
    assert all(0.0 <= r["match_first"] <= 1.0 for r in rows[1:])
    for r in rows[1:]:  # one value gap per state where the mode chose differently
        assert len(r["value_gap_where_different"]) == round((1 - r["match_first"]) * 2)
    # The model's own setting is back afterwards.
    assert model.planning_dtype == torch.float32
    by_mode = {r["mode"]: r for r in rows}
    # At this tiny width "auto" resolves to float32; -fixed runs every iteration.
    assert by_mode["auto"]["dtype"] == "float32"
    assert by_mode["float32-fixed"]["iterations_mean"] == 2
    assert by_mode["float32-fixed"]["evaluated_mean"] == 2 * 20
    assert by_mode["auto-keep"]["evaluated_mean"] <= 20 + 18  # 2 elites carried, not re-scored


def test_parse_mode() -> None:
    assert ps.parse_mode("bfloat16-fixed-shared") == ps.Mode("bfloat16", fixed=True, shared=True)
    assert ps.parse_mode("float32") == ps.Mode("float32")
    assert ps.parse_mode("auto-keep").name == "auto-keep"
    for bad in ("float16", "float32-fast", "float32-skip"):  # -skip was removed (issue 12)
        with pytest.raises(ValueError, match="mode must be"):
            ps.parse_mode(bad)


def test_cli_plan_json(capsys) -> None:
    code = main(
        [
            "bench",
            "plan",
            "--population",
            "16",
            "--horizon",
            "2",
            "--ensemble",
            "2",
            "--hidden",
            "8",
            "--layers",
            "1",
            "--iterations",
            "1",
            "--particles",
            "1",
            "--states",
            "1",
            "--repeats",
            "1",
            "--json",
        ]
    )
    assert code == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["ms_median"] > 0 and row["threads"] == torch.get_num_threads()


def test_plot_draws_every_mode(tiny, tmp_path) -> None:
    model, states = tiny
    rows = ps.measure(
        population=12,
        horizon=2,
        ensemble=2,
        hidden=16,
        layers=2,
        iterations=1,
        particles=1,
        modes=["float32", "auto"],
        states=1,
        repeats=1,
        model=model,
        visited=states,
    )
    payload = {"rows": rows, "matmul_ceiling_gflops": {"float32": 1.0, "bfloat16": 1.0}}
    out = planning_speed_report.plot(payload, tmp_path / "p.png")
    assert out.stat().st_size > 1000
    assert "| 2 | 1 | auto (float32) |" in planning_speed_report.table(payload)
