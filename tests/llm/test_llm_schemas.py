"""Validation and bounding of LLM answers, and the forgiving input types."""

from __future__ import annotations

import math
import re

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool

from wm_agents.llm.schemas import (
    LLMState,
    OutcomePrediction,
    PredictionError,
    ToolCallCandidate,
    ToolSpec,
    prediction_grammar,
    prediction_json_schema,
    validate_prediction,
)


def answer(**overrides):
    base = {
        "success": True,
        "success_probability": 0.8,
        "risk_level": "low",
        "reversible": True,
        "goal_progress": 0.5,
        "predicted_result": "ok",
        "side_effects": "none",
    }
    return base | overrides


def test_schema_puts_decisions_first_and_bounds_strings():
    schema = prediction_json_schema()
    names = list(schema["properties"])
    assert names[:3] == ["success", "success_probability", "risk_level"]
    assert names[-2:] == ["predicted_result", "side_effects"]
    assert schema["required"] == names
    assert schema["additionalProperties"] is False
    assert schema["properties"]["predicted_result"]["maxLength"] <= 200
    assert schema["properties"]["risk_level"]["enum"] == ["low", "medium", "high"]
    assert list(OutcomePrediction.model_fields) == names


def test_valid_answer_passes_unchanged():
    out = validate_prediction(answer())
    assert out["p_success"] == 0.8
    assert out["notes"] == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(0.0, 0.0), (1, 1.0), (0.25, 0.25), (100, 1.0), (80, 0.8), ("70%", 0.7), (1e12, 1.0)],
)
def test_probability_rule_percent_and_clamp(raw, expected):
    success = expected >= 0.5
    out = validate_prediction(answer(success=success, success_probability=raw))
    assert out["success_probability"] == pytest.approx(expected)
    assert 0.0 <= out["p_success"] <= 1.0


def test_negative_probability_is_clamped_and_noted():
    out = validate_prediction(answer(success=False, success_probability=-3))
    assert out["success_probability"] == 0.0
    assert any("clamped" in n for n in out["notes"])


@pytest.mark.parametrize("raw", [math.nan, math.inf, -math.inf, "high", None, [0.5]])
def test_non_finite_or_non_numbers_are_rejected(raw):
    with pytest.raises(PredictionError):
        validate_prediction(answer(success_probability=raw))


def test_goal_progress_uses_the_same_rule():
    assert validate_prediction(answer(goal_progress=50))["goal_progress"] == 0.5
    with pytest.raises(PredictionError):
        validate_prediction(answer(goal_progress=math.nan))


def test_contradicting_success_and_probability_are_averaged():
    out = validate_prediction(answer(success=True, success_probability=0.0))
    assert out["p_success"] == 0.5
    out = validate_prediction(answer(success=False, success_probability=0.9))
    assert out["p_success"] == pytest.approx(0.45)


def test_missing_fields_and_non_objects_are_rejected():
    raw = answer()
    del raw["risk_level"]
    with pytest.raises(PredictionError, match="risk_level"):
        validate_prediction(raw)
    with pytest.raises(PredictionError):
        validate_prediction("not json {")
    with pytest.raises(PredictionError):
        validate_prediction([1, 2])


def test_risk_level_synonyms_and_fallback():
    assert validate_prediction(answer(risk_level="HIGH"))["risk_level"] == "high"
    assert validate_prediction(answer(risk_level="critical"))["risk_level"] == "high"
    out = validate_prediction(answer(risk_level="purple"))
    assert out["risk_level"] == "medium"
    assert out["notes"]


def test_strings_are_truncated_and_booleans_parsed():
    out = validate_prediction(answer(predicted_result="x" * 5000, reversible="false"))
    assert len(out["predicted_result"]) == 160
    assert out["reversible"] is False
    with pytest.raises(PredictionError):
        validate_prediction(answer(reversible="maybe"))


def test_candidate_forms():
    a = ToolCallCandidate.from_any({"name": "f", "args": {"x": 1}})
    b = ToolCallCandidate.from_any(
        {"name": "f", "args": {"x": 1}, "id": "call_1", "type": "tool_call"}
    )
    c = ToolCallCandidate.from_any(
        {"type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    )
    assert a.args == b.args == c.args == {"x": 1}
    assert b.id == "call_1"
    assert ToolCallCandidate.from_any({"name": "g"}).args == {}
    assert a.args_key() == '{"x":1}'


@pytest.mark.parametrize(
    "bad",
    [
        [1, 2],
        "read_file",
        {"args": {}},
        {"name": ""},
        {"name": "f", "args": [1]},
        {"name": "f", "args": "{"},
    ],
)
def test_candidate_that_is_not_a_tool_call_raises(bad):
    with pytest.raises(ValueError):
        ToolCallCandidate.from_any(bad)


def test_tool_spec_from_langchain_tool_and_dicts():
    @tool
    def divide(a: float, b: float) -> float:
        """Divide a by b."""
        return a / b

    spec = ToolSpec.from_any(divide)
    assert spec.name == "divide"
    assert "Divide" in spec.description
    assert set(spec.parameters["properties"]) == {"a", "b"}
    openai_form = {
        "type": "function",
        "function": {"name": "g", "description": "G", "parameters": {}},
    }
    assert ToolSpec.from_any(openai_form).name == "g"
    with pytest.raises(ValueError):
        ToolSpec.from_any(42)


def test_state_forms():
    assert LLMState.from_any("do it").task == "do it"
    assert LLMState.from_any(None).task == ""
    s = LLMState.from_any(
        {"messages": [HumanMessage("read notes"), AIMessage("ok")], "context": {"cwd": "/x"}}
    )
    assert s.task == "read notes"
    assert s.context == '{"cwd":"/x"}'
    s2 = LLMState.from_any({"messages": [{"role": "user", "content": "hi"}]})
    assert s2.task == "hi"
    with pytest.raises(ValueError):
        LLMState.from_any(3.5)


def test_situation_key_ignores_messages_and_whitespace():
    a = LLMState(task="read  notes", context="cwd /x", messages=[HumanMessage("a")])
    b = LLMState(task="read notes", context="cwd /x", messages=[])
    c = LLMState(task="read notes", context="cwd /y")
    assert a.situation_key() == b.situation_key() != c.situation_key()


def test_grammar_writes_compact_json_in_schema_order_with_bounded_numbers():
    grammar = prediction_grammar()
    root = next(line for line in grammar.splitlines() if line.startswith("root ::="))
    keys = re.findall(r'\\"(\w+)\\":', root)
    assert keys == list(OutcomePrediction.model_fields)
    assert root.startswith('root ::= "{\\"success\\":" ("true" | "false") ",\\"success_probability')
    assert root.endswith('"\\"" char{0,80} "\\"" "}"')
    assert '("\\"low\\"" | "\\"medium\\"" | "\\"high\\"")' in root
    assert "char{0,160}" in root
    assert 'unit ::= "0" ("." [0-9] [0-9]?)? | "1" ("." "0" "0"?)?' in grammar


def test_grammar_covers_every_field_type():
    # Every number in the prediction is a fraction, so the grammar bounds them all to [0, 1].
    schema = prediction_json_schema()
    kinds = {name: prop.get("type") for name, prop in schema["properties"].items()}
    assert {n for n, k in kinds.items() if k == "number"} == {
        "success_probability",
        "goal_progress",
    }
