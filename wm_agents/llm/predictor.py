"""``LLMOutcomePredictor``: an LLM imagines what a tool call will do, behind ``WorldModel``.

For each candidate tool call it asks the model for ``k`` sampled predictions (structured output:
:class:`~wm_agents.llm.schemas.OutcomePrediction`), validates and bounds each, aggregates them,
and weighs in the real outcomes of similar past calls (:class:`ExperienceMemory`):

* ``prediction["success_probability"]``: the posterior of the samples' mean probability (a prior
  of strength ``prior_strength``) and the experience (see :mod:`wm_agents.llm.memory`);
* ``risk = 1 - p_success * (1 - harm)``: probability of failure or harm, where ``harm`` is the
  samples' mean :data:`~wm_agents.llm.schemas.RISK_LEVEL_HARM`;
* ``value = goal_progress * p_success - risk_penalty * harm`` (``member_values``: per sample);
* ``uncertainty`` in ``[0, 1]``: the samples' disagreement (half on success: ``2 * std`` of
  their probabilities; half on the predicted result: ``1 -`` mean pairwise word overlap), failed
  samples counting as 1, then shrunk toward the experience's own spread (``4 r (1 - r)`` of the
  observed success rate ``r``) by the share of evidence in the posterior.  ``1.0`` = unknown.
  **Fewer than two valid samples measure no disagreement**: one sample agreeing with itself
  says nothing, so its disagreement is unknown and counts as the maximum (``1.0``), not 0;
  ``prediction["uncertainty_parts"]["samples_unknown"]`` says so and the gate's reason names
  it.  Only experience (evidence) can then lower the uncertainty.

Faults never raise out of :meth:`LLMOutcomePredictor.imagine`: a timeout, connection error
(retried with bounded exponential backoff), refusal, output cut off by ``max_tokens`` or
unparseable output makes that *sample* fail; a candidate whose samples all failed is
``Outcome.unknown`` with the reasons and uncertainty 1.0, and every fault is logged.
Programming errors raise ``ValueError`` (a candidate that is not a tool call).  A tool name not
among the known tools (when tools are given) is a model mistake, not a bug: that candidate is
unknown and the reason lists the valid names, like LangGraph's ``ToolNode``.  An unknown
outcome still carries the experience about its call (``prediction["evidence"]``): the gate's
experience rules (refuse an exact repeat of a real failure) hold whatever the model says or
fails to say.

The call cap: at most ``max_calls_per_decision`` sample slots per :meth:`aimagine`.  When
``candidates x samples`` exceeds it, every candidate gets fewer samples (``cap // n``, the
first ``cap % n`` one more); when there are more candidates than the cap, the candidates
beyond it are unknown with reason "call cap reached".  Cached samples still take their slot.

Requests.  The prompt puts everything the candidates of one decision share first (the system
prompt, the tools, task, context and recent messages) and the call last, so a server that caches
prompt prefixes reads the shared part once per decision and only the call for each candidate.
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
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import string
import threading
import weakref
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langgraph.store.base import BaseStore

from wm_agents.core import LearnReport, Outcome, Transition
from wm_agents.llm.memory import Evidence, ExperienceMemory
from wm_agents.llm.schemas import (
    RISK_LEVEL_HARM,
    LLMState,
    PredictionError,
    ToolCallCandidate,
    ToolSpec,
    canonical_json,
    message_role,
    message_text,
    prediction_grammar,
    prediction_json_schema,
    stable_hash,
    validate_prediction,
)
from wm_agents.llm.server import EMBEDDED_MODEL_ALIAS
from wm_agents.llm.sync import run_sync

__all__ = ["LLMOutcomePredictor", "load_prompt"]

logger = logging.getLogger(__name__)

UNKNOWN_UNCERTAINTY = 1.0
"""The predictor's uncertainty is normalized to [0, 1]; an unknown outcome has the maximum."""


def load_prompt(name: str) -> str:
    """Text of a prompt template shipped in ``wm_agents/prompts`` (found from any folder)."""
    return resources.files("wm_agents").joinpath("prompts", name).read_text(encoding="utf-8")


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class _SampleResult:
    """One sample: a validated prediction, or the reason it failed."""

    index: int
    seed: int | None
    prediction: dict[str, Any] | None = None
    error: str | None = None
    cached: bool = False


class _Fault(Exception):
    """A model fault already described in words (timeout, refusal, truncation, bad output)."""


Backend = Literal["auto", "openai", "llama.cpp"]


def _speaks_llama_cpp(model: Any) -> bool:
    """Whether the model can carry llama.cpp's own request fields (an ``extra_body`` field)."""
    return "extra_body" in getattr(type(model), "model_fields", {})


def _tool_line(spec: ToolSpec) -> str:
    """``- name(a, b?): description`` (``?``: optional); parameter types are left out, since
    the call's arguments show them and every prompt token costs time on a small CPU."""
    props = spec.parameters.get("properties") or {}
    required = set(spec.parameters.get("required") or [])
    params = ", ".join(p if p in required else f"{p}?" for p in props)
    description = _truncate(" ".join(spec.description.split()), 200) or "(no description)"
    return f"- {spec.name}({params}): {description}"


def _is_transient(exc: BaseException) -> bool:
    """Connection problems, rate limits and server errors: worth a retry after a pause."""
    import httpx
    import openai

    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException):
        return False  # the per-call timeout already waited; retrying would double the wait
    transient = (
        openai.APIConnectionError,
        openai.RateLimitError,
        openai.InternalServerError,
        httpx.TransportError,
        ConnectionError,
    )
    return isinstance(exc, transient)


def _describe(exc: BaseException) -> str:
    import httpx
    import openai

    if isinstance(exc, openai.LengthFinishReasonError):
        return "output cut off by the token limit (finish_reason=length)"
    if isinstance(exc, openai.ContentFilterFinishReasonError):
        return "the model refused (content filter)"
    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException | TimeoutError):
        kind = "timeout"
    elif isinstance(exc, openai.APIConnectionError | httpx.TransportError | ConnectionError):
        kind = "connection error"
    elif isinstance(exc, openai.APIStatusError):
        kind = f"server error {exc.status_code}"
    else:
        kind = type(exc).__name__
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause).strip() and str(cause).strip() not in detail:
        detail = f"{detail} ({str(cause).strip().splitlines()[0]})"
    from wm_agents.llm.config import redact_urls

    return _truncate(redact_urls(f"{kind}: {detail}" if detail else kind), 300)


_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def _parse_text(text: str) -> Any:
    match = _JSON_OBJECT.search(text)
    if match is None:
        raise _Fault(f"unparseable output (no JSON object): {_truncate(text, 120)!r}")
    try:
        return json.loads(match.group(0))
    except json.JSONDecodeError as exc:
        raise _Fault(f"unparseable output ({exc.msg}): {_truncate(text, 120)!r}") from exc


def _word_set(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z0-9_]+", text)}


def _result_disagreement(results: Sequence[str]) -> float:
    if len(results) < 2:
        return 0.0
    sets = [_word_set(r) for r in results]
    sims = []
    for i in range(len(sets)):
        for j in range(i + 1, len(sets)):
            union = sets[i] | sets[j]
            sims.append(len(sets[i] & sets[j]) / len(union) if union else 1.0)
    return 1.0 - sum(sims) / len(sims)


def _medoid(preds: list[dict[str, Any]]) -> dict[str, Any]:
    """The prediction whose result text is closest to the others' (the first on ties); empty
    results only when all are empty."""
    preds = [p for p in preds if p["predicted_result"].strip()] or preds
    if len(preds) < 3:
        return preds[0]
    texts = [p["predicted_result"] for p in preds]
    scores = [
        _result_disagreement([texts[i], *texts[:i], *texts[i + 1 :]]) for i in range(len(texts))
    ]
    return preds[scores.index(min(scores))]


def allocate_samples(n_candidates: int, samples: int, cap: int) -> list[int]:
    """Samples per candidate under a cap on calls per decision (see the module docstring)."""
    if n_candidates * samples <= cap:
        return [samples] * n_candidates
    if n_candidates <= cap:
        base, extra = divmod(cap, n_candidates)
        return [min(samples, base + (1 if i < extra else 0)) for i in range(n_candidates)]
    return [1] * cap + [0] * (n_candidates - cap)


def _unknown_outcome(
    call: ToolCallCandidate,
    reason: str,
    evidence: Evidence,
    *,
    n_samples: int = 0,
    samples: list[dict[str, Any]] | None = None,
) -> Outcome:
    """``Outcome.unknown``'s fields, plus what was tried and what experience says (the gate's
    experience rules apply to unknown outcomes too)."""
    return Outcome(
        candidate=call.as_dict(),
        prediction={
            "source": "llm",
            "tool": call.name,
            "n_samples": n_samples,
            "n_failed": len(samples or []),
            "samples": samples or [],
            "evidence": evidence.as_dict(),
        },
        value=-math.inf,
        uncertainty=UNKNOWN_UNCERTAINTY,
        risk=1.0,
        status="unknown",
        reason=reason,
    )


class LLMOutcomePredictor:
    """A :class:`~wm_agents.core.WorldModel` whose candidates are tool calls.

    Args:
        model: any LangChain chat model.  ``None``: the model named by the environment
            (``OPENAI_BASE_URL``/``OPENAI_API_KEY``/``WM_AGENTS_LLM_MODEL``), or else the
            embedded offline model, started on first use and stopped by :meth:`close`.
        tools: tool metadata (``BaseTool`` or dicts); more can come with each state.
        samples: predictions sampled per candidate (``k``).
        temperature: sampling temperature (``> 0`` so the samples can disagree).
        seed: base seed; sample ``i`` asks the backend for seed ``seed + i`` (where the model
            has a ``seed`` field), so runs are reproducible on backends that honour it (the
            embedded server does: see "Reproducibility" in the module docstring).
        max_concurrency: model calls in flight at once.
        max_calls_per_decision: sample slots per :meth:`aimagine` call.
        timeout_s: per model call.
        max_retries: retries of a call after a connection error, rate limit or server error.
        backoff_s: pause before the first retry; doubles each time.
        max_tokens: answer budget per call (room for the whole JSON; ``None`` leaves the
            model's own setting).
        memory: experience memory; by default one over ``store`` (or a new ``InMemoryStore``).
        store: a LangGraph ``BaseStore`` for the default memory.
        prior_strength: how many observations the LLM's judgement is worth against experience.
        risk_penalty: ``lambda`` in ``value = progress * p_success - lambda * harm``.
        cache_size: validated samples kept (LRU), keyed by the prompt and sampling settings.
        max_messages: recent messages shown to the model.
        strict: ``strict`` flag of the json_schema response format (``None``: false).  The
            embedded llama.cpp server enforces the schema either way; OpenAI-style strict modes
            reject some keywords (string lengths) on some deployments, so it is off by default.
        backend: which request fields the model's server understands.  ``"openai"``: standard
            fields only.  ``"llama.cpp"``: llama.cpp's own fields (grammar, prompt cache, slot;
            needs a ``ChatOpenAI``-like model with an ``extra_body`` field).  ``"auto"``:
            ``"llama.cpp"`` for the embedded model (a model named
            :data:`~wm_agents.llm.server.EMBEDDED_MODEL_ALIAS`), else ``"openai"``, so a remote
            OpenAI never receives fields it would reject.
        slot: llama.cpp only: the server slot (``id_slot``) every request goes to, so the
            server reads them one after another on one cached prompt prefix, and samples repeat
            (see the module docstring).  ``None`` lets the server choose: concurrent requests
            are then decoded together (worth it on a GPU server), each slot reading the prefix
            itself.
    """

    def __init__(
        self,
        model: BaseChatModel | None = None,
        *,
        tools: Sequence[Any] = (),
        samples: int = 3,
        temperature: float = 0.7,
        seed: int = 0,
        max_concurrency: int = 4,
        max_calls_per_decision: int = 32,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        backoff_s: float = 0.5,
        max_tokens: int | None = 512,
        memory: ExperienceMemory | None = None,
        store: BaseStore | None = None,
        prior_strength: float = 2.0,
        risk_penalty: float = 0.5,
        cache_size: int = 1024,
        max_messages: int = 6,
        strict: bool | None = None,
        backend: Backend = "auto",
        slot: int | None = 0,
    ) -> None:
        if samples < 1 or max_concurrency < 1 or max_calls_per_decision < 1:
            raise ValueError("samples, max_concurrency and max_calls_per_decision must be >= 1")
        if timeout_s <= 0 or max_retries < 0 or backoff_s < 0 or prior_strength <= 0:
            raise ValueError("need timeout_s > 0, max_retries >= 0, backoff_s >= 0, prior > 0")
        if temperature < 0:
            raise ValueError("temperature must be >= 0")
        if backend not in ("auto", "openai", "llama.cpp"):
            raise ValueError(f"backend must be 'auto', 'openai' or 'llama.cpp', got {backend!r}")
        if slot is not None and slot < 0:
            raise ValueError(f"slot must be a server slot number >= 0 or None, got {slot}")
        if backend == "llama.cpp" and model is not None and not _speaks_llama_cpp(model):
            raise ValueError(
                "backend='llama.cpp' needs a ChatOpenAI-like model with an `extra_body` "
                f"field, got {type(model).__name__}; use backend='openai' for other models"
            )
        self.model = model
        self.tools: dict[str, ToolSpec] = {}
        for tool in tools:
            spec = ToolSpec.from_any(tool)
            self.tools[spec.name] = spec
        self.samples = samples
        self.temperature = temperature
        self.seed = seed
        self.max_concurrency = max_concurrency
        self.max_calls_per_decision = max_calls_per_decision
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_tokens = max_tokens
        self.memory = memory if memory is not None else ExperienceMemory(store)
        self.prior_strength = prior_strength
        self.risk_penalty = risk_penalty
        self.cache_size = cache_size
        self.max_messages = max_messages
        self.strict = strict
        self.backend = backend
        self.slot = slot
        self._system_template = string.Template(load_prompt("outcome_system.md"))
        self._user_template = string.Template(load_prompt("outcome_user.md"))
        self._schema = prediction_json_schema()
        self._grammar = prediction_grammar()
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._runnables: dict[int, tuple[Any, str]] = {}
        self._primer: Any = None
        self._server: Any = None
        self._server_lock = threading.Lock()
        self._startup_error: str | None = None
        self.stats: Counter[str] = Counter()
        """Counters: ``calls`` (model calls made), ``cache_hits``, ``failures``, ``retries``."""

    # -- lifecycle of the default (embedded) model ----------------------------------------

    def _ensure_model(self) -> BaseChatModel | None:
        """The chat model; starts the configured/embedded one on first use (blocking)."""
        if self.model is not None:
            return self.model
        with self._server_lock:
            if self.model is not None or self._startup_error is not None:
                return self.model
            from wm_agents.llm.config import chat_model_from_settings, resolve_llm_settings
            from wm_agents.llm.server import EmbeddedLLMServer, EmbeddedServerError

            settings = resolve_llm_settings()
            if not settings.embedded:
                self.model = chat_model_from_settings(settings, timeout_s=self.timeout_s)
                return self.model
            server = EmbeddedLLMServer(parallel=max(4, self.max_concurrency))
            try:
                server.start()
            except EmbeddedServerError as exc:
                self._startup_error = f"embedded LLM unavailable: {exc}"
                logger.error("%s", self._startup_error)
                return None
            self._server = server
            weakref.finalize(self, server.stop)
            self.model = server.chat_model(timeout=self.timeout_s)
            return self.model

    def close(self) -> None:
        """Stop the embedded server if this predictor started one (by PID). Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
            self.model = None
            self._runnables.clear()  # they point at the stopped server
            self._primer = None

    def __enter__(self) -> LLMOutcomePredictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- prompts ------------------------------------------------------------------------------

    def _tool_specs(self, state: LLMState) -> dict[str, ToolSpec]:
        specs = dict(self.tools)
        for tool in state.tools:
            spec = ToolSpec.from_any(tool)
            specs[spec.name] = spec
        return specs

    def _render_shared(self, state: LLMState, specs: dict[str, ToolSpec]) -> dict[str, str]:
        """The prompt values every candidate of one decision shares (see :meth:`_render`)."""
        recent = state.messages[-self.max_messages :] if self.max_messages > 0 else []
        lines = [
            f"- {message_role(m)}: {_truncate(' '.join(message_text(m).split()), 300)}"
            for m in recent
        ]
        return {
            "tools": "\n".join(_tool_line(spec) for spec in specs.values()) or "(not given)",
            "task": _truncate(state.task.strip(), 600) or "(not given)",
            "context": _truncate(state.context.strip(), 600) or "(none)",
            "messages": "\n".join(lines) or "(none)",
        }

    def _render(self, shared: dict[str, str], candidate: ToolCallCandidate) -> list[BaseMessage]:
        """System and user message for one candidate.

        Only ``$call``, the last line of the user template, depends on the candidate: the text
        before it is the same for every candidate of a decision (a cacheable prefix), and the
        tools, task and context before the messages stay the same from one decision to the next.
        """
        call = f"{candidate.name}({_truncate(canonical_json(candidate.args), 800)})"
        values = {**shared, "call": call}
        return [
            SystemMessage(self._system_template.safe_substitute(values).strip()),
            HumanMessage(self._user_template.safe_substitute(values).strip()),
        ]

    # -- one sample -----------------------------------------------------------------------------

    def _sample_seed(self, index: int) -> int:
        return self.seed + index

    def _uses_llama_cpp(self, model: BaseChatModel) -> bool:
        if self.backend == "auto":
            named = getattr(model, "model_name", None) == EMBEDDED_MODEL_ALIAS
            return named and _speaks_llama_cpp(model)
        return self.backend == "llama.cpp"

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
        """One model call; returns the raw answer object or raises ``_Fault``."""
        out = await asyncio.wait_for(runnable.ainvoke(messages), timeout=self.timeout_s)
        if mode == "text":
            if getattr(out, "response_metadata", {}).get("finish_reason") == "length":
                raise _Fault(f"output cut off by the token limit (max_tokens={self.max_tokens})")
            return _parse_text(message_text(out))
        raw, parsed, error = out.get("raw"), out.get("parsed"), out.get("parsing_error")
        if parsed is not None and error is None:
            return parsed
        meta = getattr(raw, "response_metadata", None) or {}
        refusal = (getattr(raw, "additional_kwargs", None) or {}).get("refusal")
        if refusal or type(error).__name__ == "OpenAIRefusalError":
            raise _Fault(f"the model refused: {_truncate(str(refusal or error), 200)}")
        if meta.get("finish_reason") == "length":
            raise _Fault(f"output cut off by the token limit (max_tokens={self.max_tokens})")
        if error is not None:
            raise _Fault(f"unparseable output: {_truncate(str(error).splitlines()[0], 200)}")
        text = message_text(raw) if raw is not None else ""
        if text.strip():
            return _parse_text(text)
        raise _Fault("empty output")

    async def _sample(
        self,
        model: BaseChatModel,
        messages: list[BaseMessage],
        index: int,
        key: str,
        semaphore: asyncio.Semaphore,
    ) -> _SampleResult:
        seed = self._sample_seed(index)
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
        if hit is not None:
            self.stats["cache_hits"] += 1
            return _SampleResult(index, seed, prediction=hit, cached=True)
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
            except _Fault as exc:
                error = str(exc)
            except PredictionError as exc:
                error = f"invalid prediction: {exc}"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any model fault becomes data
                error = _describe(exc)
                if _is_transient(exc) and attempt < self.max_retries:
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
                return _SampleResult(index, seed, prediction=prediction)
            break
        self.stats["failures"] += 1
        logger.warning("outcome prediction sample %d failed: %s", index, error)
        return _SampleResult(index, seed, error=error)

    def _pins_slot(self, model: BaseChatModel) -> bool:
        return self.slot is not None and self._uses_llama_cpp(model)

    async def _samples(
        self,
        model: BaseChatModel,
        messages: list[BaseMessage],
        indexed_keys: list[tuple[int, str]],
        semaphore: asyncio.Semaphore,
        turn: asyncio.Lock | None,
    ) -> list[_SampleResult]:
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
            logger.info("priming the prompt failed: %s", _describe(exc))

    # -- imagine ----------------------------------------------------------------------------------

    async def aimagine(
        self, state: Any, candidates: Sequence[Any], *, horizon: int = 1
    ) -> list[Outcome]:
        """Imagine each candidate tool call; one :class:`Outcome` per candidate, in order.

        Args:
            state: an :class:`LLMState`, a dict (``task``, ``messages``, ``context``,
                ``tools``) or a string (the task).
            candidates: tool calls ``{"name", "args"}`` (LangChain ``ToolCall`` dicts fit).
            horizon: ignored: one tool call is one step.

        Raises:
            ValueError: a candidate is not a tool call, or the state has an unusable type.
        """
        del horizon
        llm_state = LLMState.from_any(state)
        calls = [ToolCallCandidate.from_any(c) for c in candidates]
        specs = self._tool_specs(llm_state)
        allocation = allocate_samples(len(calls), self.samples, self.max_calls_per_decision)
        model = await asyncio.to_thread(self._ensure_model) if self.model is None else self.model
        semaphore = asyncio.Semaphore(self.max_concurrency)
        shared = self._render_shared(llm_state, specs)
        # On a pinned llama.cpp slot, one candidate at a time (see _samples).
        turn = asyncio.Lock() if model is not None and self._pins_slot(model) else None
        in_flight: dict[str, asyncio.Task[list[_SampleResult]]] = {}

        plans: list[tuple[ToolCallCandidate, str | None, list[asyncio.Task[Any]]]] = []
        for call, n_samples in zip(calls, allocation, strict=True):
            if specs and call.name not in specs:
                valid = ", ".join(sorted(specs))
                plans.append((call, f"unknown tool {call.name!r}; valid tools: {valid}", []))
                continue
            if n_samples == 0:
                reason = f"call cap reached (max_calls_per_decision={self.max_calls_per_decision})"
                plans.append((call, reason, []))
                continue
            if model is None:
                plans.append((call, self._startup_error or "no chat model", []))
                continue
            messages = self._render(shared, call)
            prompt_key = stable_hash([m.content for m in messages])
            keys = [
                stable_hash(prompt_key, i, self.temperature, self._sample_seed(i), self.max_tokens)
                for i in range(n_samples)
            ]
            # Identical candidates in one decision share calls: per sample, or per candidate
            # when its samples take turns on a pinned slot.
            jobs = [(f"{prompt_key}/{n_samples}", list(enumerate(keys)))] if turn else []
            jobs = jobs or [(key, [(i, key)]) for i, key in enumerate(keys)]
            tasks = []
            for job_key, indexed_keys in jobs:
                if job_key not in in_flight:
                    in_flight[job_key] = asyncio.ensure_future(
                        self._samples(model, messages, indexed_keys, semaphore, turn)
                    )
                tasks.append(in_flight[job_key])
            plans.append((call, None, tasks))

        if in_flight:
            await asyncio.gather(*in_flight.values())
        outcomes = []
        for call, reason, tasks in plans:
            evidence = await self._evidence(llm_state, call)
            if reason is not None:
                logger.warning("candidate %s: %s", call.name, reason)
                outcomes.append(_unknown_outcome(call, reason, evidence))
                continue
            results = [r for t in tasks for r in t.result()]
            outcomes.append(self._aggregate(call, results, evidence))
        return outcomes

    async def _evidence(self, state: LLMState, call: ToolCallCandidate) -> Evidence:
        # Experience improves a prediction; a store that fails (a database hiccup) must not
        # take the prediction down with it.
        try:
            return await self.memory.aevidence(state, call)
        except Exception:
            logger.exception("reading experience for %s failed; predicting without it", call.name)
            return Evidence()

    def imagine(self, state: Any, candidates: Sequence[Any], *, horizon: int = 1) -> list[Outcome]:
        """Sync :meth:`aimagine` (from inside a running event loop it runs in a worker thread)."""
        return run_sync(self.aimagine(state, candidates, horizon=horizon))

    def _aggregate(
        self, call: ToolCallCandidate, results: list[_SampleResult], evidence: Evidence
    ) -> Outcome:
        valid = [r for r in results if r.prediction is not None]
        failed = [r for r in results if r.prediction is None]
        if not valid:
            reasons = sorted({r.error or "unknown error" for r in failed})
            samples = [{"index": r.index, "seed": r.seed, "error": r.error} for r in failed]
            return _unknown_outcome(
                call, "; ".join(reasons), evidence, n_samples=len(results), samples=samples
            )
        preds = [r.prediction for r in valid if r.prediction is not None]
        probs = [p["p_success"] for p in preds]
        harms = [RISK_LEVEL_HARM[p["risk_level"]] for p in preds]
        progress = [p["goal_progress"] for p in preds]
        p_llm = sum(probs) / len(probs)
        u_success = min(1.0, 2.0 * math.sqrt(sum((p - p_llm) ** 2 for p in probs) / len(probs)))
        u_result = _result_disagreement([p["predicted_result"] for p in preds])
        samples_unknown = len(valid) < 2  # one sample cannot disagree with itself
        if samples_unknown:
            u_llm = UNKNOWN_UNCERTAINTY
        else:
            u_llm = 0.5 * u_success + 0.5 * u_result
            u_llm = (len(valid) * u_llm + len(failed) * 1.0) / len(results)

        p_final, share = evidence.combine(p_llm, self.prior_strength)
        rate = evidence.observed_success_rate
        u_evidence = 4.0 * rate * (1.0 - rate) if rate is not None else u_llm
        uncertainty = min(1.0, max(0.0, (1.0 - share) * u_llm + share * u_evidence))

        harm = sum(harms) / len(harms)
        mean_progress = sum(progress) / len(progress)
        risk = min(1.0, max(0.0, 1.0 - p_final * (1.0 - harm)))
        value = mean_progress * p_final - self.risk_penalty * harm
        member_values = [
            g * p - self.risk_penalty * h for g, p, h in zip(progress, probs, harms, strict=True)
        ]

        # The representative sample: one that agrees with the final verdict, closest to the rest.
        success = p_final >= 0.5
        agreeing = [p for p in preds if (p["p_success"] >= 0.5) == success] or preds
        rep = _medoid(agreeing)
        predicted_result = rep["predicted_result"]
        if evidence.exact_result is not None:
            # What actually happened last time in this exact situation beats a guess.
            predicted_result = evidence.exact_result
        levels = Counter(p["risk_level"] for p in preds)
        risk_level = max(levels, key=lambda lv: (levels[lv], RISK_LEVEL_HARM[lv]))
        reversible = sum(p["reversible"] for p in preds) >= len(preds) / 2

        samples_info = [
            {
                "index": r.index,
                "seed": r.seed,
                "cached": r.cached,
                **({"error": r.error} if r.error else {}),
                **(r.prediction or {}),
            }
            for r in results
        ]
        prediction = {
            "source": "llm",
            "tool": call.name,
            "predicted_result": predicted_result,
            "success": success,
            "success_probability": p_final,
            "llm_success_probability": p_llm,
            "side_effects": rep["side_effects"],
            "reversible": reversible,
            "risk_level": risk_level,
            "harm": harm,
            "goal_progress": mean_progress,
            "n_samples": len(results),
            "n_failed": len(failed),
            "uncertainty_parts": {
                "samples_unknown": samples_unknown,
                "n_valid": len(valid),
                "success": u_success,
                "result": u_result,
                "evidence_share": share,
                "evidence": u_evidence,
            },
            "evidence": evidence.as_dict(),
            "samples": samples_info,
        }
        reason = None
        if failed:
            reasons = sorted({r.error or "unknown error" for r in failed})
            reason = f"{len(failed)}/{len(results)} samples failed: " + "; ".join(reasons)
        return Outcome(
            candidate=call.as_dict(),
            prediction=prediction,
            value=value,
            uncertainty=uncertainty,
            risk=risk,
            member_values=member_values,
            status="ok",
            reason=reason,
        )

    # -- learn ------------------------------------------------------------------------------------

    async def alearn(self, transitions: Sequence[Transition]) -> LearnReport:
        """Store real outcomes (with the predictions made before them) as experience.

        Each transition needs ``state`` (the situation), ``action`` (the tool call), ``result``
        (the real output) and ``success``.  Metrics over those that carry a ``prediction``:
        ``brier``/``accuracy`` (after experience) and ``brier_llm``/``accuracy_llm`` (the LLM
        alone) of the success prediction.

        Raises:
            ValueError: a transition without ``success`` or whose action is not a tool call.
        """
        sq: dict[str, float] = {"llm": 0.0, "final": 0.0}
        correct: dict[str, int] = {"llm": 0, "final": 0}
        n_scored = 0
        for t in transitions:
            if t.success is None:
                raise ValueError("a Transition for the LLM predictor needs success=True/False")
            state = LLMState.from_any(t.state)
            call = ToolCallCandidate.from_any(t.action)
            p_llm = p_final = None
            if t.prediction is not None and t.prediction.is_known:
                p_llm = t.prediction.prediction.get("llm_success_probability")
                p_final = t.prediction.prediction.get("success_probability")
            await self.memory.arecord(
                state, call, result=t.result, success=t.success, p_llm=p_llm, p_final=p_final
            )
            if p_llm is not None and p_final is not None:
                n_scored += 1
                y = 1.0 if t.success else 0.0
                for name, p in (("llm", p_llm), ("final", p_final)):
                    sq[name] += (p - y) ** 2
                    correct[name] += int((p >= 0.5) == t.success)
        metrics: dict[str, float] = {"n_scored": float(n_scored)}
        if n_scored:
            metrics |= {
                "brier": sq["final"] / n_scored,
                "accuracy": correct["final"] / n_scored,
                "brier_llm": sq["llm"] / n_scored,
                "accuracy_llm": correct["llm"] / n_scored,
            }
        return LearnReport(
            n_transitions=len(transitions),
            updated=bool(transitions),
            metrics=metrics,
            message=f"stored {len(transitions)} outcomes as experience",
        )

    def learn(self, transitions: Sequence[Transition]) -> LearnReport:
        """Sync :meth:`alearn`."""
        return run_sync(self.alearn(transitions))

    def calibration(self) -> dict[str, dict[str, float]]:
        """Per-tool Brier score and accuracy of the success prediction, of the LLM alone
        (``*_llm``, before experience) and after experience, over everything learned."""
        return run_sync(self.memory.acalibration())
