"""Run the policy, MPC, hybrid or model-free DQN agent on a gymnasium env.

random warm-up -> fit -> training episodes through the env planning graph (the controller and
the learner in its context) -> every ``eval_every`` real steps, greedy evaluation episodes with
no learning, timed per action (``controller.act``, no graph), until the env's reward threshold
is reached or the real-step budget is spent.

Agents:

* ``mpc``: :class:`MPCController` (CEM on the ensemble), the model refit on the Dyna schedule.
* ``policy``: a DQN (Discrete) / SAC (Box) policy trained on real + imagined transitions
  (:class:`ImaginationLearner`), acting alone (its selected snapshot,
  :attr:`ImaginationLearner.acting`).
* ``hybrid``: the same learner, falling back to MPC when the members disagree about its
  policy's action.  MPC acts until the policy is trusted, and trust comes in two steps
  (:class:`_Trust`): once the acting policy's return *imagined* by the ensemble from real episode
  start states (the learner's selection score, checked at each episode start after
  ``policy_after`` real steps) reaches ``trust_return`` (default: the env's reward threshold),
  the policy is on probation: training episodes run the hybrid, evaluations still MPC; a real
  training episode that returns at least the threshold confirms it, one that falls below
  revokes it.  MPC's real choices are recorded as demonstrations, and the learner distills them
  into policy candidates (:class:`~wm_agents.imagination.distill.DistilledPolicy`) that compete
  with the DQN / SAC snapshots in imagination for the acting slot.  The disagreement threshold
  is, by default, calibrated after every model refit as the ``hybrid_quantile`` of the members'
  disagreement on the real transitions (:func:`calibrate_disagreement`).
* ``dqn``: the model-free baseline: the same learner with imagination off.

"ms per action" is the same measurement for every agent: the wall time of one bare
``controller.act(obs)`` (no graph) in the last evaluation, median over its steps.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from wm_agents.envs.gym_actuator import GymActuator
from wm_agents.envs.make import make_env
from wm_agents.graph.env_graph import EnvPlanningContext, create_env_planning_graph, episode_config
from wm_agents.imagination.controllers import HybridController, PolicyController
from wm_agents.imagination.dqn import DQNConfig, DQNLearner
from wm_agents.imagination.mbpo import ImaginationConfig, ImaginationLearner
from wm_agents.imagination.sac import SACConfig, SACLearner
from wm_agents.imagination.trust import calibrate_disagreement
from wm_agents.neural.dyna import DynaLearner
from wm_agents.outputs import check_output_dir
from wm_agents.runner import (
    RUN_FILES,
    AgentConfig,
    EvalPoint,
    RunResult,
    _jsonable,
    build_agent,
    default_config,
    random_warmup,
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
        evaluation, bare ``controller.act``), ``action_sources`` (policy / mpc actions in the last
        evaluation), ``held_from_step`` (see there), per evaluation the policy's share of actions
        (``evals[i]["policy_share"]``) and ``rollouts`` (mean imagined transitions per round,
        fraction of branches stopped on disagreement, mean branch length, trust and threshold
        calibration) and ``trust_log`` (the hybrid's ``[real steps, "probation" | "trusted" |
        "revoked"]`` events)."""
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
        return _run(
            env_id,
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
        )


def _run(
    env_id: str,
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
) -> ImaginationRunResult:
    """The run of :func:`run_imagination_gym`, its options validated."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    actuator = GymActuator(make_env(env_id))
    if actuator.max_episode_steps:
        icfg = replace(icfg, select_horizon=actuator.max_episode_steps)
    eval_actuator = GymActuator(make_env(env_id))
    model, mpc = build_agent(actuator, cfg, seed)
    # The model-free baseline never refits (its model is only the replay buffer).
    refit = 10**9 if agent == "dqn" else cfg.refit_every
    dyna = DynaLearner(model, refit, cfg.fit, budget=steps)
    spec = actuator.action_spec
    learner: DynaLearner | ImaginationLearner = dyna
    policy_ctrl: PolicyController | None = None
    if agent != "mpc":
        policy: DQNLearner | SACLearner
        if spec.kind == "discrete":
            policy = DQNLearner(actuator.obs_dim, spec.n, DQNConfig(), seed=seed)
        else:
            policy = SACLearner(actuator.obs_dim, spec, SACConfig(), seed=seed)
        learner = ImaginationLearner(dyna, policy, icfg, seed=seed)
        # The selected snapshot acts; the learning policy keeps learning behind it.
        policy_ctrl = PolicyController(model, learner.acting, gamma=0.99, seed=seed)
    hybrid = (
        HybridController(policy_ctrl, mpc, hybrid_threshold or 0.0)
        if policy_ctrl is not None
        else None
    )
    calibrated: list[tuple[int, float]] = []

    def calibrate() -> None:
        """Hybrid, calibrated threshold: re-derive it when the model was refit."""
        if hybrid is None or hybrid_threshold is not None or not bool(model.fitted):
            return
        if calibrated and calibrated[-1][0] == len(dyna.fits):
            return
        data = model.buffer.all()
        thr = calibrate_disagreement(model, data.obs, data.action, quantile=hybrid_quantile)
        hybrid.threshold = thr
        calibrated.append((len(dyna.fits), thr))

    graph = create_env_planning_graph(fuse=True).compile()
    limit = actuator.max_episode_steps or steps
    threshold = actuator.reward_threshold
    trust_bar = trust_return if trust_return is not None else threshold
    trust = _Trust(trust_bar, confirm_bar=threshold)

    def trust_key() -> tuple[int, int]:
        """What must change before a revoked policy is offered again: a refit or a new
        acting policy (both re-score its imagined return)."""
        return len(dyna.fits), learner.acting_version  # type: ignore[union-attr]

    def offer_trust() -> None:
        """Hybrid, at an episode start: put the policy on probation once its imagined return
        (the learner's selection score, from real episode starts) reaches the bar."""
        if agent != "hybrid" or learner.steps < policy_after or not bool(model.fitted):
            return
        trust.offer(learner.steps, learner.acting_score, trust_key())  # type: ignore[union-attr]

    bar = tqdm(total=steps, desc=f"{env_id} {agent}", disable=not progress, unit="step")

    train_episodes = random_warmup(
        actuator, learner, cfg.warmup_steps, seed=seed, on_step=lambda: bar.update(1)
    )
    episode = len(train_episodes)
    if agent != "dqn" and cfg.warmup_steps % cfg.refit_every:
        dyna.fit()

    evals: list[EvalPoint] = []
    solved_at: int | None = None
    act_ms: list[float] = []
    sources: Counter = Counter()
    verdicts: Counter = Counter()
    next_eval = cfg.warmup_steps + eval_every
    dis: list[float] = []
    eval_sources: list[dict[str, int]] = []
    controller: Any = mpc
    if agent == "hybrid" and hybrid is not None and isinstance(learner, ImaginationLearner):
        # The planner's real choices are demonstrations; the learner distills them into
        # policy candidates that compete in imagination with the DQN / SAC snapshots.
        learner.demo_source = lambda: (
            controller is mpc or (bool(hybrid.trace) and hybrid.trace[-1].source == "mpc")
        )
    while not learner.exhausted:
        episode += 1
        calibrate()
        offer_trust()
        if policy_ctrl is not None:  # the acting policy may have been replaced
            policy_ctrl.policy = learner.acting  # type: ignore[union-attr]
        if agent == "mpc" or (agent == "hybrid" and trust.state == "untrusted"):
            controller = mpc
        elif agent == "hybrid":
            policy_ctrl.epsilon = 0.0  # type: ignore[union-attr]
            controller = hybrid
        else:
            policy_ctrl.epsilon = learner.epsilon  # type: ignore[union-attr, attr-defined]
            controller = policy_ctrl
        controller.reset()
        ctx = EnvPlanningContext(
            actuator=actuator,
            controller=controller,
            learner=learner,  # type: ignore[arg-type]
            on_step=lambda r: bar.update(1),
        )
        final = graph.invoke(
            {"seed": seed * 10_000 + episode},
            context=ctx,
            config=episode_config(limit, cfg.max_replans + 1),
        )
        verdicts.update(r.verdict for r in ctx.records)
        train_episodes.append((learner.steps, float(final["episode_return"])))
        if controller is hybrid:
            ret, fell = float(final["episode_return"]), bool(final["terminated"])
            trust.judge(learner.steps, ret, fell, key=trust_key())
        if eval_episodes and (learner.steps >= next_eval or learner.exhausted):
            next_eval = learner.steps + eval_every
            if policy_ctrl is not None:
                policy_ctrl.epsilon = 0.0
                policy_ctrl.policy = learner.acting  # type: ignore[union-attr]
            ctrl = {"mpc": mpc, "hybrid": hybrid}.get(agent, policy_ctrl)
            if agent == "hybrid" and trust.state != "trusted":
                ctrl = mpc
            calibrate()
            rets, act_ms, sources = _evaluate(ctrl, eval_actuator, eval_episodes, seed=seed)
            eval_sources.append(dict(sources))
            dis = getattr(ctrl, "eval_disagreement", [])
            evals.append(EvalPoint(learner.steps, rets))
            bar.set_postfix_str(f"eval {evals[-1].mean:.1f} at {learner.steps}")
            if threshold is not None and evals[-1].mean >= threshold and solved_at is None:
                solved_at = learner.steps
                if stop_when_solved:
                    break
    bar.close()
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
    if isinstance(learner, ImaginationLearner) and agent != "dqn":
        stats["acting_policy"] = learner.acting_name
        if learner.distilled:
            stats["distillations"] = float(len(learner.distilled))
            stats["distilled_agreement_last"] = learner.distilled[-1][2]
    if agent == "hybrid":
        trusted_at = trust.trusted_at
        stats["policy_trusted_at_step"] = float(trusted_at) if trusted_at is not None else -1.0
        stats["trust_revoked"] = float(sum(e == "revoked" for _, e in trust.log))
        if hybrid is not None:
            stats["hybrid_threshold"] = hybrid.threshold
    if dis:
        stats["eval_policy_disagreement_median"] = float(np.median(dis))
        stats["eval_policy_disagreement_p95"] = float(np.quantile(dis, 0.95))
    fits = dyna.fits
    result = ImaginationRunResult(
        env=env_id,
        seed=seed,
        real_steps=learner.steps,
        evals=evals,
        train_episodes=train_episodes,
        solved_threshold=threshold,
        solved_at_step=solved_at,
        plan_ms=act_ms,
        model_val_mse=fits[-1].val_mse if fits else math.nan,
        verdicts=dict(verdicts),
        seconds=time.perf_counter() - t0,
        clipped=model.clip_stats.as_dict(),
        agent=agent,
        act_ms=act_ms,
        action_sources=dict(sources),
        rollout_stats=stats,
        eval_sources=eval_sources,
        trust_log=list(trust.log),
    )
    if out is not None:
        options = {"agent": agent, "config": asdict(cfg), "imagination": asdict(icfg)}
        save_run(out, result, model, _jsonable(options))
    actuator.close()
    eval_actuator.close()
    return result


@dataclass
class _Trust:
    """The hybrid's trust in its policy: imagined first, then confirmed by a real episode.

    ``untrusted`` (MPC acts) -> ``probation`` once the policy's imagined return reaches
    ``bar``: training episodes run the hybrid, evaluations still MPC -> ``trusted`` when a real
    training episode run by the hybrid returns at least ``confirm_bar`` (evaluations run the
    hybrid).  A hybrid training episode that terminates below ``confirm_bar``, on probation or
    trusted, revokes trust; the policy is offered again only once its imagined return has been
    re-scored (a refit or a new snapshot changes ``key``) and still reaches ``bar``.  With no
    ``bar`` the policy is trusted at once; with no ``confirm_bar`` (an env without a reward
    threshold) it is trusted on its imagined return alone.

    Trust belongs to the acting slot: a candidate that takes the slot in imagination (scoring at
    least as well under the same model) inherits it without a real episode of its own, and the
    next hybrid episode that falls revokes it.

    ``trusted_at`` is the real step at which the current trust began (``None`` when not
    trusted); ``log`` keeps every ``(real steps, "probation" | "trusted" | "revoked")``.
    """

    bar: float | None
    confirm_bar: float | None
    state: Literal["untrusted", "probation", "trusted"] = "untrusted"
    trusted_at: int | None = None
    log: list[tuple[int, str]] = field(default_factory=list)
    _offered_key: Any = None
    _revoked_key: Any = None

    def offer(self, steps: int, imagined_return: float, key: Any) -> None:
        """At an episode start: start probation if the policy qualifies (see the class)."""
        revoked_for = self._revoked_key is not None and key == self._revoked_key
        if self.state != "untrusted" or revoked_for:
            return
        if self.bar is not None and imagined_return < self.bar:
            return
        self._offered_key = key
        if self.bar is None or self.confirm_bar is None:
            self._move(steps, "trusted")
        else:
            self._move(steps, "probation")

    def judge(self, steps: int, episode_return: float, terminated: bool, key: Any = None) -> None:
        """After a real training episode the hybrid ran: confirm or revoke.  ``key`` is the
        policy's key now (:meth:`offer`): after a revocation only a later change re-offers."""
        if self.confirm_bar is None or self.state == "untrusted":
            return
        if episode_return >= self.confirm_bar:
            if self.state == "probation":
                self._move(steps, "trusted")
        elif terminated:
            self._revoked_key = key if key is not None else self._offered_key
            self.state, self.trusted_at = "untrusted", None
            self.log.append((steps, "revoked"))

    def _move(self, steps: int, state: Literal["probation", "trusted"]) -> None:
        self.state = state
        if state == "trusted":
            self.trusted_at = steps
        self.log.append((steps, state))


def _evaluate(
    controller: Any, actuator: GymActuator, episodes: int, *, seed: int
) -> tuple[list[float], list[float], Counter]:
    """Greedy episodes with ``controller.act`` (no graph, no learning): returns, ms per action,
    and who acted (``policy`` / ``mpc``)."""
    returns, ms, sources = [], [], Counter()
    controller.eval_disagreement = []  # policy decisions' disagreement, for calibration
    for i in range(episodes):
        obs = actuator.reset(seed=1_000_000 + seed * 1_000 + i)
        controller.reset()
        total, done = 0.0, False
        while not done:
            d = controller.act(obs)
            ms.append(d.plan_ms)
            src = "mpc" if d.n_candidates > 1 or d.reason.startswith("MPC") else "policy"
            sources[src] += 1
            if src == "policy":
                controller.eval_disagreement.append(d.uncertainty)
            res = actuator.step(d.action)
            total += res.reward
            obs = res.obs
            done = res.terminated or res.truncated
        returns.append(total)
    return returns, ms, sources
