"""AgreementGate: act when members agree, re-plan when not, fall back to the best LCB."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wm_agents.core import Decision, Outcome
from wm_agents.planning import AgreementGate, member_agreement
from wm_agents.spaces import ActionSpec

DISCRETE2 = ActionSpec.discrete(2)
BOX = ActionSpec.box([-1.0], [1.0])


def outcome(candidate, members: list[float], risk: float = 0.0) -> Outcome:
    """An outcome whose value/uncertainty are the mean/std of its member values."""
    return Outcome(
        candidate=candidate,
        value=float(np.mean(members)),
        uncertainty=float(np.std(members)),
        risk=risk,
        member_values=members,
    )


def test_members_agree_act() -> None:
    outs = [outcome([[0.0], [1.0]], [5, 5, 4]), outcome([[1.0], [1.0]], [1, 2, 1])]
    d = AgreementGate(action_spec=DISCRETE2).decide(outs)
    assert isinstance(d, Decision)
    assert d.verdict == "act"
    assert d.chosen == 0
    assert d.action == [0.0]
    assert d.plan == [[0.0], [1.0]]
    assert d.agreement == 1.0
    assert d.value == pytest.approx(14 / 3)
    assert d.uncertainty == pytest.approx(float(np.std([5, 5, 4])))
    assert d.n_candidates == 2 and d.n_nonfinite == 0
    assert "100% of members agree" in d.reason


# c0 has the best mean but one enthusiastic member; c1 a lower mean all the others prefer.
DISAGREE = [outcome([[0.0]], [10.0, 0.0, 0.0]), outcome([[1.0]], [0.0, 2.0, 2.0])]


def test_members_disagree_replan() -> None:
    d = AgreementGate(max_replans=1, action_spec=DISCRETE2).decide(DISAGREE, replans=0)
    assert d.verdict == "replan"
    assert d.action is None and d.chosen is None and d.plan is None
    assert d.agreement == pytest.approx(1 / 3)
    assert "33%" in d.reason and "re-planning wider" in d.reason
    assert d.n_candidates == 2


def test_disagree_after_replan_takes_best_lcb() -> None:
    # mean - 1 x std: c0 = 3.33 - 4.71 = -1.38, c1 = 1.33 - 0.94 = 0.39: best mean != best LCB.
    assert max(range(2), key=lambda i: DISAGREE[i].value) == 0
    d = AgreementGate(max_replans=1, lcb_kappa=1.0, action_spec=DISCRETE2).decide(
        DISAGREE, replans=1
    )
    assert d.verdict == "lcb"
    assert d.chosen == 1
    assert d.action == [1.0]
    assert d.value == pytest.approx(4 / 3)
    assert d.agreement == pytest.approx(2 / 3)
    assert "lower confidence bound" in d.reason and "1 re-plan" in d.reason


def test_lcb_with_kappa_zero_is_best_mean() -> None:
    d = AgreementGate(max_replans=0, lcb_kappa=0.0, action_spec=DISCRETE2).decide(DISAGREE)
    assert d.verdict == "lcb"
    assert d.chosen == 0


def test_max_replans_zero_goes_straight_to_lcb() -> None:
    d = AgreementGate(max_replans=0, action_spec=DISCRETE2).decide(DISAGREE, replans=0)
    assert d.verdict == "lcb" and d.chosen == 1


def test_risk_weight_changes_the_choice() -> None:
    # With risk_weight 1 the gate picks c1 directly, and 2/3 of members agree with it.
    d = AgreementGate(risk_weight=1.0, action_spec=DISCRETE2).decide(DISAGREE)
    assert d.verdict == "act"
    assert d.chosen == 1
    assert d.agreement == pytest.approx(2 / 3)


def test_agreement_threshold_is_inclusive() -> None:
    outs = [outcome([[0.0]], [3.0, 3.0, 0.0]), outcome([[1.0]], [0.0, 0.0, 1.0])]
    at_two_thirds = AgreementGate(agreement_threshold=2 / 3, action_spec=DISCRETE2)
    above = AgreementGate(agreement_threshold=0.7, action_spec=DISCRETE2)
    assert at_two_thirds.decide(outs).verdict == "act"
    assert above.decide(outs).verdict == "replan"


def test_unknown_outcomes_never_chosen_and_counted() -> None:
    outs = [
        Outcome.unknown([[1.0]], "diverged", member_values=[math.inf, 0.0]),
        outcome([[0.0]], [1.0, 1.0]),
        Outcome.unknown([[1.0]], "diverged"),
    ]
    d = AgreementGate(action_spec=DISCRETE2).decide(outs)
    assert d.verdict == "act"
    assert d.chosen == 1
    assert d.n_nonfinite == 2


def test_all_unknown_replan_then_lcb() -> None:
    outs = [Outcome.unknown([[0.0]], "nan"), Outcome.unknown([[1.0]], "nan")]
    gate = AgreementGate(max_replans=1, action_spec=DISCRETE2)
    first = gate.decide(outs, replans=0)
    assert first.verdict == "replan"
    assert first.action is None
    assert first.agreement == 0.0
    assert first.n_nonfinite == 2
    assert "non-finite" in first.reason
    second = gate.decide(outs, replans=1)
    assert second.verdict == "lcb"
    assert second.chosen == 0
    assert second.action == [0.0]
    assert second.value == -math.inf
    assert second.uncertainty == 0.0  # inf is not a valid Decision spread
    assert second.risk == 1.0
    assert "every prediction was non-finite" in second.reason
    # A Decision with -inf survives a JSON round trip (checkpoints).
    assert Decision.model_validate_json(second.model_dump_json()) == second


def test_zero_outcomes() -> None:
    with pytest.raises(ValueError, match="zero candidates"):
        AgreementGate(action_spec=DISCRETE2).decide([])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"agreement_threshold": 1.5}, r"agreement_threshold must be in \[0, 1\]"),
        ({"agreement_threshold": -0.1}, "agreement_threshold"),
        ({"risk_weight": -1.0}, "must be >= 0"),
        ({"lcb_kappa": -1.0}, "must be >= 0"),
        ({"max_replans": -1}, "must be >= 0"),
    ],
)
def test_invalid_gate_options(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AgreementGate(**kwargs)


def test_one_dimensional_discrete_candidate() -> None:
    d = AgreementGate(action_spec=DISCRETE2).decide([outcome([1, 0, 0], [1.0, 1.0])])
    assert d.action == [1.0]
    assert d.plan == [[1.0], [0.0], [0.0]]


def test_member_agreement_box_tolerance() -> None:
    # Range 2, tolerance 0.1 -> first actions within 0.2 of the chosen one count as agreeing.
    outs = [
        outcome([[0.0], [0.9]], [3.0, 0.0, 0.0, 0.0]),  # member 0's favourite
        outcome([[0.15], [-0.9]], [0.0, 3.0, 0.0, 0.0]),  # member 1's: 0.15 away, agrees
        outcome([[0.5], [0.0]], [0.0, 0.0, 3.0, 3.0]),  # members 2, 3: 0.5 away, disagree
    ]
    assert member_agreement(outs, 0, BOX, tolerance=0.1) == 0.5
    assert member_agreement(outs, 0, BOX, tolerance=0.2) == 0.5
    assert member_agreement(outs, 0, BOX, tolerance=0.3) == 1.0
    assert member_agreement(outs, 0, BOX, tolerance=0.05) == 0.25
    assert member_agreement(outs, 2, BOX, tolerance=0.1) == 0.5
    # The gate uses its own action_tolerance.
    assert AgreementGate(action_tolerance=0.3, action_spec=BOX).decide(outs).agreement == 1.0


def test_member_agreement_multi_dimensional_box_needs_every_dimension() -> None:
    box2 = ActionSpec.box([-1.0, 0.0], [1.0, 10.0])  # ranges 2 and 10
    outs = [
        outcome([[0.0, 5.0]], [1.0, 0.0, 0.0]),
        outcome([[0.1, 5.9]], [0.0, 1.0, 0.0]),  # within 0.2 and 1.0: agrees
        outcome([[0.1, 6.5]], [0.0, 0.0, 1.0]),  # second dim 1.5 away: disagrees
    ]
    assert member_agreement(outs, 0, box2, tolerance=0.1) == pytest.approx(2 / 3)


def test_member_agreement_without_member_values() -> None:
    bare = [
        Outcome(candidate=[[0.0]], value=1.0, uncertainty=0.0, risk=0.0),
        Outcome(candidate=[[1.0]], value=2.0, uncertainty=0.0, risk=0.0),
    ]
    assert member_agreement(bare, 1, DISCRETE2) == 1.0
    mixed = [outcome([[0.0]], [1.0, 2.0]), outcome([[1.0]], [1.0, 2.0, 3.0])]
    assert member_agreement(mixed, 0, DISCRETE2) == 1.0


def test_member_agreement_ignores_nonfinite_member_values() -> None:
    outs = [
        outcome([[0.0]], [1.0, 1.0]),
        Outcome.unknown([[1.0]], "nan", member_values=[math.inf, -math.inf]),
    ]
    # +inf from a diverged member must not make it "prefer" the broken candidate.
    assert member_agreement(outs, 0, DISCRETE2) == 1.0


def test_gate_needs_an_action_space_bound_at_construction() -> None:
    outs = [outcome([[0.0]], [1.0, 1.0])]
    with pytest.raises(ValueError, match=r"no action space.*for_actions"):
        AgreementGate().decide(outs)
    bound = AgreementGate(max_replans=0).for_actions(DISCRETE2)
    assert bound.action_spec == DISCRETE2 and bound.max_replans == 0
    assert bound.for_actions(DISCRETE2) is bound
    assert bound.decide(outs).verdict == "act"
