"""One env run loop: random warm-up, training episodes through the planning graph, evaluations.

Every agent learns an env the same way::

    random warm-up -> learner.finish_warmup()
    -> training episodes through the env planning graph (the learner in its context)
    -> every ``eval_every`` real steps: evaluation episodes through the same graph, no learning
    -> until the learner's real-step budget is spent (or the env is solved / ``on_eval`` stops it)

What differs between agents is plugged in, never branched on by name:

* a :class:`ControllerStrategy` says which :class:`~wm_agents.core.Controller` runs each
  training episode and each evaluation, and hears how each training episode ended (MPC: the
  planner, with an evaluation twin of its own; the imagination agents: their policy, or the
  hybrid once it has earned trust);
* a :class:`RunLearner` records the real transitions and learns on its own schedule
  (:class:`~wm_agents.neural.dyna.DynaLearner`, :class:`~wm_agents.imagination.ImaginationLearner`).

Who acted is read from :attr:`~wm_agents.core.Decision.source` in the step records, not from
reasons.  :func:`wm_agents.runner.run_gym` and
:func:`wm_agents.imagination.run_imagination_gym` are this loop with their strategies.
"""

from __future__ import annotations

import contextvars
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from wm_agents.core import Controller
from wm_agents.envs.gym_actuator import GymActuator
from wm_agents.graph.env_graph import (
    EnvLearner,
    EnvPlanningContext,
    StepRecord,
    create_env_planning_graph,
    episode_config,
)
from wm_agents.parallel_eval import process_cpu_seconds

__all__ = [
    "ControllerStrategy",
    "EpisodeStreams",
    "EvalPoint",
    "Evaluator",
    "LoopRun",
    "RunLearner",
    "acted_by",
    "evaluate",
    "random_warmup",
    "run_env_loop",
]


@dataclass
class EvalPoint:
    """One evaluation: ``real_steps`` of learning so far, the evaluation episodes' returns,
    ``sources``: actions per decider (:func:`acted_by` of each step, e.g. ``{"mpc": 5000}``),
    and ``cpu_seconds``: the CPU time the evaluation took, its worker processes' included
    (:func:`~wm_agents.parallel_eval.process_cpu_seconds`), so a benchmark can count the CPU
    time of learning without that of measuring it."""

    real_steps: int
    returns: list[float]
    sources: dict[str, int] = field(default_factory=dict)
    cpu_seconds: float = 0.0

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns)) if self.returns else math.nan


def acted_by(source: str) -> str:
    """The part that acted: ``"hybrid:policy"`` -> ``"policy"``, ``"mpc"`` -> ``"mpc"``."""
    return source.rpartition(":")[2] or "unknown"


class RunLearner(EnvLearner, Protocol):
    """What :func:`run_env_loop` feeds real steps to (the learn node's :class:`EnvLearner`)."""

    def finish_warmup(self) -> None:
        """Called once after the random warm-up (fit a model the schedule has not fit yet)."""
        ...


class ControllerStrategy(Protocol):
    """Which controller acts when, for :func:`run_env_loop`."""

    def for_training(self, steps: int) -> Controller:
        """The controller of the next training episode (``steps``: real steps so far)."""
        ...

    def for_evaluation(self, steps: int) -> Controller:
        """The controller of the evaluation about to run."""
        ...

    def episode_ended(self, controller: Controller, final: Mapping[str, Any], steps: int) -> None:
        """After a training episode: ``final`` is the graph's final state (``episode_return``,
        ``terminated``...), ``steps`` the real steps so far."""
        ...


@dataclass
class LoopRun:
    """What :func:`run_env_loop` measured.

    Attributes:
        real_steps: real env steps of learning (warm-up included).
        evals: every evaluation, oldest first.
        train_episodes: ``(real steps so far, return)`` per finished training episode.
        train_records: one :class:`StepRecord` per planned training step.
        last_eval_records: the step records of the last evaluation (only the last is kept: a
            long run evaluates a hundred times, thousands of steps each).
        solved_at: real steps at the first evaluation reaching the env's threshold.
        seconds: wall time.
    """

    real_steps: int
    evals: list[EvalPoint]
    train_episodes: list[tuple[int, float]]
    train_records: list[StepRecord]
    last_eval_records: list[StepRecord]
    solved_at: int | None
    seconds: float

    @property
    def verdicts(self) -> dict[str, int]:
        """Gate verdicts of the training steps."""
        return dict(Counter(r.verdict for r in self.train_records))


@runtime_checkable
class EpisodeStreams(Protocol):
    """A controller whose evaluation episodes each plan from their own random stream
    (:class:`~wm_agents.planning.MPCController`): :func:`evaluate` runs episode ``i`` with
    ``controller.for_episode(seed + i)``, so an episode decides the same whether it runs alone,
    after others, or beside them in a batch (:func:`~wm_agents.batch_eval.evaluate_batched`).
    """

    def for_episode(self, episode_seed: int) -> Controller:
        """The controller for the evaluation episode with env seed ``episode_seed``."""
        ...


Evaluator = Callable[[Controller, int, int], tuple[list[float], list[StepRecord]]]
"""``(controller, episodes, seed) -> (returns, step records)``: how :func:`run_env_loop` runs
an evaluation (default: :func:`evaluate` through the graph; ``run_gym``'s MPC agent passes
:func:`~wm_agents.batch_eval.evaluate_batched` on a vector env)."""


def random_warmup(
    actuator: GymActuator,
    learner: EnvLearner,
    steps: int,
    *,
    seed: int,
    on_step: Callable[[], None] | None = None,
) -> list[tuple[int, float]]:
    """Uniformly random actions (from a numpy Generator seeded with ``seed``) fed to ``learner``.

    Episodes reset with seeds derived from ``seed``.  Returns ``(real steps so far, return)``
    per finished episode.
    """
    rng = np.random.default_rng(seed)
    episodes: list[tuple[int, float]] = []
    ep_return = 0.0
    obs = actuator.reset(seed=seed * 10_000)
    for _ in range(steps):
        action = actuator.sample_action(rng)
        res = actuator.step(action)
        ep_return += res.reward
        learner.observe(obs, action, res.reward, res.obs, res.terminated, res.truncated)
        if on_step is not None:
            on_step()
        obs = res.obs
        if res.terminated or res.truncated:
            episodes.append((learner.steps, ep_return))
            ep_return, obs = 0.0, actuator.reset(seed=seed * 10_000 + len(episodes))
    learner.mark_episode_end()
    return episodes


def evaluate(
    graph: Any,
    actuator: GymActuator,
    controller: Controller,
    episodes: int,
    *,
    seed: int,
    max_replans: int = 1,
    on_step: Callable[[StepRecord], None] | None = None,
) -> tuple[list[float], list[StepRecord]]:
    """Run ``episodes`` episodes (env seeds ``seed + i``) through the compiled graph without
    learning; returns their returns and step records.  A controller with per-episode random
    streams (:class:`EpisodeStreams`) runs episode ``i`` as ``controller.for_episode(seed +
    i)``."""
    limit = actuator.max_episode_steps or 1000
    returns, records = [], []
    for i in range(episodes):
        episode = (
            controller.for_episode(seed + i)
            if isinstance(controller, EpisodeStreams)
            else controller
        )
        episode.reset()
        ctx = EnvPlanningContext(actuator=actuator, controller=episode, on_step=on_step)
        # A thread id per episode so a graph compiled with a checkpointer can run it too.
        config = episode_config(limit, max_replans, configurable={"thread_id": f"eval-{seed + i}"})
        final = graph.invoke({"seed": seed + i}, context=ctx, config=config)
        returns.append(float(final["episode_return"]))
        records.extend(ctx.records)
    return returns, records


def run_env_loop(
    actuator: GymActuator,
    eval_actuator: GymActuator,
    controllers: ControllerStrategy,
    learner: RunLearner,
    *,
    seed: int,
    max_steps: int,
    warmup_steps: int,
    eval_every: int,
    eval_episodes: int,
    stop_when_solved: bool = False,
    max_replans: int = 1,
    fuse: bool = True,
    checkpointer: Any = None,
    progress: bool = True,
    desc: str = "real steps",
    on_eval: Callable[[EvalPoint], bool | None] | None = None,
    evaluator: Evaluator | None = None,
) -> LoopRun:
    """Learn an env: warm-up, training episodes and evaluations, all through the planning graph.

    Args:
        actuator, eval_actuator: the training env and a separate evaluation env.
        controllers: which controller acts when (:class:`ControllerStrategy`).
        learner: records real steps and learns (:class:`RunLearner`), until ``exhausted``.
        seed: env resets are seeded ``seed * 10_000 + episode`` for training and
            ``1_000_000 + seed * 1_000 + i`` for evaluation episode ``i``.
        max_steps: the real-step budget (an episode's step cap when the env has no limit).
        warmup_steps: uniformly random real steps first.
        eval_every: real steps between evaluations (0: only once the budget is spent).  They
            run at exactly ``warmup_steps + k * eval_every`` real steps, in the middle of a
            training episode if one is running (:class:`_EvaluatingLearner`), and once more
            when the budget is spent.
        eval_episodes: episodes per evaluation (0: none).
        stop_when_solved: stop at the first evaluation reaching the env's reward threshold.
        max_replans: re-plan rounds a step may take (sizes the graph's recursion limit).
        fuse: each real step one graph node (see :func:`create_env_planning_graph`).
        checkpointer: compile the graph with it (each episode its own thread).
        progress: show a progress bar (``desc`` names it).
        on_eval: called with every :class:`EvalPoint` as it is measured (a sweep's report);
            returning ``True`` stops the run there (early stopping, e.g. a Ray Tune scheduler):
            the running training episode ends at that step.
        evaluator: runs each evaluation (:data:`Evaluator`); default :func:`evaluate` through
            the graph on ``eval_actuator``.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    graph = create_env_planning_graph(fuse=fuse).compile(checkpointer=checkpointer)
    limit = actuator.max_episode_steps or max_steps
    threshold = actuator.reward_threshold
    bar = tqdm(total=max_steps, desc=desc, disable=not progress, unit="step", mininterval=1.0)
    train_episodes = random_warmup(
        actuator, learner, warmup_steps, seed=seed, on_step=lambda: bar.update(1)
    )
    learner.finish_warmup()
    episode = len(train_episodes)  # training episodes are numbered on from the warm-up's
    evals: list[EvalPoint] = []
    records: list[StepRecord] = []
    eval_seed = 1_000_000 + seed * 1_000
    solved_at: int | None = None

    def run_evaluation(steps: int) -> tuple[EvalPoint, list[StepRecord]]:
        bar.set_postfix_str(f"evaluating {eval_episodes} episodes")
        eval_controller = controllers.for_evaluation(steps)
        cpu0 = process_cpu_seconds()
        if evaluator is not None:
            rets, recs = evaluator(eval_controller, eval_episodes, eval_seed)
        else:
            rets, recs = evaluate(
                graph,
                eval_actuator,
                eval_controller,
                eval_episodes,
                seed=eval_seed,
                max_replans=max_replans,
            )
        sources = dict(Counter(acted_by(r.source) for r in recs))
        point = EvalPoint(steps, rets, sources, process_cpu_seconds() - cpu0)
        bar.set_postfix_str(f"eval mean {point.mean:.1f} at {steps} steps")
        return point, recs

    def should_stop(point: EvalPoint) -> bool:
        nonlocal solved_at
        stop = False
        if threshold is not None and solved_at is None and point.mean >= threshold:
            solved_at = point.real_steps
            stop = stop_when_solved
        if on_eval is not None and on_eval(point):
            stop = True
        return stop

    evaluating = _EvaluatingLearner(
        learner,
        first=warmup_steps + eval_every if eval_every else None,
        every=eval_every,
        enabled=eval_episodes > 0,
        evaluate=run_evaluation,
        should_stop=should_stop,
    )
    while not evaluating.exhausted:
        episode += 1
        controller = controllers.for_training(learner.steps)
        controller.reset()
        ctx = EnvPlanningContext(
            actuator=actuator,
            controller=controller,
            learner=evaluating,
            on_step=lambda r: bar.update(1),
        )
        config = episode_config(limit, max_replans, configurable={"thread_id": f"ep{episode}"})
        final = graph.invoke({"seed": seed * 10_000 + episode}, context=ctx, config=config)
        records.extend(ctx.records)
        train_episodes.append((learner.steps, float(final["episode_return"])))
        controllers.episode_ended(controller, final, learner.steps)
    evals = evaluating.evals
    eval_records = evaluating.last_records
    bar.close()
    return LoopRun(
        real_steps=learner.steps,
        evals=evals,
        train_episodes=train_episodes,
        train_records=records,
        last_eval_records=eval_records,
        solved_at=solved_at,
        seconds=time.perf_counter() - t0,
    )


class _EvaluatingLearner:
    """The run's learner as the learn node sees it: each real step goes to ``learner``, and
    when the step count reaches the next evaluation point the evaluation runs right there,
    mid-episode.

    Evaluating only between training episodes (as the loop did before) made "every 100
    steps" mean "every ~500" once the agent balanced: an evaluation waited for the episode to
    end.  The evaluation runs on its own env with its own controller (an evaluation twin with
    its own planner stream), so running it mid-episode changes nothing the training episode
    does.  It runs in an empty ``contextvars`` context: the learn node is inside a LangGraph
    run, and an evaluation through the graph must be a run of its own, not a subgraph of it.
    A stop (``should_stop``: solved, or ``on_eval`` said so) makes :attr:`exhausted` true, so
    the learn node ends the training episode at that step.
    """

    def __init__(
        self,
        learner: RunLearner,
        *,
        first: int | None,
        every: int,
        enabled: bool,
        evaluate: Callable[[int], tuple[EvalPoint, list[StepRecord]]],
        should_stop: Callable[[EvalPoint], bool],
    ) -> None:
        self.learner = learner
        self.next_eval = first if first is not None else math.inf
        self.every = every
        self.enabled = enabled
        self._evaluate = evaluate
        self._should_stop = should_stop
        self.evals: list[EvalPoint] = []
        self.last_records: list[StepRecord] = []
        self.stopped = False

    @property
    def steps(self) -> int:
        return self.learner.steps

    @property
    def exhausted(self) -> bool:
        return self.stopped or self.learner.exhausted

    def observe(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_obs: np.ndarray,
        terminated: bool,
        truncated: bool,
    ) -> Any:
        out = self.learner.observe(obs, action, reward, next_obs, terminated, truncated)
        steps = self.learner.steps
        if self.enabled and (steps >= self.next_eval or self.learner.exhausted):
            while self.next_eval <= steps:
                self.next_eval += self.every
            point, self.last_records = contextvars.Context().run(self._evaluate, steps)
            self.evals.append(point)
            self.stopped = self._should_stop(point)
        return out

    def mark_episode_end(self) -> None:
        self.learner.mark_episode_end()
