"""``wm-agents tools``: registration, a run left waiting for approval and resumed from SQLite
(scripted LLM, in process), and the example agent end to end against the embedded LLM."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wm_agents.cli import build_parser, main
from wm_agents.testing import scripted_predictor


def test_tools_command_is_registered():
    args = build_parser().parse_args(["tools", "--task", "t", "--on-ask", "reject", "--json"])
    assert args.command == "tools" and args.on_ask == "reject" and callable(args.func)


@pytest.fixture
def scripted_llm(monkeypatch):
    """``open_chat_model`` yields the scripted fake model (no server, no network)."""
    import wm_agents.llm.config as config

    model = scripted_predictor({}).model

    @contextlib.contextmanager
    def fake_open(*args, **kwargs):
        yield model

    monkeypatch.setattr(config, "open_chat_model", fake_open)
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    return model


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_run_waits_for_approval_then_resumes_from_the_database(scripted_llm, tmp_path, capsys):
    db = tmp_path / "runs.sqlite"
    code = main(["tools", "--db", str(db), "--json"])  # stdin is not a terminal under pytest
    first = last_json(capsys.readouterr().out)
    assert code == 3 and first["pending"]["tool_call"]["name"] == "wipe_directory"
    # Simulated: the missing file is refused twice without running (the simulation failed).
    assert first["verdicts"] == ["act", "refuse", "refuse", "act", "act", "ask"]
    assert "deleted 4 files" in first["pending"]["reason"]
    assert first["world_model"] == "composite" and first["mismatches"] == 0
    sandbox = Path(first["sandbox"])
    assert (sandbox / "notes.txt").exists()

    code = main(
        ["tools", "--db", str(db), "--resume", first["thread_id"], "--on-ask", "reject", "--json"]
    )
    second = last_json(capsys.readouterr().out)
    assert code == 0 and second["done"] and second["answer"].startswith("Done")
    assert second["humans"][-1] == "reject" and (sandbox / "notes.txt").exists()
    assert main(["tools", "--db", str(tmp_path / "nope.sqlite"), "--resume", "x"]) == 2


@pytest.mark.integration
@pytest.mark.slow
def test_example_agent_end_to_end_against_the_embedded_llm(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.pop("WM_AGENTS_LLM_MODEL", None)
    cmd = [sys.executable, "-m", "wm_agents", "tools", "--db", str(tmp_path / "r.sqlite")]
    cmd += ["--world-model", "llm", "--on-ask", "approve", "--samples", "1", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = last_json(proc.stdout)
    assert out["model"].startswith("embedded") and out["done"] and out["pending"] is None
    verdicts = out["verdicts"]
    # The missing file fails for real (acted, or asked and approved), then its retry is
    # refused from experience; the destructive wipe is stopped for approval.
    assert verdicts[1] in ("act", "ask") and verdicts[2] == "refuse"
    assert verdicts[5] == "ask" and out["humans"][5] == "approve"
    assert "already failed" in out["trace"][2]["reason"]
    assert any(r["call"].startswith("list_files") and r["real_success"] for r in out["trace"])
    assert "decision trace" in proc.stderr


def test_plan_search_finds_the_safe_plan_in_the_sandbox(tmp_path, capsys):
    """No LLM at all: the agent searches tool plans with the simulator for the goal "old log
    gone, notes kept", finds that archiving before deleting keeps the data while deleting
    alone loses it, and runs the safe plan; every call ran as simulated."""
    import zipfile

    code = main(["tools", "--db", str(tmp_path / "r.sqlite"), "--plan-search", "--json"])
    out = last_json(capsys.readouterr().out)
    assert code == 0 and out["done"] and out["proposer"] == "search"
    assert [r["call"].split("(")[0] for r in out["trace"]] == ["archive_files", "delete_file"]
    assert out["verdicts"] == ["act", "act"] and out["mismatches"] == 0
    first = out["plan_searches"][0]
    assert first["stopped"] == "goal" and not first["best"]["lost"]
    assert [c["name"] for c in first["best"]["calls"]] == ["archive_files", "delete_file"]
    lossy = first["lossy"]
    assert lossy["calls"] == [{"name": "delete_file", "args": {"path": "archive/old.log"}}]
    assert "lost for good" in lossy["summary"]
    sandbox = Path(out["sandbox"])
    assert not (sandbox / "archive" / "old.log").exists() and (sandbox / "notes.txt").exists()
    [backup] = (sandbox / "backup").iterdir()
    with zipfile.ZipFile(backup) as z:
        assert z.read("archive/old.log") == b"2024-01-01 started\n"
    assert "The goal holds" in out["answer"]


def test_plan_search_flags_are_checked(tmp_path, capsys):
    db = str(tmp_path / "r.sqlite")
    assert main(["tools", "--db", db, "--goal", "gone:x"]) == 2
    assert "--goal goes with --plan-search" in capsys.readouterr().err
    assert main(["tools", "--db", db, "--plan-search", "--world-model", "llm"]) == 2
    assert main(["tools", "--db", db, "--plan-search", "--goal", "lost:x"]) == 2
    assert "must be gone:PATH" in capsys.readouterr().err
