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
