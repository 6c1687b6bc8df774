"""The benchmark's world of real tool calls: reproducible, real outcomes, honest splits."""

from __future__ import annotations

from pathlib import Path

import pytest

from wm_agents.bench.toolworld import (
    FAMILIES,
    TOOLS,
    build_dataset,
    dataset_digest,
    generate_workspace,
    materialize,
    run_tool,
    split_calls,
)


@pytest.fixture(scope="module")
def calls():
    return build_dataset(6, 60, seed=1)


def test_same_seed_same_workspace_and_calls(calls):
    assert generate_workspace(5) == generate_workspace(5)
    assert generate_workspace(5).context != generate_workspace(6).context
    assert dataset_digest(build_dataset(6, 60, seed=1)) == dataset_digest(calls)
    assert len({c.id for c in calls}) == len(calls)


def test_calls_cover_every_tool_and_both_outcomes(calls):
    assert {c.tool for c in calls} == set(TOOLS)
    assert 0.1 < sum(c.success for c in calls) / len(calls) < 0.6
    families = {f.key for f in FAMILIES}
    assert {c.family for c in calls} <= families
    assert all(c.result for c in calls)


def test_outcomes_are_what_really_happens(tmp_path: Path):
    ws = generate_workspace(11)
    root = materialize(ws, tmp_path / "ws")
    text = ws.files("text")[0]
    assert run_tool(root, "read_file", {"path": text.path})[0]
    assert run_tool(root, "divide", {"a": 1, "b": 0}) == (
        False,
        "ZeroDivisionError: float division by zero",
    )
    assert run_tool(root, "divide", {"a": 1, "b": True})[1].startswith("TypeError")
    ok, result = run_tool(root, "write_file", {"path": "x" * 300 + ".txt", "content": "a"})
    assert not ok and "File name too long" in result
    ok, result = run_tool(root, "write_file", {"path": "nope/a.txt", "content": "a"})
    assert not ok and result.startswith("FileNotFoundError")
    ok, result = run_tool(root, "write_file", {"path": "../outside.txt", "content": "a"})
    assert not ok and "outside the workspace" in result
    assert not (tmp_path / "outside.txt").exists()
    read_only = [d for d in ws.dirs() if not d.writable]
    if read_only:  # root ignores mode bits; the tools check them
        ok, result = run_tool(root, "make_dir", {"path": f"{read_only[0].path}/new"})
        assert not ok and "read-only" in result
    table = ws.files("csv")[0]
    assert table.ids is not None
    assert run_tool(root, "get_row", {"table": table.path, "id": table.ids[1]})[0]
    assert not run_tool(root, "get_row", {"table": table.path, "id": table.ids[1] + 1})[0]
    with pytest.raises(ValueError, match="empty"):
        materialize(ws, root)


def test_pattern_split_holds_out_workspaces_and_families(calls):
    sp = split_calls(calls, 0, workspace_fraction=0.5, family_fraction=0.4)
    train_ws = {c.workspace for c in sp.train}
    assert not train_ws & sp.test_workspaces
    assert {c.workspace for c in sp.test} <= sp.test_workspaces
    assert not {c.family for c in sp.train} & sp.test_families
    assert {c.family for c in sp.test} <= sp.test_families
    # every cause with several families keeps at least one of them in training
    by_cause: dict[str, set[str]] = {}
    for f in FAMILIES:
        by_cause.setdefault(f.cause_key, set()).add(f.key)
    for fams in by_cause.values():
        if len(fams) > 1:
            assert fams - sp.test_families
    assert sp.test and sp.test_seen_families
    assert split_calls(calls, 0, workspace_fraction=0.5).test_families == sp.test_families


def test_cause_split_holds_out_whole_causes(calls):
    sp = split_calls(calls, 2, mode="cause", workspace_fraction=0.5, family_fraction=0.4)
    held = {c.cause for c in calls if c.family in sp.test_families}
    assert held and not held & {c.cause for c in sp.train}
    with pytest.raises(ValueError, match="mode"):
        split_calls(calls, 0, mode="tools")  # type: ignore[arg-type]
