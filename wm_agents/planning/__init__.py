"""Planning: trajectory optimizers (random shooting, CEM), the agreement gate, MPC."""

from wm_agents._lazy import lazy_exports

_EXPORTS = {
    "AgreementGate": "wm_agents.planning.gate",
    "CEMPlanner": "wm_agents.planning.optimizers",
    "MPCController": "wm_agents.planning.mpc",
    "Objective": "wm_agents.planning.optimizers",
    "Proposal": "wm_agents.planning.optimizers",
    "RandomShootingPlanner": "wm_agents.planning.optimizers",
    "member_agreement": "wm_agents.planning.gate",
    "model_objective": "wm_agents.planning.mpc",
    "risk_aware_score": "wm_agents.planning.optimizers",
}
"""Each public name and the module it lives in (imported on first use)."""


__all__ = [
    "AgreementGate",
    "CEMPlanner",
    "MPCController",
    "Objective",
    "Proposal",
    "RandomShootingPlanner",
    "member_agreement",
    "model_objective",
    "risk_aware_score",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
