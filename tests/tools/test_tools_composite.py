"""The composite tool world model routes each call to the first source that can take it
(simulator, then learned model, then LLM), falls through only on "cannot take it", batches
calls per source, runs single-simulator plans whole and mixed plans step by step, and passes
real outcomes to every source."""

from __future__ import annotations

import math

import pytest

from wm_agents.core import LearnReport, Outcome, Transition
from wm_agents.llm.schemas import LLMState
from wm_agents.tools.composite import CompositeToolModel


def exact(candidate, *, success=True, harm=0.0, result="done", summary="changed a"):
    p = 1.0 if success else 0.0
    return Outcome(
        candidate=candidate,
        prediction={
            "source": "simulated",
            "success": success,
            "success_probability": p,
            "predicted_result": result,
            "harm": harm,
            "reversible": harm == 0.0,
            "side_effects": {"summary": summary},
        },
        value=0.5 * p - 0.5 * harm,
        uncertainty=0.0,
        risk=1 - p * (1 - harm),
        member_values=[0.5 * p - 0.5 * harm],
    )


class FakeSim:
    """Simulates the tools in ``tools``; says not_simulatable for the rest; ``slow`` tools time
    out (an unknown that is a fact)."""

    def __init__(self, tools, slow=(), declared=True):
        self.tools, self.slow, self.declared = set(tools), set(slow), declared
        self.batches: list[list] = []
        self.learned: list = []

    def can_simulate(self, name):
        if not self.declared:
            return None
        return name in self.tools or name in self.slow

    def imagine(self, state, candidates, *, horizon=1):
        self.batches.append(list(candidates))
        out = []
        for c in candidates:
            calls = c if isinstance(c, list) else [c]
            if any(x["name"] in self.slow for x in calls):
                o = Outcome.unknown(c, "timed out after 1s", uncertainty=1.0)
                out.append(o.model_copy(update={"prediction": {"cause": "timeout"}}))
            elif all(x["name"] in self.tools for x in calls):
                out.append(exact(c, result=f"ran {len(calls)} call(s)"))
            else:
                o = Outcome.unknown(c, "not declared simulatable", uncertainty=1.0)
                out.append(o.model_copy(update={"prediction": {"cause": "not_simulatable"}}))
        return out

    def learn(self, transitions):
        self.learned += list(transitions)
        return LearnReport(n_transitions=len(transitions), updated=False, metrics={"mismatches": 0})


class FakeLLM:
    def __init__(self):
        self.batches: list[list] = []
        self.states: list = []
        self.learned: list = []

    async def aimagine(self, state, candidates, *, horizon=1):
        self.batches.append(list(candidates))
        self.states.append(LLMState.from_any(state))
        return [
            Outcome(
                candidate=c,
                prediction={
                    "source": "llm",
                    "success_probability": 0.8,
                    "predicted_result": "guess",
                    "harm": 0.0,
                },
                value=0.4,
                uncertainty=0.3,
                risk=0.2,
                member_values=[0.4, 0.4],
            )
            for c in candidates
        ]

    def learn(self, transitions):
        self.learned += list(transitions)
        return LearnReport(n_transitions=len(transitions), updated=True, metrics={"brier": 0.1})


class FakeLearned:
    """Knows only ``known``; unseen tools fall through.  ``doubt[tool]`` is its uncertainty
    for that tool (0.1 otherwise); it refuses transitions without a result, as the real one."""

    def __init__(self, known, doubt=None):
        self.known = set(known)
        self.doubt = dict(doubt or {})
        self.learned: list = []

    def learn(self, transitions):
        if any(t.success is None for t in transitions):
            raise ValueError("a Transition for the learned outcome model needs success")
        self.learned += list(transitions)
        return LearnReport(n_transitions=len(transitions), updated=False)

    def imagine(self, state, candidates, *, horizon=1):
        out = []
        for c in candidates:
            if c["name"] in self.known:
                out.append(
                    Outcome(
                        candidate=c,
                        prediction={"source": "learned", "success_probability": 0.9},
                        value=0.45,
                        uncertainty=self.doubt.get(c["name"], 0.1),
                        risk=0.1,
                    )
                )
            else:
                o = Outcome.unknown(c, "never saw this tool", uncertainty=1.0)
                out.append(o.model_copy(update={"prediction": {"cause": "unseen_tool"}}))
        return out


def call(name, **args):
    return {"name": name, "args": args}


def test_each_call_goes_to_the_best_source_and_says_which():
    sim, llm = FakeSim({"write"}), FakeLLM()
    model = CompositeToolModel(simulators=[sim], learned=FakeLearned({"lookup"}), llm=llm)
    out = model.imagine({"task": "t"}, [call("write", p="a"), call("lookup"), call("mail")])
    assert [o.prediction["source"] for o in out] == ["simulated", "learned", "llm"]
    assert out[0].uncertainty == 0.0 and out[2].uncertainty == 0.3
    assert out[2].prediction["route"] == ["FakeLearned", "FakeLLM"]
    assert sim.batches == [[call("write", p="a")]]  # only what it declared
    assert llm.batches == [[call("mail")]]


def test_an_undeclared_tool_falls_through_after_the_simulator_learns_it_cannot():
    sim, llm = FakeSim({"write"}, declared=False), FakeLLM()
    model = CompositeToolModel(simulators=[sim], llm=llm)
    out = model.imagine({}, [call("write"), call("mail"), call("mail", x=1)])
    assert [o.prediction["source"] for o in out] == ["simulated", "llm", "llm"]
    assert out[1].prediction["route"] == ["FakeSim", "FakeLLM"]
    assert len(sim.batches) == 1 and len(sim.batches[0]) == 3  # one batch for all three
    assert len(llm.batches) == 1 and len(llm.batches[0]) == 2


def test_a_timeout_in_simulation_is_kept_not_guessed_over():
    llm = FakeLLM()
    model = CompositeToolModel(simulators=[FakeSim({"write"}, slow={"spin"})], llm=llm)
    [o] = model.imagine({}, [call("spin")])
    assert o.status == "unknown" and "timed out" in o.reason and not llm.batches


def test_no_source_left_is_unknown_with_what_was_tried():
    model = CompositeToolModel(simulators=[FakeSim({"write"})])
    [o] = model.imagine({}, [call("mail")])
    assert o.status == "unknown" and o.value == -math.inf
    assert "no simulator takes this tool, and there is no learned model or LLM" in o.reason
    model = CompositeToolModel(simulators=[FakeSim({"write"}, declared=False)])
    [o] = model.imagine({}, [call("mail")])
    assert "every source declined it (tried: FakeSim)" in o.reason


def test_a_plan_of_simulated_calls_runs_whole_in_one_copy():
    sim = FakeSim({"archive", "delete"})
    model = CompositeToolModel(simulators=[sim], llm=FakeLLM())
    plan = [call("archive", p="old.log"), call("delete", p="old.log")]
    [o] = model.imagine({}, [plan], horizon=2)
    assert (
        o.prediction["source"] == "simulated"
        and o.prediction["predicted_result"] == "ran 2 call(s)"
    )
    assert sim.batches == [[plan]]


def test_a_mixed_plan_is_imagined_step_by_step_and_said_to_be_weaker():
    sim, llm = FakeSim({"write"}), FakeLLM()
    model = CompositeToolModel(simulators=[sim], llm=llm)
    plan = [call("write", p="a"), call("mail", to="x"), call("write", p="b")]
    [o] = model.imagine({"task": "t"}, [plan], horizon=3)
    assert o.prediction["source"] == "composite"
    assert [s["source"] for s in o.prediction["steps"]] == ["simulated", "llm", "simulated"]
    # The LLM saw the simulated first step as if it had happened.
    seen = llm.states[0].messages
    assert "(imagined) ran 1 call(s)" in str(seen[-1].content)
    # The simulated steps run together in one copy: the second simulation replays the first.
    assert sim.batches[-1] == [[call("write", p="a"), call("write", p="b")]]
    assert o.prediction["success_probability"] == pytest.approx(0.8)
    assert o.uncertainty == pytest.approx(0.3)


def test_learn_reaches_every_source():
    sim, llm = FakeSim({"write"}), FakeLLM()
    model = CompositeToolModel(simulators=[sim], llm=llm)
    t = Transition(state={}, action=call("write"), result="ok", success=True)
    report = model.learn([t])
    assert sim.learned == [t] and llm.learned == [t]
    assert report.metrics == {"FakeSim.mismatches": 0.0, "FakeLLM.brier": 0.1}
    assert report.updated


def test_an_unconfident_learned_outcome_goes_to_the_llm_and_says_why():
    llm = FakeLLM()
    learned = FakeLearned({"lookup", "parse"}, doubt={"parse": 0.35})
    model = CompositeToolModel(learned=learned, llm=llm)
    sure, unsure = model.imagine({}, [call("lookup"), call("parse")])
    assert sure.prediction["source"] == "learned" and "declined" not in sure.prediction
    assert unsure.prediction["source"] == "llm"
    assert unsure.prediction["route"] == ["FakeLearned", "FakeLLM"]
    [why] = unsure.prediction["declined"]
    assert "not confident (uncertainty 0.35 > 0.2, p 0.90)" in why
    assert llm.batches == [[call("parse")]]
    # With a looser cut it keeps the learned outcome.
    loose = CompositeToolModel(learned=learned, llm=FakeLLM(), learned_max_uncertainty=0.4)
    assert loose.imagine({}, [call("parse")])[0].prediction["source"] == "learned"


def test_an_unconfident_learned_outcome_is_kept_when_nothing_comes_after():
    model = CompositeToolModel(learned=FakeLearned({"parse"}, doubt={"parse": 0.9}))
    [o] = model.imagine({}, [call("parse")])
    assert o.status == "ok" and o.prediction["source"] == "learned" and o.uncertainty == 0.9


def test_the_learned_model_learns_only_calls_with_a_result_and_a_failing_source_stops_nothing():
    sim, llm, learned = FakeSim({"write"}), FakeLLM(), FakeLearned({"lookup"})
    model = CompositeToolModel(simulators=[sim], learned=learned, llm=llm)
    ran = Transition(state={}, action=call("lookup"), result="ok", success=True)
    refused = Transition(state={}, action=call("lookup"), result=None, success=None)
    report = model.learn([ran, refused])
    assert learned.learned == [ran] and llm.learned == [ran, refused]

    class Broken(FakeLLM):
        def learn(self, transitions):
            raise RuntimeError("store is gone")

    model = CompositeToolModel(simulators=[sim], learned=learned, llm=Broken())
    report = model.learn([ran])
    assert not any(k.startswith("Broken") for k in report.metrics)
    assert "Broken could not learn: RuntimeError: store is gone" in report.message
    assert learned.learned == [ran, ran]


def test_needs_a_source():
    with pytest.raises(ValueError, match="at least one"):
        CompositeToolModel()
    with pytest.raises(ValueError, match="learned_max_uncertainty"):
        CompositeToolModel(llm=FakeLLM(), learned_max_uncertainty=1.5)
