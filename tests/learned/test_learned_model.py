"""The learned model behind the ``WorldModel`` contract: outcomes, unknowns, learning, priors."""

from __future__ import annotations

import asyncio
import math
import random

import numpy as np
import pytest

from wm_agents.bench.learned_outcomes_eval import arecord_calls
from wm_agents.bench.toolworld import CallSplit
from wm_agents.core import Outcome, Transition, WorldModel
from wm_agents.learned import LearnedOutcomeModel, brier
from wm_agents.llm.memory import ExperienceMemory
from wm_agents.testing import FAILS, SAFE, scripted_predictor


def test_outcomes_follow_the_contract(trained: LearnedOutcomeModel, small_split: CallSplit):
    assert isinstance(trained, WorldModel)
    rows = small_split.test[:6]
    state = rows[0].state()
    outcomes = trained.imagine(state, [r.call() for r in rows])
    assert len(outcomes) == 6
    for o, r in zip(outcomes, rows, strict=True):
        assert o.status == "ok" and o.candidate == {"name": r.tool, "args": r.args}
        p = o.prediction["success_probability"]
        assert o.prediction["source"] == "learned"
        assert o.risk == pytest.approx(1.0 - p)
        assert o.value == pytest.approx(0.5 * p)  # default progress 0.5, harm 0
        assert 0.0 <= o.uncertainty <= 1.0
        members = o.prediction["member_probabilities"]
        assert len(members) == len(o.member_values) == trained.config.ensemble_size
        assert o.uncertainty == pytest.approx(min(1.0, 2 * float(np.std(members))), abs=1e-9)
        assert o.prediction["success"] == (p >= 0.5)
    again = asyncio.run(trained.aimagine(state, [r.call() for r in rows]))
    assert [o.value for o in again] == [o.value for o in outcomes]


def test_unknown_when_untrained_or_the_tool_is_new(trained: LearnedOutcomeModel):
    fresh = LearnedOutcomeModel()
    (o,) = fresh.imagine("task", [{"name": "read_file", "args": {"path": "a.txt"}}])
    assert o.status == "unknown" and "not trained yet: 0 real outcomes" in (o.reason or "")
    assert o.uncertainty == 1.0 and o.risk == 1.0 and o.value == -math.inf
    assert o.prediction["source"] == "learned"

    (o,) = trained.imagine("task", [{"name": "send_mail", "args": {"to": "x"}}])
    assert o.status == "unknown" and "never seen tool 'send_mail'" in (o.reason or "")
    assert "read_file" in (o.reason or "")  # the reason lists the tools it knows


def test_bad_values_are_data_not_crashes(trained: LearnedOutcomeModel):
    candidates = [
        {"name": "divide", "args": {"a": 10**400, "b": 1}},  # float() overflows
        {"name": "divide", "args": {"a": 1, "b": 2}},
        {"name": "read_file", "args": {"path": "x" * 100_000}},
        {"name": "json_parse", "args": {"text": {"nested": [1, {"deep": None}]}}},
        {"name": "sqrt", "args": {}},
    ]
    outcomes = trained.imagine({"task": "t", "context": "no listing"}, candidates)
    assert len(outcomes) == 5
    assert outcomes[0].status == "unknown" and "could not read" in (outcomes[0].reason or "")
    assert all(o.status == "ok" for o in outcomes[1:])
    with pytest.raises(ValueError, match="tool call"):
        trained.imagine("t", [["not", "a", "call"]])


def test_a_tool_seen_too_rarely_is_unknown(small_config, tool_specs):
    rng = random.Random(0)
    config = small_config.model_copy(update={"min_examples": 20, "min_tool_examples": 5})
    model = LearnedOutcomeModel(config, tools=tool_specs)
    ts = [
        Transition(state="t", action={"name": "sqrt", "args": {"x": x}}, success=x >= 0)
        for x in (rng.randint(-50, 50) for _ in range(40))
    ]
    ts += [Transition(state="t", action={"name": "parse_int", "args": {"text": "7"}}, success=True)]
    assert model.learn(ts).updated
    (ok, rare) = model.imagine(
        "t", [{"name": "sqrt", "args": {"x": 4}}, {"name": "parse_int", "args": {"text": "3"}}]
    )
    assert ok.status == "ok"
    assert rare.status == "unknown" and "seen tool 'parse_int' 1 times" in (rare.reason or "")


def test_learn_refits_when_due_and_scores_what_it_predicted(
    small_split: CallSplit, small_config, tool_specs, to_transitions
):
    config = small_config.model_copy(update={"min_steps": 30, "refit_every": 25})
    model = LearnedOutcomeModel(config, tools=tool_specs)
    rows = small_split.train
    first = model.learn(to_transitions(rows[:100]))
    assert first.updated and first.metrics["n_scored"] == 0  # nothing to predict with yet
    fitted = model.fitted
    second = model.learn(to_transitions(rows[100:110]))
    assert not second.updated and model.fitted is fitted
    assert second.metrics["n_scored"] == 10 and 0.0 <= second.metrics["brier"] <= 1.0
    third = model.learn(to_transitions(rows[110:125]))
    assert third.updated and model.fitted is not fitted
    assert len(model.examples) == 125
    with pytest.raises(ValueError, match="success"):
        model.learn([Transition(state="t", action={"name": "sqrt", "args": {"x": 1}})])


def test_a_new_tool_becomes_known_once_it_has_enough_outcomes(trained, small_config):
    model = LearnedOutcomeModel(small_config.model_copy(update={"refit_every": 1000}))
    model.add_examples(trained.examples)
    model.fit()
    ts = [
        Transition(
            state="t", action={"name": "ping", "args": {"host": f"h{i}"}}, success=i % 2 == 0
        )
        for i in range(small_config.min_tool_examples)
    ]
    assert not model.learn(ts[:-1]).updated
    assert model.learn(ts[-1:]).updated
    (o,) = model.imagine("t", [{"name": "ping", "args": {"host": "h9"}}])
    assert o.status == "ok"


def test_the_prior_is_weighed_by_how_good_it_was(
    small_split: CallSplit, small_config, tool_specs, to_transitions
):
    rng = random.Random(0)

    def informative(success: bool) -> float:  # right 80% of the time
        return 0.8 if success == (rng.random() < 0.8) else 0.2

    def fit(prior) -> LearnedOutcomeModel:
        model = LearnedOutcomeModel(small_config, tools=tool_specs)
        ts = [
            t.model_copy(update={"info": {"p_llm": prior(t.success)}})
            for t in to_transitions(small_split.train)
        ]
        model.learn(ts)
        return model

    good = fit(informative)
    noise = fit(lambda success: rng.random())
    assert good.fitted.combiner is not None and noise.fitted.combiner is not None
    assert good.fitted.combiner.weights[1] > 0.3
    assert abs(noise.fitted.combiner.weights[1]) < 0.3
    test = small_split.test
    calls = [(f"{r.task}\n{r.context}", r.tool, r.args) for r in test]
    priors = [informative(r.success) for r in test]
    y = np.array([r.success for r in test], float)
    with_prior = good.predict(calls, priors)
    without = good.predict(calls)
    assert all(p.prior_used for p in with_prior) and not any(p.prior_used for p in without)
    assert brier([p.p_success for p in with_prior], y) < brier([p.p_success for p in without], y)


def test_a_prior_model_is_asked_and_its_failure_is_survived(trained: LearnedOutcomeModel):
    llm = scripted_predictor({"b=0": FAILS, '"b":0': FAILS}, default=SAFE)
    model = LearnedOutcomeModel(trained.config, prior_model=llm)
    model.add_examples(trained.examples)
    model._fitted = trained.fitted  # share the trained network (no second fit)
    (o,) = model.imagine("t", [{"name": "divide", "args": {"a": 1, "b": 2}}])
    assert o.prediction["llm_success_probability"] == pytest.approx(0.95)
    assert o.prediction["goal_progress"] == pytest.approx(0.8)  # from the prior's outcome

    class Broken:
        async def aimagine(self, state, candidates, *, horizon=1):
            raise ConnectionError("server gone")

    model.prior_model = Broken()  # type: ignore[assignment]
    (o,) = model.imagine("t", [{"name": "divide", "args": {"a": 1, "b": 2}}])
    assert o.status == "ok" and o.prediction["llm_success_probability"] is None


def test_training_from_the_experience_store_matches_training_from_transitions(
    small_split: CallSplit, small_config, tool_specs, to_transitions
):
    rows = small_split.train[:150]
    memory = ExperienceMemory()
    asyncio.run(arecord_calls(memory, rows))
    config = small_config.model_copy(update={"min_steps": 40})
    from_store = LearnedOutcomeModel(config, tools=tool_specs)
    report = from_store.fit_from_memory(memory)
    assert report.updated and report.n_transitions == 150
    from_learn = LearnedOutcomeModel(config, tools=tool_specs)
    from_learn.learn(to_transitions(rows))
    test = small_split.test[:20]
    state = test[0].state()
    a = from_store.imagine(state, [r.call() for r in test])
    b = from_learn.imagine(state, [r.call() for r in test])
    assert [o.value for o in a] == [o.value for o in b]


def test_outcome_type_round_trips(trained: LearnedOutcomeModel, small_split: CallSplit):
    (o,) = trained.imagine(small_split.test[0].state(), [small_split.test[0].call()])
    assert Outcome.model_validate_json(o.model_dump_json()) == o
