"""Test doubles for agents that imagine before they act: no network, deterministic.

* :class:`ScriptedChatModel`: answers each call with whatever its ``script`` returns, so tests
  can drive every path of the outcome predictor (valid predictions, out-of-range numbers,
  malformed JSON, output cut off by the token limit, refusals, delays, exceptions).  Like
  ``ChatOpenAI`` it has ``temperature``, ``seed`` and ``max_tokens`` fields (the predictor sets
  them per sample) and supports ``with_structured_output(schema, method="json_schema",
  include_raw=True)``.
* :class:`ScriptedToolCallingModel`: a chat model with native tool calling whose replies are
  scripted ``AIMessage`` s, for ``create_agent`` and ``LLMProposer(mode="native")``.
* :func:`scripted_predictor`: an :class:`~wm_agents.llm.LLMOutcomePredictor` over a
  :class:`ScriptedChatModel` that answers by rules on the call (``{"send_mail": FAILS}``), with
  the canned predictions :data:`SAFE`, :data:`FAILS` and :data:`HARMS`.

The same fakes serve the project's tests and users testing their own graphs (the pattern of
langgraph-supervisor's ``FakeChatModel``).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda, RunnableMap
from pydantic import ConfigDict, Field, PrivateAttr

if TYPE_CHECKING:
    from wm_agents.llm.predictor import LLMOutcomePredictor

__all__ = [
    "FAILS",
    "HARMS",
    "SAFE",
    "FakeCall",
    "Reply",
    "ScriptedChatModel",
    "ScriptedToolCallingModel",
    "prediction_reply",
    "scripted_predictor",
]


@dataclass(frozen=True)
class Reply:
    """One scripted answer.

    Attributes:
        content: the text the model returns (a dict is sent as JSON).
        finish_reason: ``"stop"``, or ``"length"`` to simulate the token limit.
        refusal: a refusal message (the content is then ignored).
        delay_s: wait this long before answering (for timeouts).
    """

    content: Any = ""
    finish_reason: str = "stop"
    refusal: str | None = None
    delay_s: float = 0.0


@dataclass(frozen=True)
class FakeCall:
    """What the model was asked: the prompt text, and the sampling settings it had."""

    index: int
    system: str
    user: str
    temperature: float | None
    seed: int | None
    max_tokens: int | None


def prediction_reply(
    success: bool = True,
    p: Any = 0.9,
    *,
    risk_level: str = "low",
    reversible: bool = True,
    goal_progress: Any = 0.5,
    predicted_result: str = "ok",
    side_effects: str = "none",
    delay_s: float = 0.0,
) -> Reply:
    """A reply holding one schema-shaped prediction (numbers are passed through unvalidated)."""
    return Reply(
        {
            "success": success,
            "success_probability": p,
            "risk_level": risk_level,
            "reversible": reversible,
            "goal_progress": goal_progress,
            "predicted_result": predicted_result,
            "side_effects": side_effects,
        },
        delay_s=delay_s,
    )


class _Log:
    """The call log, shared by reference between copies of the model."""

    def __init__(self) -> None:
        self.calls: list[FakeCall] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0


class ScriptedChatModel(BaseChatModel):
    """A chat model whose answers come from ``script(call) -> Reply | dict | str | exception``.

    ``script`` may also be a sequence, answered in call order (the last entry repeats).  The
    call log is shared with copies made by ``model_copy`` (the predictor makes one per sample).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    script: Any = Field(default=None, exclude=True)
    temperature: float | None = None
    seed: int | None = None
    max_tokens: int | None = None
    log: _Log = Field(default_factory=_Log, exclude=True)

    @property
    def calls(self) -> list[FakeCall]:
        """Every call made so far (across the copies)."""
        return self.log.calls

    @property
    def max_in_flight(self) -> int:
        """The most async calls that were in progress at once."""
        return self.log.max_in_flight

    @property
    def _llm_type(self) -> str:
        return "scripted-fake"

    def _next(self, messages: list[BaseMessage]) -> Reply:
        texts = [str(m.content) for m in messages]
        with self.log.lock:
            call = FakeCall(
                index=len(self.log.calls),
                system=texts[0] if len(texts) > 1 else "",
                user=texts[-1] if texts else "",
                temperature=self.temperature,
                seed=self.seed,
                max_tokens=self.max_tokens,
            )
            self.log.calls.append(call)
        script = self.script
        if callable(script):
            answer = script(call)
        elif isinstance(script, Sequence) and not isinstance(script, str) and script:
            answer = script[min(call.index, len(script) - 1)]
        else:
            answer = script
        if isinstance(answer, BaseException):
            raise answer
        if not isinstance(answer, Reply):
            answer = Reply(answer)
        return answer

    @staticmethod
    def _result(reply: Reply) -> ChatResult:
        content = reply.content
        if not isinstance(content, str):
            content = json.dumps(content)
        extra = {"refusal": reply.refusal} if reply.refusal else {}
        message = AIMessage(
            content="" if reply.refusal else content,
            additional_kwargs=extra,
            response_metadata={"finish_reason": reply.finish_reason},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = self._next(messages)
        if reply.delay_s:
            time.sleep(reply.delay_s)
        return self._result(reply)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self.log.lock:
            self.log.in_flight += 1
            self.log.max_in_flight = max(self.log.max_in_flight, self.log.in_flight)
        try:
            reply = self._next(messages)
            # Yield once even without a delay, so concurrent calls overlap as they would.
            await asyncio.sleep(reply.delay_s)
            return self._result(reply)
        finally:
            with self.log.lock:
                self.log.in_flight -= 1

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: str = "json_schema",
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[Any, Any]:
        """Mimic ``ChatOpenAI``'s json_schema mode: parse the content as JSON; a refusal or a
        parse failure becomes ``parsing_error`` when ``include_raw`` is true."""
        if method != "json_schema":
            raise ValueError(f"ScriptedChatModel supports method='json_schema' only, got {method}")

        def parse(raw: AIMessage) -> Any:
            refusal = raw.additional_kwargs.get("refusal")
            if refusal:
                raise ValueError(f"refusal: {refusal}")
            return json.loads(str(raw.content))

        def assemble(out: dict[str, Any]) -> dict[str, Any]:
            try:
                return {"raw": out["raw"], "parsed": parse(out["raw"]), "parsing_error": None}
            except (ValueError, TypeError) as exc:
                if not include_raw:
                    raise
                return {"raw": out["raw"], "parsed": None, "parsing_error": exc}

        chain = RunnableMap(raw=self) | RunnableLambda(assemble)
        if include_raw:
            return chain
        return chain | RunnableLambda(lambda out: out["parsed"])


class ScriptedToolCallingModel(BaseChatModel):
    """Answers with scripted ``AIMessage`` s in call order; records what it was sent."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    replies: list[AIMessage] = Field(default_factory=list)
    bound_tools: list[Any] = Field(default_factory=list)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _prompts: list[list[BaseMessage]] = PrivateAttr(default_factory=list)

    @property
    def prompts(self) -> list[list[BaseMessage]]:
        """The messages of every call so far."""
        return self._prompts

    @property
    def _llm_type(self) -> str:
        return "scripted-tool-calling-fake"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedToolCallingModel:
        """Remember the tools; answers stay scripted."""
        self.bound_tools = list(tools)
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self._lock:
            index = len(self._prompts)
            self._prompts.append(list(messages))
        if not self.replies:
            reply = AIMessage("done")
        else:
            reply = self.replies[min(index, len(self.replies) - 1)]
        return ChatResult(generations=[ChatGeneration(message=reply.model_copy())])


SAFE = prediction_reply(True, 0.95, predicted_result="ok", goal_progress=0.8)
"""A confident prediction of success."""
FAILS = prediction_reply(False, 0.05, predicted_result="FileNotFoundError")
"""A confident prediction of failure."""
HARMS = prediction_reply(
    True, 0.9, risk_level="high", reversible=False, predicted_result="everything deleted"
)
"""A prediction of success that does irreversible harm."""

_CALL_LINE = re.compile(r"^Call: (.*)$", re.MULTILINE)


def scripted_predictor(
    rules: Mapping[str, Reply], default: Reply = SAFE, **options: Any
) -> LLMOutcomePredictor:
    """An outcome predictor whose fake LLM answers each call with the first rule whose key
    appears in the prompt's ``Call:`` line (``{"missing": FAILS}``), else ``default``.
    ``options`` go to :class:`~wm_agents.llm.LLMOutcomePredictor` (2 samples and no retry
    back-off unless given)."""
    from wm_agents.llm.predictor import LLMOutcomePredictor

    def script(call: FakeCall) -> Reply:
        match = _CALL_LINE.search(call.user)
        line = match.group(1) if match else call.user
        for key, reply in rules.items():
            if key in line:
                return reply
        return default

    options.setdefault("samples", 2)
    options.setdefault("backoff_s", 0.0)
    return LLMOutcomePredictor(ScriptedChatModel(script=script), **options)
