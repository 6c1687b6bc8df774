"""Risk-aware decision and the agreement gate ("an ensemble of 5; act only when they agree").

The gate reads only :class:`~wm_agents.core.Outcome` objects: it does not know whether they came
from a dynamics ensemble or from an LLM.  For environment control the verdicts are:

* ``act``: the candidate with the best risk-aware score ``mean - risk_weight * std``, when at least
  ``agreement_threshold`` of the members would pick a candidate starting with the same action;
* ``replan``: members disagree and a wider search has not been tried yet;
* ``lcb``: members still disagree; take the candidate with the best lower confidence bound
  ``mean - lcb_kappa * std`` (the cautious choice);
* ``ask`` / ``refuse`` (with ``max_risk``): the candidate it would act on has an imagined risk
  above ``max_risk`` (for the ensemble the probability that the episode ends within the
  horizon; any model's :attr:`~wm_agents.core.Outcome.risk`, e.g. a cost scaled to [0, 1]):
  a person decides (``on_risk="ask"``) or the step is refused and a fallback policy acts
  (``on_risk="refuse"``).  The decision keeps the proposed action, for the person to review.
  The env planning graph routes these to its ``ask`` / ``refuse`` nodes
  (:func:`~wm_agents.graph.create_env_planning_graph` with ``ask=True`` / ``refuse=True``),
  the verdicts the tool gate gives too.

The gate is a :class:`~wm_agents.core.Gate`: ``decide(outcomes, *, replans=0)``, like the tool
gate.  What it needs beyond the outcomes, the action space (to say whether members agree on the
first action), is bound when it is built (``action_spec=``, or :meth:`AgreementGate.for_actions`;
:class:`~wm_agents.planning.mpc.MPCController` binds its planner's).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from wm_agents.core import Decision, Outcome
from wm_agents.spaces import ActionSpec

__all__ = ["AgreementGate", "member_agreement"]


def member_agreement(
    outcomes: Sequence[Outcome], chosen: int, action_spec: ActionSpec, tolerance: float = 0.1
) -> float:
    """Fraction of members whose own best candidate starts with (about) the chosen action.

    For Box actions "about" means within ``tolerance`` of the action range in every dimension.
    Outcomes without per-member values count as full agreement (nothing to disagree).
    """
    values = [o.member_values for o in outcomes]
    n_members = {len(v) for v in values}
    if len(n_members) != 1 or 0 in n_members:
        return 1.0
    matrix = np.asarray(values, dtype=float)  # [C, E]
    matrix = np.where(np.isfinite(matrix), matrix, -np.inf)
    favourites = matrix.argmax(axis=0)  # [E]
    first = np.asarray(
        [np.asarray(o.candidate, dtype=float).reshape(-1)[: action_spec.dim] for o in outcomes]
    )
    target = first[chosen]
    if action_spec.kind == "discrete":
        agree = first[favourites, 0] == target[0]
    else:
        span = np.asarray(action_spec.high) - np.asarray(action_spec.low)
        agree = (np.abs(first[favourites] - target) <= tolerance * span).all(axis=1)
    return float(agree.mean())


@dataclass(frozen=True)
class AgreementGate:
    """Choose a candidate and decide whether the ensemble agrees enough to act on it.

    Attributes:
        risk_weight: lambda in the choice score ``mean - lambda * std``.
        agreement_threshold: minimum fraction of members that must agree on the first action.
        lcb_kappa: kappa of the lower confidence bound used when members keep disagreeing.
        max_replans: wider re-plans tried before falling back to the lower confidence bound.
        action_tolerance: for Box actions, agreement tolerance as a fraction of the range.
        action_spec: the env's action space; needed to decide (``None`` until bound, see
            :meth:`for_actions`).
        max_risk: imagined risk in ``[0, 1]`` above which the chosen candidate is not acted on
            alone (``None``: never, the default).
        on_risk: the verdict for such a candidate: ``"ask"`` a person, or ``"refuse"`` (a
            fallback policy acts).
    """

    risk_weight: float = 0.0
    agreement_threshold: float = 0.6
    lcb_kappa: float = 1.0
    max_replans: int = 1
    action_tolerance: float = 0.1
    action_spec: ActionSpec | None = None
    max_risk: float | None = None
    on_risk: Literal["ask", "refuse"] = "ask"

    def __post_init__(self) -> None:
        if not 0.0 <= self.agreement_threshold <= 1.0:
            raise ValueError(
                f"agreement_threshold must be in [0, 1], got {self.agreement_threshold}"
            )
        if self.risk_weight < 0 or self.lcb_kappa < 0 or self.max_replans < 0:
            raise ValueError("risk_weight, lcb_kappa and max_replans must be >= 0")
        if self.max_risk is not None and not 0.0 <= self.max_risk <= 1.0:
            raise ValueError(f"max_risk must be in [0, 1] or None, got {self.max_risk}")
        if self.on_risk not in ("ask", "refuse"):
            raise ValueError(f"on_risk must be 'ask' or 'refuse', got {self.on_risk!r}")

    def for_actions(self, action_spec: ActionSpec) -> AgreementGate:
        """This gate bound to ``action_spec`` (itself when it already is)."""
        if self.action_spec == action_spec:
            return self
        return replace(self, action_spec=action_spec)

    def decide(self, outcomes: Sequence[Outcome], *, replans: int = 0) -> Decision:
        """Return the :class:`Decision` for these outcomes; ``replans`` = re-plans already done.

        Raises:
            ValueError: no outcomes, or no action space bound.
        """
        decision = self._choose(outcomes, replans)
        if (
            self.max_risk is None
            or decision.verdict not in ("act", "lcb")
            or decision.risk <= self.max_risk
        ):
            return decision
        then = "a person decides" if self.on_risk == "ask" else "refused; a fallback acts"
        return decision.model_copy(
            update={
                "verdict": self.on_risk,
                "reason": f"imagined risk {decision.risk:.0%} is above {self.max_risk:.0%} "
                f"({decision.reason}); {then}",
            }
        )

    def _choose(self, outcomes: Sequence[Outcome], replans: int) -> Decision:
        """The agreement rules (act / replan / lcb), before the risk check."""
        if len(outcomes) == 0:
            raise ValueError("cannot decide among zero candidates")
        action_spec = self.action_spec
        if action_spec is None:
            raise ValueError(
                "AgreementGate has no action space: build it with AgreementGate(action_spec=...) "
                "or bind one with gate.for_actions(spec) (MPCController binds its planner's)"
            )
        n_bad = sum(not o.is_known for o in outcomes)
        if n_bad == len(outcomes):
            if replans < self.max_replans:
                return Decision(
                    verdict="replan",
                    reason="every candidate's prediction was non-finite; re-planning wider",
                    n_candidates=len(outcomes),
                    n_nonfinite=n_bad,
                    agreement=0.0,
                )
            # Nothing is known: any action is a guess; take the first and say so.
            return self._decision(
                outcomes,
                0,
                "lcb",
                0.0,
                n_bad,
                "every prediction was non-finite; acting on the first candidate",
            )

        def best(weight: float) -> int:
            scores = [
                o.value - weight * o.uncertainty if o.is_known else -math.inf for o in outcomes
            ]
            return int(np.argmax(scores))

        chosen = best(self.risk_weight)
        agreement = member_agreement(outcomes, chosen, action_spec, self.action_tolerance)
        if agreement >= self.agreement_threshold:
            return self._decision(
                outcomes,
                chosen,
                "act",
                agreement,
                n_bad,
                f"{agreement:.0%} of members agree on the first action",
            )
        if replans < self.max_replans:
            return Decision(
                verdict="replan",
                reason=f"only {agreement:.0%} of members agree "
                f"(< {self.agreement_threshold:.0%}); re-planning wider",
                agreement=agreement,
                n_candidates=len(outcomes),
                n_nonfinite=n_bad,
            )
        chosen = best(self.lcb_kappa)
        agreement = member_agreement(outcomes, chosen, action_spec, self.action_tolerance)
        return self._decision(
            outcomes,
            chosen,
            "lcb",
            agreement,
            n_bad,
            f"members still disagree after {replans} re-plan(s); taking the best lower "
            f"confidence bound (mean - {self.lcb_kappa:g} x spread)",
        )

    @staticmethod
    def _decision(
        outcomes: Sequence[Outcome],
        chosen: int,
        verdict: str,
        agreement: float,
        n_bad: int,
        reason: str,
    ) -> Decision:
        o = outcomes[chosen]
        seq = np.asarray(o.candidate, dtype=float)
        if seq.ndim == 1:
            seq = seq[:, None]
        return Decision(
            action=seq[0].tolist(),
            value=o.value,
            uncertainty=o.uncertainty if math.isfinite(o.uncertainty) else 0.0,
            risk=o.risk,
            verdict=verdict,  # type: ignore[arg-type]
            reason=reason,
            agreement=agreement,
            chosen=chosen,
            n_candidates=len(outcomes),
            n_nonfinite=n_bad,
            plan=seq.tolist(),
        )
