"""What simulating a tool call costs, against workspace size, per snapshot strategy.

For each workspace (``--files`` files holding ``--data`` bytes in all, 100 files per folder,
random content from a seeded generator) and each strategy (``hardlink``: hard links with
copy-up; ``copy``: a plain copy; ``reflink`` where the file system clones files), a
:class:`~wm_agents.simulate.FolderSimulator` over the sandbox tools
(:func:`wm_agents.tools.sandbox.make_sandbox_tools`) measures:

* ``build_s``: making the shadow copy (the first ``imagine`` pays it once);
* ``copy_bytes``: disk bytes the copy itself uses (its folders and private files; files
  shared by hard links cost nothing);
* ``sync_ms``: bringing the copy up to date at the start of each later ``imagine`` call (one
  ``lstat`` walk of the real folder);
* ``imagine_ms``: one warm ``imagine`` of one candidate (sync + one simulated call);
* ``per_candidate_ms``: the cost of each further candidate in one decision (``--candidates``
  candidates in one ``imagine``; calls: write a new file, overwrite one, delete one, read
  one), with the guard's list of touched paths (``scoped``) and with a walk of the whole copy
  (``full_scan``, as for tools that run programs);
* ``fresh_per_candidate_ms``: the same with a fresh copy per candidate (``reuse=False``),
  on workspaces of at most ``--fresh-max-files`` files.

Run as ``wm-agents bench simulate-cost``.  Results go to ``--out`` (default
``benchmarks/results/simulate_cost.json`` under the current folder, checked before any
measurement) and the ``.png`` beside it.  Temporary workspaces live under ``--tmp`` (default
``/tmp``) and are deleted afterwards.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wm_agents.bench.common import RESULTS_DIR, machine_info, write_json
from wm_agents.outputs import check_output_file

__all__ = ["add_arguments", "make_workspace", "measure", "run_cli"]

_PER_FOLDER = 100


def make_workspace(root: Path, n_files: int, total_bytes: int, seed: int) -> None:
    """``n_files`` files of ``total_bytes // n_files`` random bytes, 100 per folder."""
    rng = random.Random(seed)
    size = max(1, total_bytes // n_files)
    block = rng.randbytes(min(size, 1 << 20))
    for i in range(n_files):
        folder = root / f"d{i // _PER_FOLDER:04d}"
        if i % _PER_FOLDER == 0:
            folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"f{i:06d}.bin", "wb") as f:
            left = size
            while left > 0:  # random per file, cheap per byte: a rotated shared block
                k = min(left, len(block))
                start = (i * 7919) % len(block)
                f.write((block[start:] + block[:start])[:k])
                left -= k


def _calls(n_files: int, k: int) -> list[dict[str, Any]]:
    calls = []
    for j in range(k):
        i = (j * 37) % n_files
        path = f"d{i // _PER_FOLDER:04d}/f{i:06d}.bin"
        kind = j % 4
        if kind == 0:
            calls.append({"name": "write_file", "args": {"path": f"new{j}.txt", "content": "x"}})
        elif kind == 1:
            calls.append({"name": "write_file", "args": {"path": path, "content": "changed"}})
        elif kind == 2:
            calls.append({"name": "delete_file", "args": {"path": path}})
        else:
            calls.append({"name": "read_file", "args": {"path": "d0000/f000000.bin"}})
    return calls


def _time(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _stats(prefix: str, seconds: Sequence[float], scale: float = 1000.0) -> dict[str, float]:
    """``{prefix: median, prefix_min: min}`` in ms (the machine is shared: the median says
    what a call costs under its load, the minimum what it costs on an idle core)."""
    return {
        prefix: round(scale * statistics.median(seconds), 3),
        f"{prefix}_min": round(scale * min(seconds), 3),
    }


def measure(
    root: Path,
    strategy: str,
    *,
    n_files: int,
    candidates: int,
    repeats: int,
    fresh: bool,
) -> dict[str, Any]:
    """The costs of one strategy on one workspace (see the module docstring)."""
    from wm_agents.simulate import FolderSimulator
    from wm_agents.tools.sandbox import make_sandbox_tools

    out: dict[str, Any] = {"strategy": strategy}
    one = _calls(n_files, 1)
    many = _calls(n_files, candidates)
    with FolderSimulator(root, make_sandbox_tools, strategy=strategy, timeout_s=600) as sim:
        out["first_imagine_s"] = round(_time(lambda: sim.imagine(None, one)), 3)
        shadow = sim._shadows[False]
        out["copy_bytes"] = shadow.private_bytes()
        out.update(_stats("build_s", [_time(shadow.rebuild)], scale=1.0))
        syncs = [_time(shadow.sync) for _ in range(repeats)]
        out.update(_stats("sync_ms", syncs))
        out.update(
            _stats("imagine_ms", [_time(lambda: sim.imagine(None, one)) for _ in range(repeats)])
        )
        # Per candidate: the child and diff of each, timed inside one imagine of many.
        per: list[float] = []
        for _ in range(repeats):
            outcomes = sim.imagine(None, many)
            assert all(o.is_known for o in outcomes), [o.reason for o in outcomes]
            per += [o.prediction["candidate_ms"] / 1000 for o in outcomes]
        out.update(_stats("per_candidate_ms", per))
        out.update(_stats("child_ms", [o.prediction["child_ms"] / 1000 for o in outcomes]))
    with FolderSimulator(root, make_sandbox_tools, strategy=strategy, full_scan=True) as sim:
        sim.imagine(None, one)
        per = []
        for _ in range(repeats):
            per += [o.prediction["candidate_ms"] / 1000 for o in sim.imagine(None, many)]
        out.update(_stats("full_scan_per_candidate_ms", per))
    if fresh:
        # A fresh copy per candidate: a few candidates are enough to show its cost (with
        # big workspaces each one copies everything).
        big = out["copy_bytes"] > 64 << 20
        k, reps = (2, 1) if big else (min(candidates, 4), repeats)
        with FolderSimulator(root, make_sandbox_tools, strategy=strategy, reuse=False) as sim:
            per = [_time(lambda: sim.imagine(None, many[:k])) / k for _ in range(reps)]
            out.update(_stats("fresh_per_candidate_ms", per))
    return out


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Three panels against the file count: ms per candidate, sync ms per imagine call (both
    minimum over the repeats: the shared machine's load blurs the medians), copy size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    panels = (
        ("per_candidate_ms_min", 1.0, "ms per candidate (min)", "One more candidate"),
        ("sync_ms_min", 1.0, "ms per imagine call (min)", "Bringing the copy up to date"),
        ("copy_bytes", 1 / 2**20, "MiB written for the copy", "Size of the copy"),
    )
    for ax, (key, scale, ylabel, title) in zip(axes, panels, strict=True):
        for strategy, marker in (("hardlink", "o"), ("copy", "s"), ("reflink", "^")):
            for data, style in ((1 << 20, "-"), (1 << 30, "--")):
                pts = sorted(
                    (r["files"], max(r[key] * scale, 0.01))  # log axes: 0.01 stands for less
                    for r in rows
                    if r["strategy"] == strategy and r["bytes"] == data
                )
                if pts:
                    label = f"{strategy}, {'1 MB' if data == 1 << 20 else '1 GB'} of data"
                    ax.plot(*zip(*pts, strict=True), style, marker=marker, label=label)
        ax.set(xscale="log", yscale="log")
        ax.set(xlabel="files in the workspace", ylabel=ylabel, title=title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that delete /tmp data


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``wm-agents bench simulate-cost``."""
    p.add_argument("--files", type=int, nargs="+", default=[10, 1000, 100_000])
    p.add_argument("--data", type=int, nargs="+", default=[1 << 20], help="bytes in all")
    p.add_argument("--big", action="store_true", help="also 1 GB of data in --big-files files")
    p.add_argument("--big-files", type=int, nargs="+", default=[10, 1000])
    p.add_argument("--strategies", nargs="+", default=["hardlink", "copy", "reflink"])
    p.add_argument("--candidates", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--fresh-max-files", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tmp", default="/tmp")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "simulate_cost.json")


def run_cli(args: argparse.Namespace) -> int:
    """Measure every case; write the JSON and the plot."""
    check_output_file(args.out)  # before the measurements, not after
    check_output_file(args.out.with_suffix(".png"))
    signal.signal(signal.SIGTERM, _terminate)
    from wm_agents.simulate import reflink_supported

    cases = [(n, d) for d in args.data for n in args.files]
    if args.big:
        cases += [(n, 1 << 30) for n in args.big_files]
    reflink = reflink_supported(args.tmp)
    strategies = [s for s in args.strategies if s != "reflink" or reflink]
    rows: list[dict[str, Any]] = []
    for n_files, total in cases:
        base = Path(tempfile.mkdtemp(prefix="wm-sim-bench-", dir=args.tmp))
        try:
            t0 = time.perf_counter()
            make_workspace(base / "ws", n_files, total, args.seed)
            made = time.perf_counter() - t0
            for strategy in strategies:
                row = measure(
                    base / "ws",
                    strategy,
                    n_files=n_files,
                    candidates=args.candidates,
                    repeats=args.repeats,
                    fresh=n_files <= args.fresh_max_files,
                )
                row.update(files=n_files, bytes=total, make_workspace_s=made)
                rows.append(row)
                print(
                    f"{n_files:>7} files {total / 2**20:>7.0f} MiB {strategy:>8}: "
                    f"build {row['build_s']:.3f} s, copy {row['copy_bytes'] / 2**20:.2f} MiB, "
                    f"sync {row['sync_ms']:.1f} ms, imagine {row['imagine_ms']:.1f} ms, "
                    f"+{row['per_candidate_ms']:.1f} ms/candidate "
                    f"(full scan {row['full_scan_per_candidate_ms']:.1f}, "
                    f"fresh {row.get('fresh_per_candidate_ms', float('nan')):.1f})",
                    flush=True,
                )
        finally:
            shutil.rmtree(base, ignore_errors=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent,  # the code that ran, wherever the command runs
    ).stdout.strip()
    payload = {
        "command": "wm-agents " + " ".join(sys.argv[1:]),
        "commit": commit,
        "machine": machine_info(),
        "reflink_available": reflink,
        "file_system": subprocess.run(
            ["df", "-T", args.tmp], capture_output=True, text=True, check=False
        ).stdout.splitlines()[-1:],
        "candidates_per_decision": args.candidates,
        "repeats": args.repeats,
        "rows": rows,
    }
    path = write_json(args.out, payload)
    _plot(rows, args.out.with_suffix(".png"))
    print(f"wrote {path} and {args.out.with_suffix('.png')}")
    return 0
