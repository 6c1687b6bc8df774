"""Planning speed: milliseconds per CEM decision, achieved GFLOP/s, and the seed's loop.

One decision = CEM search (``population`` sequences x ``iterations``, each candidate imagined by
``particles`` members round-robin, PETS's TS-infinity) + every member imagining the ``keep``
best candidates + the agreement gate, with no re-plan (``max_replans=0``) so the work is fixed.
The model is an :class:`EnsembleDynamicsModel` fitted on random CartPole-v1 data (so its
termination head is realistic); no terminal value is added.  Each test state is planned from a
cold start (no warm start), with the planner's generator reseeded per state.

Modes (``--modes``; the first is the reference the others' choices are matched against):

* ``float32``: the library default (reference numbers);
* ``float32-shared``: ``share_prefixes``: each distinct action prefix per member computed once;
* ``bfloat16`` / ``bfloat16-shared``: the search's matmuls in bfloat16.  The final candidates
  are always imagined in float32 (``model.imagine``) and the gate decides on those.

Achieved GFLOP/s counts the *nominal* work of the dense search (every candidate, every particle,
every step), divided by the measured time; the machine's matmul ceiling (1024x1024 through
torch, same thread count) is measured in the same run.  The "seed's way" plans the same
decision one candidate at a time and one step at a time (the seed's ``plan_with_model`` loop)
with the same weights, so its ratio to the batched planner compares equal work.  All modes of a
row are timed interleaved, state by state, so machine noise hits them alike.
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from wm_agents.bench.common import RESULTS_DIR, machine_info, matmul_ceiling, write_json
from wm_agents.neural.ensemble import EnsembleDynamicsModel
from wm_agents.neural.trainer import FitConfig, fit_ensemble
from wm_agents.planning.gate import AgreementGate
from wm_agents.planning.mpc import model_objective
from wm_agents.planning.optimizers import CEMPlanner, Objective
from wm_agents.spaces import ActionSpec

__all__ = [
    "decide",
    "flops_per_row_step",
    "make_model",
    "measure",
    "parse_mode",
    "planning_mode",
    "seed_style_objective",
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


def seed_style_objective(
    model: EnsembleDynamicsModel, obs: Any, *, particles: int = 1, gamma: float = 1.0
) -> Objective:
    """The seed's ``plan_with_model`` loop on this model: one candidate, one step at a time.

    Same weights, same member assignment (particle ``i * K + j`` -> member ``(i * K + j) % E``)
    and same arithmetic as the batched mean rollout, so only the batching differs.
    """
    w = model.planning_weights()
    e_count, d = model.ensemble_size, model.obs_dim
    silu = torch.nn.functional.silu
    (wt1, bt1), (wt2, bt2) = w["term"]
    wt3, bt3 = w["term_out"]
    obs_t = model.check_obs(obs)[None]

    def objective(actions: torch.Tensor) -> torch.Tensor:
        b, h, _ = actions.shape
        enc = model.action_spec.encode(actions)
        out = torch.empty(b, particles)
        for i in range(b):  # one candidate at a time, as the seed does
            for j in range(particles):
                m = (i * particles + j) % e_count
                state, ret, alive, disc = obs_t, 0.0, 1.0, 1.0
                for t in range(h):
                    x = silu(state @ w["w1s"][m] + enc[i, t][None] @ w["w1a"][m] + w["b1"][m])
                    for wm, bm in w["mid"]:
                        x = silu(x @ wm[m] + bm[m])
                    y = x @ w["wh"][m] + w["bh"][m]
                    state = state + y[:, :d]
                    z = silu(state @ wt1[m] + bt1[m])
                    z = silu(z @ wt2[m] + bt2[m])
                    cont = float(torch.sigmoid(z @ wt3[m] + bt3[m]))
                    ret += disc * alive * float(y[0, d])
                    alive *= cont
                    disc *= gamma
                out[i, j] = ret
        return out

    return objective


def _supports_modes() -> bool:
    """Whether this build's rollout has the planning modes (``dtype``, ``share_prefixes``)."""
    params = inspect.signature(EnsembleDynamicsModel.rollout).parameters
    return "dtype" in params and "share_prefixes" in params


@contextmanager
def planning_mode(
    model: EnsembleDynamicsModel, dtype: str = "float32", share_prefixes: bool = False
) -> Iterator[None]:
    """Temporarily set the model's search precision and prefix sharing (its defaults after)."""
    if (dtype != "float32" or share_prefixes) and not _supports_modes():
        raise ValueError("this build's rollout has no dtype / share_prefixes options")
    old = (getattr(model, "planning_dtype", None), getattr(model, "share_prefixes", None))
    model.planning_dtype = getattr(torch, dtype)
    model.share_prefixes = share_prefixes
    try:
        yield
    finally:
        model.planning_dtype, model.share_prefixes = old


def decide(
    model: EnsembleDynamicsModel,
    obs: Any,
    *,
    population: int,
    horizon: int,
    iterations: int,
    particles: int,
    seed: int = 0,
    dtype: str = "float32",
    share_prefixes: bool = False,
    seed_loop: bool = False,
) -> tuple[int, dict[str, Any]]:
    """One full decision from ``obs``; returns the chosen first action and search facts.

    ``dtype`` / ``share_prefixes`` apply to the search; the final candidates are always
    imagined in float32 by every member (``model.imagine``), and the gate decides on those.
    """
    planner = CEMPlanner(
        model.action_spec,
        horizon=horizon,
        population=population,
        elites=max(1, population // 10),
        iterations=iterations,
        seed=seed,
    )
    if seed_loop:
        objective = seed_style_objective(model, obs, particles=particles)
    else:
        objective = model_objective(model, obs, particles=particles, use_value=False)
    with torch.inference_mode(), planning_mode(model, dtype, share_prefixes):
        proposal = planner.propose(objective)
        outcomes = model.imagine(obs, proposal.candidates.tolist(), horizon=horizon)
        decision = AgreementGate(max_replans=0).decide(outcomes, model.action_spec)
    assert decision.action is not None
    return round(decision.action[0]), {"n_evaluated": proposal.n_evaluated}


MODES = ("float32", "float32-shared", "bfloat16", "bfloat16-shared")
"""Search modes: precision, and ``-shared`` for ``share_prefixes`` (``float32`` = the default)."""


def parse_mode(mode: str) -> tuple[str, bool]:
    """``"bfloat16-shared"`` -> (``"bfloat16"``, share_prefixes ``True``)."""
    dtype, _, rest = mode.partition("-")
    if dtype not in ("float32", "bfloat16") or rest not in ("", "shared"):
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return dtype, rest == "shared"


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
    model: EnsembleDynamicsModel | None = None,
    visited: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Time one decision per test state in every mode (interleaved, so noise hits all alike).

    Per state the fastest of ``repeats`` decisions counts; rows report the median over states.
    Every mode other than the first also reports ``match_first``: the share of states where it
    chose the same first action as the first mode (put ``float32``, the reference, first).
    ``seed_loop`` adds a row for the seed's one-candidate-at-a-time loop (float32, 1 repeat).
    """
    if model is None or visited is None:
        model, visited = make_model(ensemble, hidden, layers)
    xs = test_states(visited, states)
    runs = [(m, *parse_mode(m), False) for m in modes]
    if seed_loop:
        runs.append(("seed-loop", "float32", False, True))
    ms: dict[str, list[float]] = {r[0]: [] for r in runs}
    acts: dict[str, list[int]] = {r[0]: [] for r in runs}
    for s in xs:
        for name, dtype, share, loop in runs:
            times = []
            for _ in range(1 if loop else repeats):
                t0 = time.perf_counter()
                act, _ = decide(
                    model,
                    s,
                    population=population,
                    horizon=horizon,
                    iterations=iterations,
                    particles=particles,
                    dtype=dtype,
                    share_prefixes=share,
                    seed_loop=loop,
                )
                times.append((time.perf_counter() - t0) * 1e3)
            ms[name].append(min(times))
            acts[name].append(act)
    nominal = iterations * population * particles * horizon * flops_per_row_step(model)
    ref = runs[0][0]
    rows = []
    for name, *_ in runs:
        med = statistics.median(ms[name])
        row: dict[str, Any] = {
            "mode": name,
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
            "nominal_gflop": round(nominal / 1e9, 3),
            "effective_gflops": round(nominal / (med * 1e-3) / 1e9, 1),
            "actions": acts[name],
        }
        if name != ref:
            same = [a == b for a, b in zip(acts[name], acts[ref], strict=True)]
            row["match_first"] = round(float(np.mean(same)), 3)
            row["speedup_vs_first"] = round(statistics.median(ms[ref]) / med, 2)
        rows.append(row)
    return rows


def run_suite(args: argparse.Namespace) -> dict[str, Any]:
    """The BENCHMARKS.md table: every horizon x particles x mode, plus the seed's loop."""
    model, visited = make_model(args.ensemble, args.hidden, args.layers)
    ceiling = {dt: round(matmul_ceiling(dt), 1) for dt in ("float32", "bfloat16")}
    modes = [m for m in args.modes if _supports_modes() or parse_mode(m) == ("float32", False)]
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


def table(payload: dict[str, Any]) -> str:
    """Markdown table of a :func:`run_suite` payload."""
    ceiling = payload["matmul_ceiling_gflops"]
    out = [
        "| H | particles | mode | ms per decision: median (min-max over states) "
        "| vs float32 | same action as float32 | nominal GFLOP | effective GFLOP/s "
        "| % of matmul ceiling |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in payload["rows"]:
        if r.get("vs_seed_loop"):
            continue
        peak = ceiling["bfloat16" if r["mode"].startswith("bfloat16") else "float32"]
        out.append(
            f"| {r['horizon']} | {r['particles']} | {r['mode']} "
            f"| {r['ms_median']:.1f} ({r['ms_min']:.1f}-{r['ms_max']:.1f}) "
            f"| {r.get('speedup_vs_first', 1.0):.2f}x | {_pct(r.get('match_first', 1.0))} "
            f"| {r['nominal_gflop']:.2f} | {r['effective_gflops']:.0f} "
            f"| {100 * r['effective_gflops'] / peak:.0f}% |"
        )
    loops = [r for r in payload["rows"] if r.get("vs_seed_loop")]
    if loops:
        out += [
            "",
            "| H | planner | ms per decision | the seed's loop takes | same action as float32 |",
            "|---:|---|---:|---:|---:|",
        ]
        for r in loops:
            seed = next(
                x for x in loops if x["horizon"] == r["horizon"] and x["mode"] == "seed-loop"
            )
            times = "(itself)" if r is seed else f"{seed['ms_median'] / r['ms_median']:.0f}x longer"
            out.append(
                f"| {r['horizon']} | {r['mode']} | {r['ms_median']:.0f} | {times} "
                f"| {_pct(r.get('match_first', 1.0))} |"
            )
    return "\n".join(out)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


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
        "--dtype", choices=["float32", "bfloat16"], default="float32", help="search precision"
    )
    p.add_argument(
        "--share-prefixes",
        action="store_true",
        help="compute action prefixes shared by several candidates once (discrete actions)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--states", type=int, default=8, help="test states (median over them)")
    p.add_argument("--repeats", type=int, default=3, help="timed decisions per state (min)")
    p.add_argument("--seed-loop", action="store_true", help="plan the seed's way instead")
    p.add_argument("--compare", action="store_true", help="also run float32 and match choices")
    p.add_argument("--ceiling", action="store_true", help="also measure the matmul ceiling")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run_cli(args: argparse.Namespace) -> int:
    """``wm-agents bench plan``: time one configuration, print ``ms_median`` (or JSON)."""
    torch.set_num_threads(max(1, args.threads))
    mode = args.dtype + ("-shared" if args.share_prefixes else "")
    modes = ["float32", mode] if args.compare and mode != "float32" else [mode]
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
        seed_loop=args.seed_loop,
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


def main(argv: Sequence[str] | None = None) -> int:
    """``python benchmarks/planning_speed.py``: the whole table to JSON."""
    p = argparse.ArgumentParser(description="planning speed table (see BENCHMARKS.md)")
    p.add_argument("--population", type=int, default=500)
    p.add_argument("--horizons", type=int, nargs="+", default=[15, 30])
    p.add_argument("--particles-list", type=int, nargs="+", default=[1, 5, 20])
    p.add_argument("--ensemble", type=int, default=5)
    p.add_argument("--hidden", type=int, default=200)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--modes", nargs="+", default=list(MODES), help="first = reference")
    p.add_argument("--states", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed-loop-states", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS_DIR / "planning_speed.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    payload = run_suite(args)
    write_json(args.out, payload)
    print(f"matmul ceiling (GFLOP/s, 1024^3): {payload['matmul_ceiling_gflops']}")
    print(table(payload))
    return 0
