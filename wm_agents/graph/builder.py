"""The one planning graph: propose -> imagine -> decide -> act -> learn, looping.

::

    propose ──> imagine ──> decide ──┬──> act ──> learn ──> (propose, or END when done)
       ^                             ├──> ask      (optional: a human approves / edits / rejects)
       └─────────── replan ──────────┘──> refuse   (optional: explain why)

An agent that can answer instead of acting (the tool agent) also lets ``propose`` end the run
(``finish_from_propose``).  CartPole and tool calls build this same graph; only the node
callables plugged in differ.  Each node is an ordinary LangGraph node (``state, runtime ->
update``).  Routing reads the verdict of the :class:`~wm_agents.core.Decision` the decide node
wrote to ``state[decision_key]`` and a boolean ``state[done_key]`` written by the learn node.

With ``fuse=True`` one real step (propose -> imagine -> decide, its re-plans, act, learn) runs
as a single node ``step``: the same callables and routing, one LangGraph superstep and one
checkpoint per real step instead of five, for long control loops where LangGraph's per-node
cost would rival a fast planner's.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Any, get_type_hints

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from wm_agents.core import Decision, plan_step
from wm_agents.graph.json_context import json_context_schema, resolve_context

__all__ = ["build_planning_graph", "route_verdict"]

Node = Callable[..., Any]

_VERDICT_TO_NODE = {
    "act": "act",
    "lcb": "act",
    "replan": "propose",
    "ask": "ask",
    "refuse": "refuse",
}


def route_verdict(decision: Decision | dict | None) -> str:
    """Map a decision's verdict to the next node name."""
    if decision is None:
        raise ValueError("decide node wrote no decision")
    verdict = decision.verdict if isinstance(decision, Decision) else decision["verdict"]
    return _VERDICT_TO_NODE[verdict]


def _context_guard(
    default_context: Callable[[], Any] | None, hint: str, context_type: type
) -> Callable[[Node], Node]:
    """Wrap nodes so a run without a runtime context, or with a JSON one (LangGraph server),
    gets the default one (:func:`~wm_agents.graph.json_context.resolve_context`), or a clear
    error."""
    cache: list[Any] = []
    lock = threading.Lock()  # concurrent first runs build the default context once

    def wrap(node: Node) -> Node:
        def run(state: Any, runtime: Runtime) -> Any:
            if runtime.context is None or isinstance(runtime.context, dict):
                with lock:
                    context = resolve_context(
                        runtime.context, context_type, default_context, cache, hint
                    )
                runtime = runtime.override(context=context)
            return node(state, runtime)

        run.__name__ = getattr(node, "__name__", "node").lstrip("_")
        return run

    return wrap


def build_planning_graph(
    state_schema: type,
    *,
    propose: Node,
    imagine: Node,
    decide: Node,
    act: Node,
    learn: Node,
    context_schema: type | None = None,
    start: Node | None = None,
    ask: Node | None = None,
    refuse: Node | None = None,
    after_refuse: str | None = END,
    decision_key: str = "decision",
    done_key: str = "done",
    finish_from_propose: bool = False,
    ask_destinations: tuple[str, ...] = (),
    refuse_destinations: tuple[str, ...] = (),
    default_context: Callable[[], Any] | None = None,
    context_hint: str = "context=... at invoke time",
    fuse: bool = False,
) -> StateGraph:
    """Assemble the planning graph from its parts; returns it uncompiled so it can be extended.

    Args:
        state_schema: the graph state (small, serializable values only: heavy objects such as
            models, envs and tools travel in the runtime context).
        propose, imagine, decide, act, learn: the five node callables.
        context_schema: type of the runtime context (``graph.invoke(..., context=...)``).
        start: optional node run once before the first ``propose`` (e.g. an env reset).
        ask: optional node for the ``ask`` verdict (typically calls ``interrupt()`` and returns
            a ``Command(goto=...)``); without it an ``ask`` verdict is an error.
        refuse: optional node for the ``refuse`` verdict.
        after_refuse: where ``refuse`` goes next (``END``, or ``"propose"`` to let the agent
            try something else); ``None``: the node routes itself with ``Command(goto=...)``.
        decision_key, done_key: state keys the routers read.
        finish_from_propose: when true, ``propose`` may end the run: it goes to ``END`` when it
            sets ``state[done_key]`` (an agent that answers instead of calling a tool), else
            to ``imagine``.
        ask_destinations, refuse_destinations: nodes the ``ask`` (``refuse``) node may
            ``Command(goto=...)`` to (for drawing the graph, e.g. in LangGraph Studio; routing
            works without it).
        default_context: builds a runtime context (once, lazily) for runs invoked without one
            or with a JSON (dict) one, such as LangGraph Studio / ``langgraph dev``, whose
            clients can only send JSON: the graph then declares the JSON keys as its context
            schema (:mod:`wm_agents.graph.json_context`; ``context_schema`` must be a dataclass)
            and a dict context sets those fields of the default.  Without it a run with no
            context fails with a ``ValueError`` naming ``context_hint``.
        fuse: run each real step as one node ``step`` (see the module doc).  Needs a graph
            without ``ask`` / ``refuse`` nodes or ``finish_from_propose``, nodes that return
            plain update dicts, and state keys without reducers (each update replaces a value).
    """
    if context_schema is not None:
        wrap = _context_guard(default_context, context_hint, context_schema)
        propose, imagine, decide, act, learn = map(wrap, (propose, imagine, decide, act, learn))
        start, ask, refuse = (wrap(n) if n is not None else None for n in (start, ask, refuse))
        if default_context is not None:
            # The server passes a dict, which LangGraph would feed to a dataclass schema's
            # __init__ before any node runs: declare the JSON keys instead.
            context_schema = json_context_schema(context_schema)
    graph = StateGraph(state_schema, context_schema=context_schema)
    if fuse:
        if ask is not None or refuse is not None or finish_from_propose:
            raise ValueError(
                "fuse=True runs a whole step in one node: it cannot route to ask / refuse "
                "nodes or end from propose; build the graph unfused for those"
            )
        reduced = _keys_with_reducers(state_schema)
        if reduced:
            raise ValueError(
                f"fuse=True merges node updates by replacing values, but state keys {reduced} "
                "have reducers; build the graph unfused"
            )
        graph.add_node(
            "step", _fused_step(propose, imagine, decide, act, learn, decision_key=decision_key)
        )
        _add_entry(graph, start, "step")

        def after_step(state: dict) -> str:
            return END if state.get(done_key) else "step"

        graph.add_conditional_edges("step", after_step, ["step", END])
        return graph
    graph.add_node("propose", propose)
    graph.add_node("imagine", imagine)
    graph.add_node("decide", decide)
    graph.add_node("act", act)
    graph.add_node("learn", learn)
    targets = ["act", "propose"]
    if ask is not None:
        graph.add_node("ask", ask, destinations=ask_destinations or None)
        targets.append("ask")
    if refuse is not None:
        graph.add_node("refuse", refuse, destinations=refuse_destinations or None)
        if after_refuse is not None:
            graph.add_edge("refuse", after_refuse)
        targets.append("refuse")

    _add_entry(graph, start, "propose")
    if finish_from_propose:

        def after_propose(state: dict) -> str:
            return END if state.get(done_key) else "imagine"

        graph.add_conditional_edges("propose", after_propose, ["imagine", END])
    else:
        graph.add_edge("propose", "imagine")
    graph.add_edge("imagine", "decide")

    def after_decide(state: dict) -> str:
        nxt = route_verdict(state.get(decision_key))
        if nxt not in targets:
            raise ValueError(
                f"the decide node returned verdict {nxt!r} but the graph has no {nxt!r} node; "
                "pass ask=/refuse= to build_planning_graph"
            )
        return nxt

    graph.add_conditional_edges("decide", after_decide, targets)
    graph.add_edge("act", "learn")

    def after_learn(state: dict) -> str:
        return END if state.get(done_key) else "propose"

    graph.add_conditional_edges("learn", after_learn, ["propose", END])
    return graph


def _add_entry(graph: StateGraph, start: Node | None, first: str) -> None:
    """START -> ``first``, through the optional ``start`` node."""
    if start is None:
        graph.add_edge(START, first)
        return
    graph.add_node("start", start)
    graph.add_edge(START, "start")
    graph.add_edge("start", first)


def _takes_runtime(node: Node) -> bool:
    """Whether a node is called ``node(state, runtime)`` (else ``node(state)``)."""
    try:
        params = list(inspect.signature(node).parameters.values())
    except (TypeError, ValueError):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 2 and positional[1].name == "config":
        raise TypeError(
            f"fuse=True calls nodes as node(state) or node(state, runtime); "
            f"{getattr(node, '__name__', node)} takes a config"
        )
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


def _keys_with_reducers(state_schema: type) -> list[str]:
    """Keys of a TypedDict state annotated with a reducer (``Annotated[T, reducer]``)."""
    try:
        hints = get_type_hints(state_schema, include_extras=True)
    except (NameError, TypeError):
        return []
    return [k for k, t in hints.items() if any(callable(m) for m in getattr(t, "__metadata__", ()))]


def _fused_step(
    propose: Node, imagine: Node, decide: Node, act: Node, learn: Node, *, decision_key: str
) -> Node:
    """One node running a whole real step: the five callables in order, re-planning in place."""
    takes_runtime = {id(n): _takes_runtime(n) for n in (propose, imagine, decide, act, learn)}

    def step(state: Any, runtime: Runtime) -> dict[str, Any]:
        view, update = dict(state), {}

        def run(node: Node) -> None:
            out = node(view, runtime) if takes_runtime[id(node)] else node(view)
            if not isinstance(out, dict):
                raise TypeError(
                    f"fuse=True needs nodes that return update dicts; {node.__name__} returned "
                    f"{type(out).__name__}"
                )
            view.update(out)
            update.update(out)

        def decided(_outcomes: Any, _replans: int) -> Any:
            run(decide)
            decision = view.get(decision_key)
            if decision is None:
                raise ValueError("decide node wrote no decision")
            return decision

        # The rounds of one step, as every controller plans them: each node updates the view
        # (the decide node counts the re-plans in state).
        planned = plan_step(lambda _: run(propose), lambda _: run(imagine), decided)
        nxt = route_verdict(planned.decision)
        if nxt != "act":
            raise ValueError(
                f"the decide node returned verdict {nxt!r}, which a fused graph cannot "
                "route; build the graph with fuse=False and pass ask=/refuse="
            )
        run(act)
        run(learn)
        return update

    step.__name__ = "step"
    return step
