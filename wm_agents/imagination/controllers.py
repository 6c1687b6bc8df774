"""The learned policy as a controller of the env planning graph, alone or with MPC beside it.

Both controllers are :class:`~wm_agents.core.Controller` s, like
:class:`~wm_agents.planning.mpc.MPCController` (``propose / imagine / decide / act / reset``,
``horizon``), so the env planning graph runs them unchanged:

* :class:`PolicyController`: propose = the policy's action (one candidate, one step); imagine =
  every ensemble member predicts its consequence (value ``r + gamma * V(s')`` per member, and the
  members' disagreement about ``s'``); decide = act on it.  No search: fast.
* :class:`HybridController`: acts from the policy while the members agree about the policy's
  action (disagreement <= ``threshold``); otherwise its decide step says ``replan`` with the
  reason, and the graph's next propose / imagine / decide round is MPC planning.  Every decision
  says which of the two acted in :attr:`~wm_agents.core.Decision.source` (``"hybrid:policy"``
  or ``"hybrid:mpc"``; the policy alone says ``"policy"``), and the controller counts them in
  ``sources`` / keeps ``trace``.

Outside the graph (``act``, what benchmarks time), the policy step is one short path: the
Q-network's argmax, one batched ensemble call for the members' next states (``[E, 1, D]``) and
their disagreement, and a :class:`Decision` -- no :class:`Outcome` objects, no candidate lists.
It is the same decision the graph path makes (same action, same disagreement up to float
rounding); an MPC fallback runs :func:`~wm_agents.core.plan_step` like every controller.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from wm_agents.core import Decision, Outcome, plan_step
from wm_agents.imagination.distill import DistilledPolicy
from wm_agents.imagination.dqn import DQNLearner
from wm_agents.imagination.rollouts import default_scale, ensemble_disagreement
from wm_agents.imagination.sac import SACLearner
from wm_agents.neural.ensemble import EnsembleDynamicsModel
from wm_agents.planning.mpc import MPCController
from wm_agents.planning.optimizers import Proposal

__all__ = ["HybridController", "HybridStep", "PolicyController", "one_step_outcomes"]


def one_step_outcomes(
    candidates: Sequence[Any],
    member: torch.Tensor,
    disagreement: torch.Tensor,
    risk: torch.Tensor,
    prediction: Callable[[int], dict[str, Any]],
) -> list[Outcome]:
    """One :class:`Outcome` per candidate from a policy's one-step look: ``member`` ``[E, C]``
    per-member values, ``disagreement`` and ``risk`` ``[C]``, ``prediction(i)`` the
    candidate's prediction dict; a non-finite value or disagreement is an unknown outcome."""
    out = []
    for i, cand in enumerate(candidates):
        vals = member[:, i].double()
        u, val = float(disagreement[i]), float(vals.mean())
        cand_list = np.asarray(cand, dtype=float).tolist()
        if not (math.isfinite(u) and math.isfinite(val)):
            out.append(Outcome.unknown(cand_list, "non-finite prediction for the action"))
            continue
        out.append(
            Outcome(
                candidate=cand_list,
                prediction=prediction(i),
                value=val,
                uncertainty=u,
                risk=float(risk[i].clamp(0, 1)),
                member_values=vals.tolist(),
            )
        )
    return out


@dataclass
class PolicyController:
    """Act from a learned policy, with the ensemble's opinion of each action attached.

    Attributes:
        model: the ensemble (imagines the policy's action).
        policy: :class:`DQNLearner`, :class:`SACLearner` or a
            :class:`~wm_agents.imagination.distill.DistilledPolicy`.
        gamma: discount of the one-step value ``r + gamma * (1 - term) * V(s')``.
        epsilon: DQN exploration when acting (0 for evaluation); SAC explores with ``epsilon > 0``.
        seed: seeds the exploration generator.
    """

    model: EnsembleDynamicsModel
    policy: DQNLearner | SACLearner | DistilledPolicy
    gamma: float = 0.99
    epsilon: float = 0.0
    seed: int = 0
    horizon: int = 1

    def __post_init__(self) -> None:
        self.generator = torch.Generator().manual_seed(self.seed + 7)

    def policy_action(self, obs: Any) -> torch.Tensor:
        """The policy's ``[A]`` action for one observation."""
        return self._act_rows(self.model.check_obs(obs)[None])[0]

    def _act_rows(self, o: torch.Tensor) -> torch.Tensor:
        if isinstance(self.policy, DQNLearner) or getattr(self.policy, "discrete", False):
            return self.policy.act(o, epsilon=self.epsilon, generator=self.generator)
        return self.policy.act(o, explore=self.epsilon > 0, generator=self.generator)

    @torch.inference_mode()
    def quick_step(self, obs: Any) -> tuple[torch.Tensor, float]:
        """The policy's ``[A]`` action and the members' disagreement about its next state.

        One Q-network (or actor) call and one batched ensemble call; the disagreement is the
        one :meth:`imagine` reports (largest member spread of ``s'``, in typical real steps).
        """
        m = self.model
        o = m.check_obs(obs)[None]  # [1, D]
        a = self._act_rows(o)  # [1, A]
        e, d = m.ensemble_size, m.obs_dim
        mean, _ = m.forward_normalized(m.normalize_inputs(o.expand(e, 1, d), a.expand(e, 1, -1)))
        # Members' next states differ only through their predicted change, so its spread is
        # the spread of s' (computed without building s' itself).
        delta = mean[..., :d] * m.out_std[:d]  # [E, 1, D]
        return a[0], float(ensemble_disagreement(delta, default_scale(m))[0])

    def propose(self, obs: Any, *, warm_start: Any = None, replans: int = 0) -> Proposal:
        """One candidate: the policy's action as a one-step sequence ``[1, 1, A]``."""
        a = self.policy_action(obs)
        cand = a.view(1, 1, -1)
        return Proposal(cand, torch.zeros(1), cand[0], n_evaluated=1, n_nonfinite=0)

    @torch.no_grad()
    def imagine(
        self, obs: Any, candidates: Sequence[Any], *, horizon: int | None = None
    ) -> list[Outcome]:
        """Every member predicts each candidate's first step (``horizon`` is always 1 here).

        ``value`` is the mean over members of ``r_e + gamma * (1 - term_e) * V(s'_e)`` (V from the
        policy's critic), ``member_values`` those per-member values, ``uncertainty`` the members'
        disagreement about ``s'`` in units of a typical real step (the measure imagined rollouts
        stop at), ``risk`` the mean termination probability.
        """
        m = self.model
        e = m.ensemble_size
        o = m.check_obs(obs)
        acts = m.candidates_to_tensor(candidates)[:, 0]  # [C, A]
        c = acts.shape[0]
        nxt, rew, term = m.predict(o.expand(e, c, -1), acts.expand(e, c, -1))
        v = self.policy.value(nxt.reshape(e * c, -1)).view(e, c)
        member = rew + self.gamma * (1.0 - term) * v  # [E, C]
        dis = ensemble_disagreement(nxt, default_scale(m))
        return one_step_outcomes(
            candidates,
            member,
            dis,
            term.mean(0),
            lambda i: {
                "next_obs": nxt[:, i].mean(0).tolist(),
                "termination_prob": float(term[:, i].mean()),
                "value_std": float(member[:, i].double().std(correction=0)),
            },
        )

    def decide(self, outcomes: Sequence[Outcome], *, replans: int = 0) -> Decision:
        """Act on the policy's action (the first candidate), whatever the members think."""
        o = outcomes[0]
        return _decision(o, "act", f"policy: disagreement {o.uncertainty:.3g}", "policy")

    def act(self, obs: Any) -> Decision:
        """One decision with no graph (benchmarks): the policy's action and the members'
        disagreement about it (:meth:`quick_step`); ``plan_ms`` times all of it."""
        t0 = time.perf_counter()
        a, dis = self.quick_step(obs)
        return _quick_decision(a, dis, f"policy: disagreement {dis:.3g}", "policy", t0)

    def fast_act(self, obs: Any) -> Decision:
        """The policy's action without asking the ensemble (the cheapest possible step)."""
        t0 = time.perf_counter()
        a = self.policy_action(obs)
        return Decision(
            action=a.tolist(),
            verdict="act",
            reason="policy (not imagined)",
            n_candidates=1,
            chosen=0,
            plan_ms=(time.perf_counter() - t0) * 1e3,
            source="policy",
        )

    def reset(self) -> None:
        """Nothing to forget between episodes."""


@dataclass(frozen=True)
class HybridStep:
    """One hybrid decision: who acted and how much the members disagreed about the policy."""

    source: Literal["policy", "mpc"]
    disagreement: float
    verdict: str


@dataclass
class HybridController:
    """The policy acts while the ensemble agrees about its action; MPC planning otherwise.

    Attributes:
        policy: the :class:`PolicyController`.
        mpc: the :class:`MPCController` fallen back to.
        threshold: maximum disagreement (units of a typical real one-step change) at which the
            policy's action is taken without planning.  Better calibrated from data than set:
            :func:`~wm_agents.imagination.trust.calibrate_disagreement` (what
            :func:`run_imagination_gym` does after every refit: the 0.99 quantile of the
            disagreement on real transitions, 0.007-0.010 on CartPole-v1 at 2,000 steps).
    """

    policy: PolicyController
    mpc: MPCController
    threshold: float = 0.005
    sources: Counter = field(default_factory=Counter)
    trace: list[HybridStep] = field(default_factory=list)
    _mode: str = field(default="policy", init=False, repr=False)
    _policy_dis: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.threshold < 0:
            raise ValueError(f"threshold must be >= 0, got {self.threshold}")

    @property
    def model(self) -> EnsembleDynamicsModel:
        return self.policy.model

    @property
    def horizon(self) -> int:
        return self.mpc.horizon

    def propose(self, obs: Any, *, warm_start: Any = None, replans: int = 0) -> Proposal:
        """Round 0: the policy's action; later rounds: MPC search (its ``replans - 1``)."""
        if replans == 0:
            self._mode = "policy"
            return self.policy.propose(obs)
        self._mode = "mpc"
        # A warm start only makes sense if the last step was planned (an H-step sequence).
        if warm_start is not None and len(warm_start) != self.mpc.horizon:
            warm_start = None
        return self.mpc.propose(obs, warm_start=warm_start, replans=replans - 1)

    def imagine(
        self, obs: Any, candidates: Sequence[Any], *, horizon: int | None = None
    ) -> list[Outcome]:
        """The policy's or MPC's imagination, whichever proposed this round."""
        if self._mode == "policy":
            return self.policy.imagine(obs, candidates)
        return self.mpc.imagine(obs, candidates, horizon=horizon)

    def decide(self, outcomes: Sequence[Outcome], *, replans: int = 0) -> Decision:
        """Policy round: act if the members agree, else ``replan`` (fall back to MPC)."""
        if self._mode == "policy":
            o = outcomes[0]
            self._policy_dis = o.uncertainty
            if o.is_known and o.uncertainty <= self.threshold:
                self.sources["policy"] += 1
                self.trace.append(HybridStep("policy", o.uncertainty, "act"))
                return _decision(
                    o,
                    "act",
                    f"policy: members agree about its action (disagreement "
                    f"{o.uncertainty:.3g} <= {self.threshold:g})",
                    "hybrid:policy",
                )
            return Decision(
                verdict="replan",
                reason=f"policy action uncertain (disagreement {o.uncertainty:.3g} > "
                f"{self.threshold:g}); falling back to MPC planning",
                value=o.value,
                uncertainty=o.uncertainty if math.isfinite(o.uncertainty) else 0.0,
                risk=o.risk,
                n_candidates=1,
                source="hybrid:policy",
            )
        d = self.mpc.decide(outcomes, replans=replans - 1)
        if d.verdict != "replan":
            self.sources["mpc"] += 1
            self.trace.append(HybridStep("mpc", self._policy_dis, d.verdict))
        reason = f"MPC fallback (policy disagreement {self._policy_dis:.3g}): " + d.reason
        return d.model_copy(update={"reason": reason, "source": "hybrid:mpc"})

    @torch.inference_mode()
    def act(self, obs: Any) -> Decision:
        """One decision with no graph: the policy, or MPC (with its own re-plans) as fallback.

        The policy round is :meth:`PolicyController.quick_step` (no :class:`Outcome` objects);
        only a fallback runs the propose / imagine / decide rounds of MPC.
        """
        t0 = time.perf_counter()
        a, dis = self.policy.quick_step(obs)
        if math.isfinite(dis) and dis <= self.threshold:
            self.sources["policy"] += 1
            self.trace.append(HybridStep("policy", dis, "act"))
            reason = (
                f"policy: members agree about its action (disagreement {dis:.3g} <= "
                f"{self.threshold:g})"
            )
            return _quick_decision(a, dis, reason, "hybrid:policy", t0)
        self._policy_dis = dis
        warm = self.mpc.warm_plan  # the MPC plan of the last planned step, if any
        warm_list = warm.tolist() if warm is not None else None
        # Round 0 (the policy) is done: the rounds start at 1, MPC's own first round.
        step = plan_step(
            lambda r: self.propose(obs, warm_start=warm_list, replans=r),
            lambda p: self.imagine(obs, p.candidates.tolist()),
            lambda outcomes, r: self.decide(outcomes, replans=r),
            first_round=1,
        )
        d = step.decision
        if self._mode == "mpc":
            self.mpc.remember(d)
        return d.model_copy(update={"plan_ms": (time.perf_counter() - t0) * 1e3})

    def reset(self) -> None:
        """Forget MPC's warm start (call at the start of an episode)."""
        self.mpc.reset()


def _quick_decision(
    action: torch.Tensor, dis: float, reason: str, source: str, t0: float
) -> Decision:
    a = action.tolist()
    return Decision(
        action=a,
        uncertainty=dis if math.isfinite(dis) else 0.0,
        verdict="act",
        reason=reason,
        chosen=0,
        n_candidates=1,
        plan=[a],
        plan_ms=(time.perf_counter() - t0) * 1e3,
        source=source,
    )


def _decision(o: Outcome, verdict: str, reason: str, source: str) -> Decision:
    seq = np.asarray(o.candidate, dtype=float)
    if seq.ndim == 1:
        seq = seq[:, None]
    return Decision(
        action=seq[0].tolist(),
        value=o.value if o.is_known else -math.inf,
        uncertainty=o.uncertainty if math.isfinite(o.uncertainty) else 0.0,
        risk=o.risk,
        verdict=verdict,  # type: ignore[arg-type]
        reason=reason,
        agreement=1.0,
        chosen=0,
        n_candidates=1,
        plan=seq.tolist(),
        source=source,
    )
