"""The planning graph for gymnasium environments (CartPole, Pendulum, any Box-obs env).

One invocation runs one episode: ``start`` resets the env, then per real step
propose (CEM search) -> imagine (every ensemble member scores the best candidates) -> decide
(agreement gate: act, re-plan wider, or take the lower confidence bound) -> act (``env.step``)
-> learn (Dyna: record, refit on schedule).  The env, controller and learner travel in the
runtime context (:class:`EnvPlanningContext`); the checkpointed state holds only small values.

The controller is any :class:`~wm_agents.core.Controller` (MPC on any world model, a learned
policy, the hybrid).  The imagine and decide nodes are the public
:func:`~wm_agents.graph.nodes.make_imagine_node` / :func:`~wm_agents.graph.nodes.make_decide_node`
reading the context's ``world_model`` and ``gate``: both are the controller, which imagines with
its model and value options and decides with its gate (recording who decided).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict

import numpy as np
from langgraph.graph import END
from langgraph.runtime import Runtime

from wm_agents.core import Controller, Decision, Outcome
from wm_agents.envs.gym_actuator import GymActuator
from wm_agents.graph.builder import build_planning_graph
from wm_agents.graph.env_review import make_ask_node, refuse_node
from wm_agents.graph.nodes import make_decide_node, make_imagine_node

__all__ = [
    "EnvLearner",
    "EnvPlanningContext",
    "EnvPlanningState",
    "StepRecord",
    "create_env_planning_graph",
    "episode_config",
    "step_record",
]


class EnvLearner(Protocol):
    """What the learn node (and the run loop's warm-up) feeds real transitions to:
    :class:`~wm_agents.neural.dyna.DynaLearner` and
    :class:`~wm_agents.imagination.ImaginationLearner` both qualify."""

    @property
    def steps(self) -> int:
        """Real steps recorded so far."""
        ...

    @property
    def exhausted(self) -> bool:
        """Whether the real-step budget is spent."""
        ...

    def observe(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_obs: np.ndarray,
        terminated: bool,
        truncated: bool,
    ) -> Any:
        """Record one real transition (and learn from it on the learner's schedule)."""
        ...

    def mark_episode_end(self) -> None:
        """The last recorded transition ends its episode (the run stopped there)."""
        ...


class EnvPlanningState(TypedDict, total=False):
    """Checkpointed state of one episode (small, serializable values only)."""

    seed: int | None
    observation: list[float]
    candidates: list[list[list[float]]]
    horizon: int
    outcomes: list[Outcome]
    decision: Decision | None
    replans: int
    plan: list[list[float]] | None
    plan_started: float
    step: int
    episode_return: float
    terminated: bool
    transition: dict[str, Any]
    done: bool


@dataclass
class StepRecord:
    """Per-step trace kept in the context (not in state: it grows with the episode)."""

    step: int
    action: list[float]
    reward: float
    predicted_value: float
    uncertainty: float
    verdict: str
    agreement: float
    plan_ms: float
    prediction_error: float = float("nan")
    reason: str = ""
    source: str = ""
    n_nonfinite: int = 0


@dataclass
class EnvPlanningContext:
    """Heavy objects the env planning graph needs, passed as ``context=`` at invoke time.

    Attributes:
        actuator: the real env (:class:`GymActuator`).
        controller: propose/imagine/decide pieces (a :class:`~wm_agents.core.Controller`:
            :class:`~wm_agents.planning.MPCController`, a policy, the hybrid).
        learner: what learns from real steps (:class:`EnvLearner`); ``None`` for evaluation.
        max_steps: optional cap on steps in this episode (besides the env's own time limit).
        records: filled with one :class:`StepRecord` per real step.
        on_step: optional callback called with each :class:`StepRecord` (progress bars).
        fallback: ``observation [D] -> action [A]``, the policy a refused step is handed to
            (graphs built with ``refuse=True``); ``None``: a refused step ends the episode.
    """

    actuator: GymActuator
    controller: Controller
    learner: EnvLearner | None = None
    max_steps: int | None = None
    records: list[StepRecord] = field(default_factory=list)
    on_step: Callable[[StepRecord], Any] | None = None
    fallback: Callable[[np.ndarray], Any] | None = None

    @property
    def world_model(self) -> Controller:
        """What the imagine node calls: the controller (its model, with its value options)."""
        return self.controller

    @property
    def gate(self) -> Controller:
        """What the decide node calls: the controller (its gate, saying who decided)."""
        return self.controller


def _start(state: EnvPlanningState, runtime: Runtime[EnvPlanningContext]) -> dict[str, Any]:
    obs = runtime.context.actuator.reset(seed=state.get("seed"))
    return {
        "observation": obs.tolist(),
        "step": 0,
        "episode_return": 0.0,
        "terminated": False,
        "done": False,
        "replans": 0,
        "plan": None,
        "decision": None,
    }


def _propose(state: EnvPlanningState, runtime: Runtime[EnvPlanningContext]) -> dict[str, Any]:
    started = state.get("plan_started") if state.get("replans") else None
    proposal = runtime.context.controller.propose(
        state["observation"], warm_start=state.get("plan"), replans=int(state.get("replans") or 0)
    )
    cands = proposal.candidates
    candidates = cands.tolist() if hasattr(cands, "tolist") else [list(c) for c in cands]
    return {
        "candidates": candidates,
        # How many steps the candidates run: the controller's horizon, or 1 for a policy's
        # one-step candidate (the imagine node passes it on).
        "horizon": len(candidates[0]),
        "plan_started": started or time.perf_counter(),
    }


_imagine = make_imagine_node(horizon="horizon")
_decide = make_decide_node()


def _act(state: EnvPlanningState, runtime: Runtime[EnvPlanningContext]) -> dict[str, Any]:
    ctx = runtime.context
    decision = state["decision"]
    # Routed here on act / lcb, and from ask (approved or edited) and refuse (the fallback).
    assert decision is not None and decision.action is not None
    ms = (time.perf_counter() - state["plan_started"]) * 1e3
    result = ctx.actuator.step(decision.action)
    return {
        "observation": result.obs.tolist(),
        "transition": {
            "obs": state["observation"],
            "action": list(decision.action),
            "reward": result.reward,
            "next_obs": result.obs.tolist(),
            "terminated": result.terminated,
            "truncated": result.truncated,
        },
        "step": int(state.get("step") or 0) + 1,
        "episode_return": float(state.get("episode_return") or 0.0) + result.reward,
        "terminated": result.terminated,
        "plan": decision.plan,
        "decision": decision.model_copy(update={"plan_ms": ms}),
    }


def step_record(
    step: int,
    decision: Decision,
    outcomes: Sequence[Outcome],
    transition: Mapping[str, Any],
    *,
    plan_ms: float | None = None,
) -> StepRecord:
    """The :class:`StepRecord` of real step ``step``: the decision, and the chosen outcome's
    predicted ``next_obs`` against the ``transition``'s real one (``action``, ``reward``,
    ``next_obs``); ``plan_ms`` defaults to the decision's."""
    predicted = None
    if decision.chosen is not None and decision.chosen < len(outcomes):
        predicted = outcomes[decision.chosen].prediction.get("next_obs")
    error = (
        float(np.mean((np.asarray(predicted) - np.asarray(transition["next_obs"])) ** 2))
        if predicted is not None
        else float("nan")
    )
    return StepRecord(
        step=step,
        action=transition["action"],
        reward=transition["reward"],
        predicted_value=decision.value,
        uncertainty=decision.uncertainty,
        verdict=decision.verdict,
        agreement=decision.agreement,
        plan_ms=decision.plan_ms if plan_ms is None else plan_ms,
        prediction_error=error,
        reason=decision.reason,
        source=decision.source,
        n_nonfinite=decision.n_nonfinite,
    )


def _learn(state: EnvPlanningState, runtime: Runtime[EnvPlanningContext]) -> dict[str, Any]:
    """Compare the prediction with reality, record the step, feed the Dyna learner."""
    ctx = runtime.context
    t = state["transition"]
    decision = state["decision"]
    assert decision is not None
    record = step_record(state["step"], decision, state.get("outcomes") or [], t)
    ctx.records.append(record)
    if ctx.on_step is not None:
        ctx.on_step(record)
    done = t["terminated"] or t["truncated"]
    if ctx.max_steps is not None and state["step"] >= ctx.max_steps:
        done = True
    if ctx.learner is not None:
        ctx.learner.observe(
            np.asarray(t["obs"]),
            np.asarray(t["action"]),
            t["reward"],
            np.asarray(t["next_obs"]),
            t["terminated"],
            t["truncated"],
        )
        if ctx.learner.exhausted:
            done = True
            ctx.learner.mark_episode_end()
    return {"done": bool(done)}


def create_env_planning_graph(
    *,
    default_context: Callable[[], EnvPlanningContext] | None = None,
    fuse: bool = False,
    ask: bool = False,
    refuse: bool = False,
) -> Any:
    """The uncompiled env planning graph (``StateGraph``).

    Compile it and invoke with ``context=EnvPlanningContext(...)`` and
    ``config=episode_config(...)``.  ``default_context`` builds a context (once, lazily) for
    runs that pass none, such as LangGraph Studio / ``langgraph dev``, where the client can
    only send JSON.  ``fuse=True`` runs each real step as one node ``step`` (same callables,
    same decisions, one superstep and one checkpoint per step: see ``BENCHMARKS.md``, graph
    overhead); the default shows every node, as Studio draws it.

    ``ask`` / ``refuse`` wire the nodes for a gate's ``ask`` / ``refuse`` verdicts (a gate with
    ``max_risk``, see :mod:`wm_agents.graph.env_review`): a person reviews the risky step
    (``interrupt``; compile with a checkpointer), or the context's ``fallback`` policy takes
    it.  A fused graph cannot route to them and refuses to build with either.
    """
    return build_planning_graph(
        EnvPlanningState,
        context_schema=EnvPlanningContext,
        start=_start,
        propose=_propose,
        imagine=_imagine,
        decide=_decide,
        act=_act,
        learn=_learn,
        ask=make_ask_node(refuse=refuse) if ask else None,
        refuse=refuse_node if refuse else None,
        after_refuse=None,  # the refuse node routes itself: to act (the fallback) or the end
        ask_destinations=("act", "refuse", END) if refuse else ("act", END),
        refuse_destinations=("act", END),
        default_context=default_context,
        context_hint="context=EnvPlanningContext(actuator=..., controller=...) at invoke time",
        fuse=fuse,
    )


def episode_config(
    max_episode_steps: int, max_replans: int = 1, *, review: bool = False, **config: Any
) -> dict[str, Any]:
    """A run config whose recursion limit fits a whole episode of the 5-node loop.

    LangGraph counts every node execution against ``recursion_limit`` (default 25); an episode
    of 500 steps runs ~2,500 nodes, more when the gate re-plans.  ``review``: the graph has
    ``ask`` / ``refuse`` nodes (up to two more per step).
    """
    per_step = 5 + 3 * max_replans + (2 if review else 0)
    return {**config, "recursion_limit": per_step * max_episode_steps + 10}
