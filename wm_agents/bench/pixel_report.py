"""``wm-agents bench pixel-report``: the latent agent from pixels beside the model-free agent on
the same frames, several seeds each, in one table and one picture (issue 16, item 5).

The two sides are measured by their own commands, one process per seed if you like (a
latent run from pixels costs about half an hour of CPU at 3,000 steps, so seeds are usually run
side by side):

* ``wm-agents gym --env E --obs pixels ... --out DIR`` writes ``DIR/result.json``;
* ``wm-agents bench pixel-baseline --env E ... --out FILE.json`` writes the SB3 runs.

This reads those files, checks that they are about one env, and writes a JSON with one row
per run (evaluation curve, last evaluation, the real steps to first reach the env's threshold
and CPU-seconds), the medians per agent, and a PNG of every curve.  The CPU-seconds are not
quite alike and the JSON says so: the latent run's are the whole run's, its evaluations
included; SB3's are its learning only (without its evaluation episodes).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from wm_agents.bench.common import RESULTS_DIR, write_json
from wm_agents.outputs import check_output_file
from wm_agents.thresholds import steps_to_reach

__all__ = ["add_arguments", "pixel_rows", "run_cli"]

_LATENT_CPU = "whole run, evaluations included"
_BASELINE_CPU = "learning only, evaluations excluded"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--latent",
        type=Path,
        nargs="+",
        required=True,
        help="result.json of `wm-agents gym --obs pixels` runs (or their --out folders)",
    )
    p.add_argument(
        "--baseline",
        type=Path,
        nargs="+",
        required=True,
        help="JSON files written by `wm-agents bench pixel-baseline`",
    )
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "pixel_report.json")


def _load(path: Path) -> dict[str, Any]:
    if path.is_dir():
        path = path / "result.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a JSON object")
    return data


class _Point(NamedTuple):
    real_steps: int
    mean: float


def _first_reach(curve: Sequence[tuple[int, float]], threshold: float) -> int | None:
    return steps_to_reach([_Point(*point) for point in curve], threshold)


def _latent_row(path: Path, data: dict[str, Any], threshold: float) -> dict[str, Any]:
    try:
        steps, means = list(data["eval_steps"]), list(data["eval_mean"])
        row = {"seed": int(data["seed"]), "cpu_s": float(data["cpu_s"])}
        real_steps = int(data["real_steps"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path} is not a `wm-agents gym --obs pixels` result: {e!r}") from None
    if data.get("obs") != "pixels" or len(steps) != len(means):
        raise ValueError(f"{path} is not a `wm-agents gym --obs pixels` result")
    curve = [(int(s), float(m)) for s, m in zip(steps, means, strict=True)]
    return {
        "agent": f"latent {data.get('agent', 'mpc')}",
        **row,
        "real_steps": real_steps,
        "curve": curve,
        "last": curve[-1][1] if curve else None,
        "steps_to_reach": _first_reach(curve, threshold),
        "cpu": _LATENT_CPU,
        "source": str(path),
    }


def _baseline_rows(path: Path, data: dict[str, Any], threshold: float) -> list[dict[str, Any]]:
    if data.get("benchmark") != "pixel-baseline":
        raise ValueError(f"{path} was not written by `wm-agents bench pixel-baseline`")
    rows = []
    for run in data.get("runs", []):
        try:
            curve = [(int(e["real_steps"]), float(e["mean"])) for e in run["evals"]]
            rows.append(
                {
                    "agent": f"SB3 {str(run['algo']).upper()} {run.get('policy', 'CnnPolicy')}",
                    "seed": int(run["seed"]),
                    "cpu_s": float(run["learn_cpu_seconds"]),
                    "real_steps": curve[-1][0] if curve else 0,
                    "curve": curve,
                    "last": curve[-1][1] if curve else None,
                    "steps_to_reach": _first_reach(curve, threshold),
                    "cpu": _BASELINE_CPU,
                    "source": str(path),
                }
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: a run is malformed: {e!r}") from None
    return rows


def pixel_rows(
    latent: Sequence[Path], baseline: Sequence[Path]
) -> tuple[str, float, list[dict[str, Any]]]:
    """``(env, threshold, rows)`` from the result files; raises ``ValueError`` with the file's
    name when one is unreadable, of another kind, or about another env."""
    from wm_agents.bench.suite import ENVS

    loaded = [(p, _load(p)) for p in [*latent, *baseline]]
    envs = {str(d.get("env")) for _, d in loaded}
    if len(envs) != 1:
        raise ValueError(f"the files are about different envs: {sorted(envs)}")
    [env] = envs
    if env not in ENVS:
        raise ValueError(f"no threshold for {env!r}; known: {sorted(ENVS)}")
    threshold = ENVS[env].threshold
    rows = [_latent_row(p, d, threshold) for p, d in loaded[: len(latent)]]
    for p, d in loaded[len(latent) :]:
        rows += _baseline_rows(p, d, threshold)
    seen: set[tuple[str, int]] = set()
    for r in rows:
        key = (r["agent"], r["seed"])
        if key in seen:
            raise ValueError(f"{r['agent']} seed {r['seed']} appears twice ({r['source']})")
        seen.add(key)
    return env, threshold, rows


def _summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for agent in dict.fromkeys(r["agent"] for r in rows):
        mine = [r for r in rows if r["agent"] == agent]
        lasts = [r["last"] for r in mine if r["last"] is not None]
        out[agent] = {
            "seeds": sorted(r["seed"] for r in mine),
            "median_last": statistics.median(lasts) if lasts else None,
            "min_last": min(lasts) if lasts else None,
            "max_last": max(lasts) if lasts else None,
            "reached": sum(r["steps_to_reach"] is not None for r in mine),
            "median_cpu_s": statistics.median(r["cpu_s"] for r in mine),
            "cpu": mine[0]["cpu"],
        }
    return out


def run_cli(args: argparse.Namespace) -> int:
    from wm_agents.reporting import plot_seed_curves

    out = check_output_file(args.out)
    env, threshold, rows = pixel_rows(args.latent, args.baseline)
    summary = _summary(rows)
    write_json(
        out,
        {
            "benchmark": "pixel-report",
            "env": env,
            "threshold": threshold,
            "summary": summary,
            "runs": rows,
        },
    )
    png = plot_seed_curves(
        out.with_suffix(".png"),
        {agent: [r["curve"] for r in rows if r["agent"] == agent] for agent in summary},
        threshold=threshold,
        threshold_label=f"threshold {threshold:g}",
        title=f"{env} from pixels: the latent agent and the model-free agent, same frames",
        ylabel="evaluation mean return",
    )
    for agent, s in summary.items():
        last = "no evaluation"
        if s["median_last"] is not None:
            last = (
                f"last evaluation median {s['median_last']:.1f} "
                f"({s['min_last']:.1f} to {s['max_last']:.1f})"
            )
        print(
            f"{agent}: seeds {s['seeds']}; {last}; {s['reached']} reach {threshold:g}; "
            f"median CPU-s {s['median_cpu_s']:.0f} ({s['cpu']})"
        )
    print(f"written to {out} and {png}")
    return 0
