"""Types the LLM outcome predictor reads and writes: the situation, the candidate tool call, the
tool's metadata, and the prediction schema the LLM must answer in.

The prediction schema is sent as a JSON schema (``response_format`` json_schema); its short
decision fields come first, because a small model that runs out of tokens should still have
committed to them, and its strings are bounded.  Local servers do not enforce numeric bounds
(a probability of 100 or 1e12 comes back), so :func:`validate_prediction` checks and bounds every
field after parsing; the rules are in its docstring.

For llama.cpp servers the same schema is also written as a GBNF grammar
(:func:`prediction_grammar`): compact JSON without whitespace and numbers held in ``[0, 1]``.
On a small CPU every generated token costs the same, so the whitespace a free-form JSON grammar
lets a small model write (newlines, indents) is pure cost: about a third of its answer tokens.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "RISK_LEVEL_HARM",
    "LLMState",
    "OutcomePrediction",
    "PredictionError",
    "RiskLevel",
    "ToolCallCandidate",
    "ToolSpec",
    "canonical_json",
    "prediction_grammar",
    "prediction_json_schema",
    "validate_prediction",
]

RiskLevel = Literal["low", "medium", "high"]

RISK_LEVEL_HARM: dict[str, float] = {"low": 0.02, "medium": 0.2, "high": 0.5}
"""Probability of harm a risk level stands for, used in ``Outcome.risk`` and ``Outcome.value``:
``risk = 1 - p_success * (1 - harm)`` (failure or harm)."""

_MAX_RESULT_CHARS = 160
_MAX_SIDE_EFFECTS_CHARS = 80


def canonical_json(value: Any) -> str:
    """Stable JSON text (sorted keys, no spaces; non-JSON values by ``str``) for keys and hashes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def stable_hash(*parts: Any) -> str:
    """A SHA-256 hex digest of the canonical JSON of ``parts`` (stable across processes)."""
    return hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()


class PredictionError(ValueError):
    """An LLM answer that is not a usable prediction (missing fields, non-finite numbers)."""


class OutcomePrediction(BaseModel):
    """What the LLM is asked to predict for one tool call (one sample).

    Field order is the order the model writes them in: decisions first.
    """

    model_config = ConfigDict(extra="ignore")

    success: bool = Field(description="will the call succeed (return without an error)?")
    success_probability: float = Field(
        description="probability from 0.0 to 1.0 that the call succeeds"
    )
    risk_level: RiskLevel = Field(description="harm if it goes wrong: low, medium or high")
    reversible: bool = Field(description="can its effects be undone?")
    goal_progress: float = Field(
        description="from 0.0 to 1.0: how much a successful call advances the task"
    )
    predicted_result: str = Field(
        max_length=_MAX_RESULT_CHARS, description="the output or error message the tool returns"
    )
    side_effects: str = Field(
        max_length=_MAX_SIDE_EFFECTS_CHARS,
        description="what changes in the world (files, records); 'none' if nothing",
    )


def prediction_json_schema() -> dict[str, Any]:
    """The JSON schema sent to the model: every field required, no extra fields, bounded strings.

    No numeric ``minimum``/``maximum``: servers ignore them (and some strict modes reject them);
    numbers are bounded by :func:`validate_prediction` instead.
    """
    schema = OutcomePrediction.model_json_schema()
    schema["additionalProperties"] = False
    schema["required"] = list(OutcomePrediction.model_fields)
    schema["title"] = "OutcomePrediction"
    schema["description"] = "The predicted outcome of one tool call."
    for prop in schema["properties"].values():
        prop.pop("title", None)
    return schema


# GBNF pieces: a JSON string character (any but quote, backslash and controls, or an escape),
# and a number in [0, 1] with at most two decimals ("0", "0.7", "0.25", "1", "1.0").
_GBNF_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'
_GBNF_UNIT = r'unit ::= "0" ("." [0-9] [0-9]?)? | "1" ("." "0" "0"?)?'


def _gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal (quotes and backslashes escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def prediction_grammar() -> str:
    """A GBNF grammar for one :class:`OutcomePrediction` as compact JSON, for llama.cpp servers.

    The fields come in schema order with no whitespace (``{"success":true,...}``); booleans and
    the risk level are their literals; strings are bounded by their ``maxLength``; numbers, all
    of which are fractions in this schema, are held in ``[0, 1]`` with at most two decimals
    (llama.cpp enforces a grammar, unlike a JSON schema's ``minimum``/``maximum``).  The answer
    still goes through :func:`validate_prediction`.

    Raises:
        ValueError: when the schema has a field type this grammar does not cover (a new field
            must be added here too).
    """
    schema = prediction_json_schema()
    parts: list[str] = []
    for i, (name, prop) in enumerate(schema["properties"].items()):
        key = ("{" if i == 0 else ",") + json.dumps(name) + ":"
        kind = prop.get("type")
        if "enum" in prop:
            value = "(" + " | ".join(_gbnf_literal(json.dumps(v)) for v in prop["enum"]) + ")"
        elif kind == "boolean":
            value = '("true" | "false")'
        elif kind == "number":
            value = "unit"
        elif kind == "string" and "maxLength" in prop:
            value = f'"\\"" char{{0,{int(prop["maxLength"])}}} "\\""'
        else:
            raise ValueError(f"prediction_grammar: no grammar rule for field {name!r}: {prop}")
        parts.append(f"{_gbnf_literal(key)} {value}")
    root = "root ::= " + " ".join(parts) + ' "}"'
    return "\n".join([root, _GBNF_UNIT, _GBNF_CHAR]) + "\n"


def _unit_interval(name: str, raw: Any, notes: list[str]) -> float:
    """Rule for probabilities and progress: finite values in [0, 1] as they are; (1, 100] read as
    percent; other finite values clamped into [0, 1] (noted); non-finite or non-numbers rejected."""
    if isinstance(raw, bool):
        return 1.0 if raw else 0.0
    if isinstance(raw, str):
        text = raw.strip().rstrip("%")
        try:
            raw = float(text)
        except ValueError as exc:
            raise PredictionError(f"{name} is not a number: {raw!r}") from exc
    if not isinstance(raw, (int, float)):
        raise PredictionError(f"{name} is not a number: {raw!r}")
    x = float(raw)
    if not math.isfinite(x):
        raise PredictionError(f"{name} is not finite: {raw!r}")
    if 0.0 <= x <= 1.0:
        return x
    if 1.0 < x <= 100.0:
        notes.append(f"{name}={raw!r} read as percent")
        return x / 100.0
    notes.append(f"{name}={raw!r} clamped")
    return min(1.0, max(0.0, x))


def _boolean(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in {"true", "yes", "1"}:
        return True
    if isinstance(raw, str) and raw.strip().lower() in {"false", "no", "0"}:
        return False
    if isinstance(raw, (int, float)) and raw in (0, 1):
        return bool(raw)
    raise PredictionError(f"{name} is not a boolean: {raw!r}")


_RISK_SYNONYMS = {
    "none": "low",
    "minimal": "low",
    "safe": "low",
    "moderate": "medium",
    "med": "medium",
    "severe": "high",
    "critical": "high",
    "dangerous": "high",
}


def validate_prediction(raw: Any) -> dict[str, Any]:
    """Check and bound one parsed LLM answer; return a plain dict of valid values.

    Rules (local servers enforce the JSON shape but not numeric bounds):

    * missing fields, non-numbers and non-finite numbers raise :class:`PredictionError` (that
      sample is unusable);
    * ``success_probability`` and ``goal_progress``: values in ``[0, 1]`` as they are, values
      in ``(1, 100]`` are read as percent, other finite values are clamped into ``[0, 1]``;
      each such repair is listed in ``notes``;
    * ``success`` and ``success_probability`` must agree (``p >= 0.5`` iff success); when they
      contradict each other the sample's probability becomes their average
      ``(p + success) / 2``, so a self-contradicting answer lands near 0.5;
    * ``risk_level``: case-insensitive, common synonyms mapped, anything else ``medium`` (noted);
    * strings are cut to their schema bounds.

    Returns:
        ``{"success", "success_probability", "p_success", "risk_level", "reversible",
        "goal_progress", "predicted_result", "side_effects", "notes"}`` where ``p_success`` is
        the probability the sample stands for after the agreement rule.
    """
    if isinstance(raw, BaseModel):
        raw = raw.model_dump()
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise PredictionError(f"not JSON: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise PredictionError(f"expected a JSON object, got {type(raw).__name__}")
    missing = [k for k in OutcomePrediction.model_fields if k not in raw]
    if missing:
        raise PredictionError(f"missing fields: {', '.join(missing)}")
    notes: list[str] = []
    success = _boolean("success", raw["success"])
    prob = _unit_interval("success_probability", raw["success_probability"], notes)
    progress = _unit_interval("goal_progress", raw["goal_progress"], notes)
    reversible = _boolean("reversible", raw["reversible"])
    level = str(raw["risk_level"]).strip().lower()
    level = _RISK_SYNONYMS.get(level, level)
    if level not in RISK_LEVEL_HARM:
        notes.append(f"risk_level={raw['risk_level']!r} read as medium")
        level = "medium"
    p_success = prob
    if (prob >= 0.5) != success:
        p_success = (prob + (1.0 if success else 0.0)) / 2.0
        notes.append("success and success_probability disagree; averaged")
    return {
        "success": success,
        "success_probability": prob,
        "p_success": p_success,
        "risk_level": level,
        "reversible": reversible,
        "goal_progress": progress,
        "predicted_result": str(raw["predicted_result"])[:_MAX_RESULT_CHARS],
        "side_effects": str(raw["side_effects"])[:_MAX_SIDE_EFFECTS_CHARS],
        "notes": notes,
    }


class ToolCallCandidate(BaseModel):
    """A tool call to imagine: ``{"name", "args"}`` (a LangChain ``ToolCall`` also fits)."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None

    @classmethod
    def from_any(cls, candidate: Any) -> ToolCallCandidate:
        """Accept a ``ToolCallCandidate``, ``{"name", "args"[, "id"]}`` (args may be a JSON
        string), or an OpenAI ``{"function": {"name", "arguments"}}`` dict.

        Raises:
            ValueError: when ``candidate`` is not a tool call (a programming error).
        """
        if isinstance(candidate, ToolCallCandidate):
            return candidate
        if isinstance(candidate, Mapping):
            if "function" in candidate and isinstance(candidate["function"], Mapping):
                fn = candidate["function"]
                return cls._build(fn.get("name"), fn.get("arguments"), candidate.get("id"))
            if "name" in candidate:
                return cls._build(candidate["name"], candidate.get("args"), candidate.get("id"))
        raise ValueError(
            f"a candidate must be a tool call {{'name': str, 'args': dict}}, got {candidate!r:.200}"
        )

    @classmethod
    def _build(cls, name: Any, args: Any, call_id: Any) -> ToolCallCandidate:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a tool call needs a non-empty string name, got {name!r}")
        if args is None:
            args = {}
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"tool call {name!r}: arguments are not JSON: {exc}") from exc
        if not isinstance(args, Mapping):
            raise ValueError(f"tool call {name!r}: args must be a dict, got {type(args).__name__}")
        return cls(name=name, args=dict(args), id=None if call_id is None else str(call_id))

    def as_dict(self) -> dict[str, Any]:
        """JSON-serializable ``{"name", "args"[, "id"]}`` (what ``Outcome.candidate`` holds)."""
        out: dict[str, Any] = {"name": self.name, "args": json.loads(canonical_json(self.args))}
        if self.id is not None:
            out["id"] = self.id
        return out

    def args_key(self) -> str:
        """Canonical JSON of the arguments (for exact-repeat matching)."""
        return canonical_json(self.args)


class ToolSpec(BaseModel):
    """A tool's name, description and JSON schema of its arguments."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_any(cls, tool: Any) -> ToolSpec:
        """Accept a ``ToolSpec``, a LangChain ``BaseTool`` (or anything
        ``convert_to_openai_tool`` accepts), ``{"name", "description", "parameters"}`` or an
        OpenAI ``{"type": "function", "function": {...}}`` dict."""
        if isinstance(tool, ToolSpec):
            return tool
        if isinstance(tool, Mapping):
            fn = tool.get("function") if isinstance(tool.get("function"), Mapping) else tool
            if "name" in fn:
                params = fn.get("parameters") or fn.get("input_schema") or fn.get("args") or {}
                return cls(
                    name=str(fn["name"]),
                    description=str(fn.get("description") or ""),
                    parameters=dict(params),
                )
        from langchain_core.utils.function_calling import convert_to_openai_tool

        try:
            fn = convert_to_openai_tool(tool)["function"]
        except Exception as exc:  # any failure means "not a tool"
            raise ValueError(f"not a tool description: {tool!r:.200} ({exc})") from exc
        return cls(
            name=fn["name"],
            description=fn.get("description") or "",
            parameters=dict(fn.get("parameters") or {}),
        )


class LLMState(BaseModel):
    """The situation a tool call is imagined in.

    Attributes:
        task: what the agent is trying to do.
        messages: recent conversation (LangChain messages or ``{"role", "content"}`` dicts);
            the last few are shown to the model.
        context: anything else the model should know (working directory, known facts).
        tools: tool metadata (``BaseTool`` or dicts) for candidates whose tool is not given to
            the predictor's constructor.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    task: str = ""
    messages: list[Any] = Field(default_factory=list)
    context: str = ""
    tools: list[Any] = Field(default_factory=list)

    @classmethod
    def from_any(cls, state: Any) -> LLMState:
        """Accept an ``LLMState``, a string (the task), ``None``, or a dict/graph state with any
        of ``task``, ``messages``, ``context``, ``tools``.  With no task, the first human
        message stands for it."""
        if isinstance(state, LLMState):
            out = state
        elif state is None:
            out = cls()
        elif isinstance(state, str):
            out = cls(task=state)
        elif isinstance(state, Mapping):
            context = state.get("context", "")
            if not isinstance(context, str):
                context = canonical_json(context)
            messages = state.get("messages") or []
            out = cls(
                task=str(state.get("task") or ""),
                messages=list(messages) if isinstance(messages, Sequence) else [messages],
                context=context,
                tools=list(state.get("tools") or []),
            )
        elif isinstance(state, BaseModel):
            return cls.from_any(state.model_dump())
        else:
            raise ValueError(
                f"state must be an LLMState, a dict or a string, got {type(state).__name__}"
            )
        if not out.task:
            first = next((m for m in out.messages if message_role(m) in {"user", "human"}), None)
            if first is not None:
                out = out.model_copy(update={"task": message_text(first)})
        return out

    def situation_key(self) -> str:
        """What makes two situations "the same" for exact-repeat matching: the task and the
        context, not the messages (a retry adds messages but is the same situation)."""
        return stable_hash(" ".join(self.task.split()), " ".join(self.context.split()))[:16]

    def situation_text(self) -> str:
        """Task and context as one line (for lexical similarity and records)."""
        return " ".join(f"{self.task} {self.context}".split())


def message_role(message: Any) -> str:
    """``user``/``assistant``/``system``/``tool`` of a LangChain message or a dict."""
    if isinstance(message, Mapping):
        return str(message.get("role") or message.get("type") or "user")
    kind = str(getattr(message, "type", "user"))
    return {"human": "user", "ai": "assistant"}.get(kind, kind)


def message_text(message: Any) -> str:
    """The text of a message (content parts joined; tool calls shown as ``name(args)``)."""
    if isinstance(message, Mapping):
        content = message.get("content", "")
        tool_calls = message.get("tool_calls") or []
    elif isinstance(message, str):
        return message
    else:
        content = getattr(message, "content", "")
        tool_calls = getattr(message, "tool_calls", None) or []
    if isinstance(content, list):
        content = " ".join(
            part.get("text", "") if isinstance(part, Mapping) else str(part) for part in content
        )
    text = str(content)
    calls = []
    for call in tool_calls:
        try:
            c = ToolCallCandidate.from_any(call)
            calls.append(f"{c.name}({canonical_json(c.args)})")
        except ValueError:
            continue
    if calls:
        text = (text + " " if text else "") + "calls " + ", ".join(calls)
    return text
