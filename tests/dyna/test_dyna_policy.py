"""DQN / SAC learners, the imagination learner's real/imagined mix, and the policy and hybrid
controllers running inside the unchanged env planning graph."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from tiny_agent import FAST_FIT, tiny_cartpole_config

from wm_agents.envs.gym_actuator import GymActuator
from wm_agents.graph.env_graph import EnvPlanningContext, create_env_planning_graph, episode_config
from wm_agents.imagination import (
    DQNConfig,
    DQNLearner,
    HybridController,
    ImaginationConfig,
    ImaginationLearner,
    PolicyController,
    SACLearner,
    calibrate_disagreement,
    imagined_policy_return,
    run_imagination_gym,
)
from wm_agents.neural import EnsembleDynamicsModel
from wm_agents.neural.dyna import DynaLearner
from wm_agents.planning import AgreementGate, CEMPlanner, MPCController
from wm_agents.spaces import ActionSpec


def test_dqn_learns_one_step_rewards() -> None:
    # gamma 0: Q(s, a) must converge to the reward of (s, a); two states, two actions.
    dqn = DQNLearner(2, 2, DQNConfig(gamma=0.0, hidden=32, lr=1e-2), seed=0)
    obs = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    act = torch.tensor([[0.0], [1.0], [0.0], [1.0]])
    rew = torch.tensor([1.0, -1.0, 0.0, 2.0])
    for _ in range(300):
        loss = dqn.update(obs, act, rew, obs, torch.zeros(4))
    assert loss < 1e-3
    assert dqn.q(obs[::2]).flatten().tolist() == pytest.approx([1.0, -1.0, 0.0, 2.0], abs=0.05)
    assert dqn.act(obs[::2]).tolist() == [[0.0], [1.0]]
    explore = dqn.act(obs.repeat(50, 1), epsilon=1.0, generator=torch.Generator().manual_seed(0))
    assert set(explore.flatten().tolist()) == {0.0, 1.0}


def test_sac_acts_in_bounds_and_updates() -> None:
    spec = ActionSpec.box([-2.0], [2.0])
    sac = SACLearner(3, spec, seed=0)
    obs = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    a = sac.act(obs, explore=True)
    assert a.shape == (64, 1) and bool((a.abs() <= 2.0).all())
    batch = (obs, a, torch.ones(64), obs, torch.zeros(64))
    losses = [sac.update(*batch) for _ in range(5)]
    assert all(math.isfinite(x) for x in losses) and sac.updates == 5
    assert sac.value(obs).shape == (64,)
    with pytest.raises(ValueError, match="Box action space"):
        SACLearner(3, ActionSpec.discrete(2))


def cartpole_model(steps: int = 300, seed: int = 0) -> tuple[EnsembleDynamicsModel, DynaLearner]:
    """A small ensemble fitted on random CartPole transitions."""
    env = GymActuator(gym.make("CartPole-v1"))
    model = EnsembleDynamicsModel(4, env.action_spec, ensemble_size=3, hidden=32, seed=seed)
    dyna = DynaLearner(model, refit_every=10**6, fit_config=FAST_FIT)
    rng = np.random.default_rng(seed)
    obs = env.reset(seed=seed)
    for _ in range(steps):
        a = env.sample_action(rng)
        res = env.step(a)
        dyna.observe(obs, a, res.reward, res.obs, res.terminated, res.truncated)
        obs = (
            env.reset(seed=int(rng.integers(1000))) if res.terminated or res.truncated else res.obs
        )
    dyna.fit()
    return model, dyna


@pytest.fixture(scope="module")
def fitted() -> tuple[EnsembleDynamicsModel, DynaLearner]:
    return cartpole_model()


def test_minibatches_mix_real_and_imagined_rows(fitted) -> None:
    model, dyna = fitted
    dqn = DQNLearner(4, 2, DQNConfig(batch_size=64), seed=0)
    cfg = ImaginationConfig(real_ratio=0.25, rollout_starts=32, learning_starts=0)
    learner = ImaginationLearner(dyna, dqn, cfg, seed=0)
    data = model.buffer.all()
    assert len(learner.minibatch(data)[0]) == 64  # nothing imagined yet: all real
    batch = learner.imagine(data)
    assert len(batch) > 0 and len(learner.imagined) == len(batch)
    obs = learner.minibatch(data)[0]
    real_rows = {tuple(r) for r in torch.from_numpy(data.obs).tolist()}
    n_real = sum(tuple(r) in real_rows for r in obs[:16].tolist())
    assert n_real == 16  # the first 25% are real
    baseline = ImaginationLearner(dyna, dqn, ImaginationConfig(imagine=False), seed=0)
    assert not baseline.imagining


def test_branch_threshold_is_fixed_or_raised_to_a_real_data_quantile(fitted) -> None:
    model, dyna = fitted
    data = model.buffer.all()
    dqn = DQNLearner(4, 2, seed=0)
    fixed = ImaginationLearner(dyna, dqn, ImaginationConfig(disagreement_threshold=0.02), seed=0)
    assert fixed.branch_threshold(data) == 0.02
    q = calibrate_disagreement(model, data.obs, data.action, quantile=0.99)
    for floor in (0.0, q / 2, 2 * q):
        cfg = ImaginationConfig(disagreement_threshold=floor, branch_quantile=0.99)
        learner = ImaginationLearner(dyna, dqn, cfg, seed=0)
        assert learner.branch_threshold(data) == pytest.approx(max(floor, q))
    with pytest.raises(ValueError, match="branch_quantile"):
        ImaginationConfig(branch_quantile=1.5)


def test_imagination_learner_updates_policy_each_real_step(fitted) -> None:
    model, _ = fitted
    dyna = DynaLearner(model, refit_every=10**6, fit_config=FAST_FIT)
    dqn = DQNLearner(4, 2, DQNConfig(batch_size=32), seed=0)
    cfg = ImaginationConfig(updates_per_step=3, rollout_every=2, rollout_starts=16)
    learner = ImaginationLearner(dyna, dqn, replace_starts(cfg), seed=0)
    obs = np.zeros(4, np.float32)
    for i in range(4):
        learner.observe(obs, np.array([i % 2]), 1.0, obs + 0.01, False, False)
    assert dqn.updates == 12
    assert len(learner.rollout_stats) == 2  # steps 2 and 4 (model already fitted)
    assert learner.epsilon < cfg.epsilon_start


def replace_starts(cfg: ImaginationConfig) -> ImaginationConfig:
    from dataclasses import replace

    return replace(cfg, learning_starts=0)


def small_mpc(model: EnsembleDynamicsModel) -> MPCController:
    planner = CEMPlanner(model.action_spec, horizon=5, population=20, elites=4, iterations=1)
    return MPCController(model, planner, AgreementGate(max_replans=1), use_value=False)


def run_episode(controller, max_steps: int = 15) -> EnvPlanningContext:
    graph = create_env_planning_graph().compile()
    ctx = EnvPlanningContext(
        actuator=GymActuator(gym.make("CartPole-v1")), controller=controller, max_steps=max_steps
    )
    graph.invoke({"seed": 0}, context=ctx, config=episode_config(max_steps, 2))
    return ctx


def test_policy_controller_runs_in_the_env_graph(fitted) -> None:
    model, _ = fitted
    ctrl = PolicyController(model, DQNLearner(4, 2, seed=0))
    ctx = run_episode(ctrl)
    assert 0 < len(ctx.records) <= 15
    assert all(r.verdict == "act" for r in ctx.records)
    assert all(math.isfinite(r.prediction_error) for r in ctx.records)
    outcome = ctrl.imagine(np.zeros(4), [[[0.0]], [[1.0]]])
    assert len(outcome) == 2 and len(outcome[0].member_values) == 3
    assert outcome[0].uncertainty >= 0 and "next_obs" in outcome[0].prediction
    d = ctrl.act(np.zeros(4))
    assert d.verdict == "act" and d.reason.startswith("policy") and d.plan_ms > 0


@pytest.mark.parametrize(("threshold", "source"), [(math.inf, "policy"), (0.0, "mpc")])
def test_hybrid_falls_back_to_mpc_when_members_disagree(fitted, threshold, source) -> None:
    model, _ = fitted
    policy = PolicyController(model, DQNLearner(4, 2, seed=0))
    hybrid = HybridController(policy, small_mpc(model), threshold=threshold)
    ctx = run_episode(hybrid)
    n = len(ctx.records)
    assert dict(hybrid.sources) == {source: n}
    assert [s.source for s in hybrid.trace] == [source] * n
    d = hybrid.act(np.zeros(4))
    if source == "policy":
        assert d.reason.startswith("policy: members agree") and d.n_candidates == 1
    else:
        assert d.reason.startswith("MPC fallback (policy disagreement") and d.n_candidates > 1
        assert d.verdict in ("act", "lcb")


def test_hybrid_threshold_splits_by_disagreement(fitted) -> None:
    model, _ = fitted
    policy = PolicyController(model, DQNLearner(4, 2, seed=0))
    states = [np.zeros(4), np.array([0.0, 3.0, 0.0, -3.0])]  # in / far outside the data
    dis = [policy.imagine(s, policy.propose(s).candidates.tolist())[0].uncertainty for s in states]
    assert dis[0] < dis[1]
    hybrid = HybridController(policy, small_mpc(model), threshold=(dis[0] + dis[1]) / 2)
    assert hybrid.act(states[0]).reason.startswith("policy")
    assert hybrid.act(states[1]).reason.startswith("MPC fallback")
    with pytest.raises(ValueError, match="threshold"):
        HybridController(policy, small_mpc(model), threshold=-1.0)


def test_hybrid_fast_path_matches_the_graph_path(fitted) -> None:
    model, _ = fitted
    policy = PolicyController(model, DQNLearner(4, 2, seed=0))
    planner = CEMPlanner(model.action_spec, horizon=5, population=20, elites=4, iterations=1)
    mpc = MPCController(model, planner, AgreementGate(max_replans=1), use_value=False)
    states = [np.zeros(4), np.array([0.05, 0.3, -0.02, -0.4]), np.array([0.0, 3.0, 0.0, -3.0])]
    dis = []
    for s in states:
        a, d = policy.quick_step(s)
        graph_outcome = policy.imagine(s, policy.propose(s).candidates.tolist())[0]
        assert a.tolist() == graph_outcome.candidate[0]
        assert d == pytest.approx(graph_outcome.uncertainty, rel=1e-4)
        dis.append(d)
    # Calibrate on the real data and use it: a state far outside it goes to MPC.
    data = model.buffer.all()
    thr = calibrate_disagreement(model, data.obs, data.action, quantile=0.99)
    assert dis[0] <= thr < dis[2]
    hybrid = HybridController(policy, mpc, threshold=thr)
    fast = hybrid.act(states[0])
    assert fast.reason.startswith("policy: members agree") and fast.n_candidates == 1
    slow = hybrid.act(states[2])
    assert slow.reason.startswith("MPC fallback") and slow.n_candidates > 1
    assert [s.source for s in hybrid.trace] == ["policy", "mpc"]
    assert fast.plan_ms < slow.plan_ms


@pytest.mark.parametrize("agent", ["hybrid", "dqn"])
def test_run_imagination_gym_smoke(agent: str) -> None:
    cfg = tiny_cartpole_config()
    r = run_imagination_gym(
        "CartPole-v1",
        agent=agent,
        seed=0,
        max_steps=80,
        config=cfg,
        policy_after=60,
        eval_every=1000,
        eval_episodes=1,
        progress=False,
        imagination=ImaginationConfig(learning_starts=40, rollout_starts=16, updates_per_step=2),
    )
    s = r.summary()
    assert s["real_steps"] == 80 and s["agent"] == agent
    assert len(s["eval_returns"]) == 1 and s["act_ms_median"] > 0
    assert sum(s["action_sources"].values()) == s["eval_returns"][0]
    if agent == "hybrid":
        assert s["rollouts"]["rounds"] >= 1
    else:
        assert "rounds" not in s["rollouts"] and s["action_sources"].keys() == {"policy"}
    with pytest.raises(ValueError, match="agent must be"):
        run_imagination_gym("CartPole-v1", agent="nope")  # type: ignore[arg-type]


def test_hybrid_evaluates_with_mpc_while_its_policy_is_on_probation() -> None:
    cfg = tiny_cartpole_config()
    r = run_imagination_gym(
        "CartPole-v1",
        agent="hybrid",
        seed=0,
        max_steps=120,
        config=cfg,
        policy_after=40,
        trust_return=-float("inf"),  # imagination lets anything on probation
        eval_every=10**6,
        eval_episodes=1,
        progress=False,
        imagination=ImaginationConfig(learning_starts=40, rollout_starts=16, updates_per_step=2),
    )
    s = r.summary()
    events = [e for _, e in s["trust_log"]]
    assert events[0] == "probation"
    # An untrained policy's real episodes fall far below 475: never confirmed.
    assert "trusted" not in events and "revoked" in events
    assert s["action_sources"].keys() == {"mpc"}  # evaluation: MPC
    assert s["rollouts"]["policy_trusted_at_step"] == -1


class ConstantModel:
    """Two members; reward 1 per step; member 1 always predicts termination with prob ``p``."""

    ensemble_size = 2

    def __init__(self, p: float) -> None:
        self.p = p

    def predict(self, obs: torch.Tensor, act: torch.Tensor):
        term = torch.zeros(obs.shape[:2])
        term[1] = self.p
        return obs + act, torch.ones(obs.shape[:2]), term


def test_imagined_policy_return_by_hand() -> None:
    starts = torch.zeros(3, 2)

    def policy(obs: torch.Tensor) -> torch.Tensor:
        return torch.ones(obs.shape[0], 2)

    # Member 0 never ends: 10.  Member 1 predicts an end (p 0.6 > 0.5) on its first step: 1.
    ret = imagined_policy_return(ConstantModel(0.6), policy, starts, 10)
    assert ret.tolist() == [5.5] * 3
    # p 0.5 is not an end: both members run the whole horizon.
    assert imagined_policy_return(ConstantModel(0.5), policy, starts, 10).tolist() == [10.0] * 3
    assert imagined_policy_return(ConstantModel(0.0), policy, starts, 7).tolist() == [7.0] * 3
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        imagined_policy_return(ConstantModel(0.0), policy, torch.zeros(2), 3)


def test_gym_cli_agent_option_json(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from wm_agents.cli import main

    argv = ["gym", "--env", "CartPole-v1", "--agent", "policy", "--max-steps", "40"]
    argv += ["--warmup-steps", "30", "--eval-episodes", "1", "--quiet", "--json"]
    argv += ["--rollout-length", "2", "--real-ratio", "0.5"]
    assert main(argv) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert s["agent"] == "policy" and s["real_steps"] == 40
    for key in (
        "env",
        "seed",
        "eval_returns",
        "eval_mean",
        "solved_at_step",
        "plan_ms_median",
        "model_val_mse",
        "act_ms_median",
        "action_sources",
    ):
        assert key in s
