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


# -- exact (simulated) outcomes: judged by their side effects ---------------------------------


def simulated(
    name: str,
    *,
    success: bool = True,
    summary: str = "no changes",
    reversible: bool = True,
    totals: dict | None = None,
    result: str = "ok",
):
    harm = 0.0 if reversible else 1.0
    p = 1.0 if success else 0.0
    return Outcome(
        candidate={"name": name, "args": {"path": "."}, "id": "c"},
        prediction={
            "source": "simulated",
            "simulated": True,
            "predicted_result": result,
            "success": success,
            "success_probability": p,
            "side_effects": {"summary": summary, "totals": totals or {}},
            "reversible": reversible,
            "harm": harm,
        },
        value=0.5 * p - 0.5 * harm,
        uncertainty=0.0,
        risk=1.0 - p * (1.0 - harm),
        member_values=[0.5 * p - 0.5 * harm],
    )


WIPE_HINTS = {"wipe": {"destructive": True}}


def test_exact_outcome_that_loses_nothing_runs_even_for_a_destructive_tool():
    gate = ToolGate(hints=WIPE_HINTS)
    d = gate.decide([simulated("wipe", summary="no changes")])
    assert d.verdict == "act" and d.reason == "the simulation shows: no changes; nothing is lost"


def test_exact_outcome_that_loses_data_asks_with_the_numbers():
    gate = ToolGate(hints=WIPE_HINTS)
    big = "deleted 1,243 files (2.1 GB, 2.1 GB lost)"
    d = gate.decide([simulated("wipe", summary=big, reversible=False)])
    assert d.verdict == "ask"
    assert d.reason == f"the simulation shows: {big}; not reversible"


def test_exact_loss_is_refused_when_the_policy_says_so():
    gate = ToolGate(hints=WIPE_HINTS, policies={"wipe": {"refuse_if_irreversible": True}})
    d = gate.decide(
        [simulated("wipe", summary="deleted 3 files (9 B, 9 B lost)", reversible=False)]
    )
    assert d.verdict == "refuse" and "loses data for good: deleted 3 files" in d.reason


def test_a_big_recoverable_deletion_still_asks_past_max_deleted():
    gate = ToolGate(hints=WIPE_HINTS, policies={"wipe": {"max_deleted": 3}})
    outcome = simulated("wipe", summary="deleted 5 files (moved)", totals={"files_deleted": 5})
    d = gate.decide([outcome])
    assert d.verdict == "ask" and "(5 deleted > max_deleted 3)" in d.reason
    assert ToolGate(hints=WIPE_HINTS).decide([outcome]).verdict == "act"


def test_exact_failure_is_refused_with_the_real_error():
    d = ToolGate().decide(
        [simulated("move", success=False, result="FileNotFoundError: no such file: 'a'")]
    )
    assert d.verdict == "refuse" and "the simulation failed: FileNotFoundError" in d.reason


def test_without_trust_in_simulation_the_destructive_hint_asks_as_before():
    gate = ToolGate(hints=WIPE_HINTS, policies={"wipe": {"trust_simulation": False}})
    d = gate.decide([simulated("wipe")])
    assert d.verdict == "ask" and "declared destructive" in d.reason


def test_the_reversible_candidate_beats_the_lossy_one():
    gate = ToolGate(hints={"delete": {"destructive": True}})
    lossy = simulated("delete", summary="deleted 1 file (5 B, 5 B lost)", reversible=False)
    safe = simulated("archive_then_delete", summary="created archive.tar; deleted 1 file")
    d = gate.decide([lossy, safe])
    assert d.verdict == "act" and d.chosen == 1
