"""A policy learned in the latent model's dreams, alone and as a hybrid with latent MPC (issue 16,
item 3), on the column world (``column_world.py``): going right pays, frames are all there is."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from column_world import (
    SIZE,
    TINY_MODEL,
    ColumnWorld,
    few_cli_train_steps,
    frame,
    make_env,
    tiny_latent_agent,
    train_column_model,
)

from wm_agents.imagination.dqn import DQNConfig, DQNLearner
from wm_agents.latent.agent import LatentAgentConfig, LatentController, run_latent_gym
from wm_agents.latent.dream import (
    DreamConfig,
    DreamTrainer,
    dream_rollouts,
    episode_start_beliefs,
    filter_beliefs,
    imagined_latent_return,
)
from wm_agents.latent.dream_agent import LatentHybridController, LatentPolicyController
from wm_agents.spaces import ActionSpec

SPEC = ActionSpec.discrete(2)


@pytest.fixture(scope="module")
def trained():
    model, replay, _, _ = train_column_model()
    return model, replay


def fast_dqn(model, seed: int = 0) -> DQNLearner:
    """A DQN that learns within a test's few hundred updates."""
    feat = model.config.deter + model.config.stoch
    return DQNLearner(feat, 2, DQNConfig(hidden=64, lr=1e-3, tau=0.02, batch_size=128), seed=seed)


def test_dream_settings_are_checked():
    with pytest.raises(ValueError, match="length"):
        DreamConfig(length=0)
    with pytest.raises(ValueError, match="quantile"):
        DreamConfig(quantile=0.0)
    with pytest.raises(ValueError, match="epsilon"):
        DreamConfig(epsilon=1.5)


def test_real_steps_filter_into_one_belief_each(trained):
    model, replay = trained
    batch = replay.sample(4, 10, np.random.default_rng(1))
    beliefs, dis = filter_beliefs(model, batch)
    n = int(batch.mask.sum())
    assert beliefs.h.shape == (n, model.config.deter) and beliefs.z.shape == (n, 8)
    assert dis.shape == (n,) and bool(torch.isfinite(dis).all()) and bool((dis >= 0).all())


def test_dreams_stop_where_the_members_disagree_and_end_where_the_episode_ends(trained):
    model, replay = trained
    beliefs, dis = filter_beliefs(model, replay.sample(4, 10, np.random.default_rng(2)))
    policy = fast_dqn(model)
    g = torch.Generator().manual_seed(0)
    free = dream_rollouts(model, beliefs, policy, SPEC, 6, generator=g)
    n = beliefs.h.shape[0]
    # The column world never ends and nothing is out of range: every row dreams all 6 steps.
    assert free.lengths.tolist() == [6] * n and not bool(free.stopped.any())
    assert free.obs.shape == (6 * n, 40) and free.action.shape == (6 * n, 1)
    assert float(free.terminated.sum()) == 0.0
    # A threshold below every disagreement keeps nothing and says every row stopped.
    none = dream_rollouts(model, beliefs, policy, SPEC, 6, threshold=-1.0, generator=g)
    assert len(none) == 0 and bool(none.stopped.all())
    # At the real data's median, some rows stop early and no kept step exceeds it.
    median = float(dis.median())
    part = dream_rollouts(model, beliefs, policy, SPEC, 6, threshold=median, generator=g)
    assert 0 < len(part) < 6 * n and bool((part.disagreement <= median).all())


def test_a_dream_ends_after_the_step_the_continue_head_calls_the_end(trained):
    model, replay = trained
    beliefs, _ = filter_beliefs(model, replay.sample(2, 5, np.random.default_rng(3)))
    head = model.continue_head
    saved = {k: v.clone() for k, v in head.state_dict().items()}
    try:
        with torch.no_grad():
            last = [m for m in head.modules() if isinstance(m, torch.nn.Linear)][-1]
            last.weight.zero_()
            last.bias.fill_(-10.0)  # "the episode ends" everywhere
        out = dream_rollouts(model, beliefs, fast_dqn(model), SPEC, 6)
        assert out.lengths.tolist() == [1] * beliefs.h.shape[0]
        assert bool((out.terminated == 1.0).all())
    finally:
        head.load_state_dict(saved)


def test_a_policy_learns_to_go_right_in_the_dream(trained):
    model, replay = trained
    rng = np.random.default_rng(4)
    trainer = DreamTrainer(
        model, SPEC, DreamConfig(length=10, updates=150, score_horizon=20), policy=fast_dqn(model)
    )
    starts = episode_start_beliefs(model, replay.episodes, 16, rng)
    assert starts is not None and starts.h.shape[0] == 16
    untrained = float(imagined_latent_return(model, starts, trainer.policy, SPEC, 20).mean())
    for _ in range(6):
        info = trainer.round(replay.sample(16, 10, rng), starts)
    assert len(trainer.rounds) == 6 and info["transitions"] > 0
    assert 0.0 < trainer.threshold < float("inf")
    # Greedy actions at real beliefs: right nearly everywhere (left is never better here).
    beliefs, _ = filter_beliefs(model, replay.sample(16, 10, rng))
    right = float(trainer.policy.act(torch.cat([beliefs.h, beliefs.z], -1)).mean())
    assert right > 0.9, right
    # Its imagined return from real starts beats the untrained policy's and nears the true
    # ~15-19 of always going right (random play earns ~8-10).
    assert trainer.score > max(untrained, 13.0), (untrained, trainer.rounds)


def test_the_policy_and_latent_mpc_share_one_belief(trained):
    model, _ = trained
    mpc = LatentController(model, SPEC, LatentAgentConfig(horizon=3, population=16))
    trainer = DreamTrainer(model, SPEC, policy=fast_dqn(model))
    policy = LatentPolicyController(mpc, trainer)
    flat = [frame(x).astype(np.float32).reshape(-1) for x in (5, 6, 7)]
    d = policy.act(flat[0])
    first = mpc.belief
    assert d.source == "latent:policy" and d.action is not None
    # The next frame is filtered once, with the action the policy took, whoever asks next.
    taken = SPEC.encode(torch.tensor(d.action, dtype=torch.float32))[None]
    with torch.no_grad():
        h = model.gru(model.pre_gru(torch.cat([first.z, taken], -1)), first.h)
    mpc.track(flat[1])
    after = mpc.belief
    assert torch.allclose(after.h, h)
    policy.quick_step(flat[1])
    assert mpc.belief is after  # no second filtering of the same frame
    assert not torch.equal(after.h, first.h)
    policy.reset()
    assert mpc.belief is None


def test_the_hybrid_plans_where_the_members_disagree_and_follows_the_policy_where_they_agree(
    trained,
):
    model, _ = trained
    mpc = LatentController(model, SPEC, LatentAgentConfig(horizon=3, population=16))
    policy = LatentPolicyController(mpc, DreamTrainer(model, SPEC, policy=fast_dqn(model)))
    hybrid = LatentHybridController(policy=policy, mpc=mpc, threshold=0.0)  # type: ignore[arg-type]
    obs = frame(5).astype(np.float32).reshape(-1)
    assert hybrid.act(obs).source == "hybrid:mpc"  # no disagreement is <= 0
    hybrid.threshold = float("inf")
    assert hybrid.act(obs).source == "hybrid:policy"
    assert hybrid.sources["policy"] == 1 and hybrid.sources["mpc"] == 1
    # Through the graph's rounds: policy proposes, imagines, and acts.
    o = hybrid.imagine(obs, hybrid.propose(obs).candidates.tolist())
    assert o[0].is_known and len(o[0].member_values) == model.config.ensemble
    assert hybrid.decide(o).verdict == "act"


def test_unknown_agents_are_refused():
    with pytest.raises(ValueError, match="agent must be"):
        run_latent_gym(make_env, agent="dreamer", max_steps=10, progress=False)


def test_the_policy_agent_learns_the_column_world_from_pixels_through_the_loop():
    run, learner = run_latent_gym(
        make_env,
        seed=0,
        max_steps=300,
        warmup_steps=200,
        eval_every=300,
        eval_episodes=3,
        model_config=TINY_MODEL,
        agent_config=tiny_latent_agent(horizon=4, population=16),
        agent="policy",
        dream_config=DreamConfig(length=10, updates=100, score_horizon=20),
        progress=False,
    )
    assert run.real_steps == 300 and len(learner.trainer.rounds) >= 5
    last = run.evals[-1]
    assert set(last.sources) == {"policy"}
    assert last.mean > 14.0, ([e.mean for e in run.evals], learner.trainer.rounds[-1])


def test_the_cli_runs_the_hybrid_from_pixels_and_refuses_vector_only_flags(
    tmp_path, capsys, monkeypatch
):
    few_cli_train_steps(monkeypatch)
    from wm_agents.cli import main

    if "ColumnWorld-v0" not in gym.registry:
        gym.register(id="ColumnWorld-v0", entry_point=ColumnWorld, max_episode_steps=20)
    base = ["gym", "--env", "ColumnWorld-v0", "--obs", "pixels", "--pixel-size", str(SIZE)]
    base += ["--frames", "1", "--grayscale", "--quiet", "--json"]
    assert main([*base, "--agent", "hybrid", "--real-ratio", "0.5"]) == 2
    assert "--real-ratio" in capsys.readouterr().err
    out = tmp_path / "run"
    argv = [*base, "--agent", "hybrid", "--max-steps", "120", "--warmup-steps", "80"]
    argv += ["--eval-every", "0", "--eval-episodes", "1", "--horizon", "4", "--population", "16"]
    argv += ["--rollout-length", "5", "--out", str(out)]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["agent"] == "hybrid" and summary["dream_rounds"] >= 1
    assert set(summary["dream_last"]) >= {"threshold", "transitions", "score"}
    assert sum(summary["hybrid_sources"].values()) >= 0 and "trust_log" in summary
    saved = json.loads((out / "result.json").read_text())
    assert saved["agent"] == "hybrid"
