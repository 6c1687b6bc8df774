"""Start-up time: ``import wm_agents`` and ``wm-agents <command> --help``, each in a fresh
process, median and range over repeats.  ``--checkout DIR`` measures another source tree (an
older commit) with the same interpreter, so before and after are measured in one run.

wm-agents bench startup [--repeats 10] [--checkout DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["CASES", "add_arguments", "measure", "run_cli"]

CASES: dict[str, list[str]] = {
    "import wm_agents": ["-c", "import wm_agents"],
    "wm-agents --help": [
        "-c",
        "import sys; sys.argv[0] = 'wm-agents'; from wm_agents.cli import main; main(['--help'])",
    ],
    "wm-agents cartpole --help": [
        "-c",
        "import sys; from wm_agents.cli import main; main(['cartpole', '--help'])",
    ],
    "wm-agents tools --help": ["-c", "from wm_agents.cli import main; main(['tools', '--help'])"],
}
"""What is timed: python arguments run in a fresh interpreter."""


def measure(args: list[str], repeats: int, checkout: Path | None = None) -> dict[str, Any]:
    """Wall seconds of ``python ARGS`` over ``repeats`` fresh processes (``SystemExit`` from
    ``--help`` is a normal end)."""
    env = dict(os.environ)
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout)  # first on sys.path: that tree's wm_agents
    times = []
    # From a neutral folder: the working directory comes first on a child's sys.path, and a
    # source tree there would shadow the one being measured.
    with tempfile.TemporaryDirectory() as cwd:
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, *args], env=env, cwd=cwd, capture_output=True, check=False
            )
            times.append(time.perf_counter() - t0)
    return {
        "median_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
        "max_s": round(max(times), 3),
        "repeats": repeats,
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repeats", type=int, default=10, help="fresh processes per case (10)")
    p.add_argument(
        "--checkout", type=Path, default=None, help="also measure this source tree (e.g. old)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object last")


def run_cli(args: argparse.Namespace) -> int:
    if args.repeats < 1:
        raise ValueError("--repeats must be >= 1")
    trees: dict[str, Path | None] = {"this": None}
    if args.checkout is not None:
        if not (args.checkout / "wm_agents" / "__init__.py").is_file():
            raise ValueError(f"--checkout {args.checkout} has no wm_agents package")
        trees["checkout"] = args.checkout
    results: dict[str, dict[str, Any]] = {}
    # Interleaved by case, so a load spike hits both trees alike.
    for case, py_args in CASES.items():
        for tree, path in trees.items():
            results.setdefault(tree, {})[case] = measure(py_args, args.repeats, path)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    for tree, cases in results.items():
        for case, r in cases.items():
            print(
                f"{tree:9s} {case:28s} median {r['median_s']:.2f} s "
                f"(min {r['min_s']:.2f}, max {r['max_s']:.2f})"
            )
    if args.json:
        print(json.dumps({"results": results, "load_1min": load}))
    return 0
