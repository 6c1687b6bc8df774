"""The outcome prompt: a system and a user message per candidate tool call.

The prompt puts everything the candidates of one decision share first (the system prompt, the
tools, task, context and recent messages) and the call last, so a server that caches prompt
prefixes reads the shared part once per decision and only the call for each candidate.  The
templates are ``prompts/outcome_system.md`` and ``prompts/outcome_user.md``
(``string.Template``: ``$tools``, ``$task``, ``$context``, ``$messages``, ``$call``; found by
:mod:`wm_agents.prompt_files`).
"""

from __future__ import annotations

import string

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from wm_agents.llm.faults import truncate
from wm_agents.llm.schemas import (
    LLMState,
    ToolCallCandidate,
    ToolSpec,
    canonical_json,
    message_role,
    message_text,
)
from wm_agents.prompt_files import load_prompt

__all__ = ["OutcomePrompt", "tool_line"]


def tool_line(spec: ToolSpec) -> str:
    """``- name(a, b?): description`` (``?``: optional); parameter types are left out, since
    the call's arguments show them and every prompt token costs time on a small CPU."""
    props = spec.parameters.get("properties") or {}
    required = set(spec.parameters.get("required") or [])
    params = ", ".join(p if p in required else f"{p}?" for p in props)
    description = truncate(" ".join(spec.description.split()), 200) or "(no description)"
    return f"- {spec.name}({params}): {description}"


class OutcomePrompt:
    """The outcome prompt's templates, rendered for one decision and then per candidate."""

    def __init__(self) -> None:
        self.system_template = string.Template(load_prompt("outcome_system.md"))
        self.user_template = string.Template(load_prompt("outcome_user.md"))

    def shared(
        self, state: LLMState, specs: dict[str, ToolSpec], max_messages: int
    ) -> dict[str, str]:
        """The prompt values every candidate of one decision shares (see :meth:`messages`)."""
        recent = state.messages[-max_messages:] if max_messages > 0 else []
        lines = [
            f"- {message_role(m)}: {truncate(' '.join(message_text(m).split()), 300)}"
            for m in recent
        ]
        return {
            "tools": "\n".join(tool_line(spec) for spec in specs.values()) or "(not given)",
            "task": truncate(state.task.strip(), 600) or "(not given)",
            "context": truncate(state.context.strip(), 600) or "(none)",
            "messages": "\n".join(lines) or "(none)",
        }

    def messages(self, shared: dict[str, str], candidate: ToolCallCandidate) -> list[BaseMessage]:
        """System and user message for one candidate.

        Only ``$call``, the last line of the user template, depends on the candidate: the text
        before it is the same for every candidate of a decision (a cacheable prefix), and the
        tools, task and context before the messages stay the same from one decision to the next.
        """
        call = f"{candidate.name}({truncate(canonical_json(candidate.args), 800)})"
        values = {**shared, "call": call}
        return [
            SystemMessage(self.system_template.safe_substitute(values).strip()),
            HumanMessage(self.user_template.safe_substitute(values).strip()),
        ]
