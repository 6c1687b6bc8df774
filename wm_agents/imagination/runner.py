"""Run the policy, MPC, hybrid or model-free DQN agent on a gymnasium env.

The one run loop (:func:`~wm_agents.run_loop.run_env_loop`): random warm-up -> fit -> training
episodes through the env planning graph (the controller and the learner in its context) ->
every ``eval_every`` real steps, greedy evaluation episodes through the same graph with no
learning, until the env's reward threshold is reached or the real-step budget is spent.  What
differs per agent is its strategies (:mod:`wm_agents.imagination.strategies`):

* ``mpc``: :class:`MPCController` (CEM on the ensemble), the model refit on the Dyna schedule
  (:class:`~wm_agents.runner.MPCStrategy`; evaluations plan with the same controller).
* ``policy``: a DQN (Discrete) / SAC (Box) policy trained on real + imagined transitions
  (:class:`ImaginationLearner`), acting alone (its selected snapshot,
  :attr:`ImaginationLearner.acting`; :class:`~wm_agents.imagination.strategies.PolicyStrategy`).
* ``hybrid``: the same learner, falling back to MPC when the members disagree about its
  policy's action.  MPC acts until the policy is trusted, and trust comes in two steps
  (:class:`~wm_agents.imagination.strategies.HybridTrust`): once the acting policy's return
  *imagined* by the ensemble from real episode start states (the learner's selection score,
  checked at each episode start after ``policy_after`` real steps) reaches ``trust_return``
  (default: the env's reward threshold), the policy is on probation: training episodes run the
  hybrid, evaluations still MPC; a real training episode that returns at least the threshold
  confirms it, one that falls below revokes it.  MPC's real choices are recorded as
  demonstrations, and the learner distills them into policy candidates
  (:class:`~wm_agents.imagination.distill.DistilledPolicy`) that compete with the DQN / SAC
  snapshots in imagination for the acting slot.  The disagreement threshold is, by default,
  calibrated after every model refit as the ``hybrid_quantile`` of the members' disagreement on
  the real transitions (:func:`calibrate_disagreement`).
* ``dqn``: the model-free baseline: the same learner with imagination off.

"ms per action" is the same measurement for every agent: each decision's ``plan_ms`` in the last
evaluation (propose, imagine and decide rounds, timed by the graph), median over its steps.
Who acted is each decision's :attr:`~wm_agents.core.Decision.source`.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from wm_agents.envs.gym_actuator import GymActuator
from wm_agents.envs.make import make_env
from wm_agents.graph.env_graph import StepRecord
from wm_agents.imagination.controllers import HybridController, PolicyController
from wm_agents.imagination.dqn import DQNConfig, DQNLearner
from wm_agents.imagination.mbpo import ImaginationConfig, ImaginationLearner
from wm_agents.imagination.sac import SACConfig, SACLearner
from wm_agents.imagination.strategies import HybridStrategy, HybridTrust, PolicyStrategy
from wm_agents.neural.dyna import DynaLearner
from wm_agents.outputs import check_output_dir
from wm_agents.run_loop import ControllerStrategy, EvalPoint, RunLearner, acted_by, run_env_loop
from wm_agents.runner import (
    RUN_FILES,
    AgentConfig,
    MPCStrategy,
    RunResult,
    _jsonable,
    build_agent,
    default_config,
    run_result,
    save_run,
    steps_to_hold,
)
from wm_agents.torch_threads import torch_threads

__all__ = ["AgentKind", "ImaginationRunResult", "run_imagination_gym"]

AgentKind = Literal["policy", "mpc", "hybrid", "dqn"]
_DEFAULT_STEPS: dict[str, int] = {"mpc": 2_000, "hybrid": 2_000, "policy": 5_000, "dqn": 30_000}


@dataclass
class ImaginationRunResult(RunResult):
    """A :class:`RunResult` plus who acted and how fast the trained agent acts."""

    agent: str = "hybrid"
    act_ms: list[float] = field(default_factory=list)
    action_sources: dict[str, int] = field(default_factory=dict)
    rollout_stats: dict[str, Any] = field(default_factory=dict)

    eval_sources: list[dict[str, int]] = field(default_factory=list)
    trust_log: list[tuple[int, str]] = field(default_factory=list)

    @property
    def held_from_step(self) -> int | None:
        """Real steps at the first evaluation from which every evaluation reached the env's
        threshold (``None``: the last one did not, or no threshold)."""
        if self.solved_threshold is None:
            return None
        return steps_to_hold(self.evals, self.solved_threshold)

    def summary(self) -> dict[str, Any]:
        """The ``gym`` command's JSON fields, plus ``agent``, ``act_ms_median`` (last
        evaluation, per decision), ``action_sources`` (policy / mpc actions in the last
        evaluation, by :func:`~wm_agents.run_loop.acted_by`), ``held_from_step`` (see there),
        per evaluation the policy's share of actions (``evals[i]["policy_share"]``),
        ``rollouts`` (mean imagined transitions per round, fraction of branches stopped on
        disagreement, mean branch length, trust and threshold calibration) and ``trust_log``
        (the hybrid's ``[real steps, "probation" | "trusted" | "revoked"]`` events)."""
        s = super().summary()
        med = statistics.median(self.act_ms) if self.act_ms else None
        for row, src in zip(s["evals"], self.eval_sources, strict=False):
            total = sum(src.values())
            row["policy_share"] = round(src.get("policy", 0) / total, 4) if total else None
        s.update(
            agent=self.agent,
            act_ms_median=round(med, 4) if med is not None else None,
            action_sources=self.action_sources,
            held_from_step=self.held_from_step,
            rollouts=self.rollout_stats,
            trust_log=[list(e) for e in self.trust_log],
        )
        return s


def run_imagination_gym(
    env_id: str,
    *,
    agent: AgentKind = "hybrid",
    seed: int = 0,
    max_steps: int | None = None,
    config: AgentConfig | None = None,
    imagination: ImaginationConfig | None = None,
    hybrid_threshold: float | None = None,
    hybrid_quantile: float = 0.99,
    policy_after: int = 400,
    trust_return: float | None = None,
    eval_every: int = 300,
    eval_episodes: int = 10,
    stop_when_solved: bool = True,
    progress: bool = True,
    out: str | Path | None = None,
    on_eval: Callable[[EvalPoint], bool | None] | None = None,
) -> ImaginationRunResult:
    """Learn ``env_id`` with ``agent`` and report real steps to the threshold and ms per action.

    All randomness comes from ``seed`` (model, planner, policy, learner generators; env resets
    seeded ``seed * 10_000 + episode`` for training and ``1_000_000 + seed * 1_000 + i`` for
    evaluation, as in :func:`wm_agents.runner.run_gym`).

    Args:
        hybrid_threshold: fixed disagreement threshold of the hybrid; ``None`` (default):
            calibrated after every model refit as the ``hybrid_quantile`` of the members'
            disagreement on the real transitions (:func:`calibrate_disagreement`).
        policy_after: real steps before the hybrid considers trusting its policy.
        trust_return: imagined return that puts the hybrid's policy on probation (default: the
            env's reward threshold; ``-inf``: probation at the first chance).
        eval_every: real steps between evaluations (0: only once the budget is spent).
        on_eval: hears every evaluation as it is measured; returning ``True`` stops the run
            (see :func:`~wm_agents.run_loop.run_env_loop`).

    Torch runs on ``config.threads`` threads meanwhile (the caller's count is restored).
    ``out``: as in :func:`~wm_agents.runner.run_gym` (checked first; the model, learning curve
    and ``result.json`` with the agent and imagination options are written there at the end).
    """
    if out is not None:
        out = check_output_dir(out, RUN_FILES)
    if agent not in _DEFAULT_STEPS:
        raise ValueError(f"agent must be one of {sorted(_DEFAULT_STEPS)}, got {agent!r}")
    steps = max_steps or _DEFAULT_STEPS[agent]
    cfg = config or default_config(env_id)
    cfg = replace(cfg, max_steps=steps, fit=replace(cfg.fit, seed=seed))
    if not 0.0 < hybrid_quantile <= 1.0:
        raise ValueError(f"hybrid_quantile must be in (0, 1], got {hybrid_quantile}")
    icfg = imagination or ImaginationConfig(learning_starts=cfg.warmup_steps)
    if agent == "dqn":
        icfg = replace(icfg, imagine=False, updates_per_step=1)
    with torch_threads(cfg.threads):
        actuator = GymActuator(make_env(env_id))
        eval_actuator = GymActuator(make_env(env_id))
        try:
            return _run(
                env_id,
                actuator,
                eval_actuator,
                agent=agent,
                seed=seed,
                steps=steps,
                cfg=cfg,
                icfg=icfg,
                hybrid_threshold=hybrid_threshold,
                hybrid_quantile=hybrid_quantile,
                policy_after=policy_after,
                trust_return=trust_return,
                eval_every=eval_every,
                eval_episodes=eval_episodes,
                stop_when_solved=stop_when_solved,
                progress=progress,
                out=out,
                on_eval=on_eval,
            )
        finally:
            actuator.close()
            eval_actuator.close()


def _run(
    env_id: str,
    actuator: GymActuator,
    eval_actuator: GymActuator,
    *,
    agent: AgentKind,
    seed: int,
    steps: int,
    cfg: AgentConfig,
    icfg: ImaginationConfig,
    hybrid_threshold: float | None,
    hybrid_quantile: float,
    policy_after: int,
    trust_return: float | None,
    eval_every: int,
    eval_episodes: int,
    stop_when_solved: bool,
    progress: bool,
    out: Path | None,
    on_eval: Callable[[EvalPoint], bool | None] | None,
) -> ImaginationRunResult:
    """The run of :func:`run_imagination_gym`, its options validated: the agent's strategies
    for the one loop, then the result."""
    if actuator.max_episode_steps:
        icfg = replace(icfg, select_horizon=actuator.max_episode_steps)
    # One MPC controller trains and evaluates here, so it plans without the training-only
    # exploration bonus (an env default such as MountainCarContinuous's explore=1.0).
    model, mpc = build_agent(actuator, replace(cfg, explore=0.0), seed)
    # The model-free baseline never refits (its model is only the replay buffer).
    refit = 10**9 if agent == "dqn" else cfg.refit_every
    dyna = DynaLearner(model, refit, cfg.fit, budget=steps)
    spec = actuator.action_spec
    learner: RunLearner = dyna
    controllers: ControllerStrategy = MPCStrategy(mpc, mpc)
    hybrid: HybridStrategy | None = None
    if agent != "mpc":
        policy: DQNLearner | SACLearner
        if spec.kind == "discrete":
            policy = DQNLearner(actuator.obs_dim, spec.n, DQNConfig(), seed=seed)
        else:
            policy = SACLearner(actuator.obs_dim, spec, SACConfig(), seed=seed)
        imagination = ImaginationLearner(dyna, policy, icfg, seed=seed)
        learner = imagination
        # The selected snapshot acts; the learning policy keeps learning behind it.
        policy_ctrl = PolicyController(model, imagination.acting, gamma=0.99, seed=seed)
        controllers = PolicyStrategy(policy_ctrl, imagination)
        if agent == "hybrid":
            threshold = actuator.reward_threshold
            bar = trust_return if trust_return is not None else threshold
            hybrid = HybridStrategy(
                mpc,
                policy_ctrl,
                HybridController(policy_ctrl, mpc, hybrid_threshold or 0.0),
                imagination,
                HybridTrust(bar, confirm_bar=threshold),
                policy_after=policy_after,
                threshold=hybrid_threshold,
                quantile=hybrid_quantile,
            )
            controllers = hybrid
    run = run_env_loop(
        actuator,
        eval_actuator,
        controllers,
        learner,
        seed=seed,
        max_steps=steps,
        warmup_steps=cfg.warmup_steps,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        stop_when_solved=stop_when_solved,
        max_replans=cfg.max_replans + 1,  # a hybrid's policy round comes first
        progress=progress,
        desc=f"{env_id} {agent}",
        on_eval=on_eval,
    )
    last = run.evals[-1] if run.evals else None
    act_ms = [r.plan_ms for r in run.last_eval_records]
    result = run_result(
        env_id,
        seed,
        run,
        actuator,
        dyna,
        model,
        cls=ImaginationRunResult,
        agent=agent,
        act_ms=act_ms,
        action_sources=last.sources if last is not None else {},
        rollout_stats=_rollout_stats(learner, hybrid, run.last_eval_records),
        eval_sources=[e.sources for e in run.evals],
        trust_log=list(hybrid.trust.log) if hybrid is not None else [],
    )
    result.plan_ms = act_ms
    if out is not None:
        options = {"agent": agent, "config": asdict(cfg), "imagination": asdict(icfg)}
        save_run(out, result, model, _jsonable(options))
    return result


def _rollout_stats(
    learner: RunLearner, hybrid: HybridStrategy | None, last_eval: list[StepRecord]
) -> dict[str, Any]:
    """The summary's ``rollouts``: imagination rounds, policy selection, distillation, the
    hybrid's trust and threshold, the policy's disagreement in the last evaluation."""
    stats: dict[str, Any] = {}
    if isinstance(learner, ImaginationLearner) and learner.rollout_stats:
        arr = np.asarray(learner.rollout_stats, dtype=float)
        stats = {
            "rounds": float(len(arr)),
            "kept_per_round": float(arr[:, 0].mean()),
            "stopped_fraction": float(arr[:, 1].mean()),
            "mean_length": float(arr[:, 2].mean()),
        }
    if isinstance(learner, ImaginationLearner) and learner.selections:
        sel = learner.selections
        stats["selections"] = float(len(sel))
        stats["snapshot_replaced"] = float(sum(r for *_, r in sel))
        stats["acting_imagined_return"] = learner.acting_score
    if isinstance(learner, ImaginationLearner) and learner.config.imagine:
        stats["acting_policy"] = learner.acting_name
        if learner.distilled:
            stats["distillations"] = float(len(learner.distilled))
            stats["distilled_agreement_last"] = learner.distilled[-1][2]
    if hybrid is not None:
        trusted_at = hybrid.trust.trusted_at
        stats["policy_trusted_at_step"] = float(trusted_at) if trusted_at is not None else -1.0
        stats["trust_revoked"] = float(sum(e == "revoked" for _, e in hybrid.trust.log))
        stats["hybrid_threshold"] = hybrid.hybrid.threshold
    # The policy's decisions' disagreement in the last evaluation (for calibration).
    dis = [r.uncertainty for r in last_eval if acted_by(r.source) == "policy"]
    if dis:
        stats["eval_policy_disagreement_median"] = float(np.median(dis))
        stats["eval_policy_disagreement_p95"] = float(np.quantile(dis, 0.95))
    return stats
