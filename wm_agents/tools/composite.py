"""The composite tool world model: simulate where ground truth can be had, learn where it cannot,
guess last; behind one ``imagine``.

Each call goes to the first source that can take it:

1. a **simulator** (:mod:`wm_agents.simulate`) whose ``can_simulate(tool)`` is true (or not
   yet known: it learns the tool's declaration on its first run): the call runs on a throwaway
   copy, and the outcome is exact (``source`` ``"simulated"`` or ``"dry_run"``);
2. a **learned** outcome model, trained on real outcomes, for tools it knows, when it is
   confident (uncertainty at most ``learned_max_uncertainty``; else the call goes on to the
   LLM, and the outcome's ``prediction["declined"]`` says why);
3. the **LLM** predictor (k samples, experience weighed in), for everything else.

A source that cannot take a call says so with an unknown outcome whose
``prediction["cause"]`` is ``"not_simulatable"`` or ``"unknown_tool"`` (or, for a learned
model, ``"unseen_tool"`` / ``"too_little_data"`` / ``"unreadable_call"`` / ``"non_finite"``);
the call then falls through to the next source.  Any other unknown (a simulation that timed
out, a tool that reached outside its copy) is a fact about the call and is kept: the gate
decides about it.  Every outcome says which source imagined it (``prediction["source"]``)
and which were tried (``prediction["route"]``).

Plans (``horizon > 1``, a candidate is a list of calls): a plan whose calls all go to one
simulator runs whole in one copy (exact: call 2 sees call 1's effects).  A plan that mixes
sources is imagined step by step: a simulated step runs with the simulated steps before it in
one copy; a predicted step's prompt shows the earlier steps' imagined results as if they had
happened.  That is **weaker**: the copy does not see the predicted steps' effects, and a
prediction built on predictions compounds their errors; such a plan's outcome has source
``"composite"``, success probability the product of its steps', harm the largest, and an
uncertainty of at least its most uncertain step's.

``learn`` passes real outcomes to every source (the LLM keeps them as experience, the learned
model trains on them, the simulators count mismatches between simulation and reality).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage

from wm_agents.core import LearnReport, Outcome, Transition
from wm_agents.llm.schemas import LLMState
from wm_agents.llm.sync import run_sync

__all__ = ["FALL_THROUGH", "CompositeToolModel"]

logger = logging.getLogger(__name__)

FALL_THROUGH = frozenset(
    {
        "not_simulatable",
        "unknown_tool",
        "unseen_tool",
        "too_little_data",
        "unreadable_call",
        "non_finite",
    }
)
"""Causes of an unknown outcome that mean "ask the next source", not "this call is unknown"."""

UNKNOWN_UNCERTAINTY = 1.0


def _is_plan(candidate: Any) -> bool:
    return isinstance(candidate, Sequence) and not isinstance(candidate, str | bytes | dict)


def _calls(candidate: Any) -> list[dict[str, Any]]:
    return [dict(c) for c in candidate] if _is_plan(candidate) else [dict(candidate)]


def _source_name(source: Any) -> str:
    return type(source).__name__


class CompositeToolModel:
    """One tool world model over several sources (see the module docstring).

    Args:
        simulators: workspace simulators, asked first, in order (each with
            ``can_simulate(tool) -> bool | None``).
        learned: a learned outcome model (asked next; it answers unknown for tools it has not
            learned, and the call falls through).
        llm: the LLM predictor (the last resort).
        risk_penalty: ``lambda`` of a composed plan's value ``progress * p - lambda * harm``.
        learned_max_uncertainty: a learned outcome more uncertain than this falls through to
            the next source (the LLM) when there is one, and is kept when there is none.  0.2
            was chosen on the learned-outcome benchmark's tuning seeds 0-2 (BENCHMARKS.md,
            "Learned outcome model"): there about half of the held-out first-time calls fall
            under it, and 86% of those are predicted right (78% of all calls); on the report
            seeds 3-7, 50% and 87%.  It does not protect against failure causes the model
            never saw: those it predicts wrong *confidently*.

    Raises:
        ValueError: no source at all, or ``learned_max_uncertainty`` outside [0, 1].
    """

    def __init__(
        self,
        *,
        simulators: Sequence[Any] = (),
        learned: Any = None,
        llm: Any = None,
        risk_penalty: float = 0.5,
        learned_max_uncertainty: float = 0.2,
    ) -> None:
        if not 0.0 <= learned_max_uncertainty <= 1.0:
            raise ValueError(
                f"learned_max_uncertainty must be in [0, 1], got {learned_max_uncertainty!r}"
            )
        self.learned_max_uncertainty = float(learned_max_uncertainty)
        self.simulators = list(simulators)
        self.learned = learned
        self.llm = llm
        if not self.simulators and learned is None and llm is None:
            raise ValueError("CompositeToolModel needs at least one of simulators, learned, llm")
        self.risk_penalty = float(risk_penalty)

    # -- routing ----------------------------------------------------------------------------

    def sources_for(self, tool: str) -> list[Any]:
        """The sources a call of ``tool`` may go to, in order."""
        out: list[Any] = []
        for sim in self.simulators:
            can = getattr(sim, "can_simulate", None)
            verdict = can(tool) if callable(can) else None
            if verdict is not False:
                out.append(sim)
        out += [s for s in (self.learned, self.llm) if s is not None]
        return out

    async def _ask(
        self, source: Any, state: Any, candidates: list[Any], horizon: int
    ) -> list[Outcome]:
        if hasattr(source, "aimagine"):
            outcomes = await source.aimagine(state, candidates, horizon=horizon)
        else:
            outcomes = await asyncio.to_thread(source.imagine, state, candidates, horizon=horizon)
        outcomes = list(outcomes)
        if len(outcomes) != len(candidates):
            raise ValueError(
                f"{_source_name(source)} returned {len(outcomes)} outcomes for "
                f"{len(candidates)} candidates"
            )
        return outcomes

    async def _route(
        self, state: Any, candidates: list[Any], horizon: int, routes: list[list[Any]]
    ) -> list[Outcome]:
        """Imagine ``candidates[i]`` with ``routes[i][0]``, falling through the route on
        "cannot take it"; candidates going to the same source are asked in one batch."""
        results: list[Outcome | None] = [None] * len(candidates)
        tried: list[list[str]] = [[] for _ in candidates]
        declined: list[list[str]] = [[] for _ in candidates]
        position = [0] * len(candidates)
        pending = list(range(len(candidates)))
        while pending:
            batches: dict[int, list[int]] = {}
            for i in pending:
                if position[i] >= len(routes[i]):
                    why = (
                        "every source declined it (tried: " + ", ".join(tried[i]) + ")"
                        if tried[i]
                        else "no simulator takes this tool, and there is no learned model or LLM"
                    )
                    results[i] = Outcome.unknown(
                        candidates[i],
                        f"no source can imagine this call: {why}",
                        uncertainty=UNKNOWN_UNCERTAINTY,
                    )
                    continue
                batches.setdefault(id(routes[i][position[i]]), []).append(i)
            groups = list(batches.values())
            answers = await asyncio.gather(
                *(
                    self._ask(
                        routes[g[0]][position[g[0]]], state, [candidates[i] for i in g], horizon
                    )
                    for g in groups
                ),
                return_exceptions=True,
            )
            pending = []
            for group, answer in zip(groups, answers, strict=True):
                source = routes[group[0]][position[group[0]]]
                for j, i in enumerate(group):
                    tried[i].append(_source_name(source))
                    if isinstance(answer, BaseException):
                        if isinstance(answer, ValueError | TypeError):
                            raise answer  # a bad candidate is a programming error
                        outcome = Outcome.unknown(
                            candidates[i],
                            f"{_source_name(source)} failed: {answer}",
                            uncertainty=UNKNOWN_UNCERTAINTY,
                        )
                    else:
                        outcome = answer[j]
                    cause = outcome.prediction.get("cause")
                    if outcome.status != "ok" and cause in FALL_THROUGH:
                        position[i] += 1
                        pending.append(i)
                        continue
                    if (
                        source is self.learned
                        and outcome.status == "ok"
                        and outcome.uncertainty > self.learned_max_uncertainty
                        and position[i] + 1 < len(routes[i])
                    ):
                        declined[i].append(
                            f"{_source_name(source)}: not confident (uncertainty "
                            f"{outcome.uncertainty:.2f} > {self.learned_max_uncertainty:g}, "
                            f"p {outcome.prediction.get('success_probability', float('nan')):.2f})"
                        )
                        position[i] += 1
                        pending.append(i)
                        continue
                    results[i] = self._tag(outcome, tried[i], declined[i])
        return [r for r in results if r is not None]

    @staticmethod
    def _tag(outcome: Outcome, tried: list[str], declined: list[str] | None = None) -> Outcome:
        prediction = dict(outcome.prediction)
        prediction.setdefault("source", tried[-1].lower() if tried else "unknown")
        prediction["route"] = list(tried)
        if declined:
            prediction["declined"] = list(declined)
        return outcome.model_copy(update={"prediction": prediction})

    # -- imagine ----------------------------------------------------------------------------

    async def aimagine(
        self, state: Any, candidates: Sequence[Any], *, horizon: int = 1
    ) -> list[Outcome]:
        """One outcome per candidate (a tool call, or with ``horizon > 1`` a plan: a list of
        calls), in order; never raises for a source's fault (the outcome is unknown)."""
        candidates = list(candidates)
        single: list[int] = []
        whole: list[int] = []
        mixed: list[int] = []
        for i, c in enumerate(candidates):
            calls = _calls(c)
            if not _is_plan(c) or len(calls) == 1:
                single.append(i)
            elif self._one_simulator(calls) is not None:
                whole.append(i)
            else:
                mixed.append(i)
        out: list[Outcome | None] = [None] * len(candidates)
        jobs = []
        if single or whole:
            idx = single + whole
            routes = [self.sources_for(_calls(candidates[i])[0]["name"]) for i in single]
            routes += [[self._one_simulator(_calls(candidates[i]))] for i in whole]
            jobs.append((idx, self._route(state, [candidates[i] for i in idx], horizon, routes)))
        for i in mixed:
            jobs.append(([i], self._stepwise(state, _calls(candidates[i]), candidates[i])))
        answers = await asyncio.gather(*(job for _, job in jobs))
        for (idx, _), answer in zip(jobs, answers, strict=True):
            answer = answer if isinstance(answer, list) else [answer]
            for i, o in zip(idx, answer, strict=True):
                out[i] = o
        return [o for o in out if o is not None]

    def imagine(self, state: Any, candidates: Sequence[Any], *, horizon: int = 1) -> list[Outcome]:
        """Sync :meth:`aimagine`."""
        return run_sync(self.aimagine(state, candidates, horizon=horizon))

    def _one_simulator(self, calls: list[dict[str, Any]]) -> Any:
        """The simulator that takes every call of a plan, or None."""
        for sim in self.simulators:
            can = getattr(sim, "can_simulate", None)
            if callable(can) and all(can(str(c["name"])) is not False for c in calls):
                return sim
        return None

    async def _stepwise(self, state: Any, calls: list[dict[str, Any]], candidate: Any) -> Outcome:
        """A plan mixing sources, one step at a time (see the module docstring)."""
        llm_state = LLMState.from_any(state)
        messages = list(llm_state.messages)
        simulated: dict[int, list[dict[str, Any]]] = {}  # simulator id -> its calls so far
        steps: list[dict[str, Any]] = []
        outcomes: list[Outcome] = []
        for k, call in enumerate(calls):
            step_state = llm_state.model_copy(update={"messages": list(messages)})
            sources = self.sources_for(str(call["name"]))
            sim = next((s for s in sources if s in self.simulators), None)
            if sim is not None:
                prefix = [*simulated.get(id(sim), []), call]
                [o] = await self._route(step_state, [prefix], len(prefix), [[sim, *sources[1:]]])
                if o.prediction.get("source") in ("simulated", "dry_run"):
                    simulated[id(sim)] = prefix
            else:
                [o] = await self._route(step_state, [call], 1, [sources])
            outcomes.append(o)
            result = str(o.prediction.get("predicted_result") or o.reason or "")
            steps.append(
                {
                    "tool": call["name"],
                    "source": o.prediction.get("source"),
                    "status": o.status,
                    "success_probability": o.prediction.get("success_probability"),
                    "predicted_result": result[:300],
                }
            )
            tc = {"name": call["name"], "args": call.get("args") or {}, "id": f"plan_{k}"}
            messages += [
                AIMessage("", tool_calls=[tc]),
                ToolMessage(f"(imagined) {result[:500]}", tool_call_id=tc["id"], name=tc["name"]),
            ]
            if o.status != "ok":
                break
        return self._compose(candidate, outcomes, steps, len(calls))

    def _compose(
        self, candidate: Any, outcomes: list[Outcome], steps: list[dict[str, Any]], n: int
    ) -> Outcome:
        bad = next((o for o in outcomes if o.status != "ok"), None)
        if bad is not None or len(outcomes) < n:
            reason = f"step {len(outcomes)} of the plan: {bad.reason if bad else 'not imagined'}"
            out = Outcome.unknown(candidate, reason, uncertainty=UNKNOWN_UNCERTAINTY)
            return out.model_copy(update={"prediction": {"source": "composite", "steps": steps}})
        p = math.prod(float(o.prediction.get("success_probability", 1 - o.risk)) for o in outcomes)
        harm = max(float(o.prediction.get("harm", 0.0)) for o in outcomes)
        progress = sum(float(o.prediction.get("goal_progress", 0.5)) for o in outcomes) / n
        uncertainty = max(o.uncertainty for o in outcomes)
        reversible = all(o.prediction.get("reversible") is not False for o in outcomes)
        value = progress * p - self.risk_penalty * harm
        effects = [
            o.prediction["side_effects"]
            for o in outcomes
            if o.prediction.get("source") in ("simulated", "dry_run")
        ]
        return Outcome(
            candidate=candidate,
            prediction={
                "source": "composite",
                "steps": steps,
                "success": p >= 0.5,
                "success_probability": p,
                "predicted_result": steps[-1]["predicted_result"],
                "harm": harm,
                "reversible": reversible,
                "goal_progress": progress,
                # The last simulated prefix holds every simulated step's effects.
                "side_effects": effects[-1] if effects else None,
            },
            value=value,
            uncertainty=min(1.0, uncertainty),
            risk=min(1.0, max(0.0, 1.0 - p * (1.0 - harm))),
            member_values=[value],
        )

    def close(self) -> None:
        """Close every source that holds something (a simulator's copy, an LLM's embedded
        server).  Idempotent."""
        for source in [*self.simulators, self.learned, self.llm]:
            close = getattr(source, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> CompositeToolModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- learn ------------------------------------------------------------------------------

    def learn(self, transitions: Sequence[Transition]) -> LearnReport:
        """Give the real outcomes to every source; metrics are prefixed by the source."""
        metrics: dict[str, float] = {}
        messages = []
        updated = False
        for source in [*self.simulators, self.learned, self.llm]:
            if source is None or not hasattr(source, "learn"):
                continue
            name = _source_name(source)
            given = list(transitions)
            if source is self.learned:  # it learns from calls with a real result only
                given = [t for t in given if t.success is not None]
                if not given:
                    continue
            try:
                report = source.learn(given)
            except Exception as exc:  # one source's failure must not stop the others or the run
                logger.warning("%s could not learn: %s: %s", name, type(exc).__name__, exc)
                messages.append(f"{name} could not learn: {type(exc).__name__}: {exc}")
                continue
            updated = updated or bool(getattr(report, "updated", False))
            for k, v in (getattr(report, "metrics", None) or {}).items():
                metrics[f"{name}.{k}"] = float(v)
            if getattr(report, "message", ""):
                messages.append(f"{name}: {report.message}")
        return LearnReport(
            n_transitions=len(transitions),
            updated=updated,
            metrics=metrics,
            message="; ".join(messages),
        )
