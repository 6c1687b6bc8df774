"""Does experience make the LLM outcome predictor right more often?  Measured on real tool calls.

The calls in ``wm_agents/bench/data/tool_calls.json`` are executed for real, in order, in a fresh
temporary folder (file operations, arithmetic, table lookups that fail), so every outcome is
known.  Each call is first *imagined* with the experience of the calls before it only (in
sequence: never from the call itself), then its real outcome is learned.  Reported: accuracy
and Brier score of the success prediction

* before experience: the LLM's own probability (mean of k samples);
* after experience: the LLM's probability combined with the evidence of past calls (exact
  repeats and lexically similar calls, see ``wm_agents/llm/memory.py``);
* after, exact repeats only: the same with similar calls switched off (measures the lexical
  similarity's share);

over all calls, first-time calls, retries, and the two repeats whose world changed.

Run (embedded model, offline; about 5 minutes on a shared 2-core machine)::

    wm-agents bench llm-calibration --samples 3

``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` / ``WM_AGENTS_LLM_MODEL`` point it at another model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wm_agents.bench.toolworld.tools import WorkspaceTool, object_schema
from wm_agents.core import Transition
from wm_agents.llm.config import open_chat_model, resolve_llm_settings
from wm_agents.llm.memory import ExperienceMemory
from wm_agents.llm.predictor import LLMOutcomePredictor
from wm_agents.llm.schemas import LLMState, ToolCallCandidate
from wm_agents.outputs import check_output_file, write_text_with_fallback

__all__ = ["DATA", "add_arguments", "execute_calls", "load_calls", "run_cli", "summarize"]

DATA = Path(__file__).resolve().parent / "data" / "tool_calls.json"
"""The calls, their situations and recorded outcomes (shipped with the package)."""

CITIES = {"paris": "France", "rome": "Italy", "madrid": "Spain", "berlin": "Germany"}


def _read_file(root: Path, path: str) -> str:
    return (root / path).read_text()


def _write_file(root: Path, path: str, content: str) -> str:
    (root / path).write_text(content)  # no parents=True: a missing folder is an error
    return f"wrote {len(content)} characters to {path}"


def _list_dir(root: Path, path: str) -> str:
    return ", ".join(sorted(p.name for p in (root / path).iterdir()))


def _make_dir(root: Path, path: str) -> str:
    (root / path).mkdir()
    return f"created {path}"


def _delete_file(root: Path, path: str) -> str:
    (root / path).unlink()
    return f"deleted {path}"


def _divide(root: Path, a: float, b: float) -> str:
    return repr(a / b)


def _sqrt(root: Path, x: float) -> str:
    return repr(math.sqrt(x))


def _parse_int(root: Path, text: str) -> str:
    return repr(int(text))


def _lookup(root: Path, key: str) -> str:
    return CITIES[key]


# A real tool: its metadata for the predictor and the function that runs it (``fn(root, **args)``).
ToyTool = WorkspaceTool
_params = object_schema


TOOLS: dict[str, ToyTool] = {
    t.name: t
    for t in [
        ToyTool(
            "read_file",
            "Read a text file and return its content.",
            _params(path="string"),
            _read_file,
        ),
        ToyTool(
            "write_file",
            "Write text to a file (its folder must exist).",
            _params(path="string", content="string"),
            _write_file,
        ),
        ToyTool("list_dir", "List the names in a folder.", _params(path="string"), _list_dir),
        ToyTool("make_dir", "Create a new folder.", _params(path="string"), _make_dir),
        ToyTool("delete_file", "Delete a file.", _params(path="string"), _delete_file),
        ToyTool("divide", "Divide a by b.", _params(a="number", b="number"), _divide),
        ToyTool("sqrt", "Square root of x.", _params(x="number"), _sqrt),
        ToyTool("parse_int", "Parse text as an integer.", _params(text="string"), _parse_int),
        ToyTool("lookup", "Country of a city from the city table.", _params(key="string"), _lookup),
    ]
}


@dataclass(frozen=True)
class ExecutedCall:
    """One call of the data set, run for real."""

    index: int
    state: LLMState
    call: ToolCallCandidate
    result: str
    success: bool
    expected_success: bool
    repeat: bool
    world_changed: bool


def load_calls(path: Path = DATA) -> dict[str, Any]:
    """The data set (calls, situations and the files the folder starts with)."""
    return json.loads(path.read_text())


def execute_calls(data: dict[str, Any], root: Path) -> list[ExecutedCall]:
    """Run every call for real, in order, in ``root`` (which gets the setup files first)."""
    for rel, text in data["setup_files"].items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    out = []
    for i, row in enumerate(data["calls"]):
        situation = data["situations"][row["situation"]]
        state = LLMState(task=situation["task"], context=situation["context"])
        call = ToolCallCandidate(name=row["tool"], args=row["args"])
        try:
            result, success = TOOLS[call.name].fn(root, **call.args), True
        except Exception as exc:  # the real outcome of a failing tool is its error
            result, success = f"{type(exc).__name__}: {exc}", False
        out.append(
            ExecutedCall(
                index=i,
                state=state,
                call=call,
                result=result.replace(str(root), "."),
                success=success,
                expected_success=bool(row["success"]),
                repeat=bool(row.get("repeat", False)),
                world_changed=bool(row.get("world_changed", False)),
            )
        )
    return out


def _metrics(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    if not rows:
        return {"n": 0, "accuracy": math.nan, "brier": math.nan}
    ys = [1.0 if r["success"] else 0.0 for r in rows]
    ps = [r[key] for r in rows]
    acc = sum((p >= 0.5) == (y == 1.0) for p, y in zip(ps, ys, strict=True)) / len(rows)
    brier = sum((p - y) ** 2 for p, y in zip(ps, ys, strict=True)) / len(rows)
    return {"n": len(rows), "accuracy": acc, "brier": brier}


async def evaluate(predictor: LLMOutcomePredictor, calls: list[ExecutedCall]) -> list[dict]:
    """Imagine each call with the experience of the earlier ones, then learn its outcome."""
    exact_only = ExperienceMemory(similarity=lambda *_: 0.0)  # similar calls switched off
    rows = []
    for c in calls:
        outcome = (await predictor.aimagine(c.state, [c.call]))[0]
        if outcome.status == "ok":
            p_llm = outcome.prediction["llm_success_probability"]
            p_after = outcome.prediction["success_probability"]
        else:  # the LLM failed: it knows nothing (0.5); experience still counts
            p_llm = 0.5
            evidence = await predictor.memory.aevidence(c.state, c.call)
            p_after = evidence.combine(0.5, predictor.prior_strength)[0]
        evidence_exact = await exact_only.aevidence(c.state, c.call)
        p_exact = evidence_exact.combine(p_llm, predictor.prior_strength)[0]
        await predictor.alearn(
            [
                Transition(
                    state=c.state,
                    action=c.call.as_dict(),
                    result=c.result,
                    success=c.success,
                    prediction=outcome,
                )
            ]
        )
        await exact_only.arecord(c.state, c.call, result=c.result, success=c.success)
        rows.append(
            {
                "index": c.index,
                "tool": c.call.name,
                "args": c.call.args,
                "success": c.success,
                "repeat": c.repeat,
                "world_changed": c.world_changed,
                "status": outcome.status,
                "p_before": p_llm,
                "p_after": p_after,
                "p_after_exact_only": p_exact,
                "predicted_result": outcome.prediction.get("predicted_result"),
                "real_result": c.result,
                "uncertainty": outcome.uncertainty,
            }
        )
        print(
            f"{c.index:2d} {c.call.name:11s} {json.dumps(c.call.args):45.45s} real={c.success!s:5s}"
            f" before={p_llm:.2f} after={p_after:.2f} {'repeat' if c.repeat else ''}",
            flush=True,
        )
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy and Brier per subset (all, first-time, retries, world changed) and variant."""
    subsets = {
        "all": rows,
        "first-time calls": [r for r in rows if not r["repeat"]],
        "retries (repeat, world unchanged)": [
            r for r in rows if r["repeat"] and not r["world_changed"]
        ],
        "repeats after the world changed": [r for r in rows if r["world_changed"]],
    }
    variants = {
        "before (LLM alone)": "p_before",
        "after (LLM + exact + similar)": "p_after",
        "after (LLM + exact only)": "p_after_exact_only",
    }
    return {
        name: {v: _metrics(subset, key) for v, key in variants.items()}
        for name, subset in subsets.items()
    }


def markdown(summary: dict[str, Any]) -> str:
    """The summary as a markdown table."""
    lines = [
        "| calls | n | variant | accuracy | Brier |",
        "|---|---:|---|---:|---:|",
    ]
    for subset, variants in summary.items():
        for variant, m in variants.items():
            lines.append(
                f"| {subset} | {m['n']} | {variant} | {m['accuracy']:.3f} | {m['brier']:.3f} |"
            )
    return "\n".join(lines)


async def _amain(args: argparse.Namespace) -> dict[str, Any]:
    data = load_calls()
    with tempfile.TemporaryDirectory(prefix="wm-agents-calls-") as tmp:
        calls = execute_calls(data, Path(tmp))
    mismatched = [c.index for c in calls if c.success != c.expected_success]
    if mismatched:
        raise SystemExit(f"real outcomes differ from the data set at calls {mismatched}")
    settings = resolve_llm_settings()
    with open_chat_model(settings, server_options={"parallel": 4}) as model:
        predictor = LLMOutcomePredictor(
            model,
            tools=[t.spec() for t in TOOLS.values()],
            samples=args.samples,
            temperature=args.temperature,
            seed=args.seed,
            max_concurrency=4,
        )
        start = time.perf_counter()
        rows = await evaluate(predictor, calls)
        wall = time.perf_counter() - start
        calibration = await predictor.memory.acalibration()
    summary = summarize(rows)
    return {
        "model": settings.describe(),
        "samples": args.samples,
        "temperature": args.temperature,
        "seed": args.seed,
        "n_calls": len(rows),
        "n_unknown": sum(r["status"] != "ok" for r in rows),
        "majority_class_accuracy": max(
            sum(r["success"] for r in rows), sum(not r["success"] for r in rows)
        )
        / len(rows),
        "wall_s": wall,
        "summary": summary,
        "calibration_per_tool": calibration,
        "rows": rows,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``wm-agents bench llm-calibration``."""
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")


def run_cli(args: argparse.Namespace) -> int:
    """Run the benchmark; print the tables; optionally write all rows as JSON."""
    if args.out is not None:
        check_output_file(args.out)  # before minutes of model calls, not after
    report = asyncio.run(_amain(args))
    print()
    print(f"model: {report['model']}; k={report['samples']} samples; seed {report['seed']}")
    print(
        f"{report['n_calls']} calls, {report['n_unknown']} unknown; majority class "
        f"{report['majority_class_accuracy']:.3f}; wall {report['wall_s']:.0f}s"
    )
    print(markdown(report["summary"]))
    print("\nper-tool calibration (over all calls, learned in sequence):")
    print("| tool | n | accuracy before | Brier before | accuracy after | Brier after |")
    print("|---|---:|---:|---:|---:|---:|")
    for tool, m in sorted(report["calibration_per_tool"].items()):
        print(
            f"| {tool} | {m.get('n', 0):.0f} | {m.get('accuracy_llm', math.nan):.2f} | "
            f"{m.get('brier_llm', math.nan):.3f} | {m.get('accuracy', math.nan):.2f} | "
            f"{m.get('brier', math.nan):.3f} |"
        )
    if args.out is not None:
        write_text_with_fallback(args.out, json.dumps(report, indent=1, default=str))
    return 0
