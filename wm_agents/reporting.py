"""Human-facing output of a run: the learning-curve plot and the summary table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wm_agents.runner import RunResult

__all__ = [
    "median_over_seeds",
    "plot_curve",
    "plot_learning_curve",
    "plot_seed_curves",
    "summary_table",
]


def plot_learning_curve(result: RunResult, path: str | Path) -> Path:
    """Return vs real steps: training episodes, evaluation means (with min-max), threshold."""
    return plot_curve(
        path,
        train_episodes=result.train_episodes,
        evals=result.evals,
        threshold=result.solved_threshold,
        title=f"{result.env}, seed {result.seed}: world-model planning (Dyna/MPC)",
    )


def plot_curve(
    path: str | Path,
    *,
    train_episodes: Sequence[tuple[int, float]],
    evals: Sequence[Any],
    threshold: float | None,
    title: str,
) -> Path:
    """The learning-curve plot of any run: ``train_episodes`` as ``(real steps, return)``,
    ``evals`` with ``real_steps``, ``mean`` and ``returns``."""
    import matplotlib

    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4))
    if train_episodes:
        steps, rets = zip(*train_episodes, strict=True)
        ax.plot(steps, rets, ".", color="0.6", label="training episode return")
    if evals:
        xs = [e.real_steps for e in evals]
        means = [e.mean for e in evals]
        lo = [min(e.returns) for e in evals]
        hi = [max(e.returns) for e in evals]
        ax.plot(xs, means, "o-", color="C0", label="evaluation mean")
        ax.fill_between(xs, lo, hi, color="C0", alpha=0.2, label="evaluation min-max")
    if threshold is not None:
        ax.axhline(threshold, ls="--", color="C2", label="solved threshold")
    return _save(fig, ax, path, "real environment steps", "episode return", title, 8, 120)


Curve = Sequence[tuple[float, float]]
"""One seed's learning curve: ``(real steps, evaluation mean)`` pairs, oldest first."""


def median_over_seeds(
    curves: Sequence[Curve],
) -> tuple[list[float], list[float], list[float], list[float]]:
    """``(steps, median, min, max)`` over seeds at every step where some seed was evaluated,
    each seed counting with its latest evaluation at or before that step, from the step where
    every seed has been evaluated at least once (seeds evaluated at different steps still line
    up)."""
    import numpy as np

    curves = [c for c in curves if c]
    if not curves:
        return [], [], [], []
    start = max(c[0][0] for c in curves)
    grid = sorted({x for c in curves for x, _ in c if x >= start} | {start})
    cols = [[[y for x, y in c if x <= at][-1] for c in curves] for at in grid]
    return (
        grid,
        [float(np.median(col)) for col in cols],
        [float(min(col)) for col in cols],
        [float(max(col)) for col in cols],
    )


def plot_seed_curves(
    path: str | Path,
    methods: Mapping[str, Sequence[Curve]],
    *,
    threshold: float | None,
    threshold_label: str,
    title: str,
    ylabel: str = "evaluation mean return (10 deterministic episodes)",
    band: bool = False,
) -> Path:
    """Learning curves of several methods, several seeds each, against real steps (log
    scale): every seed as a thin line, the median over seeds (:func:`median_over_seeds`) as a
    thick one, with the min-max band over seeds when ``band``; ``methods`` maps a legend label
    to its seeds' curves."""
    import matplotlib

    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, (label, curves) in enumerate(methods.items()):
        color = f"C{i}"
        for curve in curves:
            ax.plot(*zip(*curve, strict=True), ".-", color=color, alpha=0.35, lw=1, ms=4)
        grid, med, lo, hi = median_over_seeds(curves)
        if not grid:
            continue
        style = "o-" if len(grid) < 12 else "-"
        n = len([c for c in curves if c])
        ax.plot(grid, med, style, color=color, lw=2, ms=5, label=f"{label} (median of {n} seeds)")
        if band and n > 1:
            ax.fill_between(grid, lo, hi, color=color, alpha=0.15)
    if threshold is not None:
        ax.axhline(threshold, ls="--", color="0.4", lw=1, label=threshold_label)
    ax.set_xscale("log")
    return _save(fig, ax, path, "real environment steps (log scale)", ylabel, title, 7, 80)


def _save(
    fig: Any, ax: Any, path: Path, xlabel: str, ylabel: str, title: str, fontsize: int, dpi: int
) -> Path:
    """Label the axes, add the legend, write ``path`` and free the figure."""
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="best", fontsize=fontsize)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def summary_table(result: RunResult):  # -> rich.table.Table
    """A rich table of the run's headline numbers."""
    from rich.table import Table

    s = result.summary()
    table = Table(title=f"wm-agents {result.env} (seed {result.seed})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("real steps used for learning", str(s["real_steps"])),
        ("evaluation episodes", str(len(s["eval_returns"]))),
        ("evaluation mean return", _fmt(s["eval_mean"])),
        ("evaluation min / max", _minmax(s["eval_returns"])),
        ("solved threshold", _fmt(s["solved_threshold"])),
        ("solved at real step", str(s["solved_at_step"]) if s["solved_at_step"] else "not solved"),
        ("median planning time per action (ms)", _fmt(s["plan_ms_median"])),
        ("model one-step validation MSE", _fmt(s["model_val_mse"], ".3g")),
        ("gate verdicts", ", ".join(f"{k} {v}" for k, v in sorted(s["verdicts"].items()))),
        ("imagined rows clipped to the data's range", _clipped(s["imagination_clipped"])),
        ("wall time (s)", _fmt(s["seconds"])),
    ]
    for row in rows:
        table.add_row(*row)
    for e in s["evals"]:
        table.add_row(f"  eval at {e['real_steps']} steps", _fmt(e["mean"]))
    return table


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "n/a" if x is None else format(x, spec)


def _clipped(c: dict[str, int]) -> str:
    return f"{c['clipped']} of {c['rows']}" if c else "n/a"


def _minmax(xs: list[float]) -> str:
    return f"{min(xs):.0f} / {max(xs):.0f}" if xs else "n/a"
