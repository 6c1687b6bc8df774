"""The gate for tool calls: weigh each imagined outcome with the tool's hints and experience.

For each candidate the gate first asks *is it viable?*

* not when it is **predicted to fail**: an exact repeat of a call that already failed for real
  (the predictor's experience evidence), or a success probability below the tool's
  ``min_success``;
* not when it is **predicted to harm**: predicted harm at least ``max_harm``, not reversible;
* not when its outcome is **unknown** (the model could not predict): then the tool's
  ``on_unknown`` says whether it can still be asked about, or is refused.

Then, among the viable candidates, it picks the best ``value - risk_weight * uncertainty`` and:

* ``act`` when the predictions agree (``uncertainty <= max_uncertainty``) and the risk is low
  (``risk <= max_risk``), and the tool is neither destructive nor ``always_ask``;
* ``ask`` (a human approves, edits or rejects) otherwise;
* ``refuse`` with an explanation when no candidate is viable and none may be asked about.

Tools marked ``never_simulate`` are not imagined; their outcome carries
``prediction["simulated"] = False`` and the gate decides on their hints alone.

An **exact** outcome (``prediction["source"]`` is ``"simulated"`` or ``"dry_run"``: the call
was run on a throwaway copy, see :mod:`wm_agents.simulate`) is not a guess, so with the tool's
``trust_simulation`` it is judged by its side effects instead of the ``destructive`` hint and
the risk / uncertainty thresholds: a call that loses data for good (``reversible`` false) or
deletes more than ``max_deleted`` files or rows goes to a person, and the reason says the
numbers ("the simulation shows: deleted 1,243 files (2.1 GB, 2.1 GB lost); not reversible");
one that changes nothing irreplaceable runs; one that fails is refused with the real error
(running it would only repeat the failure).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wm_agents.core import Decision, Outcome
from wm_agents.tools.hints import ToolHints, ToolPolicy, call_hints_from_tool, hints_from_tool

logger = logging.getLogger(__name__)

__all__ = ["Assessment", "ToolGate", "call_text", "is_exact", "not_simulated_outcome"]

EXACT_SOURCES = ("simulated", "dry_run")
"""``prediction["source"]`` of outcomes that were observed on a copy, not predicted."""


def is_exact(outcome: Outcome) -> bool:
    """True for a known outcome observed on a throwaway copy (or a dry run): no guess."""
    return outcome.is_known and outcome.prediction.get("source") in EXACT_SOURCES


def _side_effect_text(pred: Mapping[str, Any]) -> str:
    effects = pred.get("side_effects")
    if isinstance(effects, Mapping):
        text = str(effects.get("summary") or "").strip()
        if text:
            return text
    return str(effects or "no side effects reported")[:300]


def _deleted(pred: Mapping[str, Any]) -> int:
    effects = pred.get("side_effects")
    totals = effects.get("totals") if isinstance(effects, Mapping) else None
    if not isinstance(totals, Mapping):
        return 0
    return int(totals.get("files_deleted", 0) or 0) + int(totals.get("rows_deleted", 0) or 0)


def call_text(call: Mapping[str, Any] | None, limit: int = 120) -> str:
    """``name({"arg": ...})`` for messages and tables."""
    if not call:
        return "-"
    args = json.dumps(call.get("args") or {}, sort_keys=True, default=str)
    text = f"{call.get('name')}({args})"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def not_simulated_outcome(call: Mapping[str, Any]) -> Outcome:
    """The stand-in outcome of a ``never_simulate`` tool: nothing imagined, nothing known."""
    return Outcome(
        candidate=dict(call),
        prediction={"simulated": False, "tool": call.get("name")},
        value=0.0,
        uncertainty=0.0,
        risk=0.0,
        reason="not simulated (never_simulate)",
    )


@dataclass(frozen=True)
class Assessment:
    """The gate's view of one candidate.

    Attributes:
        viable: may be executed (possibly after asking).
        askable: an unknown outcome that a human may still approve.
        problems: why it is not viable (sentences), empty when viable.
        score: ``value - risk_weight * uncertainty`` (``-inf`` when not viable).
    """

    viable: bool
    askable: bool
    problems: tuple[str, ...]
    score: float


class ToolGate:
    """Decide act / ask / refuse for candidate tool calls from their imagined outcomes.

    Args:
        hints: per-tool :class:`ToolHints` (or dicts); tools not named here use the hints in
            their ``metadata["wm_hints"]`` (see ``tools``) or no hints.
        policies: per-tool :class:`ToolPolicy` (or dicts of its fields, which override the
            hint-based defaults).
        default_policy: the policy of tools without hints or policy (``ToolPolicy()``).
        tools: LangChain tools whose ``metadata["wm_hints"]`` declare their hints.
        risk_weight: ``lambda`` in the choice score ``value - lambda * uncertainty``.
    """

    def __init__(
        self,
        *,
        hints: Mapping[str, ToolHints | Mapping[str, Any]] | None = None,
        policies: Mapping[str, ToolPolicy | Mapping[str, Any]] | None = None,
        default_policy: ToolPolicy | None = None,
        tools: Sequence[Any] = (),
        risk_weight: float = 0.5,
    ) -> None:
        if risk_weight < 0:
            raise ValueError(f"risk_weight must be >= 0, got {risk_weight}")
        self._hints: dict[str, ToolHints] = {}
        self._call_hints: dict[str, Callable[[dict[str, Any]], Mapping[str, Any]]] = {}
        self._explicit: set[str] = set()
        for name, value in (hints or {}).items():
            self._hints[name] = ToolHints.from_any(value)
            self._explicit.add(name)
        for tool in tools:
            self.register(tool)
        self._policies: dict[str, ToolPolicy | dict[str, Any]] = {}
        for name, value in (policies or {}).items():
            self._policies[name] = value if isinstance(value, ToolPolicy) else dict(value)
        self.default_policy = default_policy
        self.risk_weight = float(risk_weight)

    # -- configuration ----------------------------------------------------------------------

    def register(self, tool: Any) -> None:
        """Take the hints a LangChain tool declares in ``metadata["wm_hints"]`` (unless hints
        for that tool were given to the gate explicitly) and its per-call hints in
        ``metadata["wm_call_hints"]`` (see :meth:`hints_for`)."""
        declared = hints_from_tool(tool)
        name = getattr(tool, "name", None)
        if name is None and isinstance(tool, Mapping):
            name = tool.get("name")
        if declared is not None and name and str(name) not in self._explicit:
            self._hints[str(name)] = declared
        per_call = call_hints_from_tool(tool)
        if per_call is not None and name:
            self._call_hints[str(name)] = per_call

    def hints_for(self, tool: str, args: Mapping[str, Any] | None = None) -> ToolHints:
        """The hints of a tool (no hints declared: all false), refined for one call's
        ``args`` by the tool's per-call hints when it declares them.

        Per-call hints say what only the arguments tell: ``write_file`` is destructive when
        its target exists and harmless when it does not.  A per-call hints function that
        fails counts as the most cautious answer (destructive).
        """
        hints = self._hints.get(tool, ToolHints())
        refine = self._call_hints.get(tool)
        if refine is None or args is None:
            return hints
        try:
            refined = ToolHints.from_any(dict(refine(dict(args)) or {}))
            return hints.model_copy(update=refined.model_dump(exclude_unset=True))
        except Exception as exc:
            logger.warning("per-call hints of %s failed (%s); counted as destructive", tool, exc)
            return hints.model_copy(update={"destructive": True})

    def policy_for(self, tool: str, args: Mapping[str, Any] | None = None) -> ToolPolicy:
        """The thresholds of a tool: its own policy, else the default for its hints (for
        this call's ``args`` when given)."""
        own = self._policies.get(tool)
        if isinstance(own, ToolPolicy):
            return own
        hints = self.hints_for(tool, args)
        if tool in self._hints or self.default_policy is None:
            base = ToolPolicy.default_for(hints)
        else:
            base = self.default_policy
        return base.model_copy(update=own) if own else base

    def simulate(self, tool: str) -> bool:
        """False for tools marked ``never_simulate``."""
        return not self.hints_for(tool).never_simulate

    # -- the gate ---------------------------------------------------------------------------

    def assess(self, outcome: Outcome) -> Assessment:
        """Viability of one candidate (see the module docstring).

        Experience comes first: an exact repeat of a call that failed for real is refused
        whatever the model predicted, or failed to predict (an unknown outcome still carries
        its evidence).
        """
        call = outcome.candidate if isinstance(outcome.candidate, Mapping) else {}
        name = str(call.get("name", ""))
        policy = self.policy_for(name, call.get("args"))
        pred = outcome.prediction
        if pred.get("simulated") is False:
            return Assessment(True, False, (), 0.0)
        problems: list[str] = []
        evidence = pred.get("evidence") or {}
        rate = evidence.get("observed_success_rate")
        if (
            policy.refuse_failed_repeat
            and evidence.get("exact_repeat")
            and rate is not None
            and rate < 0.5
        ):
            result = str(
                (pred.get("predicted_result") if outcome.is_known else None)
                or evidence.get("exact_result")
                or ""
            ).strip()
            problems.append(
                "the same call already failed in this situation"
                + (f" with: {result[:160]}" if result else "")
            )
        if not outcome.is_known:
            if problems:
                return Assessment(False, False, tuple(problems), -math.inf)
            reason = outcome.reason or "the outcome could not be predicted"
            askable = policy.on_unknown == "ask"
            return Assessment(False, askable, (f"outcome unknown: {reason}",), -math.inf)
        p = float(pred.get("success_probability", 1.0 - outcome.risk))
        if is_exact(outcome) and policy.trust_simulation:
            # A simulated failure is not a guess: running the call would only repeat it (even
            # a read-only one), and the agent reads the real error in the refusal.
            if pred.get("success") is False:
                result = str(pred.get("predicted_result") or "").strip()
                problems.append(f"the simulation failed: {result[:200]}")
        elif p < policy.min_success:
            problems.append(
                f"predicted to fail (success probability {p:.2f} < {policy.min_success:.2f})"
            )
        harm = float(pred.get("harm", 0.0))
        if is_exact(outcome) and policy.trust_simulation:
            # Exact: loss is a fact, and a person decides about it (decide), unless the policy
            # refuses it outright.
            if policy.refuse_if_irreversible and pred.get("reversible") is False:
                problems.append(
                    f"the simulation shows it loses data for good: {_side_effect_text(pred)}"
                )
        elif harm >= policy.max_harm and pred.get("reversible") is not True:
            problems.append(
                f"predicted to harm irreversibly (harm {harm:.2f} >= {policy.max_harm:.2f})"
            )
        if problems:
            return Assessment(False, False, tuple(problems), -math.inf)
        u = outcome.uncertainty if math.isfinite(outcome.uncertainty) else 1.0
        return Assessment(True, False, (), outcome.value - self.risk_weight * u)

    def decide(self, outcomes: Sequence[Outcome], *, replans: int = 0) -> Decision:
        """The :class:`Decision` for these outcomes (``replans`` is accepted for the shared
        decide node and ignored: a tool agent re-proposes through the LLM, not wider search).

        Raises:
            ValueError: with zero outcomes (the propose node ends the run instead).
        """
        del replans
        if len(outcomes) == 0:
            raise ValueError("cannot decide among zero candidate tool calls")
        assessments = [self.assess(o) for o in outcomes]
        n_bad = sum(not o.is_known for o in outcomes)
        viable = [i for i, a in enumerate(assessments) if a.viable]
        if not viable:
            askable = [i for i, a in enumerate(assessments) if a.askable]
            if askable:
                i = askable[0]
                return self._decision(
                    outcomes,
                    i,
                    "ask",
                    n_bad,
                    "the outcome could not be predicted; a person decides: "
                    + "; ".join(assessments[i].problems),
                )
            lines = [
                f"{call_text(o.candidate)}: " + "; ".join(a.problems)
                for o, a in zip(outcomes, assessments, strict=True)
            ]
            return Decision(
                verdict="refuse",
                reason="Refused before running: every candidate was predicted to fail or harm. "
                + " | ".join(lines),
                n_candidates=len(outcomes),
                n_nonfinite=n_bad,
                agreement=0.0,
                value=max((o.value for o in outcomes), default=-math.inf),
                risk=1.0,
                chosen=None,
            )
        chosen = max(viable, key=lambda i: (assessments[i].score, -i))
        o = outcomes[chosen]
        name = str(o.candidate.get("name", ""))
        args = o.candidate.get("args")
        hints = self.hints_for(name, args)
        policy = self.policy_for(name, args)
        why: list[str] = []
        if hints.always_ask:
            why.append(f"{name} is marked always-ask")
        exact = is_exact(o) and policy.trust_simulation
        if exact:
            why += self._side_effect_concerns(o, policy)
        else:
            if hints.destructive and policy.ask_if_destructive:
                why.append(f"{name} is declared destructive")
            if o.prediction.get("simulated") is not False:
                if o.risk > policy.max_risk:
                    why.append(f"risk {o.risk:.2f} > {policy.max_risk:.2f}")
                if o.uncertainty > policy.max_uncertainty:
                    why.append(self._uncertainty_concern(o, policy))
        if why:
            return self._decision(outcomes, chosen, "ask", n_bad, "; ".join(why))
        if exact:
            reason = f"the simulation shows: {_side_effect_text(o.prediction)}; nothing is lost"
        elif o.prediction.get("simulated") is False:
            reason = f"{name} is never simulated; its hints allow running it"
        elif o.prediction.get("source") == "learned":
            p = float(o.prediction.get("success_probability", 0.0))
            reason = (
                f"the learned model gives success p {p:.2f}; its members agree (uncertainty "
                f"{o.uncertainty:.2f}) and risk {o.risk:.2f} is within {policy.max_risk:.2f}"
            )
        else:
            reason = (
                f"predictions agree (uncertainty {o.uncertainty:.2f}) and risk is low "
                f"({o.risk:.2f})"
            )
        return self._decision(outcomes, chosen, "act", n_bad, reason)

    @staticmethod
    def _side_effect_concerns(o: Outcome, policy: ToolPolicy) -> list[str]:
        """Why a person should see an exact outcome: data lost for good, or a big deletion."""
        pred = o.prediction
        text = _side_effect_text(pred)
        lost = pred.get("reversible") is False
        if lost and policy.ask_if_irreversible:
            tail = "" if "not reversible" in text else "; not reversible"
            return [f"the simulation shows: {text}{tail}"]
        deleted = _deleted(pred)
        if policy.max_deleted is not None and deleted > policy.max_deleted:
            return [
                f"the simulation shows: {text} ({deleted:,} deleted > max_deleted "
                f"{policy.max_deleted:,})"
            ]
        return []

    @staticmethod
    def _uncertainty_concern(o: Outcome, policy: ToolPolicy) -> str:
        parts = o.prediction.get("uncertainty_parts") or {}
        if parts.get("samples_unknown"):
            n = parts.get("n_valid", 1)
            return (
                f"uncertainty unknown: only {n} valid prediction sample(s), and disagreement "
                f"needs at least 2 (counted as {o.uncertainty:.2f} > {policy.max_uncertainty:.2f})"
            )
        return (
            f"predictions disagree (uncertainty {o.uncertainty:.2f} > {policy.max_uncertainty:.2f})"
        )

    @staticmethod
    def _agreement(outcomes: Sequence[Outcome], chosen: int) -> float:
        # Fraction of sampled predictions (members) whose own favourite is the chosen call;
        # only comparable when every candidate has the same number of members.
        values = [o.member_values for o in outcomes]
        if len({len(v) for v in values}) != 1 or not values[0]:
            return 1.0
        n_members = len(values[0])
        favourite = [
            max(range(len(values)), key=lambda c, m=m: values[c][m]) for m in range(n_members)
        ]
        return sum(f == chosen for f in favourite) / n_members

    def _decision(
        self, outcomes: Sequence[Outcome], chosen: int, verdict: str, n_bad: int, reason: str
    ) -> Decision:
        o = outcomes[chosen]
        return Decision(
            action=dict(o.candidate),
            value=o.value,
            uncertainty=o.uncertainty if math.isfinite(o.uncertainty) else 1.0,
            risk=o.risk,
            verdict=verdict,  # type: ignore[arg-type]
            reason=reason,
            agreement=self._agreement(outcomes, chosen),
            chosen=chosen,
            n_candidates=len(outcomes),
            n_nonfinite=n_bad,
        )
