"""The learned-outcomes benchmark's summary: spread over seeds, the target check, markdown
tables and the reliability diagram."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from wm_agents.learned.metrics import brier, reliability

__all__ = ["markdown", "plot_reliability", "summarize", "target_check"]

METRICS = ("auroc", "brier", "accuracy")
_HIGHER_IS_BETTER = {"auroc": True, "brier": False, "accuracy": True}
SUBSETS = {
    "held_out": "held-out first-time calls (new workspaces, new argument patterns)",
    "llm_subset": "the LLM subset of the held-out calls",
    "seen_families": "new workspaces, argument patterns seen in training",
}
BASELINES = {
    "held_out": ("majority", "experience"),
    "llm_subset": ("majority", "llm", "experience+llm"),
    "seen_families": ("majority", "experience"),
}


def _spread(values: list[float]) -> dict[str, Any]:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return {"mean": math.nan, "min": math.nan, "max": math.nan, "values": values}
    return {"mean": float(np.mean(vals)), "min": min(vals), "max": max(vals), "values": values}


def summarize(
    results: dict[str, list[dict[str, Any]]],
    report_seeds: tuple[int, ...],
    tune_seeds: tuple[int, ...],
) -> dict[str, Any]:
    """Mean, min and max over seeds, per mode, subset, predictor and metric: over the report
    seeds and, separately, the tuning seeds."""
    out: dict[str, Any] = {}
    for mode, runs in results.items():
        out[mode] = {}
        for group, seeds in (("report", report_seeds), ("tune", tune_seeds)):
            chosen = [r for r in runs if r["seed"] in seeds]
            if not chosen:
                continue
            block: dict[str, Any] = {}
            for subset in SUBSETS:
                names = chosen[0][subset].keys()
                block[subset] = {
                    name: {
                        m: _spread([r[subset][name][m] for r in chosen]) for m in (*METRICS, "n")
                    }
                    for name in names
                }
            block["fit_s"] = _spread([r["fit_s"] for r in chosen])
            block["by_uncertainty"] = [
                {
                    k: float(
                        np.nanmean(
                            [r["learned_by_uncertainty"][i].get(k, math.nan) for r in chosen]
                        )
                    )
                    for k in ("max_uncertainty", "coverage", "brier", "accuracy")
                }
                for i in range(len(chosen[0]["learned_by_uncertainty"]))
            ]
            block["target"] = target_check(chosen)
            out[mode][group] = block
    return out


def target_check(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Does ``learned`` (and ``learned+llm`` on the LLM subset) beat every baseline, on every
    metric, on the mean over seeds, and on how many seeds?"""
    out: dict[str, Any] = {}
    for subset, baselines in BASELINES.items():
        for ours in ("learned", "learned+llm"):
            if ours not in runs[0][subset]:
                continue
            rows = {}
            for base in baselines:
                for m in METRICS:
                    ups = _HIGHER_IS_BETTER[m]
                    wins = sum(
                        (r[subset][ours][m] > r[subset][base][m])
                        if ups
                        else (r[subset][ours][m] < r[subset][base][m])
                        for r in runs
                    )
                    mean_ours = float(np.mean([r[subset][ours][m] for r in runs]))
                    mean_base = float(np.mean([r[subset][base][m] for r in runs]))
                    better = mean_ours > mean_base if ups else mean_ours < mean_base
                    if base == "majority" and m == "auroc":
                        better, wins = mean_ours > 0.5, sum(r[subset][ours][m] > 0.5 for r in runs)
                    rows[f"{base}.{m}"] = {"mean_better": better, "seeds_won": wins}
            out[f"{subset}.{ours}"] = {
                "beats_all_on_mean": all(v["mean_better"] for v in rows.values()),
                "beats_all_on_every_seed": all(v["seeds_won"] == len(runs) for v in rows.values()),
                "detail": rows,
            }
    return out


def _fmt(spread: dict[str, Any], digits: int = 3) -> str:
    if math.isnan(spread["mean"]):
        return "n/a"
    return f"{spread['mean']:.{digits}f} ({spread['min']:.{digits}f}-{spread['max']:.{digits}f})"


def markdown(report: dict[str, Any]) -> str:
    """The summary as markdown tables (report seeds), one per split mode and subset."""
    lines = []
    for mode, groups in report["summary"].items():
        block = groups.get("report")
        if block is None:
            continue
        for subset, title in SUBSETS.items():
            lines += [
                "",
                f"**{mode} split, {title}** (mean over report seeds, min-max in brackets)",
                "",
                "| predictor | calls per seed | AUROC | Brier | accuracy |",
                "|---|---:|---:|---:|---:|",
            ]
            for name, m in block[subset].items():
                lines.append(
                    f"| {name} | {m['n']['mean']:.0f} | {_fmt(m['auroc'])} | {_fmt(m['brier'])} "
                    f"| {_fmt(m['accuracy'])} |"
                )
        lines += [
            "",
            f"**{mode} split, learned model on held-out calls, by its uncertainty** (mean over "
            "report seeds)",
            "",
            "| uncertainty at most | share of calls | Brier | accuracy |",
            "|---:|---:|---:|---:|",
        ]
        for row in block["by_uncertainty"]:
            lines.append(
                f"| {row['max_uncertainty']:.2f} | {row['coverage']:.2f} | {row['brier']:.3f} "
                f"| {row['accuracy']:.3f} |"
            )
        lines.append("")
        for key, t in block["target"].items():
            lost = [k for k, v in t["detail"].items() if not v["mean_better"]]
            seeds = min(v["seeds_won"] for v in t["detail"].values())
            lines.append(
                f"- {mode} / {key}: beats every baseline on every metric on the mean: "
                f"{'yes' if t['beats_all_on_mean'] else 'no (' + ', '.join(lost) + ')'}; "
                f"on every seed: {'yes' if t['beats_all_on_every_seed'] else 'no'} "
                f"(fewest seeds won on one comparison: {seeds})"
            )
    return "\n".join(lines)


def _pooled(report: dict[str, Any], key: str, seeds: set[int]) -> dict[str, np.ndarray]:
    runs = [r for r in report["results"]["pattern"] if r["seed"] in seeds]
    names = runs[0][key].keys()
    return {n: np.concatenate([np.asarray(r[key][n], float) for r in runs]) for n in names}


def plot_reliability(report: dict[str, Any], path: Path) -> Path:
    """Reliability diagrams (pattern split, report seeds pooled), one panel per predictor:
    in ten equal-width bins of predicted probability, the bin's mean prediction against the
    observed success rate (on the diagonal = calibrated), with the number of calls per bin as
    grey bars.  Top row: all held-out calls; bottom row: the LLM subset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = set(report["split"]["report_seeds"])
    rows = (
        ("calls", "held-out calls"),
        ("llm_calls", "LLM subset"),
    )
    data = {key: _pooled(report, key, seeds) for key, _ in rows}
    ncols = max(len(d) - 1 for d in data.values())
    fig, axes = plt.subplots(2, ncols, figsize=(3.4 * ncols, 7.2), squeeze=False)
    for r, (key, label) in enumerate(rows):
        columns = dict(data[key])
        y = columns.pop("y")
        for c in range(ncols):
            ax = axes[r][c]
            if c >= len(columns):
                ax.axis("off")
                continue
            name, p = list(columns.items())[c]
            bins = reliability(p, y)
            counts = ax.twinx()
            counts.bar(
                [(b["lo"] + b["hi"]) / 2 for b in bins],
                [b["n"] for b in bins],
                width=0.09,
                color="0.85",
                zorder=0,
            )
            counts.set_yticks([])
            ax.set_zorder(counts.get_zorder() + 1)
            ax.patch.set_visible(False)
            ax.plot([0, 1], [0, 1], color="0.5", linestyle="--", linewidth=1)
            ax.plot([b["mean_p"] for b in bins], [b["rate"] for b in bins], marker="o")
            ece = sum(b["n"] * abs(b["rate"] - b["mean_p"]) for b in bins) / max(1, len(p))
            ax.set_title(f"{name}, {label}\nBrier {brier(p, y):.3f}, ECE {ece:.3f}", fontsize=9)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            if r == 1:
                ax.set_xlabel("predicted p(success)")
            if c == 0:
                ax.set_ylabel(f"observed success rate\n({len(y)} calls)")
    fig.suptitle(
        f"Reliability of first-time success predictions (report seeds {sorted(seeds)} pooled;"
        " grey: calls per bin)",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
