"""A learned outcome model for tool calls: predicts a first-time call's success from features of
the call and its situation, trained on real outcomes, calibrated, combined with the LLM's prior.

* :class:`LearnedOutcomeModel`: the :class:`~wm_agents.core.WorldModel` (``imagine`` /
  ``aimagine`` / ``learn``; ``save`` / ``load``; ``fit_from_memory``);
* :class:`LearnedConfig`: its settings;
* :class:`CallFeaturizer`, :class:`Vocabulary`, :func:`parse_situation`: the features;
* :class:`EnsembleClassifier`, :class:`LogisticCalibrator`: the network and the calibration;
* :class:`OutcomeExample`: one real outcome to learn from;
* :func:`auroc`, :func:`brier`, :func:`accuracy`, :func:`reliability`: scores.

Where it sits: simulate a call where the workspace can be copied; else this model where it is
confident; else the LLM (DESIGN.md, "Where imagination gets its ground truth").
"""

from wm_agents._lazy import lazy_exports

_EXPORTS = {
    "CallFeaturizer": "wm_agents.learned.features",
    "EnsembleClassifier": "wm_agents.learned.network",
    "LearnedConfig": "wm_agents.learned.training",
    "LearnedOutcomeModel": "wm_agents.learned.model",
    "LearnedPrediction": "wm_agents.learned.model",
    "LogisticCalibrator": "wm_agents.learned.calibration",
    "OutcomeExample": "wm_agents.learned.data",
    "SituationFacts": "wm_agents.learned.situation",
    "Vocabulary": "wm_agents.learned.features",
    "accuracy": "wm_agents.learned.metrics",
    "aexamples_from_memory": "wm_agents.learned.data",
    "auroc": "wm_agents.learned.metrics",
    "brier": "wm_agents.learned.metrics",
    "example_from_transition": "wm_agents.learned.data",
    "parse_situation": "wm_agents.learned.situation",
    "reliability": "wm_agents.learned.metrics",
}
"""Each public name and the module it lives in (imported on first use)."""


__all__ = [
    "CallFeaturizer",
    "EnsembleClassifier",
    "LearnedConfig",
    "LearnedOutcomeModel",
    "LearnedPrediction",
    "LogisticCalibrator",
    "OutcomeExample",
    "SituationFacts",
    "Vocabulary",
    "accuracy",
    "aexamples_from_memory",
    "auroc",
    "brier",
    "example_from_transition",
    "parse_situation",
    "reliability",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
