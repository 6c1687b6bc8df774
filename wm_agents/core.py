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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "Decision",
    "LearnReport",
    "Outcome",
    "OutcomeStatus",
    "Transition",
    "Verdict",
    "WorldModel",
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
            ``None`` when the verdict is ``ask``/``refuse``/``replan``.
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
