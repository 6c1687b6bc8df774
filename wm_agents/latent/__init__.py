"""A latent world model from pixels (issue 16): an RSSM with an ensemble of transition heads
(:class:`LatentWorldModel`), its settings (:class:`LatentConfig`), beliefs
(:class:`LatentBelief`), a replay of whole episodes (:class:`EpisodeReplay`), the agent
that plans with it through the planning graph (:class:`LatentController`,
:class:`LatentLearner`, :func:`run_latent_gym`), and a policy learned in its dreams, acting alone
or as a hybrid with latent planning (:class:`DreamTrainer`, :class:`LatentPolicyController`,
:class:`LatentHybridController`)."""

from wm_agents._lazy import lazy_exports

_EXPORTS = {
    "DreamConfig": "wm_agents.latent.dream",
    "DreamTrainer": "wm_agents.latent.dream",
    "EpisodeReplay": "wm_agents.latent.replay",
    "LatentAgentConfig": "wm_agents.latent.agent",
    "LatentController": "wm_agents.latent.agent",
    "LatentLearner": "wm_agents.latent.agent",
    "LatentBelief": "wm_agents.latent.model",
    "LatentDreamLearner": "wm_agents.latent.dream_agent",
    "LatentDreamStrategy": "wm_agents.latent.dream_agent",
    "LatentHybridController": "wm_agents.latent.dream_agent",
    "LatentPolicyController": "wm_agents.latent.dream_agent",
    "LatentConfig": "wm_agents.latent.model",
    "LatentWorldModel": "wm_agents.latent.model",
    "SequenceBatch": "wm_agents.latent.replay",
    "run_latent_gym": "wm_agents.latent.agent",
}
"""Each public name and the module it lives in (imported on first use)."""


__all__ = [
    "DreamConfig",
    "DreamTrainer",
    "EpisodeReplay",
    "LatentAgentConfig",
    "LatentBelief",
    "LatentConfig",
    "LatentController",
    "LatentDreamLearner",
    "LatentDreamStrategy",
    "LatentHybridController",
    "LatentLearner",
    "LatentPolicyController",
    "LatentWorldModel",
    "SequenceBatch",
    "run_latent_gym",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
