"""Declarations (what may be imagined, and how) and dry runs (exact without a copy)."""

from __future__ import annotations

import time

import pytest
from langchain_core.tools import StructuredTool

from tests.simulate.conftest import SharedCounter, hostile_tools
from wm_agents.simulate import DryRun, FolderSimulator, declaration_of
from wm_agents.simulate.declare import parse_mode


def plan_tool(counter: SharedCounter | None = None, **meta):  # type: ignore[no-untyped-def]
    def apply(stack: str) -> str:
        """Apply infrastructure changes (never run in imagination)."""
        if counter is not None:
            counter.add()
        return "applied"

    return StructuredTool.from_function(apply, metadata=meta)


def terraform_plan(args: dict) -> DryRun:
    if args["stack"] == "broken":
        raise ValueError("stack 'broken' does not parse")
    destroy = args["stack"] == "prod-destroy"
    return DryRun(
        result=f"Plan: 0 to add, 0 to change, {3 if destroy else 0} to destroy.",
        side_effects={"destroy": 3 if destroy else 0},
        reversible=not destroy,
        harm=1.0 if destroy else 0.0,
    )


def test_dry_runs_are_exact_without_a_copy(workspace):
    root, _ = workspace
    counter = SharedCounter()
    real = plan_tool(counter, wm_dry_run=terraform_plan)
    with FolderSimulator(root, hostile_tools(), tools=[real]) as sim:
        assert sim.mode_of("apply") == "dry_run" and sim.can_simulate("apply") is True
        safe, destroy, broken = sim.imagine(
            None,
            [
                {"name": "apply", "args": {"stack": "dev"}},
                {"name": "apply", "args": {"stack": "prod-destroy"}},
                {"name": "apply", "args": {"stack": "broken"}},
            ],
        )
        assert sim._shadows == {}  # no copy was made
        (chained,) = sim.imagine(
            None,
            [[{"name": "read", "args": {"path": "notes.txt"}}, {"name": "apply", "args": {}}]],
            horizon=2,
        )
    assert counter.value == 0
    assert safe.prediction["source"] == "dry_run" and safe.status == "ok"
    assert safe.prediction["predicted_result"] == "Plan: 0 to add, 0 to change, 0 to destroy."
    assert safe.value == 0.5 and safe.risk == 0.0 and safe.uncertainty == 0.0
    assert destroy.prediction["side_effects"] == {"destroy": 3}
    assert destroy.prediction["reversible"] is False and destroy.risk == 1.0
    assert destroy.value == pytest.approx(0.5 - 0.5)
    assert broken.prediction["success"] is False
    assert broken.prediction["predicted_result"] == "ValueError: stack 'broken' does not parse"
    assert chained.status == "unknown" and chained.prediction["cause"] == "chained_dry_run"


def test_a_dry_run_declared_only_on_the_rebound_tools_runs_in_the_child(workspace):
    root, _ = workspace

    def make(path: str):  # type: ignore[no-untyped-def]
        return [plan_tool(wm_dry_run=lambda args: f"would deploy {args['stack']} from {path}")]

    with FolderSimulator(root, make) as sim:
        (o,) = sim.imagine(None, [{"name": "apply", "args": {"stack": "dev"}}])
        assert sim.mode_of("apply") == "dry_run"
    assert o.prediction["source"] == "dry_run"
    assert o.prediction["predicted_result"] == f"would deploy dev from {root}"  # paths mapped
    assert o.prediction["side_effects"] == {"summary": "not reported by the dry run"}


def test_a_dry_run_has_a_time_budget(workspace):
    root, _ = workspace
    slow = plan_tool(wm_dry_run=lambda args: time.sleep(30))
    with FolderSimulator(root, hostile_tools(), tools=[slow], timeout_s=0.3) as sim:
        start = time.monotonic()
        (o,) = sim.imagine(None, [{"name": "apply", "args": {"stack": "x"}}])
    assert time.monotonic() - start < 5
    assert o.prediction["cause"] == "timeout" and "dry run of apply" in o.reason


def test_declarations():
    assert parse_mode(True, where="x") == "in_process"
    assert parse_mode(False, where="x") == "never" and parse_mode(None, where="x") == "never"
    assert parse_mode("subprocess", where="x") == "subprocess"
    with pytest.raises(ValueError, match="tool 'apply' metadata"):
        declaration_of(plan_tool(wm_simulate="yes"))
    with pytest.raises(ValueError, match="must be callable"):
        declaration_of(plan_tool(wm_dry_run="terraform plan"))
    with pytest.raises(ValueError, match="no callable"):
        declaration_of(plan_tool(), "dry_run")
    assert declaration_of(plan_tool()).mode == "never"  # nothing declared: never simulated
    assert declaration_of(plan_tool(wm_simulate=True), "never").mode == "never"  # override
    d = declaration_of({"name": "t", "metadata": {"wm_dry_run": terraform_plan}})
    assert (d.name, d.mode, d.dry_run) == ("t", "dry_run", terraform_plan)
    with pytest.raises(ValueError, match="harm"):
        DryRun(result="x", harm=2.0)


def test_bad_declarations_fail_at_construction(workspace):
    root, _ = workspace
    with pytest.raises(ValueError, match="needs the tool in tools="):
        FolderSimulator(root, hostile_tools(), simulate={"apply": "dry_run"})
    with pytest.raises(ValueError, match="must be callable"):
        FolderSimulator(root, hostile_tools(), tools=[plan_tool(wm_dry_run=42)])
