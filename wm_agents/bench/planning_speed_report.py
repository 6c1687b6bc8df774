"""The planning-speed table and chart, from a :func:`~wm_agents.bench.planning_speed.run_suite`
payload (the JSON in ``results/planning_speed.json``): what ``BENCHMARKS.md`` shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot", "table"]


def table(payload: dict[str, Any]) -> str:
    """Markdown table of a :func:`~wm_agents.bench.planning_speed.run_suite` payload."""
    ceiling = payload["matmul_ceiling_gflops"]
    out = [
        "| H | particles | mode (precision) | ms per decision: median (min-max over states) "
        "| vs float32 | same action as float32 | CEM iterations (mean) | sequences scored "
        "| GFLOP done | GFLOP/s | % of matmul ceiling |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in payload["rows"]:
        if r.get("vs_seed_loop"):
            continue
        dtype = r.get("dtype", "bfloat16" if r["mode"].startswith("bfloat16") else "float32")
        peak = ceiling[dtype]
        out.append(
            f"| {r['horizon']} | {r['particles']} | {r['mode']} ({dtype}) "
            f"| {r['ms_median']:.1f} ({r['ms_min']:.1f}-{r['ms_max']:.1f}) "
            f"| {r.get('speedup_vs_first', 1.0):.2f}x | {_pct(r.get('match_first', 1.0))} "
            f"| {r.get('iterations_mean', r['iterations'])} "
            f"| {r.get('evaluated_mean', '')} "
            f"| {r['nominal_gflop']:.2f} | {r['effective_gflops']:.0f} "
            f"| {100 * r['effective_gflops'] / peak:.0f}% |"
        )
    loops = [r for r in payload["rows"] if r.get("vs_seed_loop")]
    if loops:
        out += [
            "",
            "| H | planner | ms per decision | sequences scored | the seed's loop as written "
            "takes | the loop on raw ops takes | same action as float32 |",
            "|---:|---|---:|---:|---:|---:|---:|",
        ]
        for r in loops:
            same_h = {x["mode"]: x for x in loops if x["horizon"] == r["horizon"]}
            ratios = []
            for name in ("seed-modules", "seed-loop"):
                seed = same_h.get(name)
                if seed is None:
                    ratios.append("")
                elif seed is r:
                    ratios.append("(itself)")
                else:
                    ratios.append(f"{seed['ms_median'] / r['ms_median']:.0f}x longer")
            out.append(
                f"| {r['horizon']} | {r['mode']} | {r['ms_median']:.0f} "
                f"| {r.get('evaluated_mean', '')} | {ratios[0]} | {ratios[1]} "
                f"| {_pct(r.get('match_first', 1.0))} |"
            )
    return "\n".join(out)


def plot(payload: dict[str, Any], path: str | Path) -> Path:
    """Bar chart of a :func:`~wm_agents.bench.planning_speed.run_suite` payload: ms per decision
    by particles and mode, one panel per horizon (log scale), with the 40 ms line of the
    benchmarks issue."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in payload["rows"] if not r.get("vs_seed_loop")]
    horizons = sorted({r["horizon"] for r in rows})
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    fig, axes = plt.subplots(1, len(horizons), figsize=(6 * len(horizons), 4.2), squeeze=False)
    for ax, h in zip(axes[0], horizons, strict=True):
        parts = sorted({r["particles"] for r in rows if r["horizon"] == h})
        width = 0.8 / len(modes)
        for i, mode in enumerate(modes):
            ms = [
                next(
                    (
                        r["ms_median"]
                        for r in rows
                        if (r["horizon"], r["particles"], r["mode"]) == (h, k, mode)
                    ),
                    float("nan"),
                )
                for k in parts
            ]
            ax.bar([j + i * width for j in range(len(parts))], ms, width, label=mode)
        ax.axhline(40, color="black", linestyle="--", linewidth=1, label="40 ms")
        ax.set_yscale("log")
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(parts))], [str(k) for k in parts])
        ax.set_xlabel("particles per candidate")
        ax.set_ylabel("ms per decision (median over states)")
        ax.set_title(f"CEM P{rows[0]['population']}, horizon {h}, 1 thread")
    axes[0][-1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"
