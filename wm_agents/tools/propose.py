"""The propose step of the tool agent: the agent's LLM proposes N candidate tool calls.

Two ways to ask, chosen per model:

* **native tool calling** (``bind_tools``): the tool calls of the reply are the candidates;
* **structured output** for servers without tool calling (the embedded llama.cpp server): the
  model answers a JSON schema whose ``tool_calls`` items are one object per tool, each with
  ``name`` an enum of that tool's name and ``args`` that tool's own argument schema, plus an
  ``answer`` for when no tool is needed.

Both return a :class:`Proposal`; a model fault (bad JSON, timeout) is a ``Proposal`` with
``error`` set, never an exception.  Anything with a ``propose(messages, tools, *, n, step)``
method can stand in (see :class:`Proposer`), e.g. :class:`FixedPlanProposer`, a fixed plan for
demos and tests.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from pydantic import BaseModel, ConfigDict, Field

from wm_agents.llm.schemas import ToolCallCandidate, ToolSpec
from wm_agents.prompt_files import load_prompt
from wm_agents.tools.summary import summarize_tool_calls

__all__ = [
    "DEFAULT_PROPOSER_PROMPT",  # noqa: F822 (module __getattr__: read from its file on use)
    "PROPOSER_PROMPT_FILE",
    "FixedPlanProposer",
    "LLMProposer",
    "PlanEntry",
    "Proposal",
    "Proposer",
    "default_proposer_prompt",
    "proposal_json_schema",
    "supports_native_tools",
]

logger = logging.getLogger(__name__)

PROPOSER_PROMPT_FILE = "proposer_system.md"
"""The proposer's default instructions: ``prompts/proposer_system.md`` (``{n}``: the number of
candidates; see :mod:`wm_agents.prompt_files`)."""


def default_proposer_prompt() -> str:
    """The proposer's default instructions, read from :data:`PROPOSER_PROMPT_FILE`."""
    return load_prompt(PROPOSER_PROMPT_FILE).strip()


def __getattr__(name: str) -> Any:
    # DEFAULT_PROPOSER_PROMPT is read from its file on first use, not at import.
    if name == "DEFAULT_PROPOSER_PROMPT":
        return default_proposer_prompt()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Proposal(BaseModel):
    """What the proposer returned.

    Attributes:
        candidates: tool calls ``{"name", "args", "id"}`` (ids are ``call_<step>_<i>`` unless
            the model gave its own).
        answer: the final answer when there are no candidates.
        error: why proposing failed (a model fault), or None.
        dropped: candidates that named no known tool (kept for the trace).
        search: the plan search behind the candidates, when there was one
            (:meth:`~wm_agents.planning.plan_search.PlanSearchResult.as_dict`: the imagined
            plan tree, shown in the trace and in LangGraph Studio).
    """

    model_config = ConfigDict(frozen=True)

    candidates: list[dict[str, Any]] = Field(default_factory=list)
    answer: str | None = None
    error: str | None = None
    dropped: list[str] = Field(default_factory=list)
    search: dict[str, Any] | None = None


@runtime_checkable
class Proposer(Protocol):
    """Anything that proposes candidate tool calls for the next step."""

    def propose(
        self, messages: Sequence[BaseMessage], tools: Sequence[ToolSpec], *, n: int, step: int
    ) -> Proposal:
        """Up to ``n`` candidates for decision number ``step``, or a final answer."""
        ...


def supports_native_tools(model: Any) -> bool:
    """True when the model class implements ``bind_tools`` (LangChain's base raises)."""
    impl = getattr(type(model), "bind_tools", None)
    return impl is not None and impl is not BaseChatModel.bind_tools


def proposal_json_schema(tools: Sequence[ToolSpec], n: int) -> dict[str, Any]:
    """The structured-output schema: ``tool_calls`` (each item one tool's name enum + its own
    argument schema, at most ``n``) first, then ``answer`` (bounded)."""
    variants = []
    for spec in tools:
        params = dict(spec.parameters) or {"type": "object", "properties": {}}
        params.pop("title", None)
        variants.append(
            {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "enum": [spec.name]},
                    "args": params,
                },
                "required": ["name", "args"],
                "additionalProperties": False,
            }
        )
    item: dict[str, Any] = variants[0] if len(variants) == 1 else {"anyOf": variants}
    return {
        "title": "ToolCallProposal",
        "description": "Candidate tool calls for the next step, or the final answer.",
        "type": "object",
        "properties": {
            "tool_calls": {"type": "array", "items": item, "maxItems": n},
            "answer": {
                "type": "string",
                "maxLength": 600,
                "description": "the final answer when tool_calls is empty, else empty",
            },
        },
        "required": ["tool_calls", "answer"],
        "additionalProperties": False,
    }


def _as_text_history(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    # Servers without tool calling reject (or mangle) tool-call turns; show them as text.
    out: list[BaseMessage] = []
    for m in messages:
        if isinstance(m, AIMessage) and m.tool_calls:
            calls = ", ".join(
                f"{c['name']}({json.dumps(c.get('args') or {}, sort_keys=True)})"
                for c in m.tool_calls
            )
            text = f"{m.content}\n" if isinstance(m.content, str) and m.content else ""
            out.append(AIMessage(f"{text}I call {calls}"))
        elif isinstance(m, ToolMessage):
            status = "error" if m.status == "error" else "result"
            out.append(HumanMessage(f"Tool {status} of {m.name or 'the tool'}: {m.content}"))
        elif isinstance(m, SystemMessage):
            continue
        else:
            out.append(m)
    return out


class LLMProposer:
    """The agent's LLM proposes candidate tool calls (native tool calling or structured output).

    Args:
        model: any LangChain chat model.
        mode: ``"native"`` (``bind_tools``), ``"structured"`` (JSON schema), or ``"auto"``:
            native when the model class implements ``bind_tools``.  Use ``"structured"`` for
            OpenAI-compatible servers that accept tools but never call them (llama.cpp).
        system_prompt: instructions; ``{n}`` is replaced by the number of candidates (default:
            ``prompts/proposer_system.md``, :func:`default_proposer_prompt`).
        max_messages: most recent messages shown (the first human message is always kept).
    """

    def __init__(
        self,
        model: BaseChatModel,
        *,
        mode: Literal["auto", "native", "structured"] = "auto",
        system_prompt: str | None = None,
        max_messages: int = 12,
    ) -> None:
        if mode not in ("auto", "native", "structured"):
            raise ValueError(f"mode must be 'auto', 'native' or 'structured', got {mode!r}")
        if max_messages < 1:
            raise ValueError("max_messages must be >= 1")
        self.model = model
        self.mode: Literal["native", "structured"] = (
            ("native" if supports_native_tools(model) else "structured") if mode == "auto" else mode
        )
        self.system_prompt = default_proposer_prompt() if system_prompt is None else system_prompt
        self.max_messages = max_messages

    def _prompt(self, messages: Sequence[BaseMessage], n: int) -> list[BaseMessage]:
        msgs = list(messages)
        if len(msgs) > self.max_messages:
            first = next((m for m in msgs if isinstance(m, HumanMessage)), None)
            tail = msgs[-(self.max_messages - 1) :]
            msgs = ([first] if first is not None and first not in tail else []) + tail
        if self.mode == "structured":
            msgs = _as_text_history(msgs)
        return [SystemMessage(self.system_prompt.replace("{n}", str(n))), *msgs]

    def propose(
        self, messages: Sequence[BaseMessage], tools: Sequence[ToolSpec], *, n: int, step: int
    ) -> Proposal:
        """Ask the model once; never raises for a model fault (``Proposal.error`` instead)."""
        if n < 1:
            raise ValueError("n must be >= 1")
        specs = [ToolSpec.from_any(t) for t in tools]
        prompt = self._prompt(messages, n)
        try:
            if self.mode == "native":
                openai_tools = [{"type": "function", "function": s.model_dump()} for s in specs]
                reply = self.model.bind_tools(openai_tools).invoke(prompt)
                raw_calls = list(getattr(reply, "tool_calls", None) or [])
                answer = reply.content if isinstance(reply.content, str) else str(reply.content)
            else:
                schema = proposal_json_schema(specs, n)
                out = self.model.with_structured_output(schema, method="json_schema").invoke(prompt)
                if isinstance(out, BaseModel):
                    out = out.model_dump()
                if not isinstance(out, dict):
                    raise ValueError(f"expected a JSON object, got {type(out).__name__}")
                raw_calls = list(out.get("tool_calls") or [])
                answer = str(out.get("answer") or "")
        except Exception as exc:  # a model fault is data: the agent explains and stops
            logger.warning("proposing tool calls failed: %s", exc)
            return Proposal(error=f"{type(exc).__name__}: {str(exc)[:300]}")
        return self._finish(raw_calls, answer, specs, n, step)

    @staticmethod
    def _finish(
        raw_calls: list[Any], answer: str, specs: Sequence[ToolSpec], n: int, step: int
    ) -> Proposal:
        known = {s.name for s in specs}
        candidates: list[dict[str, Any]] = []
        dropped: list[str] = []
        for i, raw in enumerate(raw_calls):
            try:
                call = ToolCallCandidate.from_any(raw)
            except ValueError as exc:
                dropped.append(str(exc)[:200])
                continue
            if known and call.name not in known:
                dropped.append(f"unknown tool {call.name!r}")
                continue
            d = call.as_dict()
            d["id"] = call.id or f"call_{step}_{i}"
            if any(c["name"] == d["name"] and c["args"] == d["args"] for c in candidates):
                continue  # the same call twice is one candidate
            candidates.append(d)
            if len(candidates) >= n:
                break
        if candidates:
            return Proposal(candidates=candidates, dropped=dropped)
        if answer.strip():
            return Proposal(answer=answer.strip(), dropped=dropped)
        reason = "the model proposed neither a tool call nor an answer"
        if dropped:
            reason += f" (dropped: {'; '.join(dropped)})"
        return Proposal(error=reason, dropped=dropped)


PlanEntry = Sequence[dict[str, Any]] | str | Callable[[Sequence[BaseMessage]], str]
"""One decision of a fixed plan: candidate calls, a final answer, or a function of the
conversation that writes the final answer."""


class FixedPlanProposer:
    """A :class:`~wm_agents.tools.Proposer` that follows a fixed plan, one entry per decision
    (``plan[step]``): a list of candidate calls, a string (the final answer), or a function of
    the conversation returning the final answer.  Past the end it answers
    :func:`~wm_agents.tools.summary.summarize_tool_calls` of the conversation."""

    def __init__(self, plan: Sequence[PlanEntry]) -> None:
        self.plan = list(plan)

    def propose(
        self, messages: Sequence[BaseMessage], tools: Sequence[ToolSpec], *, n: int, step: int
    ) -> Proposal:
        """The plan's entry for decision ``step`` (at most ``n`` candidates)."""
        del tools
        entry = self.plan[step] if step < len(self.plan) else summarize_tool_calls
        if isinstance(entry, str):
            return Proposal(answer=entry)
        if callable(entry):
            return Proposal(answer=entry(messages))
        calls = [
            {"name": c["name"], "args": dict(c.get("args") or {}), "id": f"call_{step}_{i}"}
            for i, c in enumerate(list(entry)[:n])
        ]
        return Proposal(candidates=calls)


class PlanSearchProposer:
    """A :class:`Proposer` with no LLM: it searches tool plans with a world model that
    imagines whole plans (a workspace simulator) and proposes the first call of the best one.

    It searches again at every decision, from wherever the real workspace is (the simulator
    copies the real folder on each call), like model-predictive control over tool plans: a
    call that failed, was refused or rejected just leads to a new search, and nothing has to
    be remembered between decisions (a run resumed in another process goes on the same way).
    It answers when the goal holds, or when no plan reaches it (saying why).

    Args:
        model: imagines plans (``imagine(state, plans, horizon=H)``).
        expand: offers next calls after a plan (see
            :func:`~wm_agents.planning.plan_search.search_plans`).
        goal: a :class:`~wm_agents.planning.plan_search.WorkspaceGoal` with a ``root`` (or any
            goal with ``holds_now()``).
        allow_loss: propose a plan that reaches the goal only by losing data (the gate still
            asks a person about each lossy call); otherwise such a plan is only explained.
        search_options: ``max_depth``, ``max_imagined``, ``time_budget_s``, ...
    """

    def __init__(
        self,
        model: Any,
        expand: Callable[..., Sequence[dict[str, Any]]],
        goal: Any,
        *,
        allow_loss: bool = False,
        **search_options: Any,
    ) -> None:
        self.model = model
        self.expand = expand
        self.goal = goal
        self.allow_loss = allow_loss
        self.search_options = search_options
        self.last: Any = None
        """The latest :class:`~wm_agents.planning.plan_search.PlanSearchResult`."""

    def propose(
        self, messages: Sequence[BaseMessage], tools: Sequence[ToolSpec], *, n: int, step: int
    ) -> Proposal:
        """The first call of the best plan from here (one candidate), or the final answer."""
        from wm_agents.planning.plan_search import search_plans

        del tools, n
        if self.goal.holds_now():
            done = summarize_tool_calls(messages)
            return Proposal(answer=f"The goal holds ({self.goal.describe()}). {done}")
        result = search_plans(
            self.model,
            {"messages": list(messages)},
            self.expand,
            self.goal,
            allow_loss=self.allow_loss,
            **self.search_options,
        )
        self.last = result
        if result.best is None:
            return Proposal(answer=result.explain(), search=result.as_dict())
        first = result.best.calls[0]
        call = {"name": first["name"], "args": dict(first["args"]), "id": f"call_{step}_0"}
        return Proposal(candidates=[call], search=result.as_dict())
