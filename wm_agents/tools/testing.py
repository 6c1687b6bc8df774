"""A scripted chat model with native tool calling, for tests of agents (no network).

``ScriptedToolCallingModel(replies=[AIMessage(tool_calls=[...]), AIMessage("done")])`` answers
call ``i`` with ``replies[i]`` (the last one repeats); ``bind_tools`` returns the model itself,
so it works inside ``langchain.agents.create_agent`` and with ``LLMProposer(mode="native")``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

__all__ = ["ScriptedToolCallingModel"]


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
