"""Where the prompt templates are: one top-level ``prompts/`` folder, in a clone and in a wheel.

Every prompt the library sends is a file in the repository's ``prompts/`` folder (reviewable as
text, not a string in code).  The wheel carries the same files as ``wm_agents/prompts``
(``[tool.hatch.build.targets.wheel.force-include]`` in ``pyproject.toml``).  :func:`prompts_dir`
looks in this order and takes the first folder that exists:

1. ``wm_agents/prompts`` inside the imported package: an installed wheel;
2. ``prompts/`` beside the package's folder: a clone, or an editable install of one (the
   package folder then has no ``prompts`` of its own).

A missing folder or file is a ``FileNotFoundError`` that names the paths looked at.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["PROMPT_FILES", "load_prompt", "prompt_dirs", "prompts_dir"]

PROMPT_FILES = ("outcome_system.md", "outcome_user.md", "proposer_system.md")
"""Every prompt file the library reads: the LLM outcome predictor's system and user templates
(:mod:`wm_agents.llm.rendering`) and the tool proposer's instructions
(:mod:`wm_agents.tools.propose`)."""


def prompt_dirs() -> list[Path]:
    """The folders :func:`prompts_dir` looks in, in order: the package's own (a wheel), then
    the repository's top level (a clone)."""
    package = Path(str(resources.files("wm_agents")))
    return [package / "prompts", package.parent / "prompts"]


def prompts_dir() -> Path:
    """The folder the prompt files are read from (see the module docstring)."""
    places = prompt_dirs()
    for place in places:
        if place.is_dir():
            return place
    looked = " nor ".join(str(p) for p in places)
    raise FileNotFoundError(
        f"no prompts folder: neither {looked} exists (a clone has prompts/ at its top level; "
        "a wheel carries it as wm_agents/prompts)"
    )


def load_prompt(name: str) -> str:
    """Text of the prompt file ``name`` (e.g. ``"outcome_system.md"``), read as UTF-8."""
    path = prompts_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"prompt file missing: {path}")
    return path.read_text(encoding="utf-8")
