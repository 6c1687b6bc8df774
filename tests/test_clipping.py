"""Imagined rewards and values are clipped to the range of the real data (issue 11, item 12).

A "young" model is simulated exactly: a CartPole-shaped model whose reward output is shifted by
2.7e10 (the return the issue saw imagined for CartPole, whose return cannot exceed 500) and
whose value is shifted by 1e20, after recording the ranges real data would give (reward 1 every
step; value targets 1..100).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from wm_agents.imagination import branched_rollouts, imagined_policy_return
from wm_agents.neural import EnsembleDynamicsModel, FitConfig, ModelFileError, fit_ensemble
from wm_agents.neural.bounds import ClipStats, clip_range, seen_range
from wm_agents.planning.mpc import model_objective
from wm_agents.spaces import ActionSpec

E, H = 3, 5
OBS = [0.01, -0.02, 0.03, 0.0]


def young_model(*, absurd: bool = True) -> EnsembleDynamicsModel:
    model = EnsembleDynamicsModel(4, ActionSpec.discrete(2), ensemble_size=E, hidden=16, layers=1)
    with torch.no_grad():
        model.reward_seen.copy_(torch.tensor([1.0, 1.0]))  # CartPole: reward 1, always
        model.value_seen.copy_(torch.tensor([1.0, 100.0]))
        model.fitted.fill_(True)
        model.value_fitted.fill_(True)
        # Absurd: every member imagines rewards ~2.7e10 and values ~1e20; else ~1 and ~50.
        model.out_mean[-1] = 2.7e10 if absurd else 1.0
        model.v_mean.fill_(1e20 if absurd else 50.0)
    return model


def test_clip_range_margin() -> None:
    assert clip_range(seen_range([1.0, 1.0, 1.0])) == (0.0, 2.0)
    assert clip_range(seen_range([-16.0, -1.0])) == (-32.0, 15.0)
    assert clip_range(seen_range([0.0, 0.0])) == (-1.0, 1.0)
    assert clip_range(seen_range([])) == (-math.inf, math.inf)  # nothing seen: no clip


def test_imagine_clips_rewards_and_terminal_values_and_counts_them() -> None:
    model = young_model()
    cands = [[0, 1, 0, 1, 0], [1, 1, 1, 1, 1]]
    outcomes = model.imagine(OBS, cands, horizon=H, gamma=0.99, use_value=True)
    top = sum(0.99**t * 2.0 for t in range(H)) + 0.99**H * 200.0  # rewards <= 2, V <= 200
    for o in outcomes:
        assert o.is_known and all(v <= top + 1e-3 for v in o.member_values), o.member_values
        assert o.prediction["clipped_members"] == E
    assert model.clip_stats == ClipStats(rows=2 * E, clipped=2 * E)
    sane = young_model(absurd=False).imagine(OBS, cands, horizon=H, use_value=True)
    assert all(o.prediction["clipped_members"] == 0 for o in sane)


def test_one_absurd_member_value_is_clipped_and_still_makes_the_state_look_worse() -> None:
    sane = young_model(absurd=False)
    wild = young_model(absurd=False)
    with torch.no_grad():
        wild.value_layers[-1].bias[0] += 1e15  # member 0 values every state at ~1e16
    cands = [[0, 1, 0, 1, 0]]
    (o_sane,) = sane.imagine(OBS, cands, horizon=H, gamma=0.99, use_value=True)
    (o_wild,) = wild.imagine(OBS, cands, horizon=H, gamma=0.99, use_value=True)
    lo, hi = wild.value_bounds()
    assert (lo, hi) == (-99.0, 200.0)
    assert o_wild.prediction["clipped_members"] == E and o_sane.prediction["clipped_members"] == 0
    # Bounded: each member's value is clipped before mean - std ...
    assert all(lo - (hi - lo) / 2 - 1 <= v <= 2.0 * H + hi for v in o_wild.member_values)
    # ... and the members' disagreement still counts against the state (the LCB's job).
    assert o_wild.value < o_sane.value
    # A caller's own terminal value is used as given (it is not the model's imagination).
    roll = wild.rollout(OBS, torch.zeros(1, H, 1), terminal_value=lambda s: s[..., 0] * 0 + 1e9)
    assert float(roll.returns.min()) > 1e6  # survival x 1e9, far above the bound of 200


def test_the_search_objective_is_clipped_too() -> None:
    model = young_model()
    objective = model_objective(model, OBS, particles=1, gamma=0.99, use_value=True)
    returns = objective(torch.randint(0, 2, (64, H, 1)).float())
    assert returns.shape == (64, 1) and float(returns.max()) <= 2.0 * H + 200.0


def test_policy_learners_see_clipped_rewards() -> None:
    model = young_model()
    starts = torch.tensor([OBS, OBS])

    def policy(o: torch.Tensor) -> torch.Tensor:
        return torch.zeros(o.shape[0], 1)

    # The trust test: a policy's imagined return over an episode cannot pass 2 per step.
    ret = imagined_policy_return(model, policy, starts, horizon=10)
    assert float(ret.max()) <= 20.0
    batch = branched_rollouts(
        model, starts, policy, 3, threshold=math.inf, generator=torch.Generator().manual_seed(0)
    )
    assert float(batch.reward.max()) <= 2.0
    assert model.clip_stats.clipped > 0
    with torch.no_grad():
        _, raw, _ = model.predict(torch.zeros(E, 1, 4), torch.zeros(E, 1, 1), clip=False)
    assert float(raw.min()) > 1e10  # the raw prediction is still there for validation


def test_known_reward_fn_is_never_clipped() -> None:
    model = young_model()
    model.reward_fn = lambda obs, act, nxt: torch.full(obs.shape[:2], 1e6)
    _, reward, _ = model.predict(torch.zeros(E, 2, 4), torch.zeros(E, 2, 1))
    assert float(reward.min()) == 1e6


def test_ranges_are_learned_from_the_fit_and_saved_with_the_model(tmp_path: Path) -> None:
    model = EnsembleDynamicsModel(4, ActionSpec.discrete(2), ensemble_size=2, hidden=16, layers=1)
    assert model.reward_bounds() == (-math.inf, math.inf)  # nothing seen before a fit
    g = torch.Generator().manual_seed(0)
    for i in range(60):
        o = torch.randn(4, generator=g).numpy()
        model.buffer.add(o, [i % 2], -1.0 - (i % 3), o * 0.9, i % 20 == 19)
    fit_ensemble(model, model.buffer.all(), FitConfig(max_epochs=2, value_rounds=1, value_epochs=2))
    assert torch.equal(model.reward_seen, torch.tensor([-3.0, -1.0]))
    assert model.reward_bounds() == (-6.0, 2.0)
    assert math.isfinite(model.value_bounds()[0])
    loaded = EnsembleDynamicsModel.load(model.save(tmp_path / "m.pt"))
    assert torch.equal(loaded.reward_seen, model.reward_seen)
    assert torch.equal(loaded.value_seen, model.value_seen)


def test_version_2_files_load_without_ranges(tmp_path: Path) -> None:
    model = young_model(absurd=False)
    blob = torch.load(model.save(tmp_path / "m.pt"), weights_only=True)
    state = {k: v for k, v in blob["state_dict"].items() if k not in ("reward_seen", "value_seen")}
    torch.save({**blob, "version": 2, "state_dict": state}, tmp_path / "v2.pt")
    old = EnsembleDynamicsModel.load(tmp_path / "v2.pt")
    assert old.reward_bounds() == (-math.inf, math.inf)
    del state["out_mean"]
    torch.save({**blob, "version": 3, "state_dict": state}, tmp_path / "bad.pt")
    with pytest.raises(
        ModelFileError, match=r"missing \['out_mean', 'reward_seen', 'value_seen'\]"
    ):
        EnsembleDynamicsModel.load(tmp_path / "bad.pt")


def test_clipping_can_be_switched_off_to_measure_what_it_buys() -> None:
    model = young_model()
    clipped = model_objective(model, OBS, particles=1, gamma=0.99, use_value=True)
    assert float(clipped(torch.zeros(4, H, 1)).max()) <= 2.0 * H + 200.0  # weights now cached
    model.clip_imagination = False
    assert model.reward_bounds() == (-math.inf, math.inf) == model.value_bounds()
    objective = model_objective(model, OBS, particles=1, gamma=0.99, use_value=True)
    returns = objective(torch.randint(0, 2, (8, H, 1)).float())
    assert float(returns.min()) > 1e17  # the absurd values go through raw (discounted)
    outcome = model.imagine(OBS, [[0, 1, 0, 1, 0]], horizon=H, use_value=True)[0]
    assert outcome.prediction["clipped_members"] == 0 and outcome.value > 1e17


def test_a_run_reports_clipped_and_nonfinite_imagination() -> None:
    from tiny_agent import tiny_cartpole_config

    from wm_agents.runner import run_gym

    cfg = tiny_cartpole_config(max_steps=120, eval_every=0, eval_episodes=1)
    summary = run_gym("CartPole-v1", seed=0, config=cfg, progress=False).summary()
    assert summary["imagination_clipped"]["rows"] > 0
    assert set(summary["imagination_nonfinite"]) == {"steps", "candidates"}
    off = run_gym(
        "CartPole-v1",
        seed=0,
        config=replace(cfg, clip_imagination=False),
        progress=False,
    ).summary()
    assert off["imagination_clipped"]["clipped"] == 0
