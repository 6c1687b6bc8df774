"""Best-first plan search over a toy world model that imagines whole plans exactly (a dict of
files; ``archive`` copies a file's bytes into ``backup/``, ``delete`` removes a file): the
search finds that archive-then-delete reaches "old.log gone" without losing data while delete
alone loses it, respects its budgets, and keeps the tree."""

from __future__ import annotations

import pytest

from wm_agents.core import Outcome
from wm_agents.planning.plan_search import WorkspaceGoal, search_plans

FILES = {"notes.txt": "notes", "old.log": "log 2024"}


class ToyFolder:
    """A WorldModel over plans: runs them on a copy of ``files`` and reports the diff."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = dict(files)
        self.calls = 0

    def imagine(self, state, candidates, *, horizon=1):
        return [self._plan(list(c) if isinstance(c, list) else [c]) for c in candidates]

    def _plan(self, plan):
        self.calls += 1
        assert len(plan) >= 1
        files = dict(self.files)
        result = ""
        for call in plan:
            path = call["args"]["path"]
            if path not in files:
                return self._outcome(plan, files, False, f"FileNotFoundError: {path}")
            if call["name"] == "archive":
                files[f"backup/{path}"] = files[path]
                result = f"archived {path}"
            elif call["name"] == "delete":
                del files[path]
                result = f"deleted {path}"
        return self._outcome(plan, files, True, result)

    def _outcome(self, plan, files, success, result):
        before, after = self.files, files
        created = [{"path": p} for p in after if p not in before]
        deleted = [{"path": p} for p in before if p not in after]
        lost = [d for d in deleted if before[d["path"]] not in after.values()]
        harm = 1.0 if lost else 0.0
        p = 1.0 if success else 0.0
        summary = f"created {len(created)}, deleted {len(deleted)}, lost {len(lost)}"
        return Outcome(
            candidate=plan,
            prediction={
                "source": "simulated",
                "success": success,
                "predicted_result": result,
                "side_effects": {
                    "summary": summary,
                    "created": created,
                    "deleted": deleted,
                    "modified": [],
                },
                "reversible": not lost,
            },
            value=0.5 * p - 0.5 * harm,
            uncertainty=0.0,
            risk=1.0 - p * (1.0 - harm),
        )


def every_call(plan, outcome):
    """All calls on the files that exist at the start (a small enumeration)."""
    return [{"name": n, "args": {"path": p}} for n in ("delete", "archive") for p in FILES]


def test_finds_archive_then_delete_and_says_delete_alone_loses_data():
    model = ToyFolder(FILES)
    goal = WorkspaceGoal.parse("gone:old.log,kept:notes.txt")
    result = search_plans(model, {}, every_call, goal, max_depth=2, max_imagined=50)
    assert result.stopped == "goal"
    assert [c["name"] for c in result.best.calls] == ["archive", "delete"]
    assert all(c["args"] == {"path": "old.log"} for c in result.best.calls)
    assert not result.best.lost and result.best.goal
    assert result.lossy is not None and result.lossy.calls == [
        {"name": "delete", "args": {"path": "old.log"}}
    ]
    text = result.explain()
    assert "loses nothing" in text and "would lose data" in text
    # The tree: 4 one-call plans; the two archive prefixes tie (value 0.5, one call) and the
    # older, archive notes.txt, is expanded first (4 children), then archive old.log (4).
    assert result.n_imagined == len(result.nodes) == 4 + 4 + 4
    assert result.best.parent is not None
    assert result.nodes[result.best.parent].calls == [
        {"name": "archive", "args": {"path": "old.log"}}
    ]


def test_without_a_lossless_plan_the_lossy_one_is_reported_not_chosen():
    model = ToyFolder(FILES)
    goal = WorkspaceGoal(gone=("old.log",))
    result = search_plans(model, {}, every_call, goal, max_depth=1)
    assert result.best is None and result.lossy is not None and result.stopped == "exhausted"
    assert "No plan reaches the goal without losing data" in result.explain()
    chosen = search_plans(model, {}, every_call, goal, max_depth=1, allow_loss=True)
    assert chosen.best is not None and chosen.best.lost


def test_budgets_stop_the_search():
    model = ToyFolder(FILES)
    never = WorkspaceGoal(gone=("nothing-here",))
    result = search_plans(model, {}, every_call, never, max_depth=5, max_imagined=6)
    assert result.stopped == "calls" and result.n_imagined == 6 and model.calls == 6
    assert result.best is None and result.lossy is None


def test_failed_and_unknown_plans_are_not_expanded():
    model = ToyFolder({"a": "x"})

    def offers(plan, outcome):
        return [
            {"name": "delete", "args": {"path": "missing"}},
            {"name": "archive", "args": {"path": "a"}},
        ]

    result = search_plans(model, {}, offers, WorkspaceGoal(gone=("zzz",)), max_depth=3)
    failed = [n for n in result.nodes if not n.success]
    assert failed and all(n.id not in {m.parent for m in result.nodes} for n in failed)


def test_goal_parsing_and_errors():
    goal = WorkspaceGoal.parse(" gone:archive/old.log , kept:notes.txt ")
    assert goal == WorkspaceGoal(gone=("archive/old.log",), kept=("notes.txt",))
    assert goal.describe() == "gone:archive/old.log,kept:notes.txt"
    for bad in ("", "gone", "lost:x", "gone:"):
        with pytest.raises(ValueError):
            WorkspaceGoal.parse(bad)
    with pytest.raises(ValueError):
        search_plans(ToyFolder({}), {}, every_call, goal, max_imagined=0)


def test_result_is_json_serializable():
    import json

    result = search_plans(ToyFolder(FILES), {}, every_call, WorkspaceGoal(gone=("old.log",)))
    json.dumps(result.as_dict())
