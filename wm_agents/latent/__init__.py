"""A latent world model from pixels (issue 16): an RSSM with an ensemble of transition heads
(:class:`LatentWorldModel`), its settings (:class:`LatentConfig`), beliefs
(:class:`LatentBelief`) and a replay of whole episodes (:class:`EpisodeReplay`)."""

from wm_agents._lazy import lazy_exports

_EXPORTS = {
    "EpisodeReplay": "wm_agents.latent.replay",
    "LatentBelief": "wm_agents.latent.model",
    "LatentConfig": "wm_agents.latent.model",
    "LatentWorldModel": "wm_agents.latent.model",
    "SequenceBatch": "wm_agents.latent.replay",
}
"""Each public name and the module it lives in (imported on first use)."""


__all__ = ["EpisodeReplay", "LatentBelief", "LatentConfig", "LatentWorldModel", "SequenceBatch"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
