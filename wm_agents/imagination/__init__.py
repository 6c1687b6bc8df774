"""Learning inside imagination: MBPO-style branched rollouts on the ensemble, DQN / SAC learners,
and the learned policy as a controller of the planning graph (alone, or with MPC fallback)."""

from wm_agents._lazy import lazy_exports

_EXPORTS = {
    "AgentKind": "wm_agents.imagination.runner",
    "DQNConfig": "wm_agents.imagination.dqn",
    "DQNLearner": "wm_agents.imagination.dqn",
    "DistilledPolicy": "wm_agents.imagination.distill",
    "HybridController": "wm_agents.imagination.controllers",
    "HybridStep": "wm_agents.imagination.controllers",
    "HybridStrategy": "wm_agents.imagination.strategies",
    "HybridTrust": "wm_agents.imagination.strategies",
    "ImaginationConfig": "wm_agents.imagination.mbpo",
    "ImaginationLearner": "wm_agents.imagination.mbpo",
    "ImaginationRunResult": "wm_agents.imagination.runner",
    "ImaginedBatch": "wm_agents.imagination.rollouts",
    "PolicyController": "wm_agents.imagination.controllers",
    "PolicyStrategy": "wm_agents.imagination.strategies",
    "SACConfig": "wm_agents.imagination.sac",
    "SACLearner": "wm_agents.imagination.sac",
    "TensorReplay": "wm_agents.imagination.buffer",
    "branched_rollouts": "wm_agents.imagination.rollouts",
    "calibrate_disagreement": "wm_agents.imagination.trust",
    "default_scale": "wm_agents.imagination.rollouts",
    "ensemble_disagreement": "wm_agents.imagination.rollouts",
    "episode_starts": "wm_agents.imagination.mbpo",
    "imagined_policy_return": "wm_agents.imagination.trust",
    "run_imagination_gym": "wm_agents.imagination.runner",
}
"""Each public name and the module it lives in (imported on first use)."""


__all__ = [
    "AgentKind",
    "DQNConfig",
    "DQNLearner",
    "DistilledPolicy",
    "HybridController",
    "HybridStep",
    "HybridStrategy",
    "HybridTrust",
    "ImaginationConfig",
    "ImaginationLearner",
    "ImaginationRunResult",
    "ImaginedBatch",
    "PolicyController",
    "PolicyStrategy",
    "SACConfig",
    "SACLearner",
    "TensorReplay",
    "branched_rollouts",
    "calibrate_disagreement",
    "default_scale",
    "ensemble_disagreement",
    "episode_starts",
    "imagined_policy_return",
    "run_imagination_gym",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
