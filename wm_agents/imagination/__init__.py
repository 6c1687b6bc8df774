"""Learning inside imagination: MBPO-style branched rollouts on the ensemble, DQN / SAC learners,
and the learned policy as a controller of the planning graph (alone, or with MPC fallback)."""

from wm_agents.imagination.buffer import TensorReplay
from wm_agents.imagination.controllers import HybridController, HybridStep, PolicyController
from wm_agents.imagination.distill import DistilledPolicy
from wm_agents.imagination.dqn import DQNConfig, DQNLearner
from wm_agents.imagination.mbpo import ImaginationConfig, ImaginationLearner, episode_starts
from wm_agents.imagination.rollouts import (
    ImaginedBatch,
    branched_rollouts,
    default_scale,
    ensemble_disagreement,
)
from wm_agents.imagination.runner import AgentKind, ImaginationRunResult, run_imagination_gym
from wm_agents.imagination.sac import SACConfig, SACLearner
from wm_agents.imagination.strategies import HybridStrategy, HybridTrust, PolicyStrategy
from wm_agents.imagination.trust import calibrate_disagreement, imagined_policy_return

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
