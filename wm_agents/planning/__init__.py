"""Planning: trajectory optimizers (random shooting, CEM), the agreement gate, MPC."""

from wm_agents._lazy import lazy_exports

_EXPORTS = {
    "AgreementGate": "wm_agents.planning.gate",
    "CEMPlanner": "wm_agents.planning.optimizers",
    "MPCController": "wm_agents.planning.mpc",
    "Objective": "wm_agents.planning.optimizers",
    "ObjectiveFactory": "wm_agents.planning.mpc",
    "PlanNode": "wm_agents.planning.plan_search",
    "PlanSearchResult": "wm_agents.planning.plan_search",
    "Proposal": "wm_agents.planning.optimizers",
    "RandomShootingPlanner": "wm_agents.planning.optimizers",
    "WorkspaceGoal": "wm_agents.planning.plan_search",
    "imagined_objective": "wm_agents.planning.mpc",
    "member_agreement": "wm_agents.planning.gate",
    "model_objective": "wm_agents.planning.mpc",
    "plan_together": "wm_agents.planning.mpc",
    "risk_aware_score": "wm_agents.planning.optimizers",
    "search_plans": "wm_agents.planning.plan_search",
}
"""Each public name and the module it lives in (imported on first use)."""


__all__ = [
    "AgreementGate",
    "CEMPlanner",
    "MPCController",
    "Objective",
    "ObjectiveFactory",
    "PlanNode",
    "PlanSearchResult",
    "Proposal",
    "RandomShootingPlanner",
    "WorkspaceGoal",
    "imagined_objective",
    "member_agreement",
    "model_objective",
    "plan_together",
    "risk_aware_score",
    "search_plans",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
