"""``LLMOutcomePredictor``: an LLM imagines what a tool call will do, behind ``WorldModel``.

For each candidate tool call it asks the model for ``k`` sampled predictions (structured output:
:class:`~wm_agents.llm.schemas.OutcomePrediction`), validates and bounds each, aggregates them,
and weighs in the real outcomes of similar past calls (:class:`ExperienceMemory`).  The parts,
one job per module:

* :mod:`wm_agents.llm.rendering`: the prompt (shared parts first, the call last);
* :mod:`wm_agents.llm.requests`: one request per sample (cache, retries, the llama.cpp slot,
  reproducibility) and the call cap (:func:`allocate_samples`);
* :mod:`wm_agents.llm.faults`: model faults described in words;
* :mod:`wm_agents.llm.aggregation`: samples and experience to one ``Outcome`` (success
  probability, risk, value, uncertainty: the formulas are there).

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
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections import Counter, OrderedDict
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.store.base import BaseStore

from wm_agents.core import LearnReport, Outcome, Transition
from wm_agents.llm.aggregation import (
    UNKNOWN_UNCERTAINTY,
    SampleResult,
    aggregate_samples,
    unknown_outcome,
)
from wm_agents.llm.memory import Evidence, ExperienceMemory
from wm_agents.llm.rendering import OutcomePrompt
from wm_agents.llm.requests import Backend, SampleRequests, allocate_samples, speaks_llama_cpp
from wm_agents.llm.schemas import (
    LLMState,
    ToolCallCandidate,
    ToolSpec,
    prediction_grammar,
    prediction_json_schema,
    stable_hash,
)
from wm_agents.llm.sync import run_sync
from wm_agents.prompt_files import load_prompt

__all__ = [
    "UNKNOWN_UNCERTAINTY",
    "Backend",
    "LLMOutcomePredictor",
    "allocate_samples",
    "load_prompt",
]

logger = logging.getLogger(__name__)


class LLMOutcomePredictor(SampleRequests):
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
            embedded server does: see "Reproducibility" in :mod:`wm_agents.llm.requests`).
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
            (see :mod:`wm_agents.llm.requests`).  ``None`` lets the server choose: concurrent
            requests are then decoded together (worth it on a GPU server), each slot reading
            the prefix itself.
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
        if backend == "llama.cpp" and model is not None and not speaks_llama_cpp(model):
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
        self._prompt = OutcomePrompt()
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
        shared = self._prompt.shared(llm_state, specs, self.max_messages)
        # On a pinned llama.cpp slot, one candidate at a time (see _samples).
        turn = asyncio.Lock() if model is not None and self._pins_slot(model) else None
        in_flight: dict[str, asyncio.Task[list[SampleResult]]] = {}

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
            messages = self._prompt.messages(shared, call)
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
                outcomes.append(unknown_outcome(call, reason, evidence))
                continue
            results = [r for t in tasks for r in t.result()]
            outcomes.append(
                aggregate_samples(
                    call,
                    results,
                    evidence,
                    prior_strength=self.prior_strength,
                    risk_penalty=self.risk_penalty,
                )
            )
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
