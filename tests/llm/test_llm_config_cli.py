"""Environment resolution and the `wm-agents llm` commands (no network: a fake model or an
unreachable server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from wm_agents.cli import build_parser
from wm_agents.cli import main as cli_main
from wm_agents.llm import cli as llm_cli
from wm_agents.llm import config
from wm_agents.llm.config import resolve_llm_settings
from wm_agents.llm.server import EMBEDDED_MODEL_ALIAS, embedded_model_path, find_free_port
from wm_agents.testing import Reply, ScriptedChatModel, prediction_reply

UNREACHABLE = "http://127.0.0.1:9/v1"
REQUIRED = {"status", "predicted_result", "success_probability", "risk", "uncertainty", "reason"}


def test_no_variables_means_embedded():
    s = resolve_llm_settings({})
    assert s.embedded and s.model == EMBEDDED_MODEL_ALIAS and s.base_url is None
    assert resolve_llm_settings({"OPENAI_BASE_URL": "  ", "WM_AGENTS_LLM_MODEL": "x"}).embedded


def test_base_url_and_model():
    s = resolve_llm_settings({"OPENAI_BASE_URL": "http://h:1/v1", "WM_AGENTS_LLM_MODEL": "qwen"})
    assert not s.embedded and s.base_url == "http://h:1/v1" and s.model == "qwen"
    assert s.api_key  # a placeholder: local servers accept any key
    assert "qwen at http://h:1/v1" == s.describe()


def test_api_key_alone_means_openai():
    s = resolve_llm_settings({"OPENAI_API_KEY": "sk-test"})
    assert not s.embedded and s.base_url is None and s.model == config.DEFAULT_OPENAI_MODEL
    assert "sk-test" not in s.describe()


def test_chat_model_from_settings_is_loop_safe():
    s = resolve_llm_settings({"OPENAI_BASE_URL": UNREACHABLE})
    model = config.chat_model_from_settings(s, timeout_s=3)
    assert model.openai_api_base == UNREACHABLE
    assert model.max_retries == 0
    with pytest.raises(ValueError):
        config.chat_model_from_settings(resolve_llm_settings({}))


def test_embedded_model_is_installed_and_ports_are_free():
    assert embedded_model_path().suffix == ".gguf"
    assert 0 < find_free_port() < 65536


def test_subparser_contract():
    parser = build_parser()  # every command fully configured
    args = parser.parse_args(["llm", "serve", "--port", "1234", "--ctx", "4096"])
    assert args.func is llm_cli._serve and args.port == 1234 and args.ctx == 4096
    assert args.host == "127.0.0.1"
    args = parser.parse_args(["llm", "predict", "--tool", "t", "--args", "{}", "--json"])
    assert args.func is llm_cli._predict and args.json


def _last_json(text: str) -> dict:
    line = text.strip().splitlines()[-1]
    return json.loads(line, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


def test_predict_unreachable_server_is_unknown_without_traceback(monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_BASE_URL", UNREACHABLE)
    argv = ["llm", "predict", "--tool", "read_file", "--args", '{"path": "a.txt"}']
    argv += ["--context", "cwd /tmp", "--json", "--samples", "2", "--retries", "1"]
    code = cli_main(argv)
    out, err = capsys.readouterr()
    assert code == 1
    summary = _last_json(out)
    assert REQUIRED <= set(summary)
    assert summary["status"] == "unknown"
    assert "connection error" in summary["reason"]
    assert 0.0 <= summary["success_probability"] <= 1.0
    assert summary["uncertainty"] == 1.0 and summary["risk"] == 1.0
    assert "imagined outcome" in out and "unknown" in out
    assert "Traceback" not in out + err


def test_predict_ok_prints_table_and_json(monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_BASE_URL", UNREACHABLE)
    model = ScriptedChatModel(script=prediction_reply(False, 0.1, predicted_result="KeyError"))
    monkeypatch.setattr(config, "chat_model_from_settings", lambda *a, **k: model)
    argv = ["llm", "predict", "--tool", "lookup", "--args", '{"key": "atlantis"}']
    argv += ["--context", "a city table", "--task", "find countries", "--json"]
    argv += ["--description", "Country of a city.", "--schema", '{"type": "object"}']
    code = cli_main(argv)
    out, _ = capsys.readouterr()
    assert code == 0
    summary = _last_json(out)
    assert summary["status"] == "ok"
    assert summary["predicted_result"] == "KeyError"
    assert summary["success_probability"] == pytest.approx(0.1)
    assert summary["n_samples"] == 3
    assert "predicted result" in out and "KeyError" in out
    assert "Country of a city." in model.calls[0].user


def test_predict_without_json_prints_only_the_table(monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_BASE_URL", UNREACHABLE)
    monkeypatch.setattr(
        config, "chat_model_from_settings", lambda *a, **k: ScriptedChatModel(script=Reply("bad"))
    )
    code = cli_main(["llm", "predict", "--tool", "t", "--samples", "1"])
    out, _ = capsys.readouterr()
    assert code == 1
    assert "unparseable output" in out
    assert not out.strip().endswith("}")


@pytest.mark.parametrize("bad", [["--args", "{nope"], ["--args", "[1]"], ["--samples", "0"]])
def test_predict_bad_arguments_exit_2(bad, capsys):
    assert cli_main(["llm", "predict", "--tool", "t", *bad]) == 2
    assert "error" in capsys.readouterr().err


def test_module_entry_point_from_another_folder(tmp_path):
    env = dict(os.environ, OPENAI_BASE_URL=UNREACHABLE)
    cmd = [sys.executable, "-m", "wm_agents", "llm", "predict", "--tool", "divide"]
    cmd += ["--args", '{"a": 1, "b": 0}', "--json", "--samples", "1", "--retries", "0"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert _last_json(proc.stdout)["status"] == "unknown"
    assert "Traceback" not in proc.stdout + proc.stderr
