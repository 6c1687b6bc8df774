"""The one env run loop: any controller strategy and learner, evaluations through the graph,
and the per-evaluation callback that reports and stops early."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from point_world import PointEnv, PointModel, point_controller
from tiny_agent import tiny_cartpole_config

from wm_agents.core import Controller, LearnReport, Transition
from wm_agents.envs import GymActuator
from wm_agents.imagination import ImaginationConfig, run_imagination_gym
from wm_agents.run_loop import EvalPoint, acted_by, run_env_loop
from wm_agents.runner import MPCStrategy, run_gym


class PointLearner:
    """A learner for any WorldModel: real steps become Transitions, learned at episode ends."""

    def __init__(self, model: PointModel, budget: int) -> None:
        self.model, self.budget = model, budget
        self.transitions: list[Transition] = []
        self.reports: list[LearnReport] = []
        self.episode_ends = 0
        self.warmed_up_at: int | None = None

    @property
    def steps(self) -> int:
        return len(self.transitions)

    @property
    def exhausted(self) -> bool:
        return self.steps >= self.budget

    def observe(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        t = Transition(
            state=np.asarray(obs).tolist(),
            action=np.asarray(action).tolist(),
            reward=reward,
            next_state=np.asarray(next_obs).tolist(),
            terminated=terminated,
            truncated=truncated,
        )
        self.transitions.append(t)
        if terminated or truncated:
            self.reports.append(self.model.learn(self.transitions[-self.steps :]))

    def mark_episode_end(self) -> None:
        self.episode_ends += 1

    def finish_warmup(self) -> None:
        self.warmed_up_at = self.steps


class CountingStrategy(MPCStrategy):
    """MPC, counting what the loop asked for."""

    def __init__(self) -> None:
        super().__init__(point_controller(seed=0), point_controller(seed=1))
        self.asked: list[tuple[str, int]] = []

    def for_training(self, steps: int) -> Controller:
        self.asked.append(("train", steps))
        return super().for_training(steps)

    def for_evaluation(self, steps: int) -> Controller:
        self.asked.append(("eval", steps))
        return super().for_evaluation(steps)

    def episode_ended(self, controller: Controller, final: Mapping[str, Any], steps: int) -> None:
        self.asked.append(("ended", steps))


def point_loop(on_eval: Any = None, **options: Any):
    strategy = CountingStrategy()
    learner = PointLearner(PointModel(), budget=40)
    run = run_env_loop(
        GymActuator(PointEnv()),
        GymActuator(PointEnv()),
        strategy,
        learner,
        seed=0,
        max_steps=40,
        warmup_steps=25,
        eval_episodes=2,
        progress=False,
        on_eval=on_eval,
        **{"eval_every": 5, **options},
    )
    return run, strategy, learner


def test_the_loop_runs_any_controller_and_learner_and_evaluates_through_the_graph() -> None:
    run, strategy, learner = point_loop()
    # 25 random steps (one truncated episode of 20), then planned episodes of 4-6 steps.
    assert learner.warmed_up_at == 25 and run.train_episodes[0][0] == 20
    assert run.real_steps == 40 and learner.exhausted
    assert learner.reports and all(not r.updated for r in learner.reports)
    assert learner.episode_ends == 2  # after the warm-up, and where the budget ran out
    # Each training episode: a controller, then its end; an evaluation exactly every
    # eval_every (5) real steps after the warm-up (25), inside a training episode when one is
    # running, and the last where the budget is spent.
    kinds = [k for k, _ in strategy.asked]
    assert kinds[:2] == ["train", "ended"] and "eval" in kinds
    assert [e.real_steps for e in run.evals] == [30, 35, 40]
    episode_ends = {steps for steps, _ in run.train_episodes}
    assert 35 not in episode_ends  # an evaluation mid-episode: the episode did not wait
    assert kinds.index("eval") < len(kinds) - 1 and kinds[kinds.index("eval") - 1] == "train"
    # Evaluations run through the graph with the evaluation twin: its records say who acted.
    assert len(run.evals) >= 2 and all(len(e.returns) == 2 for e in run.evals)
    assert all(e.sources.keys() == {"mpc"} for e in run.evals)
    assert run.evals[-1].sources == {"mpc": len(run.last_eval_records)}
    assert all(r.source == "mpc" for r in run.last_eval_records)
    assert all(e.mean > -5.0 for e in run.evals)  # from 3.3: about -3.9 at best
    assert run.verdicts == {"act": len(run.train_records)}
    assert all(r.source == "mpc" for r in run.train_records)


def test_evaluating_mid_episode_leaves_the_training_run_as_it_was() -> None:
    # The evaluation has its own env and controller: how often it runs changes nothing the
    # training episodes do.
    often, _, _ = point_loop()
    rarely, _, _ = point_loop(eval_every=0)
    assert [e.real_steps for e in rarely.evals] == [40]
    assert often.train_episodes == rarely.train_episodes
    assert [r.action for r in often.train_records] == [r.action for r in rarely.train_records]
    assert often.evals[-1].returns == rarely.evals[-1].returns


def test_on_eval_reports_every_evaluation_and_stops_the_run_early() -> None:
    seen: list[EvalPoint] = []

    def report(point: EvalPoint) -> bool | None:
        seen.append(point)
        return True  # a sweep's scheduler stopping the trial at its first report

    full, _, _ = point_loop()
    run, strategy, learner = point_loop(on_eval=report)
    assert len(full.evals) >= 2 and len(seen) == 1 and run.evals == seen
    assert seen[0].returns == full.evals[0].returns  # the same run up to there
    assert run.real_steps == seen[-1].real_steps < 40 and not learner.exhausted
    # The stop ends the training episode at the evaluation's step.
    assert strategy.asked[-2:] == [("eval", run.real_steps), ("ended", run.real_steps)]


def test_acted_by_reads_the_part_that_decided() -> None:
    assert [acted_by(s) for s in ("mpc", "hybrid:policy", "hybrid:mpc", "policy", "")] == [
        "mpc",
        "policy",
        "mpc",
        "policy",
        "unknown",
    ]


def test_run_gym_stops_when_on_eval_says_so() -> None:
    cfg = tiny_cartpole_config(max_steps=200, eval_every=40, eval_episodes=1)
    points: list[EvalPoint] = []
    r = run_gym("CartPole-v1", seed=0, config=cfg, progress=False, on_eval=points.append)
    assert len(points) >= 2 and r.real_steps == 200  # append returns None: never stops
    stopped = run_gym("CartPole-v1", seed=0, config=cfg, progress=False, on_eval=lambda p: True)
    assert len(stopped.evals) == 1 and stopped.real_steps == points[0].real_steps < 200
    assert stopped.evals[0].returns == points[0].returns  # the same run up to there


def test_run_imagination_gym_reports_evaluations_with_who_acted() -> None:
    points: list[EvalPoint] = []
    r = run_imagination_gym(
        "CartPole-v1",
        agent="policy",
        seed=0,
        max_steps=80,
        config=tiny_cartpole_config(),
        eval_every=1,
        eval_episodes=1,
        progress=False,
        imagination=ImaginationConfig(learning_starts=40, rollout_starts=16, updates_per_step=2),
        on_eval=lambda p: points.append(p) or True,
    )
    assert len(points) == 1 and r.evals == points
    s = r.summary()
    assert s["action_sources"] == points[0].sources == {"policy": len(r.act_ms)}
    assert s["act_ms_median"] > 0 and s["evals"][0]["policy_share"] == 1.0
