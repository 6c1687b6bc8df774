"""Search over tool plans before running any: best-first over sequences of calls, each scored
by imagining the *whole* sequence with a world model (``imagine(state, plans, horizon=H)``;
the workspace simulators run a plan in one throwaway copy, so call 2 sees call 1's effects).

Why best-first and not MCTS: a simulated plan's outcome is exact, so there is nothing to
average over repeated rollouts; what a search needs is to spend a budget of imagined plans on
the most promising prefixes first, and to stop at the first plan that reaches the goal without
losing data.  MCTS pays off when outcomes are noisy (an LLM's guesses); then a node's score is
one sample, and the search is only as good as the guesses (say so to users).

The search:

* a node is a plan (a tuple of calls) and the outcome of imagining it whole; the root is the
  empty plan;
* ``expand(plan, outcome)`` offers next calls (a proposer, or an enumeration of the calls the
  workspace allows); all children of a node are imagined in one batch;
* a child whose outcome is unknown or failed is a dead end; one that reaches the ``goal``
  without losing data (``reversible`` not false) ends the search; one that reaches it *with*
  loss is kept as a fallback while the search looks for a lossless plan;
* the frontier is ordered by ``score = value - length_cost * len(plan)`` (value from the
  model: success minus harm), ties broken by age, so short, safe, successful prefixes go first;
* budgets: ``max_imagined`` plans, ``time_budget_s`` seconds, ``max_depth`` calls per plan.

The result keeps every imagined node (:class:`PlanNode`, JSON-able), so a trace or LangGraph
Studio can show the plan tree.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from wm_agents.core import Outcome

__all__ = [
    "Goal",
    "PlanNode",
    "PlanSearchResult",
    "WorkspaceGoal",
    "search_plans",
]

logger = logging.getLogger(__name__)

Goal = Callable[[Outcome], bool]
"""``goal(outcome_of_a_whole_plan) -> reached?``"""

Expand = Callable[[tuple[dict[str, Any], ...], Outcome | None], Sequence[Mapping[str, Any]]]
"""``expand(plan, its outcome or None for the empty plan) -> next calls to try``."""


@dataclass(frozen=True)
class PlanNode:
    """One imagined plan in the search tree.

    Attributes:
        id, parent: the node and its parent's id (``None`` for children of the empty plan).
        calls: the plan, ``[{"name", "args"}, ...]``.
        status: the outcome's status (``"ok"`` / ``"unknown"``); ``success``: whether every
            call worked; ``lost``: the plan loses data for good (``reversible`` false).
        value, score: the model's value, and the search's ordering score.
        goal: the plan reaches the goal.
        summary: what the plan does, in words (the side effects' summary, or the result).
        source: which model imagined it (``prediction["source"]``).
    """

    id: int
    parent: int | None
    calls: list[dict[str, Any]]
    status: str
    success: bool
    lost: bool
    value: float
    score: float
    goal: bool
    summary: str
    source: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-serializable (non-finite numbers become ``None``)."""
        out = asdict(self)
        for k in ("value", "score"):
            out[k] = out[k] if math.isfinite(out[k]) else None
        return out


@dataclass
class PlanSearchResult:
    """What a plan search found.

    Attributes:
        best: the plan to run: a lossless plan that reaches the goal (the best score among
            them), else (``allow_loss``) the best lossy one, else ``None``.
        lossy: the best plan that reaches the goal only by losing data (for the explanation).
        nodes: every imagined plan, in the order imagined (the tree, via ``parent``).
        n_imagined: plans imagined; ``seconds``: wall time.
        stopped: why the search ended: ``goal`` (a lossless plan was found), ``calls`` /
            ``time`` (a budget ran out), ``exhausted`` (nothing left to expand).
    """

    best: PlanNode | None
    lossy: PlanNode | None
    nodes: list[PlanNode] = field(default_factory=list)
    n_imagined: int = 0
    seconds: float = 0.0
    stopped: Literal["goal", "calls", "time", "exhausted"] = "exhausted"

    def as_dict(self) -> dict[str, Any]:
        return {
            "best": self.best.as_dict() if self.best else None,
            "lossy": self.lossy.as_dict() if self.lossy else None,
            "nodes": [n.as_dict() for n in self.nodes],
            "n_imagined": self.n_imagined,
            "seconds": round(self.seconds, 3),
            "stopped": self.stopped,
        }

    def explain(self) -> str:
        """One paragraph for a person: what was found, and why not the alternatives."""
        if self.best is not None and not self.best.lost:
            text = f"Found a plan that reaches the goal and loses nothing: {_plan_text(self.best)}"
            text += f" ({self.best.summary})."
            if self.lossy is not None:
                text += (
                    f" A shorter way, {_plan_text(self.lossy)}, would lose data "
                    f"({self.lossy.summary})."
                )
        elif self.best is not None:
            text = f"Only a plan that loses data reaches the goal: {_plan_text(self.best)}"
            text += f" ({self.best.summary})."
        elif self.lossy is not None:
            text = (
                "No plan reaches the goal without losing data; the best one that does, "
                f"{_plan_text(self.lossy)}, would: {self.lossy.summary}."
            )
        else:
            text = "No plan reached the goal."
        return text + f" Imagined {self.n_imagined} plans in {self.seconds:.1f}s ({self.stopped})."


def _plan_text(node: PlanNode) -> str:
    return " -> ".join(
        f"{c['name']}({json.dumps(c.get('args') or {}, sort_keys=True, default=str)})"
        for c in node.calls
    )


def _summary(outcome: Outcome) -> str:
    pred = outcome.prediction
    effects = pred.get("side_effects")
    if isinstance(effects, Mapping) and effects.get("summary"):
        return str(effects["summary"])
    if outcome.status != "ok":
        return f"unknown: {outcome.reason or 'no reason given'}"
    return str(pred.get("predicted_result") or "")[:200]


def _key(plan: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps([[c["name"], c.get("args") or {}] for c in plan], sort_keys=True, default=str)


def search_plans(
    model: Any,
    state: Any,
    expand: Expand,
    goal: Goal,
    *,
    max_depth: int = 3,
    max_imagined: int = 64,
    time_budget_s: float = 30.0,
    length_cost: float = 0.01,
    allow_loss: bool = False,
) -> PlanSearchResult:
    """Best-first search for a plan that reaches ``goal`` (see the module docstring).

    Args:
        model: a world model that imagines whole plans (``imagine(state, [plan, ...],
            horizon=len(plan))``), e.g. a workspace simulator or the composite tool model.
        state: what the model imagines in (task, messages, context).
        expand: offers the next calls after a plan.
        goal: reached by a plan's outcome?
        max_depth: calls per plan at most.
        max_imagined: plans imagined at most (the budget of model calls).
        time_budget_s: wall-clock budget; the batch in progress finishes.
        length_cost: score cost per call (shorter plans first among equals).
        allow_loss: a plan that reaches the goal only by losing data may be ``best``.

    Raises:
        ValueError: for bad budgets.
    """
    if max_depth < 1 or max_imagined < 1 or time_budget_s <= 0 or length_cost < 0:
        raise ValueError(
            "need max_depth >= 1, max_imagined >= 1, time_budget_s > 0 and length_cost >= 0"
        )
    t0 = time.perf_counter()
    result = PlanSearchResult(best=None, lossy=None)
    order = itertools.count()
    frontier: list[tuple[float, int, tuple[dict[str, Any], ...], Outcome | None, int | None]]
    frontier = [(0.0, next(order), (), None, None)]
    seen: set[str] = set()
    winners: list[PlanNode] = []

    while frontier:
        if time.perf_counter() - t0 > time_budget_s:
            result.stopped = "time"
            break
        if result.n_imagined >= max_imagined:
            result.stopped = "calls"
            break
        _, _, plan, outcome, parent = heapq.heappop(frontier)
        if len(plan) >= max_depth:
            continue
        children = []
        for call in expand(plan, outcome):
            child = (*plan, {"name": str(call["name"]), "args": dict(call.get("args") or {})})
            key = _key(child)
            if key not in seen:
                seen.add(key)
                children.append(child)
        children = children[: max_imagined - result.n_imagined]
        if not children:
            continue
        outcomes = list(
            model.imagine(state, [list(c) for c in children], horizon=max(len(c) for c in children))
        )
        if len(outcomes) != len(children):
            raise ValueError(
                f"the model returned {len(outcomes)} outcomes for {len(children)} plans"
            )
        result.n_imagined += len(children)
        for child, o in zip(children, outcomes, strict=True):
            known = o.status == "ok" and math.isfinite(o.value)
            success = known and bool(o.prediction.get("success", o.risk < 0.5))
            lost = o.prediction.get("reversible") is False
            reached = known and success and goal(o)
            score = o.value - length_cost * len(child) if known else -math.inf
            node = PlanNode(
                id=len(result.nodes),
                parent=parent,
                calls=list(child),
                status=o.status,
                success=success,
                lost=lost,
                value=o.value,
                score=score,
                goal=reached,
                summary=_summary(o),
                source=o.prediction.get("source"),
            )
            result.nodes.append(node)
            if reached:
                if lost:
                    if result.lossy is None or node.score > result.lossy.score:
                        result.lossy = node
                else:
                    winners.append(node)
            elif success:
                heapq.heappush(frontier, (-score, next(order), child, o, node.id))
        if winners:
            result.stopped = "goal"
            break
    if winners:
        result.best = max(winners, key=lambda n: (n.score, -n.id))
    elif allow_loss and result.lossy is not None:
        result.best = result.lossy
    result.seconds = time.perf_counter() - t0
    return result


@dataclass(frozen=True)
class WorkspaceGoal:
    """A small predicate on a folder after a plan, read from the plan's simulated side effects
    (paths relative to the workspace root):

    * ``gone``: these paths do not exist afterwards;
    * ``kept``: these paths exist afterwards, unchanged by the plan;
    * ``created``: these paths exist afterwards.

    Without ``root`` only what the plan itself does counts (``gone``: the plan deletes it).
    With ``root`` the folder's present files count too, so the goal can hold before any call
    (:meth:`holds_now`) and a search can start again from wherever reality is.
    ``WorkspaceGoal.parse("gone:archive/old.log,kept:notes.txt", root=...)`` reads the CLI's
    form.
    """

    gone: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    created: tuple[str, ...] = ()
    root: Path | None = None

    @classmethod
    def parse(cls, text: str, *, root: str | Path | None = None) -> WorkspaceGoal:
        """``"gone:a,kept:b,created:c"`` (each part ``kind:path``).

        Raises:
            ValueError: an empty goal, or a part that is not ``gone|kept|created:path``.
        """
        parts: dict[str, list[str]] = {"gone": [], "kept": [], "created": []}
        for raw in text.split(","):
            item = raw.strip()
            if not item:
                continue
            kind, sep, path = item.partition(":")
            if not sep or kind.strip() not in parts or not path.strip():
                raise ValueError(f"goal part {item!r} must be gone:PATH, kept:PATH or created:PATH")
            parts[kind.strip()].append(path.strip().strip("/"))
        if not any(parts.values()):
            raise ValueError("the goal is empty; say e.g. 'gone:archive/old.log,kept:notes.txt'")
        return cls(
            tuple(parts["gone"]),
            tuple(parts["kept"]),
            tuple(parts["created"]),
            Path(root) if root is not None else None,
        )

    def present(self) -> set[str]:
        """Files under ``root`` now (relative paths; empty without a root)."""
        if self.root is None or not self.root.is_dir():
            return set()
        return {str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file()}

    def holds_now(self) -> bool:
        """The goal holds with no call at all (needs ``root``)."""
        if self.root is None:
            return False
        now = self.present()
        return all(p not in now for p in self.gone) and all(
            p in now for p in (*self.kept, *self.created)
        )

    def __call__(self, outcome: Outcome) -> bool:
        effects = outcome.prediction.get("side_effects")
        if not isinstance(effects, Mapping):
            return False

        def paths(kind: str) -> set[str]:
            return {
                str(e.get("path", "")).strip("/")
                for e in effects.get(kind) or []
                if isinstance(e, Mapping)
            }

        created, modified, deleted = paths("created"), paths("modified"), paths("deleted")
        if self.root is None:
            gone = all(p in deleted and p not in created for p in self.gone)
            exists = all(p in created for p in self.created)
        else:
            after = (self.present() - deleted) | created
            gone = all(p not in after for p in self.gone)
            exists = all(p in after for p in self.created)
            if not all(p in after for p in self.kept):
                return False
        kept = all(p not in deleted and p not in modified for p in self.kept)
        return gone and kept and exists

    def describe(self) -> str:
        parts = [f"gone:{p}" for p in self.gone] + [f"kept:{p}" for p in self.kept]
        return ",".join(parts + [f"created:{p}" for p in self.created])
