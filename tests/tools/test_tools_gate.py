"""The tool gate: every verdict, hints, per-tool thresholds, experience, unknown outcomes."""

from __future__ import annotations

import math

import pytest

from wm_agents.core import Outcome
from wm_agents.tools import ToolGate, ToolHints, ToolPolicy, not_simulated_outcome


def outcome(
    name: str = "send_mail",
    *,
    p: float = 0.95,
    uncertainty: float = 0.1,
    harm: float = 0.02,
    reversible: bool = True,
    value: float | None = None,
    evidence: dict | None = None,
    result: str = "ok",
) -> Outcome:
    risk = 1 - p * (1 - harm)
    return Outcome(
        candidate={"name": name, "args": {"x": 1}, "id": f"id-{name}"},
        prediction={
            "success_probability": p,
            "harm": harm,
            "reversible": reversible,
            "predicted_result": result,
            "evidence": evidence or {},
        },
        value=p - 0.5 * harm if value is None else value,
        uncertainty=uncertainty,
        risk=risk,
        member_values=[0.5, 0.5],
    )


def test_act_when_predictions_agree_and_risk_is_low():
    d = ToolGate().decide([outcome()])
    assert d.verdict == "act" and d.chosen == 0
    assert d.action == {"name": "send_mail", "args": {"x": 1}, "id": "id-send_mail"}


def test_ask_when_uncertain_or_risky():
    assert ToolGate().decide([outcome(uncertainty=0.9)]).verdict == "ask"
    assert ToolGate().decide([outcome(p=0.35)]).verdict == "ask"  # risk 0.66 > 0.6


def test_destructive_and_always_ask_tools_go_to_a_person_regardless_of_the_llm():
    gate = ToolGate(hints={"drop": {"destructive": True}, "pay": ToolHints(always_ask=True)})
    d = gate.decide([outcome("drop")])
    assert d.verdict == "ask" and "destructive" in d.reason
    assert gate.decide([outcome("pay")]).verdict == "ask"
    relaxed = ToolGate(
        hints={"drop": {"destructive": True}}, policies={"drop": {"ask_if_destructive": False}}
    )
    assert relaxed.decide([outcome("drop")]).verdict == "act"


def test_refuse_when_every_candidate_fails_or_harms_with_reasons():
    d = ToolGate().decide([outcome("a", p=0.1), outcome("b", harm=0.5, reversible=False, p=0.9)])
    assert d.verdict == "refuse" and d.action is None and d.chosen is None
    assert "predicted to fail" in d.reason and "predicted to harm" in d.reason
    assert 'a({"x": 1})' in d.reason


def test_best_viable_candidate_wins_over_failing_ones():
    d = ToolGate().decide([outcome("a", p=0.1), outcome("b", p=0.8), outcome("c", p=0.9)])
    assert d.verdict == "act" and d.chosen == 2


def test_failed_exact_repeat_is_refused_even_for_read_only_tools():
    gate = ToolGate(hints={"read": {"read_only": True}})
    evidence = {"exact_repeat": True, "observed_success_rate": 0.0}
    d = gate.decide([outcome("read", p=0.9, evidence=evidence, result="FileNotFoundError: x")])
    assert d.verdict == "refuse"
    assert "already failed" in d.reason and "FileNotFoundError" in d.reason
    # Read-only: the LLM's guess alone never refuses it (only experience does).
    assert gate.decide([outcome("read", p=0.05, uncertainty=0.2)]).verdict in ("act", "ask")
    assert gate.decide([outcome("read", p=0.05, uncertainty=0.2)]).verdict != "refuse"


def test_unknown_outcome_asks_or_refuses_per_tool():
    unknown = Outcome.unknown(
        {"name": "send_mail", "args": {}, "id": "1"}, "timeout", uncertainty=1.0
    )
    d = ToolGate().decide([unknown])
    assert d.verdict == "ask" and "timeout" in d.reason and d.uncertainty == 1.0
    strict = ToolGate(policies={"send_mail": ToolPolicy(on_unknown="refuse")})
    d = strict.decide([unknown])
    assert d.verdict == "refuse" and "timeout" in d.reason
    assert math.isinf(Outcome.unknown({"name": "x"}, "r").uncertainty)


def test_never_simulate_tools_are_decided_on_hints_alone():
    gate = ToolGate(hints={"ping": {"never_simulate": True}})
    assert not gate.simulate("ping") and gate.simulate("other")
    d = gate.decide([not_simulated_outcome({"name": "ping", "args": {}, "id": "1"})])
    assert d.verdict == "act" and "never simulated" in d.reason
    gate2 = ToolGate(hints={"ping": {"never_simulate": True, "always_ask": True}})
    assert gate2.decide([not_simulated_outcome({"name": "ping", "args": {}})]).verdict == "ask"


def test_per_tool_thresholds_override_defaults():
    gate = ToolGate(policies={"send_mail": {"max_uncertainty": 0.95}})
    assert gate.decide([outcome(uncertainty=0.9)]).verdict == "act"
    assert gate.policy_for("send_mail").max_uncertainty == 0.95
    assert gate.policy_for("other").max_uncertainty == ToolPolicy().max_uncertainty


def test_hints_from_tool_metadata_and_mcp_names():
    h = ToolHints.from_any({"readOnlyHint": True, "destructiveHint": False, "title": "t"})
    assert h.read_only and not h.destructive
    gate = ToolGate(tools=[{"name": "x", "metadata": {"wm_hints": {"destructive": True}}}])
    assert gate.hints_for("x").destructive
    # Explicit hints win over what the tool declares.
    gate = ToolGate(
        hints={"x": {}}, tools=[{"name": "x", "metadata": {"wm_hints": {"destructive": True}}}]
    )
    assert not gate.hints_for("x").destructive


def test_errors_are_loud():
    with pytest.raises(ValueError, match="zero candidate"):
        ToolGate().decide([])
    with pytest.raises(ValueError, match="risk_weight"):
        ToolGate(risk_weight=-1)
    with pytest.raises(ValueError):
        ToolHints.from_any("destructive")
    with pytest.raises(ValueError):
        ToolPolicy(max_risk=2.0)
