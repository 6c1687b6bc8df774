"""The imagination benchmark's report: reach / hold against each env's bar, trust events."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from wm_agents.bench import dyna_q


def run(agent: str, means: list[float], **extra) -> dict:
    return {
        "agent": agent,
        "seed": 0,
        "evals": [{"real_steps": 300 * (i + 1), "mean": m} for i, m in enumerate(means)],
        "eval_mean": means[-1],
        "act_ms_median": 0.2 if agent != "mpc" else 10.0,
        "seconds": 1.0,
        **extra,
    }


def test_pendulum_report_uses_its_own_bar(tmp_path: Path) -> None:
    runs = [
        run("mpc", [-900.0, -180.0, -150.0]),
        run(
            "hybrid",
            [-800.0, -150.0, -250.0, -160.0],
            action_sources={"policy": 90, "mpc": 10},
            rollouts={"acting_policy": "sac"},
            trust_log=[[400, "trusted"]],
        ),
    ]
    (tmp_path / "imagination_pendulum.json").write_text(json.dumps({"runs": runs}))
    text = dyna_q.report("pendulum", plot=False, results=tmp_path)
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if "| 0 |" in line}
    # mpc: reaches -200 at 600 and holds; hybrid reaches at 600, dips, holds from 1200.
    assert "| mpc | 0 | 600 | 600 | -150.0 |" in rows["| mpc"]
    assert "| hybrid | 0 | 600 | 1200 | -160.0 | 0.2 | 0.900 | sac | T@400 |" in rows["| hybrid"]
    assert "first reach -200" in text


def test_results_default_to_benchmarks_results_under_the_current_folder(tmp_path: Path) -> None:
    """Run from any folder (an installed package has no checkout to write into): the report
    reads and plots in ``./benchmarks/results`` there."""
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    runs = [run("mpc", [-900.0, -180.0, -150.0])]
    (results / "imagination_pendulum.json").write_text(json.dumps({"runs": runs}))
    proc = subprocess.run(
        [sys.executable, "-m", "wm_agents", "bench", "dyna-q", "pendulum-report"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| mpc | 0 | 600 | 600 | -150.0 |" in proc.stdout
    assert (results / "imagination_pendulum.png").is_file()
