"""Reusable world-model nodes for any LangGraph graph.

``make_imagine_node`` and ``make_decide_node`` add "imagine before acting" to a graph of your
own in two lines: the imagine node calls ``world_model.imagine(state[state_key],
state[candidates_key])`` and writes the :class:`~wm_agents.core.Outcome` list; the decide node
runs a gate over those outcomes and writes a :class:`~wm_agents.core.Decision`.  The model and
gate may be bound at build time or read from the runtime context (``runtime.context.world_model``
/ ``runtime.context.gate``) so heavy objects stay out of checkpointed state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langgraph.runtime import Runtime

from wm_agents.core import Decision, Gate, Outcome, WorldModel

__all__ = ["make_decide_node", "make_imagine_node"]


def _from_context(runtime: Runtime | None, name: str, owner: str) -> Any:
    ctx = getattr(runtime, "context", None)
    value = getattr(ctx, name, None)
    if value is None:
        raise ValueError(
            f"{owner}: no {name} given; pass {name}=... to the node factory or invoke the graph "
            f"with context=<object with a .{name} attribute>"
        )
    return value


def make_imagine_node(
    world_model: WorldModel | None = None,
    *,
    state_key: str | Callable[[dict, Runtime], Any] = "observation",
    candidates_key: str = "candidates",
    outcomes_key: str = "outcomes",
    horizon: int | str = 1,
) -> Callable[[dict, Runtime], dict[str, list[Outcome]]]:
    """A node that imagines every candidate with a world model.

    Args:
        world_model: the model; ``None`` reads ``runtime.context.world_model``.
        state_key: state key holding the current state (observation, or task context), or a
            function ``(state, runtime) -> model state`` when the model's state is built from
            several keys (the tool agent's task, messages and context).
        candidates_key: state key holding the candidate list.
        outcomes_key: state key the outcomes are written to.
        horizon: steps to imagine, or the name of a state key holding it.

    Raises (at run time):
        ValueError: the state has no candidates, or the model returned a different number of
            outcomes than candidates (a broken model, not a bad prediction).
    """

    def imagine(state: dict, runtime: Runtime) -> dict[str, list[Outcome]]:
        model = world_model or _from_context(runtime, "world_model", "imagine node")
        candidates = state.get(candidates_key)
        if candidates is None:
            raise ValueError(f"imagine node: state has no {candidates_key!r} to imagine")
        h = state[horizon] if isinstance(horizon, str) else horizon
        model_state = state_key(state, runtime) if callable(state_key) else state[state_key]
        outcomes = list(model.imagine(model_state, candidates, horizon=h))
        if len(outcomes) != len(candidates):
            raise ValueError(
                f"imagine node: the world model returned {len(outcomes)} outcomes for "
                f"{len(candidates)} candidates"
            )
        return {outcomes_key: outcomes}

    return imagine


def make_decide_node(
    gate: Gate | None = None,
    *,
    outcomes_key: str = "outcomes",
    decision_key: str = "decision",
    replans_key: str | None = "replans",
    gate_args: tuple[Any, ...] | Callable[[Runtime], tuple[Any, ...]] = (),
    extra: Callable[[dict, Runtime, Decision], dict[str, Any]] | None = None,
) -> Callable[[dict, Runtime], dict[str, Any]]:
    """A node that turns outcomes into a :class:`Decision` with a gate.

    Args:
        gate: a :class:`~wm_agents.core.Gate` (``decide(outcomes, *, replans=n) -> Decision``:
            the agreement gate, the tool gate, a controller); ``None`` reads
            ``runtime.context.gate``.
        outcomes_key, decision_key: state keys read and written.
        replans_key: state key counting re-plans in this step (incremented on a ``replan``
            verdict); ``None`` to not track re-plans (``decide`` is then called without
            ``replans``).
        gate_args: an extra for your own gates only: positional arguments passed before
            ``replans`` (``gate.decide(outcomes, *gate_args, replans=n)``), or a function of the
            runtime returning them.  The library's gates bind what they need when built.
        extra: ``(state, runtime, decision) -> dict`` of more state updates written with the
            decision (e.g. a trace entry).
    """

    def decide(state: dict, runtime: Runtime) -> dict[str, Any]:
        g = gate or _from_context(runtime, "gate", "decide node")
        args = gate_args(runtime) if callable(gate_args) else gate_args
        replans = int(state.get(replans_key) or 0) if replans_key else 0
        kwargs = {"replans": replans} if replans_key else {}
        decision = g.decide(state[outcomes_key], *args, **kwargs)
        update: dict[str, Any] = {decision_key: decision}
        if replans_key:
            update[replans_key] = replans + 1 if decision.verdict == "replan" else 0
        if extra is not None:
            update |= extra(state, runtime, decision)
        return update

    return decide
