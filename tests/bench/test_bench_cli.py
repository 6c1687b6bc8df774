"""The bench command table: every benchmark is registered, and each entry names real functions."""

from __future__ import annotations

from pathlib import Path

import pytest

import wm_agents.bench
from wm_agents.bench.cli import BENCHMARKS
from wm_agents.cli import load

# Modules that serve a registered benchmark rather than being one.
HELPERS = {
    "__init__",
    "cli",
    "common",
    "dqn_baseline",  # sample-efficiency --method dqn
    "seed_recipe",  # sample-efficiency --method seed_recipe, seed-recipe-why
    "learned_outcomes_eval",
    "learned_outcomes_llm",
    "learned_outcomes_report",
    "planning_speed_report",  # plan-table's table and chart
    "prefix_sharing",  # plan / plan-table, the -shared mode
    "seed_loop",  # plan --seed-loop, plan-table's seed rows
    "sweep",  # --workers / --ray of sample-efficiency, uncertainty, dyna-q, tune
}


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_benchmark_resolves_to_its_functions(name: str) -> None:
    _, add_arguments, run = BENCHMARKS[name]
    assert callable(load(add_arguments)) and callable(load(run))


def test_every_benchmark_module_is_on_the_bench_command_line() -> None:
    registered = {add.split(":")[0].rsplit(".", 1)[1] for _, add, _ in BENCHMARKS.values()}
    modules = {p.stem for p in Path(wm_agents.bench.__file__).parent.glob("*.py")}
    assert modules - registered - HELPERS == set()


# Benchmarks whose `--help` (and, for the reports, whose whole run) needs no torch: the suite
# is issue 14's comparison; pixel-report only reads JSON.  A new import of torch at module level
# would make `wm-agents bench NAME --help` take seconds.
LIGHT = ["suite", "sample-efficiency", "pixel-baseline", "pixel-report", "tune", "dyna-q"]


def test_the_suite_and_reports_import_no_torch_for_help() -> None:
    import subprocess
    import sys

    modules = sorted({BENCHMARKS[name][1].split(":")[0] for name in LIGHT})
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules)
    code += "print(sorted(m for m in ('torch', 'stable_baselines3', 'ray') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
