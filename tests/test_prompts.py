"""Every prompt is a file in the top-level ``prompts/`` folder, found from a clone and from an
installed wheel (which carries the folder as ``wm_agents/prompts``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wm_agents import prompt_files
from wm_agents.prompt_files import PROMPT_FILES, load_prompt, prompts_dir

REPO = Path(__file__).resolve().parents[1]


def test_every_prompt_loads_from_the_clone() -> None:
    assert prompts_dir() == REPO / "prompts"
    assert sorted(p.name for p in (REPO / "prompts").iterdir()) == sorted(PROMPT_FILES)
    for name in PROMPT_FILES:
        assert load_prompt(name) == (REPO / "prompts" / name).read_text(encoding="utf-8")
        assert load_prompt(name).strip()


def test_the_library_sends_the_prompt_files() -> None:
    from wm_agents.llm.rendering import OutcomePrompt
    from wm_agents.testing import ScriptedChatModel
    from wm_agents.tools.propose import DEFAULT_PROPOSER_PROMPT, LLMProposer

    prompt = OutcomePrompt()
    assert prompt.system_template.template == load_prompt("outcome_system.md")
    assert prompt.user_template.template == load_prompt("outcome_user.md")
    assert DEFAULT_PROPOSER_PROMPT == load_prompt("proposer_system.md").strip()
    assert "{n}" in DEFAULT_PROPOSER_PROMPT
    proposer = LLMProposer(ScriptedChatModel(), mode="structured")
    assert proposer.system_prompt == DEFAULT_PROPOSER_PROMPT
    assert LLMProposer(ScriptedChatModel(), system_prompt="x").system_prompt == "x"


def test_a_missing_prompt_names_the_path(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(FileNotFoundError, match=r"prompt file missing: .*prompts/nope\.md"):
        load_prompt("nope.md")
    wheel, clone = tmp_path / "pkg" / "prompts", tmp_path / "prompts"
    monkeypatch.setattr(prompt_files, "prompt_dirs", lambda: [wheel, clone])
    with pytest.raises(FileNotFoundError, match=f"neither {wheel} nor {clone} exists"):
        load_prompt("outcome_system.md")
    clone.mkdir()
    with pytest.raises(FileNotFoundError, match=f"prompt file missing: {clone}/outcome_user.md"):
        load_prompt("outcome_user.md")


PROBE = """
import json, wm_agents
from wm_agents.prompt_files import PROMPT_FILES, load_prompt, prompts_dir
print(json.dumps({"package": wm_agents.__file__, "dir": str(prompts_dir()),
                  "texts": {n: load_prompt(n) for n in PROMPT_FILES}}))
"""


def test_the_wheel_carries_the_prompts_and_an_installed_copy_finds_them(tmp_path: Path) -> None:
    """Build the wheel, install it into a bare folder and load every prompt from there, in a
    Python that sees only that folder (``-S``: no site-packages, so no editable install)."""
    pip = [sys.executable, "-m", "pip"]
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    try:  # offline when the build backend is already here; else pip fetches it, as for `-e .`
        import hatchling  # noqa: F401

        isolation = ["--no-build-isolation"]
    except ImportError:
        isolation = []
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    build = [*pip, "wheel", "--no-deps", "-q", *isolation, "-w", str(wheels), str(REPO)]
    subprocess.run(build, check=True, env=env, timeout=300)
    (wheel,) = wheels.glob("wm_agents-*.whl")
    install = [*pip, "install", "--no-deps", "-q", "--target", str(site), str(wheel)]
    subprocess.run(install, check=True, env=env, timeout=300)
    assert sorted(p.name for p in (site / "wm_agents" / "prompts").iterdir()) == sorted(
        PROMPT_FILES
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=dict(env, PYTHONPATH=str(site)),
        timeout=120,
    )
    found = json.loads(out.stdout)
    assert Path(found["package"]).parent == site / "wm_agents"
    assert Path(found["dir"]) == site / "wm_agents" / "prompts"
    assert found["texts"] == {n: load_prompt(n) for n in PROMPT_FILES}
