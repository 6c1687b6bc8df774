"""Model-predictive control: propose -> imagine -> decide, as plain functions.

The planning graph's nodes call exactly these steps; :meth:`MPCController.act` chains them in a
bare Python loop for users (and benchmarks) that do not want a graph.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from wm_agents.core import Decision, Outcome
from wm_agents.neural.ensemble import EnsembleDynamicsModel
from wm_agents.planning.gate import AgreementGate
from wm_agents.planning.optimizers import CEMPlanner, Objective, Proposal, RandomShootingPlanner

__all__ = ["MPCController", "model_objective"]


def model_objective(
    model: EnsembleDynamicsModel,
    obs: Any,
    *,
    particles: int | None = None,
    gamma: float = 1.0,
    use_value: bool = False,
    value_kappa: float = 1.0,
) -> Objective:
    """``[B, H, A] -> [B, K]`` imagined returns from ``obs`` (K particles, TS-infinity).

    With ``use_value`` and a fitted terminal value, returns include ``gamma^H * V(s_H)`` with the
    pessimistic ``V`` of ``model.value_lcb`` (``value_kappa``).
    """
    obs_t = model.check_obs(obs)
    tv = model.terminal_value_fn(value_kappa) if use_value else None
    return lambda actions: (
        model.rollout(obs_t, actions, particles=particles, gamma=gamma, terminal_value=tv).returns
    )


@dataclass
class MPCController:
    """Plan one action at a time with a dynamics model, a trajectory optimizer and a gate.

    Attributes:
        model: the ensemble dynamics model (imagines candidates).
        planner: :class:`CEMPlanner` or :class:`RandomShootingPlanner` (proposes candidates).
        gate: :class:`AgreementGate` (decides, and asks for a re-plan when members disagree).
        particles: particles per candidate inside the optimizer (1: each candidate imagined by
            one member, round-robin, the cheap search; ``None``: one per member).  The final
            candidates are always imagined by every member.
        widen: population multiplier for each re-plan the gate asks for.
        gamma: discount inside the horizon (match ``FitConfig.value_gamma``).
        use_value: add the model's learned terminal value ``gamma^H * V(s_H)`` (when fitted).
        value_kappa: pessimism of that value: ``mean - kappa * std`` over members.
    """

    model: EnsembleDynamicsModel
    planner: CEMPlanner | RandomShootingPlanner
    gate: AgreementGate = field(default_factory=AgreementGate)
    particles: int | None = 1
    widen: float = 2.0
    gamma: float = 0.99
    use_value: bool = True
    value_kappa: float = 1.0
    _warm: torch.Tensor | None = field(default=None, init=False, repr=False)

    @property
    def horizon(self) -> int:
        return self.planner.horizon

    @torch.inference_mode()
    def propose(self, obs: Any, *, warm_start: Any = None, replans: int = 0) -> Proposal:
        """Search for good action sequences from ``obs``; wider after each re-plan.

        Runs in ``torch.inference_mode`` (as :meth:`imagine` and :meth:`act` do): no autograd
        bookkeeping on the search's thousands of small ops, so a graph node calling it plans as
        fast as the bare loop.
        """
        objective = model_objective(
            self.model,
            obs,
            particles=self.particles,
            gamma=self.gamma,
            use_value=self.use_value,
            value_kappa=self.value_kappa,
        )
        population = int(self.planner.population * self.widen**replans)
        warm = None
        if warm_start is not None:
            warm = self.planner.shift(torch.as_tensor(warm_start, dtype=torch.float32))
        return self.planner.propose(objective, warm_start=warm, population=population)

    @torch.inference_mode()
    def imagine(self, obs: Any, candidates: Sequence[Any]) -> list[Outcome]:
        """Every member imagines every candidate (the :class:`WorldModel` call)."""
        return self.model.imagine(
            obs,
            candidates,
            horizon=self.horizon,
            gamma=self.gamma,
            use_value=self.use_value,
            value_kappa=self.value_kappa,
        )

    def decide(self, outcomes: Sequence[Outcome], *, replans: int = 0) -> Decision:
        return self.gate.decide(outcomes, self.model.action_spec, replans=replans)

    @torch.inference_mode()
    def act(self, obs: Any) -> Decision:
        """One full decision (with re-plans as the gate asks); keeps the plan for a warm start."""
        t0 = time.perf_counter()
        replans = 0
        while True:
            proposal = self.propose(obs, warm_start=self._warm, replans=replans)
            outcomes = self.imagine(obs, proposal.candidates.tolist())
            decision = self.decide(outcomes, replans=replans)
            if decision.verdict != "replan":
                break
            replans += 1
        self._warm = torch.tensor(decision.plan) if decision.plan is not None else None
        ms = (time.perf_counter() - t0) * 1e3
        return decision.model_copy(
            update={"plan_ms": ms, "n_nonfinite": decision.n_nonfinite + proposal.n_nonfinite}
        )

    def reset(self) -> None:
        """Forget the warm start (call at the start of an episode)."""
        self._warm = None
