"""Planning: trajectory optimizers (random shooting, CEM), the agreement gate, MPC."""

from wm_agents.planning.gate import AgreementGate, member_agreement
from wm_agents.planning.mpc import (
    MPCController,
    ObjectiveFactory,
    imagined_objective,
    model_objective,
)
from wm_agents.planning.optimizers import (
    CEMPlanner,
    Objective,
    Proposal,
    RandomShootingPlanner,
    risk_aware_score,
)

__all__ = [
    "AgreementGate",
    "CEMPlanner",
    "MPCController",
    "Objective",
    "ObjectiveFactory",
    "Proposal",
    "RandomShootingPlanner",
    "imagined_objective",
    "member_agreement",
    "model_objective",
    "risk_aware_score",
]
