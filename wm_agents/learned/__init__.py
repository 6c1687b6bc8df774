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

from wm_agents.learned.calibration import LogisticCalibrator
from wm_agents.learned.data import OutcomeExample, aexamples_from_memory, example_from_transition
from wm_agents.learned.features import CallFeaturizer, Vocabulary
from wm_agents.learned.metrics import accuracy, auroc, brier, reliability
from wm_agents.learned.model import LearnedOutcomeModel, LearnedPrediction
from wm_agents.learned.network import EnsembleClassifier
from wm_agents.learned.situation import SituationFacts, parse_situation
from wm_agents.learned.training import LearnedConfig

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
