"""The hybrid's policy candidates include copies of MPC's real choices, and the policy earns
trust in two steps: imagined return, then a real episode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wm_agents.imagination import (
    DistilledPolicy,
    DQNConfig,
    DQNLearner,
    ImaginationConfig,
    ImaginationLearner,
)
from wm_agents.imagination.strategies import HybridTrust as _Trust
from wm_agents.neural import EnsembleDynamicsModel, FitConfig
from wm_agents.neural.dyna import DynaLearner
from wm_agents.spaces import ActionSpec

FAST_FIT = FitConfig(max_epochs=5, patience=2, value=False, multistep=2)


def test_distilled_policy_copies_a_linear_demonstrator() -> None:
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(600, 4, generator=g)
    rule = (obs @ torch.tensor([0.2, 1.0, 3.0, 1.5]) > 0).float()[:, None]  # CartPole-like
    spec = ActionSpec.discrete(2)
    for hidden in (0, 32):
        pol = DistilledPolicy(4, spec, hidden=hidden, seed=0)
        assert pol.fit(obs, rule) > 0.95
        test = torch.randn(200, 4, generator=g)
        want = (test @ torch.tensor([0.2, 1.0, 3.0, 1.5]) > 0).float()[:, None]
        assert float((pol.act(test) == want).float().mean()) > 0.9
    assert pol.name == "distilled-mlp32" and pol.value(test).tolist() == [0.0] * 200
    with pytest.raises(ValueError, match="obs"):
        pol.fit(obs, rule[:10])


def test_distilled_policy_regresses_box_actions_within_bounds() -> None:
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(500, 3, generator=g)
    action = (obs[:, :1] * 0.8).clamp(-1.9, 1.9)
    pol = DistilledPolicy(3, ActionSpec.box([-2.0], [2.0]), hidden=32, seed=0)
    assert pol.fit(obs, action, iterations=1500) > 0.9
    a = pol.act(obs * 10, explore=True)
    assert a.shape == (500, 1) and bool((a.abs() <= 2.0).all())


def test_demonstrations_are_recorded_per_real_step_and_distilled() -> None:
    # A model that moves x by the action's sign; the demonstrator pushes x back toward 0,
    # which keeps it inside |x| < 1 (reward 1 per step, termination outside).
    class PushModel:
        ensemble_size, obs_dim = 2, 1
        action_spec = ActionSpec.discrete(2)
        fitted = True

        def predict(self, obs, act):
            nxt = obs + 0.2 * (2 * act - 1)
            term = (nxt.abs() > 1).float().squeeze(-1)
            return nxt, torch.ones_like(term), term

    model = EnsembleDynamicsModel(1, ActionSpec.discrete(2), ensemble_size=2, hidden=8, seed=0)
    dyna = DynaLearner(model, refit_every=10**6, fit_config=FAST_FIT)
    dqn = DQNLearner(1, 2, DQNConfig(batch_size=16), seed=0)
    cfg = ImaginationConfig(learning_starts=10**6, distill_min_demos=20, select_horizon=40)
    learner = ImaginationLearner(dyna, dqn, cfg, seed=0)
    step = {"i": 0}
    learner.demo_source = lambda: step["i"] >= 10  # the first 10 steps were random
    rng = np.random.default_rng(0)
    for i in range(60):
        step["i"] = i
        x = np.array([rng.uniform(-0.9, 0.9)], np.float32)
        a = rng.integers(2) if i < 10 else int(x[0] < 0)
        learner.observe(x, np.array([a]), 1.0, x + 0.2 * (2 * a - 1), False, True)
    assert list(learner._demo) == [False] * 10 + [True] * 50
    learner.dyna.model = PushModel()  # type: ignore[assignment]
    data = model.buffer.all()
    learner.acting_score = 3.0  # what a poor snapshot would score
    assert learner.distill(data, torch.tensor([[0.5], [-0.5]]))
    assert learner.acting_name.startswith("distilled") and learner.acting_score == 40.0
    assert [d[1] for d in learner.distilled] == ["distilled-linear", "distilled-mlp32"]
    assert all(d[2] > 0.9 for d in learner.distilled)  # agreement with the demonstrator


def test_trust_needs_imagination_then_a_real_episode() -> None:
    t = _Trust(bar=475.0, confirm_bar=475.0)
    t.offer(400, 300.0, key=(1, 0))
    assert t.state == "untrusted"
    t.offer(600, 480.0, key=(2, 0))
    assert t.state == "probation" and t.trusted_at is None
    t.judge(700, 120.0, terminated=True)  # the real episode fell: revoked
    assert t.state == "untrusted"
    t.offer(750, 490.0, key=(2, 0))  # same model, same snapshot: not offered again
    assert t.state == "untrusted"
    t.offer(800, 490.0, key=(3, 0))  # re-scored after a refit
    assert t.state == "probation"
    t.judge(1000, 200.0, terminated=False)  # cut short by the step budget: no verdict
    assert t.state == "probation"
    t.judge(1300, 500.0, terminated=False)
    assert t.state == "trusted" and t.trusted_at == 1300
    t.judge(1500, 90.0, terminated=True)  # a trusted policy that falls loses trust too
    assert t.state == "untrusted" and t.trusted_at is None
    assert t.log == [
        (600, "probation"),
        (700, "revoked"),
        (800, "probation"),
        (1300, "trusted"),
        (1500, "revoked"),
    ]


def test_revoked_trust_waits_for_a_change_after_the_failure() -> None:
    t = _Trust(bar=475.0, confirm_bar=475.0)
    t.offer(600, 490.0, key=(2, 0))
    t.judge(900, 100.0, terminated=True, key=(3, 1))  # refit and a new snapshot meanwhile
    t.offer(901, 490.0, key=(3, 1))  # nothing changed since the failure: not offered
    assert t.state == "untrusted"
    t.offer(1000, 490.0, key=(4, 1))
    assert t.state == "probation"


def test_trust_without_a_reward_threshold() -> None:
    no_threshold = _Trust(bar=None, confirm_bar=None)
    no_threshold.offer(400, -1e9, key=0)
    assert no_threshold.state == "trusted" and no_threshold.trusted_at == 400
    imagined_only = _Trust(bar=-200.0, confirm_bar=None)
    imagined_only.offer(400, -300.0, key=0)
    assert imagined_only.state == "untrusted"
    imagined_only.offer(600, -150.0, key=1)
    assert imagined_only.state == "trusted"
