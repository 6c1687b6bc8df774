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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from wm_agents.core import Decision

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


def _context_guard(default_context: Callable[[], Any] | None, hint: str) -> Callable[[Node], Node]:
    """Wrap nodes so a run without a runtime context gets the default one, or a clear error."""
    cache: list[Any] = []

    def wrap(node: Node) -> Node:
        def run(state: Any, runtime: Runtime) -> Any:
            if runtime.context is None:
                if default_context is None:
                    raise ValueError(f"this graph needs {hint}")
                if not cache:
                    cache.append(default_context())
                runtime = runtime.override(context=cache[0])
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
    after_refuse: str = END,
    decision_key: str = "decision",
    done_key: str = "done",
    finish_from_propose: bool = False,
    ask_destinations: tuple[str, ...] = (),
    default_context: Callable[[], Any] | None = None,
    context_hint: str = "context=... at invoke time",
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
            try something else).
        decision_key, done_key: state keys the routers read.
        finish_from_propose: when true, ``propose`` may end the run: it goes to ``END`` when it
            sets ``state[done_key]`` (an agent that answers instead of calling a tool), else
            to ``imagine``.
        ask_destinations: nodes the ``ask`` node may ``Command(goto=...)`` to (for drawing the
            graph, e.g. in LangGraph Studio; routing works without it).
        default_context: builds a runtime context (once, lazily) for runs invoked without one,
            such as LangGraph Studio / ``langgraph dev``, whose clients can only send JSON.
            Without it a run with no context fails with a ``ValueError`` naming
            ``context_hint``.
    """
    if context_schema is not None:
        wrap = _context_guard(default_context, context_hint)
        propose, imagine, decide, act, learn = map(wrap, (propose, imagine, decide, act, learn))
        start, ask, refuse = (wrap(n) if n is not None else None for n in (start, ask, refuse))
    graph = StateGraph(state_schema, context_schema=context_schema)
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
        graph.add_node("refuse", refuse)
        graph.add_edge("refuse", after_refuse)
        targets.append("refuse")

    if start is not None:
        graph.add_node("start", start)
        graph.add_edge(START, "start")
        graph.add_edge("start", "propose")
    else:
        graph.add_edge(START, "propose")
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
