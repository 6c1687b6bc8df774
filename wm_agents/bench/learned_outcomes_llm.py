"""The embedded LLM's zero-shot success probabilities for a subset of the benchmark's calls.

Asking SmolLM2-135M about one call (k = 3 samples) takes several seconds on a shared 2-core
machine, so the LLM is asked only about a fixed random subset of held-out calls (per split
seed, a uniform sample of its held-out calls drawn with ``random.Random(f"llm:{seed}")``), once;
the answers go to a JSON-lines cache keyed by call id and a digest of the call, so an
interrupted run resumes and a changed data set is noticed instead of silently reused.

Scheduling: four workers, each with its own :class:`LLMOutcomePredictor` (``max_concurrency=1``),
each asking one call at a time, its three samples one after another, so the server's four slots
are busy and a slot's second and third samples reuse the prompt it has just read (llama.cpp's
prompt cache).  The predictions are the predictor's own (zero-shot: no experience), unchanged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wm_agents.bench.toolworld import TOOLS, ToolCallRecord
from wm_agents.llm.schemas import stable_hash

__all__ = ["call_digest", "llm_subset", "load_llm_cache", "measure_llm_priors"]

logger = logging.getLogger(__name__)


def call_digest(row: ToolCallRecord) -> str:
    """What the LLM is shown about a call (tool, arguments, task, context), hashed."""
    return stable_hash(row.tool, row.args, row.task, row.context)[:16]


def llm_subset(
    rows_by_seed: dict[int, Sequence[ToolCallRecord]], per_seed: int
) -> dict[int, list[ToolCallRecord]]:
    """Per split seed, a uniform sample of ``per_seed`` of its held-out calls (fixed seed)."""
    out = {}
    for seed, rows in sorted(rows_by_seed.items()):
        ordered = sorted(rows, key=lambda r: r.id)
        k = min(per_seed, len(ordered))
        out[seed] = random.Random(f"llm:{seed}").sample(ordered, k)
    return out


def load_llm_cache(path: Path) -> dict[str, dict[str, Any]]:
    """Call id -> cached answer (``p_llm``, ``status``, ``digest``...); empty when missing."""
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            out[rec["id"]] = rec
    return out


async def measure_llm_priors(
    rows: Sequence[ToolCallRecord],
    cache_path: Path,
    *,
    samples: int = 3,
    temperature: float = 0.7,
    seed: int = 0,
    workers: int = 4,
    timeout_s: float = 180.0,
) -> dict[str, dict[str, Any]]:
    """Ask the configured LLM (the embedded one by default) about every call not yet cached.

    Returns the cache (call id -> answer) for ``rows``.

    Raises:
        ValueError: the cache holds an answer for a call id whose digest differs (the data set
            changed; delete the cache to measure again).
    """
    from wm_agents.llm.config import open_chat_model, resolve_llm_settings
    from wm_agents.llm.predictor import LLMOutcomePredictor

    cache = load_llm_cache(cache_path)
    for r in rows:
        if r.id in cache and cache[r.id]["digest"] != call_digest(r):
            raise ValueError(
                f"{cache_path} answers call {r.id} for a different call (the data set changed); "
                "delete the file to measure again"
            )
    todo = [r for r in rows if r.id not in cache]
    logger.info("LLM priors: %d cached, %d to ask", len(rows) - len(todo), len(todo))
    if todo:
        specs = [t.spec() for t in TOOLS.values()]
        settings = resolve_llm_settings()
        options = {"parallel": workers, "threads": 1}
        with open_chat_model(settings, timeout_s=timeout_s, server_options=options) as model:
            queue = list(reversed(todo))
            start = time.perf_counter()
            with cache_path.open("a") as fh:

                async def worker() -> None:
                    predictor = LLMOutcomePredictor(
                        model,
                        tools=specs,
                        samples=samples,
                        temperature=temperature,
                        seed=seed,
                        max_concurrency=1,
                        timeout_s=timeout_s,
                    )
                    while queue:
                        row = queue.pop()
                        t0 = time.perf_counter()
                        outcome = (await predictor.aimagine(row.state(), [row.call()]))[0]
                        rec = {
                            "id": row.id,
                            "digest": call_digest(row),
                            "status": outcome.status,
                            "p_llm": outcome.prediction.get("llm_success_probability"),
                            "n_valid": outcome.prediction.get("uncertainty_parts", {}).get(
                                "n_valid", 0
                            ),
                            "uncertainty": outcome.uncertainty,
                            "reason": outcome.reason,
                            "predicted_result": outcome.prediction.get("predicted_result"),
                            "success": row.success,
                            "wall_s": round(time.perf_counter() - t0, 2),
                            "model": settings.describe(),
                        }
                        cache[row.id] = rec
                        fh.write(json.dumps(rec) + "\n")
                        fh.flush()
                        done = len(todo) - len(queue)
                        if done % 20 == 0:
                            rate = (time.perf_counter() - start) / done
                            print(
                                f"LLM priors: {done}/{len(todo)} ({rate:.1f} s per call)",
                                flush=True,
                            )

                await asyncio.gather(*(worker() for _ in range(workers)))
    return {r.id: cache[r.id] for r in rows}
