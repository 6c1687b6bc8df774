"""Trajectory optimizers: CEM and random shooting over objective([B, H, A]) -> [B] / [B, K]."""

from __future__ import annotations

import math

import pytest
import torch

from wm_agents.planning import CEMPlanner, Proposal, RandomShootingPlanner, risk_aware_score
from wm_agents.spaces import ActionSpec

BOX2 = ActionSpec.box([-2.0, -2.0], [2.0, 2.0])
TARGET = torch.tensor([[0.5, -1.0], [1.2, 0.3], [-0.7, 0.0]])  # [H=3, A=2]
PATTERN = torch.tensor([1.0, 0.0, 2.0, 1.0])  # best discrete sequence, H=4, n=3
DISCRETE3 = ActionSpec.discrete(3)


def quadratic(actions: torch.Tensor) -> torch.Tensor:
    """Maximized (at 0) exactly when every action equals TARGET."""
    return -((actions - TARGET) ** 2).sum((1, 2))


def matches(actions: torch.Tensor) -> torch.Tensor:
    """Reward 1 per step whose action index matches PATTERN."""
    return (actions[..., 0] == PATTERN).float().sum(1)


def test_cem_box_finds_quadratic_optimum() -> None:
    planner = CEMPlanner(
        BOX2, horizon=3, population=200, elites=20, iterations=8, min_std=0.001, seed=0
    )
    p = planner.propose(quadratic)
    assert isinstance(p, Proposal)
    assert p.plan.shape == (3, 2)
    assert torch.allclose(p.plan, TARGET, atol=0.05)
    assert float(p.scores[0]) > -0.01
    assert p.n_evaluated == 200 * p.iterations
    assert p.n_nonfinite == 0
    # Candidates come best first, at most `keep`, and all inside the bounds.
    assert p.candidates.shape == (8, 3, 2)
    assert torch.equal(p.candidates[0], p.plan)
    assert torch.all(p.scores[:-1] >= p.scores[1:])
    assert p.candidates.min() >= -2.0 and p.candidates.max() <= 2.0


def test_cem_stops_once_an_iteration_no_longer_improves() -> None:
    calls: list[int] = []

    def flat(actions: torch.Tensor) -> torch.Tensor:
        calls.append(len(actions))
        return torch.ones(len(actions))  # nothing to improve: converged after 2 iterations

    p = CEMPlanner(BOX2, horizon=3, population=100, elites=10, iterations=5, seed=0).propose(flat)
    assert p.iterations == 2 and calls == [100, 100]
    # stop_tol=None always runs every iteration.
    calls.clear()
    planner = CEMPlanner(BOX2, horizon=3, population=100, elites=10, iterations=5, stop_tol=None)
    assert planner.propose(flat).iterations == 5 and calls == [100] * 5
    # A warm start that nothing beats is still refined once (two iterations), and stays the plan.
    warm = torch.full((3, 2), 1.5)
    p = CEMPlanner(BOX2, horizon=3, population=100, elites=10, iterations=5, seed=0).propose(
        lambda a: -((a - warm) ** 2).sum((1, 2)), warm_start=warm
    )
    assert p.iterations == 2 and torch.equal(p.plan, warm)


def test_cem_keeps_improving_while_the_objective_rewards_it() -> None:
    planner = CEMPlanner(BOX2, horizon=3, population=50, elites=5, iterations=3, seed=0)
    p = planner.propose(quadratic)
    assert p.iterations == 3  # far from the optimum every iteration finds a clearly better one
    assert p.n_evaluated == 3 * 50


@pytest.mark.parametrize("spec", [BOX2, DISCRETE3])
def test_cem_keep_elites_scores_only_new_sequences(spec) -> None:
    objective = quadratic if spec is BOX2 else matches
    calls: list[int] = []

    def counted(actions: torch.Tensor) -> torch.Tensor:
        calls.append(len(actions))
        return objective(actions)

    horizon = 3 if spec is BOX2 else 4
    planner = CEMPlanner(
        spec,
        horizon=horizon,
        population=60,
        elites=6,
        iterations=4,
        keep_elites=True,
        stop_tol=None,
        seed=0,
    )
    p = planner.propose(counted)
    assert calls == [60, 54, 54, 54] and p.n_evaluated == 60 + 3 * 54
    # Still solves the problem, and the candidates are distinct, best first.
    assert float(p.scores[0]) == float(objective(p.plan[None])[0])
    assert torch.all(p.scores[:-1] >= p.scores[1:])
    assert len(torch.unique(p.candidates.flatten(1), dim=0)) == len(p.candidates)
    if spec is DISCRETE3:
        assert p.plan[:, 0].tolist() == PATTERN.tolist()
    else:
        assert torch.allclose(p.plan, TARGET, atol=0.2)


def test_cem_box_clips_optimum_outside_bounds() -> None:
    target = torch.full((2, 2), 5.0)  # unreachable: the best is the upper bound
    planner = CEMPlanner(BOX2, horizon=2, population=100, elites=10, iterations=8, seed=0)
    p = planner.propose(lambda a: -((a - target) ** 2).sum((1, 2)))
    assert torch.allclose(p.plan, torch.full((2, 2), 2.0), atol=0.05)
    assert p.candidates.max() <= 2.0


def test_cem_discrete_finds_pattern() -> None:
    planner = CEMPlanner(DISCRETE3, horizon=4, population=50, elites=5, iterations=5, seed=0)
    p = planner.propose(matches)
    assert p.plan[:, 0].tolist() == PATTERN.tolist()
    assert float(p.scores[0]) == 4.0
    # Discrete candidates are distinct sequences, valid indices.
    flat = [tuple(c.flatten().tolist()) for c in p.candidates]
    assert len(set(flat)) == len(flat)
    assert set(p.candidates.flatten().tolist()) <= {0.0, 1.0, 2.0}


def test_random_shooting_discrete_finds_pattern() -> None:
    planner = RandomShootingPlanner(DISCRETE3, horizon=4, population=400, seed=0)
    p = planner.propose(matches)
    assert p.plan[:, 0].tolist() == PATTERN.tolist()
    assert p.n_evaluated == 400
    assert p.candidates.shape[1:] == (4, 1)
    assert [float(s) for s in p.scores[:2]] == [4.0, 3.0]


def test_random_shooting_box_gets_close_to_quadratic_optimum() -> None:
    planner = RandomShootingPlanner(BOX2, horizon=1, population=2000, keep=3, seed=0)
    target = TARGET[:1]
    p = planner.propose(lambda a: -((a - target) ** 2).sum((1, 2)))
    assert p.candidates.shape == (3, 1, 2)
    # 2000 uniform samples in a 4x4 square: the nearest is within ~0.1.
    assert torch.allclose(p.plan, target, atol=0.15)


def test_risk_aware_score_values() -> None:
    returns = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 2.0, 0.0, 2.0], [3.0, 1.0, 3.0, 1.0]])
    score, bad = risk_aware_score(returns, risk_weight=0.5)
    assert score.tolist() == [1.0, 0.5, 1.5]
    assert bad == 0
    assert risk_aware_score(returns)[0].tolist() == [1.0, 1.0, 2.0]
    assert risk_aware_score(torch.tensor([1.0, -2.0]), 3.0)[0].tolist() == [1.0, -2.0]
    with pytest.raises(ValueError, match=r"\[B\] or \[B, K\]"):
        risk_aware_score(torch.zeros(2, 3, 4))


@pytest.mark.parametrize("planner_cls", [RandomShootingPlanner, CEMPlanner])
def test_risk_aware_planner_prefers_low_spread(planner_cls) -> None:
    """Action 0: members say [1, 1]; action 1: [0, 2]. Equal means, different spread."""

    def objective(actions: torch.Tensor) -> torch.Tensor:
        a = actions[:, 0, 0]
        return torch.stack([1 - a, 1 + a], dim=1)  # [B, K=2]

    spec = ActionSpec.discrete(2)
    kw = {"elites": 2} if planner_cls is CEMPlanner else {}
    cautious = planner_cls(spec, horizon=1, population=10, risk_weight=0.5, seed=0, **kw)
    p = cautious.propose(objective)
    assert p.plan.tolist() == [[0.0]]
    assert float(p.scores[0]) == 1.0  # mean 1 - 0.5 x std 0
    if planner_cls is RandomShootingPlanner:
        assert p.scores.tolist() == [1.0, 0.5]  # action 1: mean 1 - 0.5 x std 1
    # Risk-neutral: both score 1 and nothing prefers the low-spread one.
    neutral = planner_cls(spec, horizon=1, population=10, risk_weight=0.0, seed=0, **kw)
    assert set(neutral.propose(objective).scores.tolist()) == {1.0}


@pytest.mark.parametrize("planner_cls", [RandomShootingPlanner, CEMPlanner])
def test_nonfinite_returns_rank_last_and_are_counted(planner_cls) -> None:
    seen = {"bad": 0, "n": 0}

    def objective(actions: torch.Tensor) -> torch.Tensor:
        first = actions[:, 0, 0]
        # Action index 2 first: the model "diverged". Index 1: a very negative (finite) return.
        out = torch.where(first == 1, torch.full_like(first, -1e6), -first)
        out = torch.where(first == 2, torch.full_like(first, math.nan), out)
        out[(first == 2) & (actions[:, 1, 0] == 2)] = math.inf
        seen["bad"] += int((first == 2).sum())
        seen["n"] += len(first)
        return out

    kw = {"elites": 5, "iterations": 2} if planner_cls is CEMPlanner else {}
    planner = planner_cls(DISCRETE3, horizon=2, population=30, keep=9, seed=0, **kw)
    p = planner.propose(objective)
    assert seen["bad"] > 0
    assert p.n_nonfinite == seen["bad"]
    assert p.n_evaluated == seen["n"]
    firsts = p.candidates[:, 0, 0].tolist()
    # Every finite candidate (even -1e6) ranks above every non-finite one, which score -inf.
    assert p.plan[0, 0] == 0.0
    finite = [math.isfinite(s) for s in p.scores.tolist()]
    assert finite == sorted(finite, reverse=True)
    for f, s in zip(firsts, p.scores.tolist(), strict=True):
        assert (f == 2.0) == (s == -math.inf)


def test_shift_warm_start() -> None:
    planner = CEMPlanner(BOX2, horizon=3, population=10, elites=2)
    plan = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert planner.shift(plan).tolist() == [[3.0, 4.0], [5.0, 6.0], [5.0, 6.0]]
    assert planner.shift(plan.tolist()).tolist() == [[3.0, 4.0], [5.0, 6.0], [5.0, 6.0]]
    # A plan of another horizon or width is not a valid warm start.
    assert planner.shift(plan[:2]) is None
    assert planner.shift(torch.zeros(3, 1)) is None


@pytest.mark.parametrize("planner_cls", [RandomShootingPlanner, CEMPlanner])
def test_warm_start_is_evaluated_first(planner_cls) -> None:
    """An optimal warm start survives even a tiny search that would not find it alone."""
    box_kw = {"elites": 1, "iterations": 1} if planner_cls is CEMPlanner else {}
    box = planner_cls(BOX2, horizon=3, population=3, seed=0, **box_kw)
    p = box.propose(quadratic, warm_start=TARGET)
    assert torch.equal(p.plan, TARGET)
    assert float(p.scores[0]) == 0.0
    disc = planner_cls(DISCRETE3, horizon=4, population=2, seed=0, **box_kw)
    p = disc.propose(matches, warm_start=PATTERN[:, None])
    assert p.plan[:, 0].tolist() == PATTERN.tolist()
    # Without the warm start the same tiny search does not find it.
    cold = planner_cls(DISCRETE3, horizon=4, population=2, seed=0, **box_kw)
    assert cold.propose(matches).plan[:, 0].tolist() != PATTERN.tolist()


def test_cem_warm_start_centres_box_search() -> None:
    planner = CEMPlanner(BOX2, horizon=3, population=20, elites=5, iterations=1, seed=0)
    shifted = planner.shift(torch.cat([torch.zeros(1, 2), TARGET[:2]]))  # -> TARGET[:2] + last
    p = planner.propose(quadratic, warm_start=shifted)
    # The shifted plan is scored in the first population, so the result is at least as good.
    assert float(p.scores[0]) >= float(quadratic(shifted[None])[0])


def test_population_override() -> None:
    planner = RandomShootingPlanner(DISCRETE3, horizon=4, population=10, seed=0)
    assert planner.propose(matches, population=37).n_evaluated == 37
    cem = CEMPlanner(DISCRETE3, horizon=4, population=10, elites=5, iterations=2, seed=0)
    assert cem.propose(matches, population=30).n_evaluated == 60
    assert cem.propose(matches, population=3, iterations=1).n_evaluated == 3  # elites capped


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"horizon": 0}, "horizon must be >= 1"),
        ({"population": 0}, "population must be >= 1"),
        ({"keep": 0}, "keep must be >= 1"),
        ({"risk_weight": -0.1}, "risk_weight must be >= 0"),
        ({"population": 10, "elites": 11}, r"elites must be in \[1, population=10\]"),
        ({"elites": 0}, "elites must be in"),
        ({"iterations": 0}, "iterations must be >= 1"),
        ({"alpha": 1.0}, r"alpha must be in \[0, 1\)"),
        ({"alpha": -0.1}, "alpha must be in"),
    ],
)
def test_cem_invalid_options(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CEMPlanner(BOX2, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"horizon": 0}, "horizon must be >= 1"),
        ({"population": 0}, "population must be >= 1"),
        ({"risk_weight": -1.0}, "risk_weight must be >= 0"),
    ],
)
def test_random_shooting_invalid_options(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RandomShootingPlanner(DISCRETE3, **kwargs)


def test_objective_with_wrong_batch_size() -> None:
    planner = RandomShootingPlanner(DISCRETE3, horizon=2, population=10)
    with pytest.raises(ValueError, match="returned 9 values for 10 sequences"):
        planner.propose(lambda a: torch.zeros(9))
    with pytest.raises(ValueError, match=r"\[B\] or \[B, K\]"):
        planner.propose(lambda a: torch.zeros(10, 2, 2))


def _proposal(planner_cls, spec, seed=None, generator=None):
    kw = {"elites": 5, "iterations": 2} if planner_cls is CEMPlanner else {}
    objective = quadratic if spec.kind == "box" else matches
    h = 3 if spec.kind == "box" else 4
    planner = planner_cls(spec, horizon=h, population=20, seed=seed, generator=generator, **kw)
    return planner.propose(objective)


@pytest.mark.parametrize("planner_cls", [RandomShootingPlanner, CEMPlanner])
@pytest.mark.parametrize("spec", [BOX2, DISCRETE3], ids=["box", "discrete"])
def test_same_seed_same_proposal(planner_cls, spec) -> None:
    a = _proposal(planner_cls, spec, seed=7)
    b = _proposal(planner_cls, spec, seed=7)
    assert torch.equal(a.candidates, b.candidates)
    assert torch.equal(a.scores, b.scores)
    c = _proposal(planner_cls, spec, seed=8)
    assert not torch.equal(a.candidates, c.candidates)
    # An explicit generator is used as given.
    d = _proposal(planner_cls, spec, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.candidates, d.candidates)


def test_planner_does_not_touch_global_rng() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _proposal(CEMPlanner, BOX2, seed=0)
    _proposal(RandomShootingPlanner, DISCRETE3, seed=0)
    assert torch.equal(torch.rand(3), expected)


# ---------------------------------------------------------------- MPC controller


def test_mpc_controller_act_and_warm_start() -> None:
    from wm_agents.neural import EnsembleDynamicsModel
    from wm_agents.planning import AgreementGate, MPCController, model_objective

    spec = ActionSpec.discrete(2)
    model = EnsembleDynamicsModel(4, spec, ensemble_size=3, hidden=16, layers=1, seed=0)
    obs = [0.0, 0.1, -0.02, 0.0]
    objective = model_objective(model, obs, particles=3)
    assert objective(torch.zeros(5, 4, 1)).shape == (5, 3)
    planner = CEMPlanner(spec, horizon=4, population=20, elites=4, iterations=2, seed=0)
    controller = MPCController(model, planner, AgreementGate(max_replans=1))
    assert controller.horizon == 4
    first = controller.act(obs)
    assert first.verdict in ("act", "lcb")
    assert first.action in ([0.0], [1.0])
    assert first.plan is not None and len(first.plan) == 4
    assert first.n_candidates >= 1
    assert first.plan_ms > 0
    # Same inputs and a fresh controller: the same decision (everything is seeded).
    again = MPCController(
        model,
        CEMPlanner(spec, horizon=4, population=20, elites=4, iterations=2, seed=0),
        AgreementGate(max_replans=1),
    ).act(obs)
    assert again.plan == first.plan
    controller.act(obs)  # warm-started from the shifted first plan
    controller.reset()
    with pytest.raises(ValueError, match="observation must have 4 values"):
        controller.act([0.0, 0.0])
