"""The LLM outcome predictor: an LLM imagines what a tool call will do before it runs.

* :class:`LLMOutcomePredictor`: a :class:`~wm_agents.core.WorldModel` over tool calls (k
  samples, uncertainty from their disagreement, experience weighed in outside the prompt).
* :class:`ExperienceMemory`: real outcomes in a LangGraph ``BaseStore``; per-tool calibration.
* :class:`EmbeddedLLMServer`: the offline default (SmolLM2-135M on llama.cpp's server).
* :func:`resolve_llm_settings` / :func:`open_chat_model`: ``OPENAI_BASE_URL``,
  ``OPENAI_API_KEY``, ``WM_AGENTS_LLM_MODEL``; none set means the embedded model.
"""

from wm_agents._lazy import lazy_exports

_EXPORTS = {
    "EmbeddedLLMServer": "wm_agents.llm.server",
    "EmbeddedServerError": "wm_agents.llm.server",
    "Evidence": "wm_agents.llm.memory",
    "ExperienceMemory": "wm_agents.llm.memory",
    "LLMDynamicsModel": "wm_agents.llm.env_model",
    "LLMOutcomePredictor": "wm_agents.llm.predictor",
    "LLMSettings": "wm_agents.llm.config",
    "LLMState": "wm_agents.llm.schemas",
    "OutcomePrediction": "wm_agents.llm.schemas",
    "PredictionError": "wm_agents.llm.schemas",
    "ToolCallCandidate": "wm_agents.llm.schemas",
    "ToolSpec": "wm_agents.llm.schemas",
    "allocate_samples": "wm_agents.llm.requests",
    "embedded_model_path": "wm_agents.llm.server",
    "lexical_similarity": "wm_agents.llm.memory",
    "load_prompt": "wm_agents.prompt_files",
    "open_chat_model": "wm_agents.llm.config",
    "resolve_llm_settings": "wm_agents.llm.config",
    "validate_prediction": "wm_agents.llm.schemas",
}
"""Each public name and the module it lives in (imported on first use)."""


__all__ = [
    "EmbeddedLLMServer",
    "EmbeddedServerError",
    "Evidence",
    "ExperienceMemory",
    "LLMDynamicsModel",
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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
