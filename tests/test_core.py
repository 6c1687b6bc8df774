"""The contract types: Outcome, Decision, Transition."""

from __future__ import annotations

import json
import math

import pytest
from pydantic import ValidationError

from wm_agents.core import Decision, LearnReport, Outcome, Transition, WorldModel


def test_outcome_ok_fields_and_is_known() -> None:
    o = Outcome(candidate=[[1.0]], value=3.5, uncertainty=0.25, risk=0.1, member_values=[3, 4])
    assert o.status == "ok"
    assert o.reason is None
    assert o.prediction == {}
    assert o.member_values == [3.0, 4.0]
    assert o.is_known


def test_outcome_rejects_nan_value() -> None:
    with pytest.raises(ValidationError, match="NaN"):
        Outcome(candidate=None, value=math.nan, uncertainty=0.0, risk=0.0)


@pytest.mark.parametrize("risk", [-0.01, 1.01, math.nan])
def test_outcome_rejects_risk_out_of_bounds(risk: float) -> None:
    with pytest.raises(ValidationError, match="risk"):
        Outcome(candidate=None, value=0.0, uncertainty=0.0, risk=risk)


@pytest.mark.parametrize("risk", [0.0, 1.0])
def test_outcome_accepts_risk_bounds(risk: float) -> None:
    assert Outcome(candidate=None, value=0.0, uncertainty=0.0, risk=risk).risk == risk


def test_outcome_rejects_negative_uncertainty_and_extra_fields() -> None:
    with pytest.raises(ValidationError, match="uncertainty"):
        Outcome(candidate=None, value=0.0, uncertainty=-1e-9, risk=0.0)
    with pytest.raises(ValidationError, match="extra"):
        Outcome(candidate=None, value=0.0, uncertainty=0.0, risk=0.0, colour="red")


def test_outcome_is_frozen() -> None:
    o = Outcome(candidate=[1], value=1.0, uncertainty=0.0, risk=0.0)
    with pytest.raises(ValidationError, match="frozen"):
        o.value = 2.0  # type: ignore[misc]
    # model_copy is the sanctioned way to derive a changed outcome; the original is untouched.
    assert o.model_copy(update={"value": 2.0}).value == 2.0
    assert o.value == 1.0


def test_outcome_infinite_value_is_not_known() -> None:
    o = Outcome(candidate=None, value=math.inf, uncertainty=0.0, risk=0.0)
    assert o.status == "ok"
    assert not o.is_known


def test_outcome_unknown() -> None:
    o = Outcome.unknown({"name": "t"}, "server died", member_values=[1, -math.inf])
    assert o.value == -math.inf
    assert o.uncertainty == math.inf
    assert o.risk == 1.0
    assert o.status == "unknown"
    assert o.reason == "server died"
    assert o.member_values == [1.0, -math.inf]
    assert o.candidate == {"name": "t"}
    assert not o.is_known
    assert Outcome.unknown(None, "r", uncertainty=2.0).uncertainty == 2.0


def test_outcome_status_literal() -> None:
    with pytest.raises(ValidationError, match="status"):
        Outcome(candidate=None, value=0.0, uncertainty=0.0, risk=0.0, status="maybe")


def test_outcome_json_round_trip_with_infinities() -> None:
    o = Outcome.unknown([[0.0], [1.0]], "diverged", member_values=[-math.inf, 2.5])
    text = o.model_dump_json()
    # Python's json module reads the Infinity constants pydantic writes.
    raw = json.loads(text)
    assert raw["value"] == -math.inf
    assert raw["uncertainty"] == math.inf
    back = Outcome.model_validate_json(text)
    assert back == o
    assert back.value == -math.inf and back.uncertainty == math.inf
    assert back.member_values == [-math.inf, 2.5]


def test_outcome_json_round_trip_ok() -> None:
    o = Outcome(
        candidate=[[1.0]],
        prediction={"next_obs": [0.1, 0.2], "termination_prob": 0.5},
        value=-4.0,
        uncertainty=0.5,
        risk=0.5,
        member_values=[-3.5, -4.5],
    )
    assert Outcome.model_validate_json(o.model_dump_json()) == o


def test_decision_defaults_and_json_round_trip() -> None:
    d = Decision()
    assert d.value == -math.inf
    assert d.verdict == "act"
    assert d.action is None and d.chosen is None and d.plan is None
    back = Decision.model_validate_json(d.model_dump_json())
    assert back == d and back.value == -math.inf

    d2 = Decision(
        action=[1.0],
        value=math.inf,
        uncertainty=0.3,
        risk=0.2,
        verdict="lcb",
        reason="why",
        agreement=0.4,
        chosen=2,
        n_candidates=8,
        n_nonfinite=1,
        plan=[[1.0], [0.0]],
        plan_ms=1.5,
    )
    back2 = Decision.model_validate_json(d2.model_dump_json())
    assert back2 == d2
    assert back2.value == math.inf


@pytest.mark.parametrize(
    "kwargs",
    [
        {"verdict": "maybe"},
        {"agreement": 1.5},
        {"agreement": -0.1},
        {"risk": 2.0},
        {"uncertainty": -1.0},
    ],
)
def test_decision_validation(kwargs: dict) -> None:
    with pytest.raises(ValidationError):
        Decision(**kwargs)


def test_decision_is_frozen() -> None:
    with pytest.raises(ValidationError, match="frozen"):
        Decision().verdict = "lcb"  # type: ignore[misc]


def test_transition_defaults_and_round_trip() -> None:
    pred = Outcome(candidate=[[0.0]], value=1.0, uncertainty=0.0, risk=0.0)
    t = Transition(state=[0.0, 1.0], action=[1.0], reward=1.0, next_state=[0.5, 1.0])
    assert t.terminated is False and t.truncated is False
    assert t.prediction is None and t.success is None and t.info == {}
    t2 = t.model_copy(update={"prediction": pred, "terminated": True})
    back = Transition.model_validate_json(t2.model_dump_json())
    assert back == t2
    assert isinstance(back.prediction, Outcome)
    with pytest.raises(ValidationError, match="frozen"):
        t.reward = 2.0  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Transition(state=None, action=None, unknown_field=1)


def test_learn_report() -> None:
    r = LearnReport(n_transitions=3, updated=False)
    assert r.metrics == {} and r.message == ""


def test_world_model_protocol_is_runtime_checkable() -> None:
    class M:
        def imagine(self, state, candidates, *, horizon=1):
            return []

        async def aimagine(self, state, candidates, *, horizon=1):
            return []

        def learn(self, transitions):
            return LearnReport(n_transitions=0, updated=False)

    assert isinstance(M(), WorldModel)
    assert not isinstance(object(), WorldModel)
