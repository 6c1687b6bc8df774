"""Shared pieces of the benchmarks: learning curves, solve/hold statistics, machine facts, JSON.

A learning curve is a list of :class:`EvalPoint` (real env steps so far, returns of the
deterministic evaluation episodes).  Two numbers summarize it against a threshold (475 for
CartPole-v1):

* ``steps_to_reach``: real steps at the first evaluation whose mean is ``>= threshold``;
* ``steps_to_hold``: real steps at the first evaluation from which *every* later evaluation of
  the run is ``>= threshold`` (``None`` when the last evaluation is below it).
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wm_agents.outputs import write_text_with_fallback
from wm_agents.thresholds import steps_to_hold, steps_to_reach

__all__ = [
    "RESULTS_DIR",
    "CurveRun",
    "EvalPoint",
    "code_state",
    "format_median_range",
    "machine_info",
    "matmul_ceiling",
    "median_range",
    "parse_value",
    "steps_to_hold",
    "steps_to_reach",
    "summarize_runs",
    "time_calls",
    "write_json",
]

RESULTS_DIR = Path("benchmarks") / "results"
"""Where the benchmarks write JSON and PNG results by default: ``./benchmarks/results``,
relative to the current folder when they run (the repository's own results from the top of a
clone; anywhere else for an installed package).  Each benchmark's ``--out`` / ``--results``
overrides it, and the path is checked before any work starts
(:func:`~wm_agents.outputs.check_output_file` / :func:`~wm_agents.outputs.check_output_dir`)."""


@dataclass(frozen=True)
class EvalPoint:
    """One evaluation: ``real_steps`` env steps of learning so far, the episode returns, and
    (when measured) ``learn_cpu_s``: process CPU seconds of learning so far, the evaluations'
    own CPU time left out."""

    real_steps: int
    returns: tuple[float, ...]
    learn_cpu_s: float | None = None

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns)) if self.returns else math.nan


@dataclass
class CurveRun:
    """One seed of one method: its learning curve and how long it took."""

    method: str
    seed: int
    evals: list[EvalPoint]
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self, threshold: float) -> dict[str, Any]:
        return {
            "method": self.method,
            "seed": self.seed,
            "seconds": round(self.seconds, 1),
            "steps_to_reach": steps_to_reach(self.evals, threshold),
            "steps_to_hold": steps_to_hold(self.evals, threshold),
            "evals": [_eval_json(e) for e in self.evals],
            **self.extra,
        }


def _eval_json(e: EvalPoint) -> dict[str, Any]:
    out: dict[str, Any] = {"real_steps": e.real_steps, "mean": round(e.mean, 2)}
    out["min"] = min(e.returns)
    if e.learn_cpu_s is not None:
        out["learn_cpu_s"] = round(e.learn_cpu_s, 2)
    return out


def median_range(values: Sequence[int | None]) -> dict[str, Any]:
    """Median, min and max over seeds; a seed that never got there counts as infinitely late.

    The median is reported only when more than half of the seeds got there.
    """
    got = sorted(v for v in values if v is not None)
    n = len(values)
    out: dict[str, Any] = {"n": n, "reached": len(got)}
    keyed = [v if v is not None else math.inf for v in values]
    med = statistics.median(keyed) if keyed else math.inf
    out["median"] = None if not math.isfinite(med) else med
    out["min"] = got[0] if got else None
    out["max"] = max(keyed) if got and len(got) == n else None
    return out


def parse_value(text: str) -> Any:
    """A setting's value from the command line: JSON when it parses (``100``, ``1.5``,
    ``true``, ``null``), else the text itself (``cem``)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def format_median_range(stat: dict[str, Any], spec: str = ",.0f") -> str:
    """A :func:`median_range` as a table cell: ``**median** (min-max; reached/n)``, the numbers
    formatted with ``spec``."""
    if stat["median"] is None:
        return f"not reached by most seeds ({stat['reached']}/{stat['n']})"
    hi = format(stat["max"], spec) if stat["max"] is not None else "never"
    rng = f"{format(stat['min'], spec)}-{hi}"
    return f"**{format(stat['median'], spec)}** ({rng}; {stat['reached']}/{stat['n']})"


def summarize_runs(runs: Sequence[CurveRun], threshold: float) -> dict[str, Any]:
    """Steps to reach / hold ``threshold``: median and range over the seeds of one method."""
    return {
        "seeds": [r.seed for r in runs],
        "steps_to_reach": median_range([steps_to_reach(r.evals, threshold) for r in runs]),
        "steps_to_hold": median_range([steps_to_hold(r.evals, threshold) for r in runs]),
        "final_eval_mean": [round(r.evals[-1].mean, 1) if r.evals else None for r in runs],
        "seconds_per_seed": round(float(np.mean([r.seconds for r in runs])), 1),
    }


_SOURCE = Path(__file__).resolve().parent


def code_state() -> dict[str, Any]:
    """The commit and the files that differ from it, so a reader knows what code ran (the git
    repository this package runs from; empty for an installed package)."""
    import subprocess

    def git(*a: str) -> str:
        try:
            return subprocess.run(
                ["git", *a], capture_output=True, text=True, check=True, cwd=_SOURCE
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    return {"commit": git("rev-parse", "HEAD"), "modified": git("status", "--short").splitlines()}


def machine_info(*, torch_threads: int | None = None) -> dict[str, Any]:
    """What the numbers were measured on.

    ``torch_threads``: the count the measured runs used, where a benchmark runs them under its
    own (``torch_threads(n)``) rather than the process's; default: the process's count now.
    """
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = math.nan
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads() if torch_threads is None else torch_threads,
        "load_avg_1min": round(load, 2),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }


def time_calls(fn: Callable[[], Any], *, repeats: int, warmup: int = 2) -> list[float]:
    """Milliseconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def matmul_ceiling(dtype: str = "float32", size: int = 1024, repeats: int = 5) -> float:
    """GFLOP/s of a square ``size`` matmul through torch in ``dtype`` (best of ``repeats``).

    This is the machine's practical ceiling for the planner's arithmetic on the current number
    of torch threads: a planning step cannot run its matmuls faster than this.
    """
    import torch

    dt = getattr(torch, dtype)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=g).to(dt)
    b = torch.randn(size, size, generator=g).to(dt)
    ms = min(time_calls(lambda: a @ b, repeats=repeats, warmup=1))
    return 2 * size**3 / (ms * 1e-3) / 1e9


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus nothing else) as indented JSON; returns the path written.

    A benchmark's results are minutes or hours of measurement: when ``path`` cannot be written
    they go to a temporary file instead, said on stderr
    (:func:`~wm_agents.outputs.write_text_with_fallback`).
    """
    return write_text_with_fallback(path, json.dumps(payload, indent=1, default=_default) + "\n")


def _default(x: Any) -> Any:
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    if hasattr(x, "__dataclass_fields__"):
        return asdict(x)
    raise TypeError(f"not JSON serializable: {type(x).__name__}")
