"""Experience memory: real tool outcomes kept in a LangGraph ``BaseStore``, weighed as evidence.

Why weighed, not shown: pasting past outcomes into the prompt of a small model made it worse
(measured: 18/30 right zero-shot, 13/30 with examples; it copies their labels).  So past
outcomes enter *outside* the prompt, as a Beta-Bernoulli posterior over success:

* the LLM's probability ``p`` is a prior of limited strength ``s``: ``Beta(s*p, s*(1-p))``;
* each past call of the same tool adds its outcome with weight ``w``: an exact repeat (same
  tool, same arguments, same situation) weighs ``exact_weight`` (it dominates: an agent retrying
  a failing call should be told it fails), a similar call weighs ``similarity ** 2`` when its
  similarity is at least ``min_similarity``;
* the posterior mean ``(s*p + sum w*y) / (s + sum w)`` is the predicted success probability.

Similarity is lexical (token Jaccard of the arguments, and of the task and context), measured
in BENCHMARKS.md.  A store built with a semantic index (``index={"embed": ...}``) can be used
instead with ``similarity="store"``: then the store's search scores are the similarities.

Records live under ``namespace + ("calls", tool_name)``; per-tool calibration counters (Brier
score and accuracy of the success prediction, of the LLM alone and after experience) under
``namespace + ("calibration",)``.  :meth:`ExperienceMemory.arecords` reads every call record
back (the learned outcome model, :mod:`wm_agents.learned`, trains on them).
"""

from __future__ import annotations

import functools
import math
import re
import threading
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Literal

from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore

from wm_agents.llm.schemas import LLMState, ToolCallCandidate, canonical_json, stable_hash
from wm_agents.llm.sync import run_sync

__all__ = ["Evidence", "ExperienceMemory", "lexical_similarity"]

RECORD_TEXT_CHARS = 4000
"""Characters of the task and of the context kept in a call record."""

_TOKEN = re.compile(r"[A-Za-z0-9_]+|[^\sA-Za-z0-9_]")


def _tokens(text: str) -> frozenset[str]:
    return _tokens_cached(text) if len(text) <= RECORD_TEXT_CHARS else _tokenize(text)


def _tokenize(text: str) -> frozenset[str]:
    return frozenset(t.lower() for t in _TOKEN.findall(text) if t.strip() and t not in '{}[]":,')


# Every prediction re-reads the situations of the tool's past calls; most are the same few
# texts, so their tokens are cached (bounded; long texts are not kept).
_tokens_cached = functools.lru_cache(maxsize=8192)(_tokenize)


def _jaccard(a: AbstractSet[str], b: AbstractSet[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _arg_tokens(args: dict[str, Any]) -> set[str]:
    # Whole "key=value" pairs plus their word pieces: equal values count most, similar paths
    # or numbers still overlap.
    out: set[str] = set()
    for key, value in args.items():
        text = value if isinstance(value, str) else canonical_json(value)
        out.add(f"{key}={text}".lower())
        out |= _tokens(text)
    return out


def lexical_similarity(
    args_a: dict[str, Any], situation_a: str, args_b: dict[str, Any], situation_b: str
) -> float:
    """Similarity in ``[0, 1]`` of two calls of the same tool: ``0.75 * jaccard(arguments) +
    0.25 * jaccard(task and context words)``."""
    sim_args = _jaccard(_arg_tokens(args_a), _arg_tokens(args_b))
    sim_situation = _jaccard(_tokens(situation_a), _tokens(situation_b))
    return 0.75 * sim_args + 0.25 * sim_situation


@dataclass(frozen=True)
class Evidence:
    """What experience says about one candidate.

    Attributes:
        n_similar: past calls of the same tool that weighed in (exact repeats included).
        n_exact: exact repeats among them (same arguments, same situation).
        weight: total evidence weight ``sum w``.
        weighted_success: ``sum w*y`` (``y`` = 1 for success).
        neighbours: the most similar past calls (args, success, similarity, result snippet).
        exact_result: the real result of the most recent exact repeat, if any.
    """

    n_similar: int = 0
    n_exact: int = 0
    weight: float = 0.0
    weighted_success: float = 0.0
    neighbours: list[dict[str, Any]] = field(default_factory=list)
    exact_result: str | None = None

    @property
    def exact_repeat(self) -> bool:
        """True when this exact call was made before in the same situation."""
        return self.n_exact > 0

    @property
    def observed_success_rate(self) -> float | None:
        """Weighted success rate of the similar past calls, or None without any."""
        return self.weighted_success / self.weight if self.weight > 0 else None

    def combine(self, p_llm: float, prior_strength: float) -> tuple[float, float]:
        """Posterior success probability and the share of it that came from experience."""
        s = max(prior_strength, 1e-9)
        p = (s * p_llm + self.weighted_success) / (s + self.weight)
        return min(1.0, max(0.0, p)), self.weight / (s + self.weight)

    def as_dict(self) -> dict[str, Any]:
        """JSON-serializable summary for ``Outcome.prediction["evidence"]``."""
        rate = self.observed_success_rate
        return {
            "n_similar": self.n_similar,
            "n_exact": self.n_exact,
            "exact_repeat": self.exact_repeat,
            "weight": round(self.weight, 4),
            "observed_success_rate": None if rate is None else round(rate, 4),
            "exact_result": None if self.exact_result is None else self.exact_result[:300],
            "neighbours": self.neighbours,
        }


class ExperienceMemory:
    """Real outcomes of past tool calls, and per-tool calibration, in a LangGraph ``BaseStore``.

    Args:
        store: an ``InMemoryStore`` by default; pass a ``SqliteStore``/``PostgresStore`` (or
            their async variants) to keep experience across runs.
        namespace: prefix of every key this memory writes.
        similarity: ``"lexical"`` (default) or ``"store"`` (the store's semantic index scores;
            needs a store built with ``index=``), or a callable
            ``(args_a, situation_a, args_b, situation_b) -> [0, 1]``.
        exact_weight: weight of one exact repeat.
        min_similarity: similar calls below this similarity are ignored.
        max_scan: most past calls of one tool read per prediction.
    """

    def __init__(
        self,
        store: BaseStore | None = None,
        *,
        namespace: tuple[str, ...] = ("wm_agents", "llm_experience"),
        similarity: Literal["lexical", "store"]
        | Callable[[dict[str, Any], str, dict[str, Any], str], float] = "lexical",
        exact_weight: float = 8.0,
        min_similarity: float = 0.3,
        max_scan: int = 500,
    ) -> None:
        if exact_weight <= 0 or not 0 <= min_similarity <= 1 or max_scan < 1:
            raise ValueError("need exact_weight > 0, 0 <= min_similarity <= 1 and max_scan >= 1")
        self.store = store if store is not None else InMemoryStore()
        self.namespace = tuple(namespace)
        self.similarity = similarity
        self.exact_weight = float(exact_weight)
        self.min_similarity = float(min_similarity)
        self.max_scan = int(max_scan)
        self._lock = threading.Lock()
        self._counter = 0

    # -- store access: async first, sync fallback (SqliteStore has no async API) ------------

    async def _asearch(self, ns: tuple[str, ...], **kwargs: Any) -> list[Any]:
        try:
            return list(await self.store.asearch(ns, **kwargs))
        except NotImplementedError:
            return list(self.store.search(ns, **kwargs))

    async def _aput(self, ns: tuple[str, ...], key: str, value: dict[str, Any]) -> None:
        index: Any = None if self.similarity == "store" else False
        try:
            await self.store.aput(ns, key, value, index=index)
        except NotImplementedError:
            self.store.put(ns, key, value, index=index)

    async def _aget(self, ns: tuple[str, ...], key: str) -> Any:
        try:
            return await self.store.aget(ns, key)
        except NotImplementedError:
            return self.store.get(ns, key)

    # -- records --------------------------------------------------------------------------------

    def _calls_ns(self, tool: str) -> tuple[str, ...]:
        return (*self.namespace, "calls", tool)

    def _calibration_ns(self) -> tuple[str, ...]:
        return (*self.namespace, "calibration")

    async def arecord(
        self,
        state: LLMState,
        candidate: ToolCallCandidate,
        *,
        result: Any,
        success: bool,
        p_llm: float | None = None,
        p_final: float | None = None,
    ) -> str:
        """Store one real outcome (and the probabilities predicted before it, if any); update
        the tool's calibration counters.  Returns the record's key."""
        text = result if isinstance(result, str) else canonical_json(result)
        with self._lock:
            self._counter += 1
            seq = self._counter
        key = f"{time.time_ns():020d}-{seq:06d}-{stable_hash(candidate.name, candidate.args)[:8]}"
        value = {
            "tool": candidate.name,
            "args": candidate.as_dict()["args"],
            "args_key": candidate.args_key(),
            "situation_key": state.situation_key(),
            "situation": state.situation_text()[:500],
            # Kept apart, with their line breaks, for learned models (a listing's layout is
            # information); bounded like everything else in a record.
            "task": state.task[:RECORD_TEXT_CHARS],
            "context": state.context[:RECORD_TEXT_CHARS],
            "result": text[:500],
            "success": bool(success),
            "p_llm": p_llm,
            "p_final": p_final,
            # The text a semantic index embeds when similarity="store".
            "text": f"{candidate.name} {candidate.args_key()} {state.situation_text()}"[:1000],
        }
        await self._aput(self._calls_ns(candidate.name), key, value)
        if p_llm is not None or p_final is not None:
            await self._aupdate_calibration(candidate.name, bool(success), p_llm, p_final)
        return key

    async def _aupdate_calibration(
        self, tool: str, success: bool, p_llm: float | None, p_final: float | None
    ) -> None:
        item = await self._aget(self._calibration_ns(), tool)
        counts = dict(item.value) if item is not None else {}
        y = 1.0 if success else 0.0
        for prefix, p in (("llm", p_llm), ("final", p_final)):
            if p is None or not math.isfinite(p):
                continue
            counts[f"{prefix}_n"] = counts.get(f"{prefix}_n", 0) + 1
            counts[f"{prefix}_brier_sum"] = counts.get(f"{prefix}_brier_sum", 0.0) + (p - y) ** 2
            counts[f"{prefix}_correct"] = counts.get(f"{prefix}_correct", 0) + int(
                (p >= 0.5) == success
            )
        await self._aput(self._calibration_ns(), tool, counts)

    async def acalibration(self) -> dict[str, dict[str, float]]:
        """Per tool: ``n``, ``brier_llm``/``accuracy_llm`` (the LLM alone, before experience)
        and ``brier``/``accuracy`` (after combining with experience)."""
        items = await self._asearch(self._calibration_ns(), limit=10_000)
        out: dict[str, dict[str, float]] = {}
        for item in items:
            c = item.value
            row: dict[str, float] = {}
            for prefix, suffix in (("llm", "_llm"), ("final", "")):
                n = c.get(f"{prefix}_n", 0)
                if n:
                    row["n"] = max(row.get("n", 0), n)
                    row[f"brier{suffix}"] = c[f"{prefix}_brier_sum"] / n
                    row[f"accuracy{suffix}"] = c[f"{prefix}_correct"] / n
            out[item.key] = row
        return out

    async def arecords(self, *, limit: int = 100_000, page: int = 1000) -> list[dict[str, Any]]:
        """The newest ``limit`` call records of every tool, oldest first (what a learned model
        trains on).  Each is the dict :meth:`arecord` stored."""
        prefix = (*self.namespace, "calls")
        items: list[Any] = []
        offset = 0
        while True:
            batch = await self._asearch(prefix, limit=page, offset=offset)
            if not batch:
                break
            items.extend(batch)
            offset += len(batch)
        items.sort(key=lambda item: item.key)  # keys start with a timestamp
        return [dict(item.value) for item in items[-limit:]] if limit > 0 else []

    # -- evidence ---------------------------------------------------------------------------------

    async def aevidence(self, state: LLMState, candidate: ToolCallCandidate) -> Evidence:
        """Weigh the past calls of the same tool for this candidate (see the module docstring)."""
        situation_key = state.situation_key()
        situation = state.situation_text()
        args_key = candidate.args_key()
        ns = self._calls_ns(candidate.name)
        if self.similarity == "store":
            query = f"{candidate.name} {args_key} {situation}"[:1000]
            items = await self._asearch(ns, query=query, limit=self.max_scan)
        else:
            items = await self._asearch(ns, limit=self.max_scan)
        # Keys start with a timestamp: newest first, so the latest exact repeat speaks first.
        items.sort(key=lambda item: item.key, reverse=True)
        exact_result: str | None = None
        weight = 0.0
        weighted_success = 0.0
        n_similar = n_exact = 0
        scored: list[tuple[float, dict[str, Any]]] = []
        for item in items:
            rec = item.value
            exact = rec.get("args_key") == args_key and rec.get("situation_key") == situation_key
            if exact:
                sim, w = 1.0, self.exact_weight
                n_exact += 1
                if exact_result is None:
                    exact_result = str(rec.get("result", ""))
            else:
                sim = self._similarity(candidate, situation, rec, getattr(item, "score", None))
                if sim < self.min_similarity:
                    continue
                w = sim * sim
            n_similar += 1
            weight += w
            weighted_success += w * (1.0 if rec.get("success") else 0.0)
            scored.append((sim, rec))
        scored.sort(key=lambda pair: -pair[0])  # stable: equal similarity keeps newest first
        neighbours = [
            {
                "args": rec.get("args"),
                "success": rec.get("success"),
                "similarity": round(sim, 3),
                "result": str(rec.get("result", ""))[:120],
            }
            for sim, rec in scored[:3]
        ]
        return Evidence(n_similar, n_exact, weight, weighted_success, neighbours, exact_result)

    def _similarity(
        self, candidate: ToolCallCandidate, situation: str, rec: dict[str, Any], score: Any
    ) -> float:
        if self.similarity == "store":
            return min(1.0, max(0.0, float(score))) if score is not None else 0.0
        if callable(self.similarity):
            fn = self.similarity
        else:
            fn = lexical_similarity
        value = fn(candidate.args, situation, rec.get("args") or {}, rec.get("situation", ""))
        return min(1.0, max(0.0, float(value)))

    # -- sync conveniences ------------------------------------------------------------------------

    def evidence(self, state: Any, candidate: Any) -> Evidence:
        """Sync :meth:`aevidence` (accepts any state/candidate form)."""
        return run_sync(
            self.aevidence(LLMState.from_any(state), ToolCallCandidate.from_any(candidate))
        )

    def calibration(self) -> dict[str, dict[str, float]]:
        """Sync :meth:`acalibration`."""
        return run_sync(self.acalibration())
