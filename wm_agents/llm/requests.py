"""Requests to the chat model for sampled predictions: one request per sample, cached, retried,
and on llama.cpp pinned to one server slot.

Every sample is one request.  Any OpenAI-compatible model gets standard fields only, with the
JSON schema as ``response_format``.  A llama.cpp server (``backend="llama.cpp"``; ``"auto"``
picks it for the embedded model) gets llama.cpp's own fields in ``extra_body`` instead: a GBNF
``grammar`` for compact JSON (:func:`~wm_agents.llm.schemas.prediction_grammar`),
``cache_prompt``, and ``id_slot`` (``slot``, 0 by default).  Candidates then take turns on that
slot: a priming request (one token, discarded) reads the candidate's prompt in, and its samples
follow, each finding the whole prompt cached.  On a CPU server this loses nothing: decoding
samples together (in several slots, or ``n=k`` in one request) was no faster on one thread, and
each other slot would have read the shared prefix again.

Reproducibility.  Sample ``i`` is asked for with seed ``seed + i``.  On the embedded server the
same seed gives the same sample whatever the server held before, because every sample meets the
same computation: its whole prompt cached, the last prompt token evaluated alone (without the
priming, whichever sample came first evaluated that token together with the call, which changed
later tokens), with flash attention and the host-memory prompt cache off (see
:mod:`wm_agents.llm.server`).  Samples differ with another thread count, llama.cpp build or model
file, and when another client uses the same slot between a candidate's priming and its samples;
``slot=None`` gives up the turns (and this promise) for concurrency.  Remote servers promise
nothing (OpenAI's ``seed`` is best effort).

The call cap (:func:`allocate_samples`): at most ``max_calls_per_decision`` sample slots per
decision.  When ``candidates x samples`` exceeds it, every candidate gets fewer samples
(``cap // n``, the first ``cap % n`` one more); when there are more candidates than the cap,
the candidates beyond it get none (the predictor makes them unknown: "call cap reached").
Cached samples still take their slot.

:class:`SampleRequests` is the request half of
:class:`~wm_agents.llm.predictor.LLMOutcomePredictor` (which inherits it): it reads the
predictor's settings, declared on the class below, and keeps its sample cache and counters.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter, OrderedDict
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

from wm_agents.llm.aggregation import SampleResult
from wm_agents.llm.faults import (
    ModelFault,
    describe_fault,
    is_transient,
    parse_json_text,
    truncate,
)
from wm_agents.llm.schemas import PredictionError, message_text, validate_prediction
from wm_agents.llm.server import EMBEDDED_MODEL_ALIAS

__all__ = ["Backend", "SampleRequests", "allocate_samples", "speaks_llama_cpp", "uses_llama_cpp"]

# The predictor's logger: one name to configure for everything the predictor logs.
logger = logging.getLogger("wm_agents.llm.predictor")

Backend = Literal["auto", "openai", "llama.cpp"]


def speaks_llama_cpp(model: Any) -> bool:
    """Whether the model can carry llama.cpp's own request fields (an ``extra_body`` field)."""
    return "extra_body" in getattr(type(model), "model_fields", {})


def uses_llama_cpp(model: Any, backend: Backend) -> bool:
    """Whether requests to ``model`` carry llama.cpp's own fields: ``backend="llama.cpp"``, or
    ``"auto"`` for the embedded model on a client that can carry them."""
    if backend == "auto":
        named = getattr(model, "model_name", None) == EMBEDDED_MODEL_ALIAS
        return named and speaks_llama_cpp(model)
    return backend == "llama.cpp"


def allocate_samples(n_candidates: int, samples: int, cap: int) -> list[int]:
    """Samples per candidate under a cap on calls per decision (see the module docstring)."""
    if n_candidates * samples <= cap:
        return [samples] * n_candidates
    if n_candidates <= cap:
        base, extra = divmod(cap, n_candidates)
        return [min(samples, base + (1 if i < extra else 0)) for i in range(n_candidates)]
    return [1] * cap + [0] * (n_candidates - cap)


class SampleRequests:
    """Sampled predictions of one prompt: cache, retries with backoff, the llama.cpp slot."""

    # Settings (set by LLMOutcomePredictor.__init__; see its docstring).
    temperature: float
    seed: int
    timeout_s: float
    max_retries: int
    backoff_s: float
    max_tokens: int | None
    cache_size: int
    strict: bool | None
    backend: Backend
    slot: int | None
    stats: Counter[str]
    _schema: dict[str, Any]
    _grammar: str
    _cache: OrderedDict[str, dict[str, Any]]
    _cache_lock: threading.Lock
    _runnables: dict[int, tuple[Any, str]]
    _primer: Any

    def _sample_seed(self, index: int) -> int:
        return self.seed + index

    def _uses_llama_cpp(self, model: BaseChatModel) -> bool:
        return uses_llama_cpp(model, self.backend)

    def _pins_slot(self, model: BaseChatModel) -> bool:
        return self.slot is not None and self._uses_llama_cpp(model)

    def _llama_cpp_body(self, model: BaseChatModel, **fields: Any) -> dict[str, Any]:
        """The model's ``extra_body`` plus llama.cpp's own fields (sent to llama.cpp only):
        the prompt cache, the pinned slot (when ``slot`` is set), and ``fields``."""
        body = {**(getattr(model, "extra_body", None) or {}), "cache_prompt": True, **fields}
        if self.slot is not None:
            body["id_slot"] = self.slot
        return body

    def _runnable(self, model: BaseChatModel, index: int) -> tuple[Any, str]:
        """The runnable for sample ``index`` (cached) and its mode (``structured`` or ``text``)."""
        if index in self._runnables:
            return self._runnables[index]
        fields = getattr(type(model), "model_fields", {})
        update: dict[str, Any] = {}
        if "temperature" in fields:
            update["temperature"] = self.temperature
        if "seed" in fields:
            update["seed"] = self._sample_seed(index)
        if "max_tokens" in fields and self.max_tokens is not None:
            update["max_tokens"] = self.max_tokens
        result: tuple[Any, str]
        if self._uses_llama_cpp(model):
            # Its grammar for compact JSON instead of the schema (whose grammar allows
            # whitespace): the answer is then parsed as text.
            extra = self._llama_cpp_body(model, grammar=self._grammar)
            result = (model.model_copy(update={**update, "extra_body": extra}), "text")
            self._runnables[index] = result
            return result
        sample_model = model.model_copy(update=update) if update else model
        kwargs: dict[str, Any] = {"method": "json_schema", "include_raw": True}
        if self.strict is not None:
            kwargs["strict"] = self.strict
        try:
            result = (sample_model.with_structured_output(self._schema, **kwargs), "structured")
        except (NotImplementedError, TypeError, ValueError):
            try:
                result = (
                    sample_model.with_structured_output(self._schema, include_raw=True),
                    "structured",
                )
            except (NotImplementedError, TypeError, ValueError):
                result = (sample_model, "text")
        self._runnables[index] = result
        return result

    async def _invoke(self, runnable: Any, mode: str, messages: list[BaseMessage]) -> Any:
        """One model call; returns the raw answer object or raises ``ModelFault``."""
        out = await asyncio.wait_for(runnable.ainvoke(messages), timeout=self.timeout_s)
        if mode == "text":
            if getattr(out, "response_metadata", {}).get("finish_reason") == "length":
                raise ModelFault(
                    f"output cut off by the token limit (max_tokens={self.max_tokens})"
                )
            return parse_json_text(message_text(out))
        raw, parsed, error = out.get("raw"), out.get("parsed"), out.get("parsing_error")
        if parsed is not None and error is None:
            return parsed
        meta = getattr(raw, "response_metadata", None) or {}
        refusal = (getattr(raw, "additional_kwargs", None) or {}).get("refusal")
        if refusal or type(error).__name__ == "OpenAIRefusalError":
            raise ModelFault(f"the model refused: {truncate(str(refusal or error), 200)}")
        if meta.get("finish_reason") == "length":
            raise ModelFault(f"output cut off by the token limit (max_tokens={self.max_tokens})")
        if error is not None:
            raise ModelFault(f"unparseable output: {truncate(str(error).splitlines()[0], 200)}")
        text = message_text(raw) if raw is not None else ""
        if text.strip():
            return parse_json_text(text)
        raise ModelFault("empty output")

    async def _sample(
        self,
        model: BaseChatModel,
        messages: list[BaseMessage],
        index: int,
        key: str,
        semaphore: asyncio.Semaphore,
    ) -> SampleResult:
        seed = self._sample_seed(index)
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
        if hit is not None:
            self.stats["cache_hits"] += 1
            return SampleResult(index, seed, prediction=hit, cached=True)
        runnable, mode = self._runnable(model, index)
        error = "no attempt made"
        for attempt in range(self.max_retries + 1):
            try:
                async with semaphore:
                    self.stats["calls"] += 1
                    raw = await self._invoke(runnable, mode, messages)
                prediction = validate_prediction(raw)
            except TimeoutError:
                error = f"timeout after {self.timeout_s:g}s"
            except ModelFault as exc:
                error = str(exc)
            except PredictionError as exc:
                error = f"invalid prediction: {exc}"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any model fault becomes data
                error = describe_fault(exc)
                if is_transient(exc) and attempt < self.max_retries:
                    self.stats["retries"] += 1
                    delay = self.backoff_s * (2**attempt)
                    logger.info("retrying in %.2fs after %s", delay, error)
                    await asyncio.sleep(delay)
                    continue
            else:
                with self._cache_lock:
                    self._cache[key] = prediction
                    while len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
                return SampleResult(index, seed, prediction=prediction)
            break
        self.stats["failures"] += 1
        logger.warning("outcome prediction sample %d failed: %s", index, error)
        return SampleResult(index, seed, error=error)

    async def _samples(
        self,
        model: BaseChatModel,
        messages: list[BaseMessage],
        indexed_keys: list[tuple[int, str]],
        semaphore: asyncio.Semaphore,
        turn: asyncio.Lock | None,
    ) -> list[SampleResult]:
        """Samples ``(index, cache key)`` of one prompt, concurrently.

        With ``turn`` (a pinned llama.cpp slot) they hold it for their candidate's whole turn,
        after a priming request that reads the prompt into the slot: every sample is then a
        full prompt-cache hit, whose last prompt token llama.cpp evaluates alone.  Without the
        priming, the first sample evaluated that token together with the rest of the call and
        later ones alone, which changes the numbers (3 of 12 samples differed), and which one
        came first depended on what the slot held before.
        """
        coros = [self._sample(model, messages, i, key, semaphore) for i, key in indexed_keys]
        if turn is None:
            return list(await asyncio.gather(*coros))
        async with turn:
            with self._cache_lock:
                uncached = any(key not in self._cache for _, key in indexed_keys)
            if uncached:
                await self._prime(model, messages, semaphore)
            return list(await asyncio.gather(*coros))

    async def _prime(
        self, model: BaseChatModel, messages: list[BaseMessage], semaphore: asyncio.Semaphore
    ) -> None:
        """Read the prompt into the pinned slot (one token generated, ignored).  A fault is only
        logged: the samples after it meet the same server and report for themselves."""
        if self._primer is None:
            update: dict[str, Any] = {"extra_body": self._llama_cpp_body(model)}
            if "max_tokens" in getattr(type(model), "model_fields", {}):
                update["max_tokens"] = 1
            self._primer = model.model_copy(update=update)
        try:
            async with semaphore:
                await asyncio.wait_for(self._primer.ainvoke(messages), timeout=self.timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a fault of the model: the samples will say what it is
            logger.info("priming the prompt failed: %s", describe_fault(exc))
