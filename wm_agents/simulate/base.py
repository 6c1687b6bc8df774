"""What every simulator shares: candidates and declarations, running a plan in a guarded child,
turning what happened into an exact (or unknown) outcome, dry runs, and ``learn``.

A concrete simulator (:class:`~wm_agents.simulate.FolderSimulator`,
:class:`~wm_agents.simulate.SQLiteSimulator`, :class:`~wm_agents.simulate.GitSimulator`)
prepares a :class:`~wm_agents.simulate.runplan.Workspace` (a throwaway copy and how the child
may treat it), calls :meth:`SimulatorBase._run_plan`, measures the copy's changes, and returns
:meth:`SimulatorBase._finish`.  Faults never raise out of ``imagine``: a failing copy, a killed
child, a tool that reached outside its copy all become ``Outcome.unknown`` with a reason.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict

from wm_agents.core import LearnReport, Outcome, Transition
from wm_agents.llm.schemas import ToolCallCandidate
from wm_agents.simulate.calls import Plan, error_text, parse_plans, plan_as_candidate
from wm_agents.simulate.compare import compare_transitions
from wm_agents.simulate.declare import (
    DRY_RUN_KEY,
    SimulationMode,
    ToolDeclaration,
    declaration_of,
    parse_mode,
)
from wm_agents.simulate.outcome import exact_outcome, unknown_outcome
from wm_agents.simulate.runplan import (
    Limits,
    MakeTools,
    PlanRun,
    Workspace,
    run_dry_run,
    run_plan,
)

__all__ = ["SimulatorBase", "SimulatorOptions"]

logger = logging.getLogger(__name__)


class SimulatorOptions(TypedDict, total=False):
    """The options every simulator takes (see :class:`SimulatorBase`)."""

    tools: Sequence[Any]
    simulate: Mapping[str, SimulationMode | bool] | None
    timeout_s: float
    max_bytes: int
    goal_progress: float
    risk_penalty: float
    max_result_chars: int
    max_listed: int


class SimulatorBase:
    """The shared half of every simulator (see the module docstring).

    Args:
        make_tools: ``make_tools(path) -> tools`` rebinds the user's tools to a copy, like
            :func:`wm_agents.tools.sandbox.make_sandbox_tools`.  Called only in the
            simulating child, under the write guard.
        tools: the real tools (bound to the real workspace), read for their declarations
            (``metadata["wm_simulate"]``, ``metadata["wm_dry_run"]``); dry runs declared here
            run without making a copy at all.
        simulate: ``{tool name: mode}`` declarations that override the metadata (see
            :mod:`wm_agents.simulate.declare`).
        timeout_s: time budget per call (a plan of ``n`` calls gets ``n * timeout_s``).
        max_bytes: size budget: how much a simulated call may grow the copy (also the
            ``RLIMIT_FSIZE`` of the child, so no single file can exceed it).
        goal_progress: the constant goal progress of a successful call in ``value``.
        risk_penalty: ``lambda`` in ``value = goal_progress * p_success - lambda * harm``.
        max_result_chars: result text kept per step.
        max_listed: entries kept per list in ``side_effects``.

    Raises:
        TypeError: ``make_tools`` is not callable.
        ValueError: a bad budget, weight or declaration.
    """

    def __init__(
        self,
        make_tools: MakeTools,
        *,
        tools: Sequence[Any] = (),
        simulate: Mapping[str, SimulationMode | bool] | None = None,
        timeout_s: float = 10.0,
        max_bytes: int = 256 << 20,
        goal_progress: float = 0.5,
        risk_penalty: float = 0.5,
        max_result_chars: int = 20_000,
        max_listed: int = 100,
    ) -> None:
        if not callable(make_tools):
            raise TypeError(
                "make_tools must be a callable make_tools(path) -> list of tools, got "
                f"{type(make_tools).__name__}"
            )
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        if not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive int, got {max_bytes!r}")
        if not 0.0 <= goal_progress <= 1.0:
            raise ValueError(f"goal_progress must be in [0, 1], got {goal_progress!r}")
        if risk_penalty < 0:
            raise ValueError(f"risk_penalty must be >= 0, got {risk_penalty!r}")
        if max_result_chars < 1 or max_listed < 1:
            raise ValueError("max_result_chars and max_listed must be >= 1")
        self.make_tools = make_tools
        self.timeout_s = float(timeout_s)
        self.max_bytes = max_bytes
        self.goal_progress = float(goal_progress)
        self.risk_penalty = float(risk_penalty)
        self.max_result_chars = max_result_chars
        self.max_listed = max_listed
        overrides = {
            str(k): parse_mode(v, where=f"simulate[{k!r}]") for k, v in (simulate or {}).items()
        }
        self._declared: dict[str, ToolDeclaration] = {}
        for tool in tools:
            name = tool.get("name") if isinstance(tool, Mapping) else getattr(tool, "name", "")
            d = declaration_of(tool, overrides.get(str(name)))
            self._declared[d.name] = d
        for name, mode in overrides.items():
            if name not in self._declared:
                if mode == "dry_run":
                    raise ValueError(
                        f"simulate[{name!r}] = 'dry_run' needs the tool in tools= with a "
                        f"callable metadata[{DRY_RUN_KEY!r}]"
                    )
                self._declared[name] = ToolDeclaration(name=name, mode=mode)
        self._learned: dict[str, SimulationMode] = {}
        self._lock = threading.RLock()
        self.stats: Counter[str] = Counter()
        """Counters: ``simulated`` (exact outcomes), ``unknown``, ``dry_runs``, ``children``."""
        self.mismatches: deque[dict[str, Any]] = deque(maxlen=100)
        """The last real results that differed from their simulation (see :meth:`learn`)."""

    # -- declarations ---------------------------------------------------------------------

    def mode_of(self, name: str) -> SimulationMode | None:
        """How ``name`` is imagined: its declared mode, or ``None`` while unknown (declared
        only on the rebound tools, which are read during the first simulation)."""
        d = self._declared.get(name)
        if d is not None:
            return d.mode
        return self._learned.get(name)

    def can_simulate(self, name: str) -> bool | None:
        """True when calls of ``name`` are imagined exactly (by a copy or a dry run), False
        when never, ``None`` while unknown (see :meth:`mode_of`)."""
        mode = self.mode_of(name)
        return None if mode is None else mode != "never"

    # -- imagine ----------------------------------------------------------------------------

    def imagine(self, state: Any, candidates: Sequence[Any], *, horizon: int = 1) -> list[Outcome]:
        """One exact (or unknown) outcome per candidate, in order.

        Args:
            state: ignored: the workspace on disk is the state.
            candidates: tool calls ``{"name", "args", "id"?}``, or lists of up to ``horizon``
                calls run in order in one copy (call 2 sees call 1's effects; a failing call
                stops the plan and the later ones are not run).
            horizon: the longest plan accepted.

        Raises:
            ValueError: a candidate that is not a tool call or a list of them, or a plan
                longer than ``horizon``.
        """
        del state
        plans = parse_plans(candidates, horizon)
        with self._lock:
            try:
                self._begin()
            except Exception as exc:
                logger.exception("preparing the simulation failed")
                reason = f"could not prepare the workspace copy: {error_text(exc)}"
                return [
                    unknown_outcome(plan_as_candidate(p, c), reason, cause="error")
                    for p, c in zip(plans, candidates, strict=True)
                ]
            return [self._guarded(p, c) for p, c in zip(plans, candidates, strict=True)]

    async def aimagine(
        self, state: Any, candidates: Sequence[Any], *, horizon: int = 1
    ) -> list[Outcome]:
        """:meth:`imagine` in a worker thread (simulations of one simulator run one at a time:
        they share one copy)."""
        return await asyncio.to_thread(self.imagine, state, candidates, horizon=horizon)

    def _begin(self) -> None:
        """Called once per imagine call before its candidates (e.g. to sync a copy)."""

    def _guarded(self, plan: Plan, original: Any) -> Outcome:
        candidate = plan_as_candidate(plan, original)
        start = time.perf_counter()
        try:
            outcome = self._imagine_plan(plan, candidate)
        except Exception as exc:  # the simulator must never crash an agent run
            logger.exception("simulating %s failed", [c.name for c in plan])
            outcome = unknown_outcome(
                candidate, f"the simulation failed: {error_text(exc)}", cause="error"
            )
        self.stats["simulated" if outcome.is_known else "unknown"] += 1
        ms = round(1000 * (time.perf_counter() - start), 3)
        return outcome.model_copy(update={"prediction": {**outcome.prediction, "candidate_ms": ms}})

    def _imagine_plan(self, plan: Plan, candidate: Any) -> Outcome:
        for call in plan:
            if self.mode_of(call.name) == "never":
                return self._not_simulatable(call, candidate)
        declared = [self._declared.get(c.name) for c in plan]
        if any(d is not None and d.mode == "dry_run" for d in declared):
            if len(plan) > 1:
                return self._chained_dry_run(plan, candidate)
            decl = declared[0]
            assert decl is not None and decl.dry_run is not None
            return self._dry_run(plan[0], decl.dry_run, candidate)
        private = any(self.mode_of(c.name) == "subprocess" for c in plan)
        return self._simulate(plan, candidate, private=private)

    def _simulate(self, plan: Plan, candidate: Any, *, private: bool) -> Outcome:
        """Run ``plan`` on a copy and return its outcome (each simulator's own part)."""
        raise NotImplementedError

    def _not_simulatable(self, call: ToolCallCandidate, candidate: Any) -> Outcome:
        return unknown_outcome(
            candidate,
            f"{call.name} is not declared simulatable (metadata['wm_simulate'] or simulate=); "
            "it was not run in imagination, another model must predict it",
            cause="not_simulatable",
            tool=call.name,
            simulatable=False,
        )

    @staticmethod
    def _chained_dry_run(plan: Plan, candidate: Any) -> Outcome:
        return unknown_outcome(
            candidate,
            "a dry-run tool cannot be part of a plan: its effects are not applied to a copy, "
            "so later calls could not see them",
            cause="chained_dry_run",
        )

    # -- outcomes -------------------------------------------------------------------------------

    # -- running in the child -----------------------------------------------------------------

    @property
    def limits(self) -> Limits:
        return Limits(self.timeout_s, self.max_bytes, self.max_result_chars)

    def _run_plan(self, plan: Plan, ws: Workspace, *, watch: str) -> PlanRun:
        """Run ``plan`` in a forked child on ``ws`` (see :mod:`wm_agents.simulate.runplan`),
        and remember the modes the rebound tools declared."""
        known = {name: d.mode for name, d in self._declared.items()}
        run = run_plan(
            plan, ws, make_tools=self.make_tools, known_modes=known, limits=self.limits, watch=watch
        )
        self.stats["children"] += 1
        for name, mode in run.modes.items():
            if name not in self._declared:
                try:
                    self._learned[name] = parse_mode(mode, where=name)
                except ValueError:
                    continue  # the child reports data, never trusted to be well formed
        return run

    def _dry_run(
        self, call: ToolCallCandidate, fn: Callable[[dict[str, Any]], Any], candidate: Any
    ) -> Outcome:
        run = run_dry_run(call, fn, limits=self.limits)
        self.stats["children"] += 1
        return self._dry_run_outcome(call, candidate, run)

    # -- outcomes -------------------------------------------------------------------------------

    def _dry_run_outcome(self, call: ToolCallCandidate, candidate: Any, run: PlanRun) -> Outcome:
        if run.cause is not None or run.dry_run is None:
            return unknown_outcome(
                candidate, run.reason or "the dry run sent no answer", cause=run.cause or "error"
            )
        d = run.dry_run
        self.stats["dry_runs"] += 1
        success = bool(d.get("success"))
        harm = float(d.get("harm") or 0.0)
        step = {"tool": call.name, "success": success, "result": str(d.get("result", ""))}
        side_effects = d.get("side_effects")
        return exact_outcome(
            candidate,
            success=success,
            result=step["result"],
            steps=[step],
            side_effects=side_effects
            if side_effects is not None
            else {"summary": "not reported by the dry run"},
            reversible=d.get("reversible"),
            harm=min(1.0, max(0.0, harm)),
            goal_progress=self.goal_progress,
            risk_penalty=self.risk_penalty,
            source="dry_run",
        )

    def _early_outcome(self, plan: Plan, candidate: Any, run: PlanRun) -> Outcome | None:
        """The outcome of a run that needs no diff (a dry run answered, or it did not reach
        an exact result: unknown), else ``None``."""
        if run.dry_run is not None and run.cause is None:
            return self._dry_run_outcome(plan[0], candidate, run)
        if run.cause == "not_simulatable":
            return self._not_simulatable(plan[[c.name for c in plan].index(run.reason)], candidate)
        if run.cause == "chained_dry_run":
            return self._chained_dry_run(plan, candidate)
        if run.cause is not None:
            if run.cause == "timeout" and run.steps:
                run.reason += f" during call {len(run.steps) + 1} of {len(plan)}"
            return unknown_outcome(candidate, run.reason, cause=run.cause, steps=run.steps)
        if run.budget:
            return unknown_outcome(
                candidate, f"over the size budget: {run.budget}", cause="size_budget"
            )
        if run.denied:
            return unknown_outcome(
                candidate,
                _denied_reason(run.denied),
                cause="denied",
                denied=run.denied,
                steps=run.steps,
            )
        return None

    def _finish(
        self,
        plan: Plan,
        candidate: Any,
        run: PlanRun,
        *,
        side_effects: dict[str, Any],
        reversible: bool,
        bytes_added: int,
        extra: dict[str, Any],
    ) -> Outcome:
        """The outcome of a plan that ran in a copy whose changes were measured."""
        early = self._early_outcome(plan, candidate, run)
        if early is not None:
            return early
        if bytes_added > self.max_bytes:
            return unknown_outcome(
                candidate,
                f"over the size budget: the call added {bytes_added} bytes "
                f"(max_bytes={self.max_bytes})",
                cause="size_budget",
            )
        steps = run.steps
        success = len(steps) == len(plan) and all(s.get("success") for s in steps)
        if not success and steps and len(steps) < len(plan):
            extra = {**extra, "stopped_at": len(steps) - 1}
        elif not success and not steps:
            return unknown_outcome(candidate, "no call ran", cause="error")
        return exact_outcome(
            candidate,
            success=success,
            result=str(steps[-1].get("result", "")),
            steps=steps,
            side_effects=side_effects,
            reversible=reversible,
            harm=0.0 if reversible else 1.0,
            goal_progress=self.goal_progress,
            risk_penalty=self.risk_penalty,
            extra=extra,
        )

    # -- learn ---------------------------------------------------------------------------------

    def learn(self, transitions: Sequence[Transition]) -> LearnReport:
        """Compare real outcomes with the simulations attached to them; nothing to train.

        A transition counts when its ``prediction`` is a known simulated (or dry-run) outcome
        of the same single call and it has ``success``.  A mismatch (success differs, or the
        result text differs, see :func:`~wm_agents.simulate.compare.results_match`) means the
        tool is not deterministic or the copy differed from the real workspace; the last ones
        are kept in :attr:`mismatches`.  Metrics: see
        :func:`~wm_agents.simulate.compare.compare_transitions`.
        """
        metrics, mismatches = compare_transitions(transitions)
        for m in mismatches:
            self.mismatches.append(m)
            logger.warning(
                "simulated %s differed from reality (success %s vs %s)",
                m["call"].get("name"),
                m["predicted_success"],
                m["real_success"],
            )
        n, bad = int(metrics["n_compared"]), len(mismatches)
        return LearnReport(
            n_transitions=len(transitions),
            updated=False,
            metrics=metrics,
            message=f"simulation needs no training; {bad} of {n} compared outcomes differed",
        )


def _denied_reason(denied: list[dict[str, str]]) -> str:
    kinds = {d.get("kind") for d in denied}
    first = denied[0]
    text = f"{first.get('what')}: {first.get('detail')}"
    if "exec" in kinds:
        hint = (
            "the tool started a program the simulation does not allow here (a tool declared "
            "'in_process' may start none, a GitSimulator allows git inside the copy); declare "
            "it 'subprocess' to run it on a private copy"
        )
    elif "escape" in kinds:
        hint = "the tool reached outside its copy of the workspace, which cannot be simulated"
    elif "network" in kinds:
        hint = "the tool used the network, which cannot be simulated"
    else:
        hint = "the simulation refused an operation"
    more = f" (and {len(denied) - 1} more)" if len(denied) > 1 else ""
    return f"{hint}: {text}{more}"
