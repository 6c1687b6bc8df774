"""Planning-speed benchmark at a tiny size; the seed-style loop computes the same returns."""

from __future__ import annotations

import json

import pytest
import torch

from wm_agents.bench import planning_speed as ps
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
        looped = ps.seed_style_objective(model, obs, particles=k)(actions)
        torch.testing.assert_close(looped, batched, rtol=1e-4, atol=1e-4)


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
        model=model,
        visited=states,
    )
    assert [r["mode"] for r in rows] == ["float32", "seed-loop"]
    assert rows[0]["ms_median"] > 0 and len(rows[0]["actions"]) == 2
    # Same decision problem, same weights: the seed's loop picks the same actions.
    assert rows[1]["match_first"] == 1.0


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
    assert model.planning_dtype == torch.float32 and not model.share_prefixes  # restored


def test_parse_mode() -> None:
    assert ps.parse_mode("bfloat16-shared") == ("bfloat16", True)
    assert ps.parse_mode("float32") == ("float32", False)
    with pytest.raises(ValueError, match="mode must be one of"):
        ps.parse_mode("float16")


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
