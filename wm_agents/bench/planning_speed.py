"""Planning speed: milliseconds per CEM decision, achieved GFLOP/s, and the seed's loop.

One decision = CEM search (``population`` sequences x ``iterations``, each candidate imagined by
``particles`` members round-robin, PETS's TS-infinity) + every member imagining the ``keep``
best candidates + the agreement gate, with no re-plan (``max_replans=0``) so the work is fixed.
The model is an :class:`EnsembleDynamicsModel` fitted on random CartPole-v1 data (so its
termination head is realistic); no terminal value is added.  Each test state is planned from a
cold start (no warm start), with the planner's generator reseeded per state.

Modes (``--modes``; the first is the reference the others' choices are matched against), a
precision and optional suffixes:

* ``auto``: the precision the CPU favours (opt-in; the library default is float32, the same
  on every CPU)
  (:func:`~wm_agents.neural.rollout.search_dtype`: bfloat16 on CPUs that run it natively when
  the layers are >= 128 wide, else float32), CEM stopping once an iteration no longer improves;
* ``float32`` / ``bfloat16``: that search precision.  The final candidates are always imagined
  in float32 (``model.imagine``) and the gate decides on those;
* ``-fixed``: CEM runs every iteration (``stop_tol=None``), the pre-iCEM planner;
* ``-keep``: CEM carries its elites with their scores (``keep_elites=True``);
* ``-shared``: each distinct action prefix per member computed once
  (:mod:`wm_agents.bench.prefix_sharing`, this benchmark's own rollout since issue 12).

The ``-skip`` mode (rows whose imagined episode had ended stopped being computed) was removed
with issue 12: it never paid (``BENCHMARKS.md`` keeps its numbers), and it was a switch inside
the library's rollout loop that only this benchmark turned on.

Achieved GFLOP/s counts the *nominal* work of the dense search (every candidate, every particle,
every step), divided by the measured time; the machine's matmul ceiling (1024x1024 through
torch, same thread count) is measured in the same run.  The "seed's way" plans the same
decision one candidate at a time and one step at a time (the seed's ``plan_with_model`` loop,
:mod:`wm_agents.bench.seed_loop`) with the same weights, so its ratio to the batched planner
compares equal work.  All modes of a row are timed interleaved, state by state, so machine
noise hits them alike.  :mod:`wm_agents.bench.planning_speed_report` draws a run's table and
chart.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from wm_agents.bench.common import RESULTS_DIR, machine_info, matmul_ceiling, write_json
from wm_agents.bench.planning_speed_report import plot, table
from wm_agents.bench.prefix_sharing import shared_prefix_objective
from wm_agents.bench.seed_loop import seed_module_objective, seed_style_objective
from wm_agents.neural import EnsembleDynamicsModel, FitConfig, fit_ensemble, search_dtype
from wm_agents.outputs import check_output_file
from wm_agents.planning.gate import AgreementGate
from wm_agents.planning.mpc import MPCController, ObjectiveFactory
from wm_agents.planning.optimizers import CEMPlanner
from wm_agents.spaces import ActionSpec

__all__ = [
    "MODES",
    "Mode",
    "add_table_arguments",
    "decide",
    "flops_per_row_step",
    "make_model",
    "measure",
    "parse_mode",
    "planning_mode",
    "run_table",
    "test_states",
]


def make_model(
    ensemble: int, hidden: int, layers: int, *, seed: int = 0, steps: int = 1000, epochs: int = 20
) -> tuple[EnsembleDynamicsModel, np.ndarray]:
    """A model fitted on ``steps`` random CartPole-v1 transitions, and the states it saw."""
    env = gym.make("CartPole-v1")
    spec = ActionSpec.discrete(2)
    model = EnsembleDynamicsModel(
        4, spec, ensemble_size=ensemble, hidden=hidden, layers=layers, seed=seed
    )
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    states, episode = [], 0
    for _ in range(steps):
        a = int(rng.integers(2))
        nxt, r, term, trunc, _ = env.step(a)
        model.buffer.add(obs, [a], float(r), nxt, term, trunc)
        states.append(obs)
        obs = nxt
        if term or trunc:
            episode += 1
            obs, _ = env.reset(seed=seed + episode)
    env.close()
    fit_ensemble(model, model.buffer.all(), FitConfig(max_epochs=epochs, value=False, seed=seed))
    return model, np.asarray(states, dtype=np.float32)


def test_states(states: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` states drawn without replacement from real visited states."""
    idx = np.random.default_rng(seed + 1).choice(
        len(states), size=min(n, len(states)), replace=False
    )
    return states[np.sort(idx)]


def flops_per_row_step(model: EnsembleDynamicsModel) -> int:
    """Multiply-add FLOPs of one imagined step of one particle in the mean rollout.

    Trunk (state and action inputs, hidden layers), the mean head (``D + 1`` outputs) and the
    termination classifier; elementwise ops are not counted.
    """
    c = model.config
    d, a, h = c.obs_dim, model.action_spec.encoded_dim, c.hidden
    tw = model.term_layers[0].weight.shape[-1]
    macs = (d + a) * h + (c.layers - 1) * h * h + h * (d + 1) + d * tw + tw * tw + tw
    return 2 * macs


@contextmanager
def planning_mode(model: EnsembleDynamicsModel, mode: Mode) -> Iterator[None]:
    """Temporarily set the model's search precision to ``mode``'s (its own setting after)."""
    old = model.planning_dtype
    model.planning_dtype = mode.dtype
    try:
        yield
    finally:
        model.planning_dtype = old


def decide(
    model: EnsembleDynamicsModel,
    obs: Any,
    *,
    population: int,
    horizon: int,
    iterations: int,
    particles: int,
    seed: int = 0,
    mode: Mode | None = None,
    seed_loop: bool | str = False,
) -> tuple[int, dict[str, Any]]:
    """One full decision from ``obs``; returns the chosen first action and search facts.

    ``mode`` (default ``auto``) sets the search; the final candidates are
    always imagined in float32 by every member (``model.imagine``), and the gate decides on
    those.  ``seed_loop``: ``True`` / ``"ops"`` scores with :func:`seed_style_objective`,
    ``"modules"`` with :func:`seed_module_objective` (the seed's loop as written).
    """
    mode = mode or Mode()
    planner = CEMPlanner(
        model.action_spec,
        horizon=horizon,
        population=population,
        elites=max(1, population // 10),
        iterations=iterations,
        stop_tol=None if mode.fixed else 1e-3,
        keep_elites=mode.keep,
        seed=seed,
    )
    objective: ObjectiveFactory | None = None  # the library's own: the ensemble's rollout
    if seed_loop == "modules":
        objective = partial(seed_module_objective, model, particles=particles)
    elif seed_loop:
        objective = partial(seed_style_objective, model, particles=particles)
    elif mode.shared:
        objective = partial(shared_prefix_objective, model, particles=particles)
    # Cold start, no re-plan, no terminal value, undiscounted: a fixed amount of work.
    controller = MPCController(
        model,
        planner,
        AgreementGate(max_replans=0),
        objective=objective,
        particles=particles,
        gamma=1.0,
        use_value=False,
    )
    with torch.inference_mode(), planning_mode(model, mode):
        planned = controller.plan(obs)
    proposal, decision = planned.proposal, planned.decision
    assert decision.action is not None
    facts = {
        "n_evaluated": proposal.n_evaluated,
        "iterations": proposal.iterations,
        "value": decision.value,  # float32, every member: comparable across modes
    }
    return round(decision.action[0]), facts


@dataclass(frozen=True)
class Mode:
    """A search configuration: precision, CEM stopping and elites, prefix sharing."""

    dtype: str = "auto"
    fixed: bool = False
    shared: bool = False
    keep: bool = False

    @property
    def name(self) -> str:
        flags = [f for f in _FLAGS if getattr(self, f)]
        return "-".join([self.dtype, *flags])


_FLAGS = ("fixed", "keep", "shared")
MODES = (
    "float32",
    "auto",
    "float32-fixed",
    "bfloat16-fixed",
    "auto-keep",
    "float32-shared",
)
"""The suite's modes; the first (float32, CEM stopping early) is the reference."""


def parse_mode(mode: str) -> Mode:
    """``"bfloat16-fixed-shared"`` -> ``Mode("bfloat16", fixed=True, shared=True)``."""
    dtype, *flags = mode.split("-")
    if dtype not in ("auto", "float32", "bfloat16") or not set(flags) <= set(_FLAGS):
        raise ValueError(
            f"mode must be auto|float32|bfloat16 with optional -fixed, -keep, -shared "
            f"(e.g. {', '.join(MODES)}), got {mode!r}"
        )
    return Mode(dtype, **{f: True for f in flags})


def measure(
    *,
    population: int = 500,
    horizon: int = 15,
    ensemble: int = 5,
    hidden: int = 200,
    layers: int = 3,
    iterations: int = 5,
    particles: int = 1,
    modes: Sequence[str] = ("float32",),
    states: int = 8,
    repeats: int = 3,
    seed_loop: bool = False,
    seed_modules: bool = False,
    model: EnsembleDynamicsModel | None = None,
    visited: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Time one decision per test state in every mode (interleaved, so noise hits all alike).

    Per state the fastest of ``repeats`` decisions counts; rows report the median over states.
    Every mode other than the first also reports ``match_first``: the share of states where it
    chose the same first action as the first mode (put ``float32``, the reference, first).
    ``seed_loop`` adds a row for the seed's one-candidate-at-a-time loop on raw tensor ops
    (``seed-loop``), ``seed_modules`` one for that loop as the seed writes it, with
    ``nn.Sequential`` members (``seed-modules``); both float32, 1 repeat.
    """
    if model is None or visited is None:
        model, visited = make_model(ensemble, hidden, layers)
    xs = test_states(visited, states)
    runs = [(m, parse_mode(m), False) for m in modes]
    if seed_loop:
        runs.append(("seed-loop", Mode("float32"), "ops"))
    if seed_modules:
        runs.append(("seed-modules", Mode("float32"), "modules"))
    ms: dict[str, list[float]] = {r[0]: [] for r in runs}
    acts: dict[str, list[int]] = {r[0]: [] for r in runs}
    work: dict[str, list[dict[str, int]]] = {r[0]: [] for r in runs}
    for s in xs:
        for name, mode, loop in runs:
            times = []
            for _ in range(1 if loop else repeats):
                t0 = time.perf_counter()
                act, facts = decide(
                    model,
                    s,
                    population=population,
                    horizon=horizon,
                    iterations=iterations,
                    particles=particles,
                    mode=mode,
                    seed_loop=loop,
                )
                times.append((time.perf_counter() - t0) * 1e3)
            ms[name].append(min(times))
            acts[name].append(act)
            work[name].append(facts)
    ref = runs[0][0]
    rows = []
    for name, mode, _ in runs:
        med = statistics.median(ms[name])
        evaluated = statistics.mean(f["n_evaluated"] for f in work[name])
        # Work actually done: sequences scored x particles x steps (CEM may stop early).
        nominal = evaluated * particles * horizon * flops_per_row_step(model)
        row: dict[str, Any] = {
            "mode": name,
            "dtype": str(search_dtype(model, mode.dtype)).removeprefix("torch."),
            "population": population,
            "horizon": horizon,
            "ensemble": ensemble,
            "hidden": hidden,
            "layers": layers,
            "iterations": iterations,
            "particles": particles,
            "states": len(xs),
            "ms_median": round(med, 2),
            "ms_min": round(min(ms[name]), 2),
            "ms_max": round(max(ms[name]), 2),
            "iterations_mean": round(statistics.mean(f["iterations"] for f in work[name]), 2),
            "evaluated_mean": round(evaluated, 1),
            "nominal_gflop": round(nominal / 1e9, 3),
            "effective_gflops": round(nominal / (med * 1e-3) / 1e9, 1),
            "actions": acts[name],
        }
        if name != ref:
            same = [a == b for a, b in zip(acts[name], acts[ref], strict=True)]
            row["match_first"] = round(float(np.mean(same)), 3)
            # Where the choice differs, how much worse it is by float32's own all-member
            # estimate of the chosen candidates (negative: the mode found a better one).
            gaps = [
                r["value"] - m["value"]
                for r, m, ok in zip(work[ref], work[name], same, strict=True)
                if not ok
            ]
            row["value_gap_where_different"] = [round(g, 4) for g in gaps]
            row["speedup_vs_first"] = round(statistics.median(ms[ref]) / med, 2)
        rows.append(row)
    return rows


def run_suite(args: argparse.Namespace) -> dict[str, Any]:
    """The BENCHMARKS.md table: every horizon x particles x mode, plus the seed's loop."""
    model, visited = make_model(args.ensemble, args.hidden, args.layers)
    ceiling = {dt: round(matmul_ceiling(dt), 1) for dt in ("float32", "bfloat16")}
    modes = list(args.modes)
    rows = []
    for h in args.horizons:
        for k in args.particles_list:
            for row in measure(
                population=args.population,
                horizon=h,
                ensemble=args.ensemble,
                hidden=args.hidden,
                layers=args.layers,
                iterations=args.iterations,
                particles=k,
                modes=modes,
                states=args.states,
                repeats=args.repeats,
                model=model,
                visited=visited,
            ):
                print(json.dumps(row), file=sys.stderr, flush=True)
                rows.append(row)
        if args.seed_loop_states:
            # The seed's loop against the default mode on the same states, interleaved.
            for row in measure(
                population=args.population,
                horizon=h,
                ensemble=args.ensemble,
                hidden=args.hidden,
                layers=args.layers,
                iterations=args.iterations,
                particles=1,
                modes=modes,
                states=args.seed_loop_states,
                repeats=args.repeats,
                seed_loop=True,
                seed_modules=True,
                model=model,
                visited=visited,
            ):
                row["vs_seed_loop"] = True
                print(json.dumps(row), file=sys.stderr, flush=True)
                rows.append(row)
    return {
        "benchmark": "planning_speed",
        "machine": machine_info(),
        "matmul_ceiling_gflops": ceiling,
        "rows": rows,
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``wm-agents bench plan`` (one configuration)."""
    p.add_argument("--population", type=int, default=500)
    p.add_argument("--horizon", type=int, default=15)
    p.add_argument("--ensemble", type=int, default=5)
    p.add_argument("--hidden", type=int, default=200)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--particles", type=int, default=1)
    p.add_argument(
        "--dtype",
        choices=["auto", "float32", "bfloat16"],
        default="auto",
        help="search precision (auto: bfloat16 where it pays; the library default is float32)",
    )
    p.add_argument(
        "--fixed-iterations",
        action="store_true",
        help="run every CEM iteration (default: stop once an iteration no longer improves)",
    )
    p.add_argument(
        "--keep-elites",
        action="store_true",
        help="CEM carries its elites with their scores (scores fewer new sequences)",
    )
    p.add_argument(
        "--share-prefixes",
        action="store_true",
        help="compute action prefixes shared by several candidates once (discrete actions)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--states", type=int, default=8, help="test states (median over them)")
    p.add_argument("--repeats", type=int, default=3, help="timed decisions per state (min)")
    p.add_argument(
        "--seed-loop",
        nargs="?",
        const="ops",
        choices=["ops", "modules"],
        help="plan the seed's way instead: one candidate at a time on raw ops (default) or "
        "with nn.Sequential members as the seed writes it (modules)",
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="also plan in float32 (otherwise the same options) and match choices",
    )
    p.add_argument("--ceiling", action="store_true", help="also measure the matmul ceiling")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run_cli(args: argparse.Namespace) -> int:
    """``wm-agents bench plan``: time one configuration, print ``ms_median`` (or JSON)."""
    torch.set_num_threads(max(1, args.threads))
    flags = dict(
        fixed=args.fixed_iterations,
        shared=args.share_prefixes,
        keep=args.keep_elites,
    )
    mode, ref = Mode(args.dtype, **flags), Mode("float32", **flags)
    modes = [ref.name, mode.name] if args.compare and mode != ref else [mode.name]
    rows = measure(
        population=args.population,
        horizon=args.horizon,
        ensemble=args.ensemble,
        hidden=args.hidden,
        layers=args.layers,
        iterations=args.iterations,
        particles=args.particles,
        modes=modes if not args.seed_loop else [],
        states=args.states,
        repeats=args.repeats,
        seed_loop=args.seed_loop == "ops",
        seed_modules=args.seed_loop == "modules",
    )
    row = rows[-1]
    if args.compare and len(rows) > 1:
        row["float32_ms_median"] = rows[0]["ms_median"]
    if args.ceiling:
        row["matmul_ceiling_gflops"] = round(matmul_ceiling(args.dtype), 1)
    row["threads"] = torch.get_num_threads()
    if args.json:
        print(json.dumps(row))
    else:
        print(f"ms_median {row['ms_median']}")
    return 0


def add_table_arguments(p: argparse.ArgumentParser) -> None:
    """Options of the whole table (``wm-agents bench plan-table``, ``planning_speed.py``)."""
    p.add_argument("--population", type=int, default=500)
    p.add_argument("--horizons", type=int, nargs="+", default=[15, 30])
    p.add_argument("--particles-list", type=int, nargs="+", default=[1, 5, 20])
    p.add_argument("--ensemble", type=int, default=5)
    p.add_argument("--hidden", type=int, default=200)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--modes", nargs="+", default=list(MODES), help="first = the reference")
    p.add_argument("--states", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed-loop-states", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS_DIR / "planning_speed.json"))
    p.add_argument(
        "--plot-only", action="store_true", help="redraw the PNG (and table) from --out's JSON"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python benchmarks/planning_speed.py``: the whole table to JSON."""
    p = argparse.ArgumentParser(description="planning speed table (see BENCHMARKS.md)")
    add_table_arguments(p)
    return run_table(p.parse_args(argv))


def run_table(args: argparse.Namespace) -> int:
    """Measure the whole table (or redraw it with ``--plot-only``); write JSON and PNG."""
    if not args.plot_only:
        check_output_file(args.out)  # before the suite runs, not after
    check_output_file(Path(args.out).with_suffix(".png"))
    torch.set_num_threads(max(1, args.threads))
    if args.plot_only:
        payload = json.loads(Path(args.out).read_text())
    else:
        payload = run_suite(args)
        write_json(args.out, payload)
    print(f"plot: {plot(payload, Path(args.out).with_suffix('.png'))}")
    print(f"matmul ceiling (GFLOP/s, 1024^3): {payload['matmul_ceiling_gflops']}")
    print(table(payload))
    return 0
