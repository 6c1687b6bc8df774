"""Simulated outcomes are exact: the same result and the same changes as running the call for
real; plans chain in one copy; reversibility is computed from content; bad input raises."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from tests.simulate.conftest import EXISTING, NEW, fingerprint, hostile_tools, tree_state
from wm_agents.core import Outcome, Transition
from wm_agents.demos.fs_agent import seed_sandbox
from wm_agents.llm.schemas import ToolCallCandidate
from wm_agents.simulate import FolderSimulator, results_match
from wm_agents.simulate.calls import invoke_tool
from wm_agents.tools import tool_result
from wm_agents.tools.sandbox import make_sandbox_tools


def real_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, set[str]]:
    """created / modified / deleted / mode_changed paths between two :func:`tree_state`s."""
    created = {p for p in after if p not in before or after[p][0] != before[p][0]}
    deleted = {p for p in before if p not in after or after[p][0] != before[p][0]}
    both = {p for p in before.keys() & after.keys() if after[p][0] == before[p][0]}
    modified = {p for p in both if after[p][2] != before[p][2] and after[p][2] is not None}
    modes = {p for p in both if after[p][1] != before[p][1]}
    return {"created": created, "modified": modified, "deleted": deleted, "mode_changed": modes}


def predicted_changes(side_effects: dict[str, Any]) -> dict[str, set[str]]:
    return {k: {e["path"] for e in side_effects[k]} for k in real_changes({}, {})}


def test_sandbox_tools_are_simulated_exactly(tmp_path):
    """Each call is imagined, then run for real through ToolNode: same success, same result
    text, same created / modified / deleted files; learn() counts no mismatch."""
    root = tmp_path / "sandbox"
    seed_sandbox(root)
    tools = make_sandbox_tools(root)
    graph = StateGraph(MessagesState)
    graph.add_node("tools", ToolNode(tools, handle_tool_errors=True))
    graph.add_edge(START, "tools")
    node = graph.compile()  # the real tools run the way the agent's graph runs them
    calls = [
        ("list_files", {"path": "."}),
        ("read_file", {"path": "missing.txt"}),
        ("read_file", {"path": "notes.txt"}),
        ("write_file", {"path": "summary.txt", "content": "ship Friday"}),
        ("write_file", {"path": "deep/er/new.txt", "content": "x"}),
        ("write_file", {"path": "../outside.txt", "content": "x"}),
        ("delete_file", {"path": "todo.txt"}),
        ("wipe_directory", {"path": "archive"}),
        ("list_files", {"path": "."}),
        ("wipe_directory", {"path": "."}),
    ]
    transitions = []
    with FolderSimulator(root, make_sandbox_tools, tools=tools) as sim:
        for i, (name, args) in enumerate(calls):
            call = {"name": name, "args": args, "id": f"call-{i}"}
            (o,) = sim.imagine(None, [call])
            assert o.status == "ok" and o.uncertainty == 0.0 and o.member_values == [o.value]
            before = tree_state(root)
            out = node.invoke({"messages": [AIMessage(content="", tool_calls=[call])]})
            result, success = tool_result(out["messages"][-1])
            after = tree_state(root)
            pred = o.prediction
            assert pred["source"] == "simulated" and pred["success"] is success, (call, result)
            assert pred["success_probability"] == float(success)
            if success:
                assert pred["predicted_result"] == result
            else:
                assert results_match(pred["predicted_result"], False, result)
                assert pred["predicted_result"] in result.replace('"', "'") or "Error" in result
            assert predicted_changes(pred["side_effects"]) == real_changes(before, after), call
            transitions.append(
                Transition(state=None, action=call, result=result, success=success, prediction=o)
            )
        report = sim.learn(transitions)
    assert report.metrics["n_compared"] == len(calls)
    assert report.metrics["n_mismatch"] == 0 and not report.updated


def _benign_call(rng: random.Random) -> dict[str, Any]:
    existing = [p for p in EXISTING if p != "app.db"]
    paths = existing + NEW
    text = rng.choice(["a", "hello\n", "z" * 40])
    choices = [
        ("read", {"path": rng.choice(paths)}),
        ("write", {"path": rng.choice(paths), "text": text}),
        (
            "write_in_place",
            {"path": rng.choice(existing), "text": text, "offset": rng.randrange(4)},
        ),
        ("append", {"path": rng.choice(existing), "text": text}),
        ("truncate", {"path": rng.choice(existing), "size": rng.randrange(5)}),
        ("replace_onto", {"path": rng.choice(paths), "text": text}),
        ("chmod", {"path": rng.choice(existing), "mode": rng.choice([0o600, 0o755])}),
        ("write_then_fail", {"path": rng.choice(paths), "text": text}),
        ("delete", {"path": rng.choice([*existing, "sub", "sub/deep"])}),
        ("rename", {"src": rng.choice(existing), "dst": rng.choice(NEW)}),
        ("make_symlink", {"name": "ln", "target": "notes.txt", "text": text}),
        ("sql", {"statement": rng.choice(["DELETE FROM items", "SELECT count(*) FROM items"])}),
    ]
    name, args = rng.choice(choices)
    return {"name": name, "args": args}


@pytest.mark.parametrize("strategy", ["hardlink", "copy"])
def test_random_plans_match_a_real_run_on_a_plain_copy(workspace, tmp_path, strategy):
    """Random plans of tools that stay inside the workspace: the simulated steps and changes
    equal running the same plan directly (no guard, no shadow) on ``cp -a`` of the folder."""
    root, outside = workspace
    before = fingerprint(root, outside)
    rng = random.Random(7)
    make = hostile_tools()
    with FolderSimulator(root, make, strategy=strategy) as sim:
        for trial in range(12):
            plans = [[_benign_call(rng) for _ in range(rng.randint(1, 4))] for _ in range(3)]
            outcomes = sim.imagine(None, plans, horizon=4)
            for plan, o in zip(plans, outcomes, strict=True):
                ref = tmp_path / f"ref-{trial}"
                subprocess.run(["cp", "-a", str(root), str(ref)], check=True)
                state0 = tree_state(ref)
                tools = {t.name: t for t in make(str(ref))}
                steps = []
                for i, call in enumerate(plan):
                    step = invoke_tool(
                        tools[call["name"]], ToolCallCandidate.from_any(call), i, 20_000
                    )
                    step["result"] = step["result"].replace(str(ref), str(root))
                    steps.append(step)
                    if not step["success"]:
                        break
                assert o.status == "ok", o.reason
                assert [(s["success"], s["result"]) for s in o.prediction["steps"]] == [
                    (s["success"], s["result"]) for s in steps
                ], plan
                got = predicted_changes(o.prediction["side_effects"])
                assert got == real_changes(state0, tree_state(ref)), plan
                shutil.rmtree(ref)
    assert fingerprint(root, outside) == before


def test_archive_then_delete_is_reversible_delete_alone_is_not(tmp_path):
    root = tmp_path / "ws"
    (root / "logs").mkdir(parents=True)
    (root / "logs" / "old.log").write_text("2024-01-01 started\n" * 50)
    (root / "keep.txt").write_text("keep\n")

    def make(base: str):  # type: ignore[no-untyped-def]
        from langchain_core.tools import StructuredTool

        def archive(kind: str) -> str:
            """Archive logs/old.log into logs.tar.gz or logs.zip."""
            if kind == "tar":
                with tarfile.open(os.path.join(base, "logs.tar.gz"), "w:gz") as tf:
                    tf.add(os.path.join(base, "logs", "old.log"), "old.log")
            else:
                with zipfile.ZipFile(
                    os.path.join(base, "logs.zip"), "w", zipfile.ZIP_DEFLATED
                ) as z:
                    z.write(os.path.join(base, "logs", "old.log"), "old.log")
            return "archived"

        def delete(path: str) -> str:
            """Delete a file."""
            os.unlink(os.path.join(base, path))
            return "deleted"

        def move(src: str, dst: str) -> str:
            """Move a file."""
            os.replace(os.path.join(base, src), os.path.join(base, dst))
            return "moved"

        return [
            StructuredTool.from_function(f, metadata={"wm_simulate": True})
            for f in (archive, delete, move)
        ]

    delete = {"name": "delete", "args": {"path": "logs/old.log"}}
    with FolderSimulator(root, make) as sim:
        alone, tar_first, zip_first, moved = sim.imagine(
            None,
            [
                [delete],
                [{"name": "archive", "args": {"kind": "tar"}}, delete],
                [{"name": "archive", "args": {"kind": "zip"}}, delete],
                [{"name": "move", "args": {"src": "logs/old.log", "dst": "old.log"}}],
            ],
            horizon=2,
        )
    for o in (alone, tar_first, zip_first, moved):  # outcomes travel in checkpoints as JSON
        assert Outcome.model_validate_json(o.model_dump_json()) == o
    assert alone.prediction["reversible"] is False and alone.prediction["harm"] == 1.0
    assert alone.risk == 1.0 and alone.value == pytest.approx(0.5 - 0.5)
    lost = alone.prediction["side_effects"]["lost"]
    assert lost == [{"path": "logs/old.log", "size": 950, "why": "deleted"}]
    assert alone.prediction["side_effects"]["totals"]["bytes_lost"] == 950
    for o, where in (
        (tar_first, "logs.tar.gz!old.log"),
        (zip_first, "logs.zip!old.log"),
        (moved, "old.log"),
    ):
        assert o.prediction["reversible"] is True and o.prediction["harm"] == 0.0
        assert o.risk == 0.0 and o.value == 0.5
        assert o.prediction["side_effects"]["recovered_from"] == {"logs/old.log": where}
        assert "reversible" in o.prediction["side_effects"]["summary"]


def test_a_plan_sees_its_earlier_calls_and_the_real_folder_does_not(workspace):
    root, _outside = workspace
    with FolderSimulator(root, hostile_tools()) as sim:
        (o,) = sim.imagine(
            None,
            [
                [
                    {"name": "write", "args": {"path": "new/dir/a.txt", "text": "one"}},
                    {"name": "rename", "args": {"src": "new/dir/a.txt", "dst": "b.txt"}},
                    {"name": "read", "args": {"path": "b.txt"}},
                ]
            ],
            horizon=3,
        )
        (single,) = sim.imagine(None, [[{"name": "read", "args": {"path": "b.txt"}}]], horizon=3)
    assert [s["result"] for s in o.prediction["steps"]] == [
        "wrote 3 to new/dir/a.txt",
        "renamed new/dir/a.txt to b.txt",
        "one",
    ]
    assert o.candidate == [
        {"name": "write", "args": {"path": "new/dir/a.txt", "text": "one"}},
        {"name": "rename", "args": {"src": "new/dir/a.txt", "dst": "b.txt"}},
        {"name": "read", "args": {"path": "b.txt"}},
    ]
    effects = o.prediction["side_effects"]
    assert [(c["path"], c["kind"]) for c in effects["created"]] == [
        ("b.txt", "file"),
        ("new", "dir"),
        ("new/dir", "dir"),
    ]
    assert single.prediction["success"] is False  # the next imagine starts from the real folder
    assert not (root / "b.txt").exists()


def test_bad_candidates_raise_with_a_fix(workspace):
    root, _ = workspace
    with FolderSimulator(root, hostile_tools()) as sim:
        with pytest.raises(ValueError, match="horizon=2"):
            sim.imagine(None, [[{"name": "read", "args": {}}] * 2])
        with pytest.raises(ValueError, match="empty plan"):
            sim.imagine(None, [[]])
        with pytest.raises(ValueError, match="tool call"):
            sim.imagine(None, [42])
        with pytest.raises(ValueError, match="list of tool calls"):
            sim.imagine(None, {"name": "read"})
        with pytest.raises(ValueError, match="horizon"):
            sim.imagine(None, [], horizon=0)
        (unknown,) = sim.imagine(None, [{"name": "nope", "args": {}}])
    assert unknown.prediction["cause"] == "unknown_tool" and "valid tools: append" in unknown.reason
    with pytest.raises(TypeError, match="make_tools"):
        FolderSimulator(root, "not callable")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="existing folder"):
        FolderSimulator(root / "missing", hostile_tools())
    with pytest.raises(ValueError, match="simulation mode"):
        FolderSimulator(root, hostile_tools(), simulate={"read": "sometimes"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="inside root"):
        FolderSimulator(root, hostile_tools(), scratch_dir=root / "sub")
    with pytest.raises(ValueError, match="timeout_s"):
        FolderSimulator(root, hostile_tools(), timeout_s=0)


def test_reflink_is_refused_where_the_file_system_has_none(workspace):
    root, _ = workspace
    from wm_agents.simulate import reflink_supported

    if reflink_supported(str(root.parent)):
        pytest.skip("this file system clones files")
    with pytest.raises(ValueError, match="no reflink"):
        FolderSimulator(root, hostile_tools(), strategy="reflink")
    assert FolderSimulator(root, hostile_tools()).strategy == "hardlink"


def test_the_copy_follows_the_real_folder_between_imagine_calls(workspace):
    """Real changes between decisions (in place, replaced, new, deleted, chmod, a renamed
    folder) reach the shadow, whichever way they were made."""
    root, _ = workspace
    read = [{"name": "read", "args": {"path": p}} for p in ("notes.txt", "ro.txt", "n/new.txt")]
    with FolderSimulator(root, hostile_tools()) as sim:
        sim.imagine(None, read)
        with open(root / "notes.txt", "r+") as f:  # in place: same inode
            f.write("CHANGED")
        (root / "ro.txt").unlink()
        (root / "ro.txt").write_text("new inode\n")
        (root / "n").mkdir()
        (root / "n" / "new.txt").write_text("brand new\n")
        (root / "empty.txt").unlink()
        os.chmod(root / "run.sh", 0o700)
        os.rename(root / "sub", root / "sub2")
        outcomes = sim.imagine(None, read)
        shadow = sim._shadows[False]
        assert tree_state(Path(shadow.path)) == tree_state(root)
    assert [o.prediction["predicted_result"] for o in outcomes] == [
        "CHANGED notes: ship on Friday.\n",
        "new inode\n",
        "brand new\n",
    ]


def test_aimagine_and_concurrent_use(workspace):
    root, _ = workspace
    with FolderSimulator(root, hostile_tools()) as sim:

        async def both():  # type: ignore[no-untyped-def]
            call = {"name": "write", "args": {"path": "a.txt", "text": "x"}}
            return await asyncio.gather(sim.aimagine(None, [call]), sim.aimagine(None, [call]))

        first, second = asyncio.run(both())
    assert first[0].prediction["side_effects"] == second[0].prediction["side_effects"]
    assert first[0].prediction["side_effects"]["totals"]["files_created"] == 1


def test_learn_counts_mismatches(workspace):
    root, _ = workspace
    call = {"name": "read", "args": {"path": "notes.txt"}}
    with FolderSimulator(root, hostile_tools()) as sim:
        (o,) = sim.imagine(None, [call])
        report = sim.learn(
            [
                Transition(
                    state=None,
                    action=call,
                    result=o.prediction["predicted_result"],
                    success=True,
                    prediction=o,
                ),
                Transition(
                    state=None, action=call, result="something else", success=True, prediction=o
                ),
                Transition(
                    state=None, action=call, result="Error: boom", success=False, prediction=o
                ),
                Transition(
                    state=None, action={"name": "other"}, result="x", success=True, prediction=o
                ),  # a different call: not compared
                Transition(state=None, action=call, result="x", success=True),  # no prediction
            ]
        )
    assert report.metrics == {
        "n_compared": 3.0,
        "n_mismatch": 2.0,
        "n_success_mismatch": 1.0,
        "n_result_mismatch": 2.0,
        "mismatch_rate": pytest.approx(2 / 3),
    }
    assert len(sim.mismatches) == 2 and sim.mismatches[0]["real_result"] == "something else"


def test_the_example_runs(capsys):
    import runpy

    runpy.run_path(str(Path(__file__).parents[2] / "examples" / "simulate_tools.py"))
    out = capsys.readouterr().out
    assert "not reversible: 19 B lost for good" in out and "created 1 file (19 B)" in out
    assert "real folder: ['archive', 'archive/old.log', 'notes.txt', 'todo.txt']" in out
