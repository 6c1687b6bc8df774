"""Wall time of imagining 8 candidate tool calls x 3 samples, concurrently vs one at a time.

One embedded server (8 parallel slots, 1 thread) serves every run; each run uses a fresh
predictor (no cache) and its own seeds, so no answer is reused.  Reported: the wall time of one
call (1 candidate x 1 sample), and of the 24 calls with ``max_concurrency`` 1, 4 and 8.

Run (about 3 minutes on a shared 2-core machine)::

    wm-agents bench llm-concurrency
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from wm_agents.llm.config import open_chat_model, resolve_llm_settings
from wm_agents.llm.predictor import LLMOutcomePredictor
from wm_agents.outputs import check_output_file, write_text_with_fallback

__all__ = ["add_arguments", "run_cli", "timed"]

STATE = {
    "task": "Tidy the workspace and compute the report totals.",
    "context": "Workspace folder contains notes.txt, todo.txt and data/numbers.txt.",
}
TOOLS = [
    {"name": "read_file", "description": "Read a text file and return its content."},
    {"name": "divide", "description": "Divide a by b."},
    {"name": "lookup", "description": "Country of a city from the city table."},
]
CANDIDATES = [
    {"name": "read_file", "args": {"path": "notes.txt"}},
    {"name": "read_file", "args": {"path": "missing.txt"}},
    {"name": "read_file", "args": {"path": "data/numbers.txt"}},
    {"name": "divide", "args": {"a": 10, "b": 4}},
    {"name": "divide", "args": {"a": 1, "b": 0}},
    {"name": "lookup", "args": {"key": "paris"}},
    {"name": "lookup", "args": {"key": "atlantis"}},
    {"name": "lookup", "args": {"key": "rome"}},
]


async def timed(model, candidates, *, samples: int, concurrency: int, seed: int) -> dict:
    """Wall time of one ``aimagine`` with a fresh predictor."""
    predictor = LLMOutcomePredictor(
        model, tools=TOOLS, samples=samples, max_concurrency=concurrency, seed=seed
    )
    start = time.perf_counter()
    outcomes = await predictor.aimagine(STATE, candidates)
    wall = time.perf_counter() - start
    return {
        "candidates": len(candidates),
        "samples": samples,
        "max_concurrency": concurrency,
        "calls": predictor.stats["calls"],
        "unknown": sum(o.status != "ok" for o in outcomes),
        "wall_s": round(wall, 2),
    }


async def _amain(repeats: int) -> list[dict]:
    rows = []
    with open_chat_model(resolve_llm_settings(), server_options={"parallel": 8}) as model:
        # Warm-up: the first request pays for loading pages of the model file.
        await timed(model, CANDIDATES[:1], samples=1, concurrency=1, seed=999)
        seed = 0
        for _ in range(repeats):
            for candidates, samples, concurrency in [
                (CANDIDATES[:1], 1, 1),
                (CANDIDATES, 3, 1),
                (CANDIDATES, 3, 4),
                (CANDIDATES, 3, 8),
            ]:
                seed += 10
                row = await timed(
                    model, candidates, samples=samples, concurrency=concurrency, seed=seed
                )
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``wm-agents bench llm-concurrency``."""
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON")


def run_cli(args: argparse.Namespace) -> int:
    """Run and print one JSON row per measurement."""
    if args.out is not None:
        check_output_file(args.out)  # before minutes of model calls, not after
    rows = asyncio.run(_amain(args.repeats))
    if args.out is not None:
        write_text_with_fallback(args.out, json.dumps(rows, indent=1))
    return 0
