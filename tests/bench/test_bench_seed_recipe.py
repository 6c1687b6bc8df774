"""The seed's recipe runs at a tiny size and keeps its structure (reward only, no termination)."""

from __future__ import annotations

import torch

from wm_agents.bench.seed_recipe import WorldModel, plan_with_model, run_seed_recipe


def test_seed_model_predicts_next_state_and_reward_only() -> None:
    model = WorldModel(4, 1)
    nxt, r = model(torch.zeros(3, 4), torch.zeros(3, 1))
    assert nxt.shape == (3, 4) and r.shape == (3,)  # nothing about episode ends
    a = plan_with_model(
        model,
        torch.zeros(4),
        num_candidates=3,
        horizon=2,
        generator=torch.Generator().manual_seed(0),
    )
    assert a.shape == (1,)


def test_seed_recipe_tiny_run() -> None:
    run = run_seed_recipe(0, data_sizes=(50,), eval_episodes=1, candidates=3, horizon=2, epochs=2)
    assert [e.real_steps for e in run.evals] == [50]
    assert 1 <= run.evals[0].mean <= 500
    assert 0.0 <= run.extra["action_share_push_right"][0] <= 1.0
