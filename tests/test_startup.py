"""Start-up stays light: importing the package, or building the parser for one command, loads
no torch, LangGraph, LangChain or LLM client (they come with the first use of what needs them).
Times are measured by ``wm-agents bench startup``, not asserted here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ["torch", "langgraph", "langchain_core", "openai", "gymnasium", "matplotlib", "ray"]

PROBE = """
import json, sys
{code}
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
"""


def heavy_modules_after(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(code=code, heavy=HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_package_loads_nothing_heavy():
    assert heavy_modules_after("import wm_agents, wm_agents.tools, wm_agents.llm") == []


@pytest.mark.parametrize("command", ["cartpole", "gym", "tools", "llm", "dyna", "bench"])
def test_a_commands_parser_loads_nothing_heavy(command):
    code = f"from wm_agents.cli import build_parser; build_parser([{command!r}])"
    assert heavy_modules_after(code) == []


def test_bench_help_loads_nothing_heavy():
    """``wm-agents bench --help`` lists every benchmark without importing any of them."""
    code = (
        "import contextlib, io\n"
        "from wm_agents.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try: main(['bench', '--help'])\n"
        "    except SystemExit: pass\n"
        "from wm_agents.bench.cli import BENCHMARKS\n"
        "assert all(name in out.getvalue() for name in BENCHMARKS), out.getvalue()"
    )
    assert heavy_modules_after(code) == []


def test_lazy_names_resolve_to_the_real_objects():
    import wm_agents
    from wm_agents.core import Outcome
    from wm_agents.tools.gate import ToolGate

    assert wm_agents.Outcome is Outcome and wm_agents.ToolGate is ToolGate
    assert set(wm_agents.__all__) <= set(dir(wm_agents))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = wm_agents.Nope


def test_every_exported_name_imports():
    import importlib

    for package in ["wm_agents", "wm_agents.tools", "wm_agents.llm", "wm_agents.simulate"]:
        module = importlib.import_module(package)
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{package}.{name}"


def test_python_dash_m_wm_agents_is_the_cli():
    out = subprocess.run(
        [sys.executable, "-m", "wm_agents", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and "cartpole" in out.stdout and "tools" in out.stdout
