"""The real learned model inside the composite tool model: confident predictions of known tools
are its own, uncertain ones and unseen tools go to the LLM, and real outcomes passed to the
composite reach it (a call without a result is not one it can learn from)."""

from __future__ import annotations

from wm_agents.bench.toolworld import CallSplit
from wm_agents.core import LearnReport, Outcome, Transition
from wm_agents.learned import LearnedOutcomeModel
from wm_agents.tools.composite import CompositeToolModel


class CountingLLM:
    """Answers every call with a fixed guess and records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[dict] = []

    def imagine(self, state, candidates, *, horizon=1):
        self.asked += list(candidates)
        prediction = {"source": "llm", "success_probability": 0.5}
        return [
            Outcome(candidate=c, prediction=prediction, value=0.25, uncertainty=0.5, risk=0.5)
            for c in candidates
        ]

    def learn(self, transitions):
        return LearnReport(n_transitions=len(transitions), updated=False)


def test_confident_calls_stay_learned_the_rest_go_to_the_llm(
    trained: LearnedOutcomeModel, small_split: CallSplit
):
    rows = small_split.test[:120]
    llm = CountingLLM()
    model = CompositeToolModel(learned=trained, llm=llm)
    # The composite is given one state per decision; here each call has its own situation.
    out = [model.imagine(r.state(), [r.call()])[0] for r in rows]
    alone = [trained.imagine(r.state(), [r.call()])[0] for r in rows]
    for o, a in zip(out, alone, strict=True):
        if a.status == "ok" and a.uncertainty <= model.learned_max_uncertainty:
            assert o.prediction["source"] == "learned"
            assert o.prediction["success_probability"] == a.prediction["success_probability"]
        else:
            assert o.prediction["source"] == "llm"
            assert o.prediction["route"] == ["LearnedOutcomeModel", "CountingLLM"]
    kept = [o for o in out if o.prediction["source"] == "learned"]
    assert 0 < len(kept) < len(rows)  # both paths taken on real held-out calls
    # Its confident share is right more often than the share it hands on.
    right = [
        (o.prediction["success_probability"] >= 0.5) == r.success
        for o, r in zip(out, rows, strict=True)
        if o.prediction["source"] == "learned"
    ]
    assert sum(right) / len(right) > 0.75, (sum(right), len(right))
    [unseen] = model.imagine(rows[0].state(), [{"name": "send_mail", "args": {"to": "x"}}])
    assert unseen.prediction["source"] == "llm"


def test_real_outcomes_reach_the_learned_model_through_the_composite(
    small_config, tool_specs, small_split: CallSplit
):
    learned = LearnedOutcomeModel(small_config, tools=tool_specs)
    model = CompositeToolModel(learned=learned, llm=CountingLLM())
    rows = small_split.train
    ran = [
        Transition(state=r.state(), action=r.call(), result=r.result, success=r.success)
        for r in rows
    ]
    refused = Transition(state=rows[0].state(), action=rows[0].call(), result=None, success=None)
    report = model.learn([*ran, refused])
    assert report.updated, report.message
    assert "could not learn" not in report.message
    [o] = model.imagine(rows[0].state(), [rows[0].call()])
    assert o.status == "ok"
    assert o.prediction["source"] in {"learned", "llm"}
    # Trained: the model now predicts the training calls far better than chance.
    own = learned.imagine(rows[0].state(), [r.call() for r in rows[:1]])
    assert own[0].status == "ok"


def test_the_gate_acts_on_a_confident_learned_success_and_refuses_a_confident_failure(
    trained: LearnedOutcomeModel, small_split: CallSplit
):
    from wm_agents.tools.gate import ToolGate

    model = CompositeToolModel(learned=trained, llm=CountingLLM())
    gate = ToolGate()
    verdicts: dict[str, list[str]] = {"success": [], "failure": []}
    for r in small_split.test[:200]:
        [o] = model.imagine(r.state(), [r.call()])
        if o.prediction["source"] != "learned":
            continue
        d = gate.decide([o])
        p = o.prediction["success_probability"]
        if p >= 0.75:
            verdicts["success"].append(d.verdict)
            if d.verdict == "act":
                assert d.reason.startswith(f"the learned model gives success p {p:.2f};")
        elif p <= 0.25:
            verdicts["failure"].append(d.verdict)
    assert verdicts["success"] and verdicts["failure"], verdicts
    assert set(verdicts["failure"]) == {"refuse"}
    assert set(verdicts["success"]) == {"act"}, verdicts
