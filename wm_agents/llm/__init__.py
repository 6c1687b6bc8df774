"""The LLM outcome predictor: an LLM imagines what a tool call will do before it runs.

* :class:`LLMOutcomePredictor`: a :class:`~wm_agents.core.WorldModel` over tool calls (k
  samples, uncertainty from their disagreement, experience weighed in outside the prompt).
* :class:`ExperienceMemory`: real outcomes in a LangGraph ``BaseStore``; per-tool calibration.
* :class:`EmbeddedLLMServer`: the offline default (SmolLM2-135M on llama.cpp's server).
* :func:`resolve_llm_settings` / :func:`open_chat_model`: ``OPENAI_BASE_URL``,
  ``OPENAI_API_KEY``, ``WM_AGENTS_LLM_MODEL``; none set means the embedded model.
"""

from wm_agents.llm.config import LLMSettings, open_chat_model, resolve_llm_settings
from wm_agents.llm.memory import Evidence, ExperienceMemory, lexical_similarity
from wm_agents.llm.predictor import LLMOutcomePredictor, allocate_samples, load_prompt
from wm_agents.llm.schemas import (
    LLMState,
    OutcomePrediction,
    PredictionError,
    ToolCallCandidate,
    ToolSpec,
    validate_prediction,
)
from wm_agents.llm.server import EmbeddedLLMServer, EmbeddedServerError, embedded_model_path

__all__ = [
    "EmbeddedLLMServer",
    "EmbeddedServerError",
    "Evidence",
    "ExperienceMemory",
    "LLMOutcomePredictor",
    "LLMSettings",
    "LLMState",
    "OutcomePrediction",
    "PredictionError",
    "ToolCallCandidate",
    "ToolSpec",
    "allocate_samples",
    "embedded_model_path",
    "lexical_similarity",
    "load_prompt",
    "open_chat_model",
    "resolve_llm_settings",
    "validate_prediction",
]
