"""The real workspace is never touched by imagination.

Over a thousand simulated calls (random plans of hostile tools: in-place writes, appends,
truncation, ``os.replace`` onto linked files, chmod and utime through shared inodes, writes that
fail half-way, ``..``/absolute-path/symlink escapes, hard links in from outside, descriptor
tricks, SQLite, programs and sockets), every file of the workspace and of a folder beside it
keeps its checksum, mode, mtime and (once the simulator is closed) its link count; and after
every candidate the shadow copy is again equal to the real folder.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest

from tests.simulate.conftest import (
    ESCAPES,
    EXISTING,
    NEW,
    SharedCounter,
    fingerprint,
    hostile_tools,
    tree_state,
)
from wm_agents.simulate import FolderSimulator


def random_call(rng: random.Random, root: Path, outside: Path) -> dict[str, Any]:
    """One call of a hostile tool with arguments aimed at the workspace, new paths and
    escapes (absolute paths into the real workspace and beside it included)."""
    any_path = EXISTING + NEW + ESCAPES + [str(root / "notes.txt"), str(outside / "target.txt")]
    existing = EXISTING + ESCAPES[:4] + [str(root / "data.bin")]
    text = rng.choice(["x", "hello world\n", "0123456789" * 20])
    kind = rng.randrange(22)
    if kind == 0:
        return {"name": "read", "args": {"path": rng.choice(any_path)}}
    if kind in (1, 2):
        return {"name": "write", "args": {"path": rng.choice(any_path), "text": text}}
    if kind == 3:
        return {
            "name": "write_in_place",
            "args": {"path": rng.choice(existing), "text": text, "offset": rng.randrange(6)},
        }
    if kind == 4:
        return {"name": "append", "args": {"path": rng.choice(existing), "text": text}}
    if kind == 5:
        return {
            "name": "truncate",
            "args": {"path": rng.choice(existing), "size": rng.randrange(8)},
        }
    if kind == 6:
        return {"name": "replace_onto", "args": {"path": rng.choice(any_path), "text": text}}
    if kind == 7:
        mode = rng.choice([0o600, 0o644, 0o777, 0o000, 0o444])
        return {"name": "chmod", "args": {"path": rng.choice([*existing, "sub"]), "mode": mode}}
    if kind == 8:
        return {"name": "touch_times", "args": {"path": rng.choice(existing)}}
    if kind == 9:
        return {"name": "write_then_fail", "args": {"path": rng.choice(any_path), "text": text}}
    if kind == 10:
        paths = [*existing, "sub", "sub/deep", "escape_dir", str(root / "sub")]
        return {"name": "delete", "args": {"path": rng.choice(paths)}}
    if kind == 11:
        src = rng.choice([*EXISTING, "sub", str(root / "notes.txt")])
        return {"name": "rename", "args": {"src": src, "dst": rng.choice(any_path)}}
    if kind == 12:
        target = rng.choice(
            [str(outside / "target.txt"), str(root / "notes.txt"), "notes.txt", "../outside/x"]
        )
        name = rng.choice(["ln1", "sub/ln2"])
        return {"name": "make_symlink", "args": {"name": name, "target": target, "text": text}}
    if kind == 13:
        src = rng.choice([str(root / "notes.txt"), str(outside / "target.txt")])
        return {"name": "hardlink_in", "args": {"src": src, "name": "hl.txt", "text": text}}
    if kind == 14:
        return {"name": "fchmod_shared", "args": {"path": rng.choice(EXISTING)}}
    if kind == 15:
        folder = rng.choice([".", "sub", "escape_dir", str(root), str(outside)])
        name = rng.choice(["notes.txt", "d.txt", "../d2.txt"])
        return {"name": "dirfd_write", "args": {"folder": folder, "name": name, "text": text}}
    if kind == 16:
        path = rng.choice(["notes.txt", "data.bin", "twin_a.txt", "escape_link"])
        return {"name": "mmap_write", "args": {"path": path, "text": text[:8]}}
    if kind == 17:
        statement = rng.choice(
            [
                "INSERT INTO items(name) VALUES ('z')",
                "DELETE FROM items",
                "UPDATE items SET name = 'q'",
                "SELECT * FROM items",
            ]
        )
        return {"name": "sql", "args": {"statement": statement}}
    if kind == 18:
        cmd = rng.choice([f"echo x > {root / 'notes.txt'}", "true"])
        return {"name": "run_program", "args": {"cmd": cmd}}
    if kind == 19:
        return {"name": "connect", "args": {"port": 9}}
    if kind == 20:
        return {"name": "never_tool", "args": {"path": "notes.txt"}}
    return {
        "name": "write",
        "args": {"path": rng.choice(["twin_a.txt", "twin_b.txt"]), "text": text},
    }


def test_a_thousand_hostile_calls_leave_the_workspace_untouched(workspace, tmp_path):
    root, outside = workspace
    before = fingerprint(root, outside)
    without_links = {k: v[:3] + v[4:] if len(v) > 3 else v for k, v in before.items()}
    counters = {"never": SharedCounter(), "steps": SharedCounter()}
    rng = random.Random(13)
    options: dict[str, Any] = {"max_bytes": 1 << 20, "scratch_dir": tmp_path}
    sims = [
        FolderSimulator(root, hostile_tools(counters), timeout_s=5.0, **options),
        FolderSimulator(root, hostile_tools(counters), strategy="copy", **options),
        FolderSimulator(root, hostile_tools(counters), reuse=False, full_scan=True, **options),
    ]
    assert [s.strategy for s in sims] == ["hardlink", "copy", "hardlink"]
    calls = known = denied = 0
    causes: dict[str, int] = {}
    for batch in range(36):
        sim = sims[batch % len(sims)]
        plans = [
            [random_call(rng, root, outside) for _ in range(rng.randint(2, 6))] for _ in range(8)
        ]
        outcomes = sim.imagine(None, plans, horizon=6)
        calls += sum(len(p) for p in plans)
        for o in outcomes:
            known += o.is_known
            cause = o.prediction.get("cause")
            if cause:
                causes[cause] = causes.get(cause, 0) + 1
            denied += cause == "denied"
        now = fingerprint(root, outside)
        assert {k: v[:3] + v[4:] if len(v) > 3 else v for k, v in now.items()} == without_links
        for shadow in sim._shadows.values():  # the copy is pristine again after every call
            assert tree_state(Path(shadow.path)) == tree_state(root)
    for sim in sims:
        sim.close()
    assert calls >= 1000
    assert counters["steps"].value >= 400  # tool runs that really happened (in children)
    assert counters["never"].value == 0
    assert fingerprint(root, outside) == before  # link counts back too
    assert known >= 40 and denied >= 100, (known, causes)
    assert causes.get("not_simulatable", 0) > 0
    assert not causes.get("breach") and not causes.get("error") and not causes.get("crashed")
    assert not any(n.startswith("wm-sim-") for n in os.listdir(tmp_path))


@pytest.mark.parametrize(
    "call",
    [
        {"name": "write", "args": {"path": "../escaped.txt", "text": "x"}},
        {"name": "write", "args": {"path": "escape_link", "text": "x"}},
        {"name": "write", "args": {"path": "escape_dir/new.txt", "text": "x"}},
        {"name": "append", "args": {"path": "escape_dir/target.txt", "text": "x"}},
        {"name": "truncate", "args": {"path": "escape_link", "size": 0}},
        {"name": "chmod", "args": {"path": "escape_link", "mode": 0o777}},
        {"name": "delete", "args": {"path": "escape_dir/target.txt"}},
        {"name": "rename", "args": {"src": "notes.txt", "dst": "../stolen.txt"}},
        {"name": "make_symlink", "args": {"name": "l", "target": "../outside/t.txt", "text": "x"}},
        {"name": "dirfd_write", "args": {"folder": "escape_dir", "name": "x.txt", "text": "x"}},
        {"name": "run_program", "args": {"cmd": "true"}},
        {"name": "connect", "args": {"port": 9}},
        {"name": "bind_unix", "args": {"path": "../sock"}},
    ],
    ids=lambda c: c["name"] + ":" + str(next(iter(c["args"].values()))),
)
def test_each_escape_is_denied_and_the_outcome_is_unknown(workspace, call):
    root, outside = workspace
    before = fingerprint(root, outside)
    with FolderSimulator(root, hostile_tools()) as sim:
        (o,) = sim.imagine(None, [call])
    assert o.status == "unknown" and o.prediction["cause"] == "denied", o
    assert "simulation denied" in str(o.prediction["steps"]) or o.prediction["denied"]
    assert fingerprint(root, outside) == before


def test_absolute_paths_into_the_real_workspace_are_denied(workspace):
    root, outside = workspace
    before = fingerprint(root, outside)
    calls = [
        {"name": "write", "args": {"path": str(root / "notes.txt"), "text": "x"}},
        {"name": "write_in_place", "args": {"path": str(root / "data.bin"), "text": "x"}},
        {"name": "hardlink_in", "args": {"src": str(root / "notes.txt"), "name": "h", "text": "x"}},
        {"name": "dirfd_write", "args": {"folder": str(root), "name": "notes.txt", "text": "x"}},
        {"name": "sql", "args": {"statement": "SELECT 1"}},  # control: inside, allowed
    ]
    with FolderSimulator(root, hostile_tools()) as sim:
        outcomes = sim.imagine(None, calls)
    assert [o.prediction.get("cause") for o in outcomes] == ["denied"] * 4 + [None]
    assert fingerprint(root, outside) == before


@pytest.mark.parametrize("strategy", ["hardlink", "copy"])
def test_writes_through_shared_files_are_simulated_exactly(workspace, strategy):
    """In-place write, append, truncate, replace, chmod, utime, mmap and SQLite on files the
    copy shares with the real folder: the outcome shows the change, the real file keeps it
    not."""
    root, outside = workspace
    before = fingerprint(root, outside)
    plan = [
        {"name": "write_in_place", "args": {"path": "notes.txt", "text": "MEET", "offset": 0}},
        {"name": "append", "args": {"path": "data.bin", "text": "tail"}},
        {"name": "truncate", "args": {"path": "sub/deep/file.txt", "size": 3}},
        {"name": "replace_onto", "args": {"path": "ro.txt", "text": "replaced"}},
        {"name": "chmod", "args": {"path": "run.sh", "mode": 0o600}},
        {"name": "touch_times", "args": {"path": "empty.txt"}},
        {"name": "mmap_write", "args": {"path": "twin_b.txt", "text": "TWINS"}},
        {"name": "sql", "args": {"statement": "DELETE FROM items WHERE id = 1"}},
        {"name": "read", "args": {"path": "notes.txt"}},
        {"name": "read", "args": {"path": "twin_a.txt"}},
    ]
    with FolderSimulator(root, hostile_tools(), strategy=strategy) as sim:
        (o,) = sim.imagine(None, [plan], horizon=len(plan))
        # Hard links add one link to each real file while the shadow exists; nothing else.
        assert (fingerprint(root, outside) != before) == (strategy == "hardlink")
    assert fingerprint(root, outside) == before
    assert o.status == "ok" and o.prediction["success"] is True
    steps = o.prediction["steps"]
    assert steps[-2]["result"].startswith("MEETing notes")  # call 9 saw call 1's write
    assert steps[-1]["result"].startswith("TWINS share")  # a write to one twin shows in both
    effects = o.prediction["side_effects"]
    modified = {m["path"]: m for m in effects["modified"]}
    assert set(modified) == {
        "notes.txt",
        "data.bin",
        "sub/deep/file.txt",
        "ro.txt",
        "twin_a.txt",
        "twin_b.txt",
        "app.db",
    }
    assert modified["data.bin"]["size_after"] == 64 * 1024 + 4
    assert modified["sub/deep/file.txt"]["size_after"] == 3
    # os.replace put a new file (default mode) where the read-only one was, as it would.
    assert {m["path"]: m["mode_after"] for m in effects["mode_changed"]} == {
        "run.sh": "0o600",
        "ro.txt": "0o644",
    }
    assert effects["created"] == [] and effects["deleted"] == []
    assert o.prediction["reversible"] is False  # overwritten bytes exist nowhere else
    assert o.prediction["harm"] == 1.0 and o.risk == 1.0


def test_chmod_and_fchmod_through_a_hard_link(workspace):
    root, outside = workspace
    before = fingerprint(root, outside)
    with FolderSimulator(root, hostile_tools()) as sim:
        chmod, fchmod = sim.imagine(
            None,
            [
                {"name": "chmod", "args": {"path": "notes.txt", "mode": 0o000}},
                {"name": "fchmod_shared", "args": {"path": "notes.txt"}},
            ],
        )
    assert chmod.status == "ok"
    assert chmod.prediction["side_effects"]["mode_changed"] == [
        {"path": "notes.txt", "mode_before": "0o644", "mode_after": "0o0"}
    ]
    assert chmod.prediction["reversible"] is True and chmod.risk == 0.0
    # A descriptor opened for reading still points at the shared inode: refused, not leaked.
    assert fchmod.status == "unknown" and fchmod.prediction["cause"] == "denied"
    assert fingerprint(root, outside) == before


def test_a_call_that_fails_half_way_reports_its_partial_writes(workspace):
    root, outside = workspace
    before = fingerprint(root, outside)
    counters = {"steps": SharedCounter()}
    plan = [
        {"name": "write", "args": {"path": "a.txt", "text": "first"}},
        {"name": "write_then_fail", "args": {"path": "notes.txt", "text": "0123456789"}},
        {"name": "write", "args": {"path": "never.txt", "text": "not run"}},
    ]
    with FolderSimulator(root, hostile_tools(counters)) as sim:
        (o,) = sim.imagine(None, [plan], horizon=3)
    assert counters["steps"].value == 2  # the failing step stopped the plan
    assert o.status == "ok" and o.prediction["success"] is False
    assert o.prediction["stopped_at"] == 1
    assert o.prediction["predicted_result"] == "RuntimeError: failed half-way through notes.txt"
    assert o.prediction["success_probability"] == 0.0 and o.risk == 1.0
    effects = o.prediction["side_effects"]
    assert [c["path"] for c in effects["created"]] == ["a.txt"]
    assert effects["modified"] == [
        {"path": "notes.txt", "kind": "file", "size_before": 31, "size_after": 37}
    ]
    assert fingerprint(root, outside) == before


def _children() -> set[int]:
    """PIDs of this process's children (live or zombie), from /proc."""
    out: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        out |= {int(pid) for pid in (task / "children").read_text().split()}
    return out


def test_a_tool_that_never_returns_is_killed_and_unknown(workspace):
    root, outside = workspace
    before = fingerprint(root, outside)
    children = _children()  # other tests' servers may be running: only new ones count
    with FolderSimulator(root, hostile_tools(), timeout_s=0.5) as sim:
        plan = [{"name": "write", "args": {"path": "x.txt", "text": "x"}}, {"name": "spin"}]
        (o,) = sim.imagine(None, [plan], horizon=2)
        assert o.status == "unknown" and o.prediction["cause"] == "timeout"
        assert "timed out after 1 s" in o.reason and "call 2 of 2" in o.reason
        assert 0.9 < o.prediction["steps"].__len__() + 0.5 < 2  # one step reported
        (after,) = sim.imagine(None, [{"name": "read", "args": {"path": "x.txt"}}])
        assert after.prediction["success"] is False  # the killed run's file was cleaned up
    assert _children() <= children  # no child left behind, not even a zombie
    assert fingerprint(root, outside) == before


def test_a_huge_write_is_stopped_by_the_size_budget(workspace):
    root, outside = workspace
    before = fingerprint(root, outside)
    with FolderSimulator(root, hostile_tools(), max_bytes=2 << 20) as sim:
        huge, fits, copy_up = sim.imagine(
            None,
            [
                {"name": "huge", "args": {"path": "big.bin", "mb": 50}},
                {"name": "huge", "args": {"path": "ok.bin", "mb": 1}},
                {"name": "append", "args": {"path": "data.bin", "text": "x"}},
            ],
        )
    assert huge.status == "unknown" and huge.prediction["cause"] == "size_budget", huge
    assert (
        fits.status == "ok" and fits.prediction["side_effects"]["totals"]["bytes_added"] == 1 << 20
    )
    assert copy_up.status == "ok"
    with FolderSimulator(root, hostile_tools(), max_bytes=1000) as sim:
        (big_copy_up,) = sim.imagine(
            None, [{"name": "append", "args": {"path": "data.bin", "text": "x"}}]
        )
    # Copying the 64 KB file up would already exceed the budget: unknown, never a leak.
    assert big_copy_up.status == "unknown" and big_copy_up.prediction["cause"] == "size_budget"
    assert fingerprint(root, outside) == before


def test_a_tool_not_declared_simulatable_never_runs(workspace):
    root, _outside = workspace
    counters = {"never": SharedCounter()}
    call = {"name": "never_tool", "args": {"path": "notes.txt"}}
    with FolderSimulator(root, hostile_tools(counters)) as sim:
        assert sim.can_simulate("never_tool") is None  # unknown until the tools are read
        first, second = sim.imagine(None, [call, call])
        assert sim.can_simulate("never_tool") is False
        assert sim.stats["children"] == 1  # the second call made no copy and no child
    with FolderSimulator(root, hostile_tools(counters), simulate={"read": "never"}) as sim:
        (third,) = sim.imagine(None, [{"name": "read", "args": {"path": "notes.txt"}}])
        assert sim.stats["children"] == 0
    assert counters["never"].value == 0
    for o in (first, second):
        assert o.status == "unknown" and o.prediction["cause"] == "not_simulatable"
        assert "not declared simulatable" in o.reason
    assert third.prediction["cause"] == "not_simulatable"
    assert (root / "notes.txt").read_text() == "Meeting notes: ship on Friday.\n"


def test_programs_run_only_for_tools_declared_subprocess_on_a_private_copy(workspace):
    root, outside = workspace
    before = fingerprint(root, outside)
    cmd = "echo from-a-program > notes.txt && cat notes.txt"
    call = {"name": "run_program", "args": {"cmd": cmd}}
    with FolderSimulator(root, hostile_tools()) as sim:
        (denied,) = sim.imagine(None, [call])
    assert denied.prediction["cause"] == "denied" and "subprocess" in denied.reason
    os.chdir(root)  # the program's relative paths resolve in the copy (cwd is mapped)
    try:
        with FolderSimulator(root, hostile_tools(mode="subprocess")) as sim:
            (ran,) = sim.imagine(None, [call])
            assert sim.strategies[True] == "copy"
    finally:
        os.chdir(Path(__file__).parent)
    assert ran.status == "ok" and ran.prediction["predicted_result"] == "from-a-program\n"
    assert ran.prediction["strategy"] == "copy"
    assert [m["path"] for m in ran.prediction["side_effects"]["modified"]] == ["notes.txt"]
    assert fingerprint(root, outside) == before
