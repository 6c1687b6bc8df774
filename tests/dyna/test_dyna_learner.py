"""The imagination learner turns imagined rollouts into a better policy, selects the acting
snapshot by imagined return, and the hybrid's threshold is calibrated from real transitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wm_agents.imagination import (
    DQNConfig,
    DQNLearner,
    ImaginationConfig,
    ImaginationLearner,
    ImaginationRunResult,
    calibrate_disagreement,
    episode_starts,
    imagined_policy_return,
)
from wm_agents.neural.buffer import ReplayBuffer
from wm_agents.neural.dyna import DynaLearner
from wm_agents.runner import EvalPoint
from wm_agents.spaces import ActionSpec


class CliffModel:
    """A known two-member model of a 1-D walk: action 0 steps left (-0.1), action 1 right
    (+0.1); reward 1 per step; the episode ends on stepping past x = 0.5.  Members agree, so
    branches never stop on disagreement; always-left survives any horizon."""

    ensemble_size = 2
    obs_dim = 1
    action_spec = ActionSpec.discrete(2)
    out_std = None
    fitted = torch.tensor(True)

    def __init__(self) -> None:
        self.buffer = ReplayBuffer(1, 1, 1_000)

    def predict(self, obs: torch.Tensor, act: torch.Tensor):
        nxt = obs + torch.where(act > 0.5, 0.1, -0.1)
        return nxt, torch.ones(obs.shape[:2]), (nxt[..., 0] > 0.5).float()


def biased_dqn(prefer: int, seed: int = 0) -> DQNLearner:
    """A DQN whose greedy action is ``prefer`` everywhere (output bias only)."""
    dqn = DQNLearner(1, 2, DQNConfig(hidden=32, batch_size=64, lr=1e-3, tau=0.01), seed=seed)
    with torch.no_grad():
        for net in (dqn.q, dqn.target):
            net[-1].weight.zero_()
            net[-1].bias.copy_(torch.tensor([0.0, 0.0]))
            net[-1].bias[prefer] = 1.0
    return dqn


def cliff_learner(dqn: DQNLearner, **cfg) -> tuple[CliffModel, ImaginationLearner]:
    model = CliffModel()
    dyna = DynaLearner(model, refit_every=10**6)  # type: ignore[arg-type]
    options = dict(
        rollout_length=20,
        rollout_starts=32,
        rollout_every=5,
        updates_per_step=10,
        learning_starts=0,
        select_every=10,
        select_starts=8,
        select_horizon=30,
    )
    options.update(cfg)
    return model, ImaginationLearner(dyna, dqn, ImaginationConfig(**options), seed=0)


def greedy_return(model, dqn: DQNLearner, starts: torch.Tensor, horizon: int = 30) -> float:
    return float(imagined_policy_return(model, lambda o: dqn.act(o), starts, horizon).mean())


def feed(learner: ImaginationLearner, steps: int, seed: int = 0) -> None:
    """Real steps of a random walk that restarts at x = 0 after an end (the "env")."""
    rng = np.random.default_rng(seed)
    x = 0.0
    for _ in range(steps):
        a = int(rng.integers(2))
        nxt = x + (0.1 if a else -0.1)
        end = nxt > 0.5
        learner.observe(np.array([x]), np.array([a]), 1.0, np.array([nxt]), end, False)
        x = 0.0 if end else nxt


def test_learning_in_imagination_improves_the_imagined_return() -> None:
    # The policy starts always-right (falls off the cliff in 5-6 steps); every update is on the
    # known model's imagined transitions (real_ratio 0), so only imagination can teach it left.
    model, learner = cliff_learner(biased_dqn(prefer=1), real_ratio=0.0)
    starts = torch.zeros(4, 1)
    before = greedy_return(model, learner.policy, starts)
    assert before == 6.0
    feed(learner, 60)
    assert learner.policy.updates == 600 and len(learner.rollout_stats) == 12
    assert greedy_return(model, learner.policy, starts) == 30.0  # survives the whole horizon
    # The acting snapshot followed the learning policy: it was scored in imagination.
    assert learner.selections and learner.acting is not learner.policy
    assert greedy_return(model, learner.acting, starts) == 30.0
    assert learner.acting_score == pytest.approx(30.0)


def test_selection_keeps_the_snapshot_with_the_better_imagined_return() -> None:
    model, learner = cliff_learner(biased_dqn(prefer=0))
    feed(learner, 1)  # one real episode start in the buffer
    learner.acting.load_state_dict(biased_dqn(prefer=1).state_dict())  # a worse snapshot
    data = model.buffer.all()
    assert learner.select(data) is True  # 30 (always left) >= 6 (always right)
    assert learner.acting_score == 30.0
    assert greedy_return(model, learner.acting, torch.zeros(1, 1)) == 30.0
    learner.policy.load_state_dict(biased_dqn(prefer=1).state_dict())  # the learner got worse
    assert learner.select(data) is False  # the good snapshot keeps acting
    assert greedy_return(model, learner.acting, torch.zeros(1, 1)) == 30.0
    assert [s[3] for s in learner.selections] == [True, False]
    # Selection off: the learning policy acts itself.
    _, plain = cliff_learner(biased_dqn(prefer=0), select_every=0)
    assert plain.acting is plain.policy
    with pytest.raises(ValueError, match="select_every"):
        ImaginationConfig(select_every=-1)
    with pytest.raises(ValueError, match="rollout_epsilon"):
        ImaginationConfig(rollout_epsilon=1.5)


def test_episode_starts_are_first_observations_of_real_episodes() -> None:
    buf = ReplayBuffer(1, 1, 100)
    for ep, length in enumerate([3, 2, 4]):
        for t in range(length):
            buf.add([10.0 * ep + t], [0], 1.0, [10.0 * ep + t + 1], t == length - 1)
    data = buf.all()
    assert episode_starts(data, 10).flatten().tolist() == [0.0, 10.0, 20.0]
    assert episode_starts(data, 2).flatten().tolist() == [10.0, 20.0]  # the newest
    with pytest.raises(ValueError, match="no real transitions"):
        episode_starts(ReplayBuffer(1, 1, 10).all(), 3)


class SpreadModel:
    """Two members whose next states differ by ``|x|`` (disagreement grows away from 0)."""

    ensemble_size = 2
    obs_dim = 1
    out_std = torch.ones(2)

    def predict(self, obs: torch.Tensor, act: torch.Tensor):
        sign = torch.tensor([-1.0, 1.0]).view(2, 1, 1)
        nxt = obs + sign * obs.abs() / 2
        return nxt, torch.ones(obs.shape[:2]), torch.zeros(obs.shape[:2])


def test_calibrated_threshold_is_a_quantile_of_real_disagreement() -> None:
    obs = np.arange(1, 101, dtype=np.float32).reshape(-1, 1)  # disagreement |x| / 2 = 0.5..50
    act = np.zeros((100, 1), np.float32)
    assert calibrate_disagreement(SpreadModel(), obs, act, quantile=1.0) == pytest.approx(50.0)
    assert calibrate_disagreement(SpreadModel(), obs, act, quantile=0.5) == pytest.approx(25.25)
    # Only the newest rows count.
    assert calibrate_disagreement(
        SpreadModel(), obs, act, quantile=1.0, max_rows=10
    ) == pytest.approx(50.0)
    assert calibrate_disagreement(SpreadModel(), obs[:10], act[:10], quantile=1.0) == pytest.approx(
        5.0
    )
    with pytest.raises(ValueError, match="quantile"):
        calibrate_disagreement(SpreadModel(), obs, act, quantile=0.0)
    with pytest.raises(ValueError, match=r"obs \[N, D\]"):
        calibrate_disagreement(SpreadModel(), obs, act[:5])


def test_held_from_step_needs_every_later_evaluation() -> None:
    def result(means: list[float]) -> ImaginationRunResult:
        evals = [EvalPoint(100 * (i + 1), [m]) for i, m in enumerate(means)]
        return ImaginationRunResult(
            env="CartPole-v1",
            seed=0,
            real_steps=100 * len(means),
            evals=evals,
            train_episodes=[],
            solved_threshold=475.0,
            solved_at_step=None,
            plan_ms=[],
            model_val_mse=math.nan,
            verdicts={},
            seconds=0.0,
            eval_sources=[{"policy": 3, "mpc": 1}] * len(means),
        )

    assert result([100, 480, 300, 500, 490]).held_from_step == 400
    assert result([480, 500]).held_from_step == 100
    assert result([480, 470]).held_from_step is None
    s = result([500]).summary()
    assert s["held_from_step"] == 100 and s["evals"][0]["policy_share"] == 0.75
