"""The `imagine` interface: the contract every world model, planner, gate and graph shares.

A world model answers one question: *if I do X here, what happens, how good is that, and how
sure am I?*  Two very different models answer it behind :class:`WorldModel`:

* a neural ensemble dynamics model, where a candidate is an action sequence ``[H, A]`` and the
  members are ensemble heads;
* an LLM outcome predictor, where a candidate is a tool call and the members are k sampled
  predictions.

Everything downstream (planners, gates, graphs, logs) reads only :class:`Outcome` and
:class:`Decision`, so those are validated, frozen pydantic models that serialize into LangGraph
checkpoints.  Model mistakes are data (an ``Outcome`` with ``status="unknown"`` and a reason);
programming errors raise.

Three protocols say what plugs in where, and one function runs them:

* :class:`WorldModel` imagines candidates (the ensemble, an LLM, a simulator, a 20-line toy);
* :class:`Gate` turns outcomes into a :class:`Decision` (the agreement gate, the tool gate);
* :class:`Controller` plans one real step of an environment: propose, imagine, decide, with
  re-plans (MPC on any world model, a learned policy, the hybrid of both);
* :func:`plan_step` is that propose -> imagine -> decide loop, written once: controllers, the
  fused graph node and the benchmarks all run it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "Controller",
    "Decision",
    "Gate",
    "LearnReport",
    "Outcome",
    "OutcomeStatus",
    "PlannedStep",
    "Transition",
    "Verdict",
    "WorldModel",
    "plan_step",
    "plan_steps",
]

OutcomeStatus = Literal["ok", "unknown"]

Verdict = Literal["act", "lcb", "replan", "ask", "refuse"]
"""What the decide step concluded.

* ``act``: members agree and risk is low; execute the best candidate.
* ``lcb``: members disagree even after re-planning wider; execute the candidate with the best
  lower confidence bound (mean - kappa * spread) instead of the best mean.
* ``replan``: members disagree; propose again with a wider search before committing.
* ``ask``: uncertainty or risk is past a threshold; a human approves, edits or rejects.
* ``refuse``: every candidate is predicted to fail or harm; explain why and do not act.
"""


class _Frozen(BaseModel):
    # Frozen: downstream code (gates, logs, checkpoints) can trust a result is never mutated.
    # ser_json_inf_nan: unknown outcomes carry -inf / inf and must survive JSON round trips.
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")


class Outcome(_Frozen):
    """What a world model imagines for one candidate.

    Attributes:
        candidate: the candidate as given (an action sequence as nested lists ``[H][A]``, or a
            tool call ``{"name": ..., "args": ...}``), JSON-serializable.
        prediction: model-specific predicted consequences (for dynamics models the predicted
            next state and termination probability; for LLMs the predicted tool result).
        value: aggregate value over members (mean predicted return, or goal progress x success
            - risk penalty).  ``-inf`` when the prediction failed, so it ranks last.
        uncertainty: disagreement of members, ``0`` when all agree; ``inf`` (or the model's
            documented maximum) when the outcome is unknown.
        risk: probability of failure / harm / episode termination, in ``[0, 1]``.
        member_values: the value each ensemble member or sample assigned, ``[E]``.
        status: ``"ok"``, or ``"unknown"`` when the model could not predict (bad output, dead
            server, non-finite numbers); ``reason`` then says why.
    """

    candidate: Any
    prediction: dict[str, Any] = Field(default_factory=dict)
    value: float
    uncertainty: float = Field(ge=0.0)
    risk: float = Field(ge=0.0, le=1.0)
    member_values: list[float] = Field(default_factory=list)
    status: OutcomeStatus = "ok"
    reason: str | None = None

    @field_validator("value")
    @classmethod
    def _value_not_nan(cls, v: float) -> float:
        # NaN compares false with everything and would silently win or lose a max(); models
        # must map a failed prediction to -inf (status "unknown") instead.
        if math.isnan(v):
            raise ValueError(
                "Outcome.value is NaN; use Outcome.unknown(...) for failed predictions"
            )
        return v

    @classmethod
    def unknown(
        cls,
        candidate: Any,
        reason: str,
        *,
        uncertainty: float = math.inf,
        member_values: Sequence[float] = (),
    ) -> Outcome:
        """An outcome the model could not predict: maximal uncertainty, risk 1, value -inf."""
        return cls(
            candidate=candidate,
            value=-math.inf,
            uncertainty=uncertainty,
            risk=1.0,
            member_values=[float(v) for v in member_values],
            status="unknown",
            reason=reason,
        )

    @property
    def is_known(self) -> bool:
        """True when the model produced a usable prediction."""
        return self.status == "ok" and math.isfinite(self.value)


class Transition(_Frozen):
    """One real step of experience, the unit a world model learns from.

    For environments ``state``/``next_state`` are observation vectors and ``action`` an action;
    for tool calls ``state`` is the situation (task, context), ``action`` the tool call,
    ``result`` the real tool output and ``success`` whether it worked.  ``prediction`` keeps
    what the model imagined beforehand, so learning can measure error and calibration.
    """

    state: Any
    action: Any
    reward: float = 0.0
    next_state: Any = None
    terminated: bool = False
    truncated: bool = False
    result: Any = None
    success: bool | None = None
    prediction: Outcome | None = None
    info: dict[str, Any] = Field(default_factory=dict)


class Decision(_Frozen):
    """What the decide step chose, and why.

    Attributes:
        action: the action to execute now (first step of the chosen sequence, or a tool call);
            ``None`` for ``replan``; an ``ask`` (and a ``refuse`` that has one) carries the
            action proposed, for a person to review or a log to show.
        value: predicted return (mean over members) of the chosen candidate.
        uncertainty: spread of member values for the chosen candidate.
        risk: predicted probability of failure / termination for the chosen candidate.
        verdict: see :data:`Verdict`.
        reason: a sentence a person (or the agent's LLM) can read.
        agreement: fraction of members whose own favourite candidate starts with the chosen
            action (1.0 = all agree).
        chosen: index of the chosen candidate in the outcomes list, or ``None``.
        n_candidates: how many candidates were scored.
        n_nonfinite: how many had non-finite predicted values (ranked last).
        plan: the chosen full sequence (for warm starts), as nested lists ``[H][A]``.
        plan_ms: wall time of proposing + imagining + deciding, in milliseconds.
        source: who decided, set by the controller: ``"mpc"``, ``"policy"``,
            ``"hybrid:policy"`` / ``"hybrid:mpc"`` (the part of a hybrid that acted),
            ``"fallback"`` (a refused step taken by the fallback policy), ``"person"`` (an
            action a person entered); ``""`` when nobody said (a bare gate).
    """

    action: Any = None
    value: float = -math.inf
    uncertainty: float = Field(default=0.0, ge=0.0)
    risk: float = Field(default=0.0, ge=0.0, le=1.0)
    verdict: Verdict = "act"
    reason: str = ""
    agreement: float = Field(default=1.0, ge=0.0, le=1.0)
    chosen: int | None = None
    n_candidates: int = 0
    n_nonfinite: int = 0
    plan: list[list[float]] | None = None
    plan_ms: float = 0.0
    source: str = ""


class LearnReport(_Frozen):
    """What a call to :meth:`WorldModel.learn` did."""

    n_transitions: int
    updated: bool
    metrics: dict[str, float] = Field(default_factory=dict)
    message: str = ""


@runtime_checkable
class WorldModel(Protocol):
    """Anything that can imagine the outcome of candidates before they are executed."""

    def imagine(self, state: Any, candidates: Sequence[Any], *, horizon: int = 1) -> list[Outcome]:
        """One :class:`Outcome` per candidate, in order. Never raises for a bad prediction."""
        ...

    async def aimagine(
        self, state: Any, candidates: Sequence[Any], *, horizon: int = 1
    ) -> list[Outcome]:
        """Async :meth:`imagine` (LLM models run candidates concurrently)."""
        ...

    def learn(self, transitions: Sequence[Transition]) -> LearnReport:
        """Record real transitions and update the model."""
        ...


class Gate(Protocol):
    """Turns imagined outcomes into a :class:`Decision` (act, re-plan, ask or refuse).

    Anything a gate needs beyond the outcomes (the action space, the tools' hints) is bound
    when it is built, so every gate is called the same way: by the decide node, by a
    controller, by a middleware.
    """

    def decide(self, outcomes: Sequence[Outcome], *, replans: int = 0) -> Decision:
        """The decision for these outcomes; ``replans``: re-plans already done for this step."""
        ...


@runtime_checkable
class Controller(Protocol):
    """Plans one real step of an environment: propose -> imagine -> decide, re-planning on ask.

    What the env planning graph runs (its propose, imagine and decide nodes call these three
    methods) and what :meth:`act` runs without a graph, through :func:`plan_step`.  A
    controller is also the :class:`Gate` of its own decisions (its :meth:`decide` sets
    :attr:`Decision.source`), and imagines like a :class:`WorldModel` for its own candidates
    (its model, with its own value options such as a discount or a terminal value).
    """

    @property
    def horizon(self) -> int:
        """Steps in the action sequences :meth:`propose` returns."""
        ...

    def propose(self, state: Any, *, warm_start: Any = None, replans: int = 0) -> Any:
        """Candidates for ``state``: an object whose ``candidates`` are ``[C, H, A]`` action
        sequences (a :class:`~wm_agents.planning.Proposal`); wider after each re-plan."""
        ...

    def imagine(
        self, state: Any, candidates: Sequence[Any], *, horizon: int | None = None
    ) -> list[Outcome]:
        """One :class:`Outcome` per candidate (``horizon``: ``None`` = the whole sequence)."""
        ...

    def decide(self, outcomes: Sequence[Outcome], *, replans: int = 0) -> Decision:
        """The :class:`Decision` for these outcomes, with ``source`` saying who decided."""
        ...

    def act(self, state: Any) -> Decision:
        """One whole decision without a graph (:func:`plan_step`), timed in ``plan_ms``."""
        ...

    def reset(self) -> None:
        """Forget per-episode memory (a warm start); call at the start of an episode."""
        ...


P = TypeVar("P")

MAX_ROUNDS = 64
"""Most propose -> imagine -> decide rounds :func:`plan_step` runs for one step.  Gates bound
their re-plans (``AgreementGate.max_replans``); one that never stops is a bug, and this turns
it into an error instead of a hung agent."""


@dataclass(frozen=True)
class PlannedStep(Generic[P]):
    """What :func:`plan_step` ended with: the decision, and the last round's proposal and
    outcomes (``rounds``: rounds run, re-plans included)."""

    decision: Decision
    proposal: P
    outcomes: Sequence[Outcome]
    rounds: int


def plan_step(
    propose: Callable[[int], P],
    imagine: Callable[[P], Sequence[Outcome]],
    decide: Callable[[Sequence[Outcome], int], Any],
    *,
    first_round: int = 0,
) -> PlannedStep[P]:
    """Propose -> imagine -> decide until the decision is not ``replan``: one real step.

    ``propose(replans)`` and ``decide(outcomes, replans)`` get the number of re-plans done so
    far, counted from ``first_round`` (a hybrid that has already tried its policy starts at 1).
    ``decide`` returns a :class:`Decision` (or a mapping with a ``"verdict"``, as a graph node
    may write).  The controllers' :meth:`~Controller.act`, the fused graph node and the
    benchmarks all plan through this one loop (:func:`plan_steps` with one state).

    Raises:
        RuntimeError: the gate asked for more than :data:`MAX_ROUNDS` re-plans in a row.
    """
    return plan_steps(
        lambda which, replans: [propose(replans[0])],
        lambda which, proposals: [imagine(proposals[0])],
        lambda i, outcomes, replans: decide(outcomes, replans),
        1,
        first_round=first_round,
    )[0]


def plan_steps(
    propose: Callable[[Sequence[int], Sequence[int]], Sequence[P]],
    imagine: Callable[[Sequence[int], Sequence[P]], Sequence[Sequence[Outcome]]],
    decide: Callable[[int, Sequence[Outcome], int], Any],
    n: int,
    *,
    first_round: int = 0,
) -> list[PlannedStep[P]]:
    """:func:`plan_step` for ``n`` states in lockstep (a batched evaluation's one real step).

    Each round, ``propose(which, replans)`` proposes for the states ``which`` still undecided
    (``replans[j]`` re-plans done by state ``which[j]``), ``imagine(which, proposals)`` imagines
    their candidates, and ``decide(i, outcomes, replans)`` decides for state ``i``; a state
    whose verdict is ``replan`` takes part in the next round.  So one batched model pass can
    serve every state's round, and each state's rounds are those :func:`plan_step` would run.

    Raises:
        RuntimeError: a gate asked for more than :data:`MAX_ROUNDS` re-plans in a row.
    """
    replans = [first_round] * n
    done: list[PlannedStep[P] | None] = [None] * n
    while which := [i for i in range(n) if done[i] is None]:
        proposals = propose(which, [replans[i] for i in which])
        imagined = imagine(which, proposals)
        for i, proposal, outcomes in zip(which, proposals, imagined, strict=True):
            decision = decide(i, outcomes, replans[i])
            verdict = decision["verdict"] if isinstance(decision, Mapping) else decision.verdict
            if verdict != "replan":
                done[i] = PlannedStep(decision, proposal, outcomes, replans[i] - first_round + 1)
                continue
            replans[i] += 1
            if replans[i] - first_round >= MAX_ROUNDS:
                raise RuntimeError(
                    f"the gate asked for {MAX_ROUNDS} re-plans in a row; a gate must stop "
                    "re-planning (e.g. AgreementGate.max_replans)"
                )
    return [step for step in done if step is not None]
