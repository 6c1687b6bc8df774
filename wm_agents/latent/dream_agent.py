"""The dreamed policy acting from pixels: alone, or as a hybrid with latent MPC (issue 16, item 3).

The vector agent's ``policy`` and ``hybrid`` agents, on the latent model:

* :class:`LatentPolicyController`: the policy of :class:`~wm_agents.latent.dream.DreamTrainer`
  acts on the belief features; its one imagined step asks every prior head about the action
  (value ``r + gamma * continue * V(feature')`` per member, uncertainty the members'
  disagreement, :func:`~wm_agents.latent.dream.latent_disagreement`).
* :class:`LatentHybridController`: the policy while the members agree about its action (at most
  the 0.99 quantile of their disagreement on real data, re-derived every dream round), latent MPC
  planning otherwise: :class:`~wm_agents.imagination.controllers.HybridController` with these two.
* :class:`LatentDreamStrategy`: who acts when.  ``policy``: the policy always (exploring a little
  in training).  ``hybrid``: latent MPC until the policy has earned trust
  (:class:`~wm_agents.imagination.strategies.HybridTrust`: its imagined return from real episode
  starts reaches the env's threshold, then a real training episode confirms it), then the hybrid.
* :class:`LatentDreamLearner`: the latent learner that, after each training round of the model,
  runs a dream round for the policy.

All three controllers share one belief (the :class:`~wm_agents.latent.agent.LatentController`'s):
whoever acts records the action, so the next frame is filtered with the action really taken.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from wm_agents.core import Controller, Decision, Outcome
from wm_agents.imagination.controllers import (
    HybridController,
    _decision,
    _quick_decision,
    one_step_outcomes,
)
from wm_agents.imagination.strategies import HybridTrust
from wm_agents.latent.agent import LatentAgentConfig, LatentController, LatentLearner
from wm_agents.latent.dream import (
    DreamTrainer,
    episode_start_beliefs,
    latent_disagreement,
    policy_actions,
)
from wm_agents.latent.model import LatentWorldModel, _gaussian
from wm_agents.planning.optimizers import Proposal

__all__ = [
    "LatentDreamLearner",
    "LatentDreamStrategy",
    "LatentHybridController",
    "LatentPolicyController",
]


class LatentPolicyController:
    """The dreamed policy as a :class:`~wm_agents.core.Controller` (see the module doc).

    Args:
        latent: the latent MPC controller whose belief this one shares.
        trainer: the dream trainer (its current ``policy``).
        gamma: discount of the one-step value.
        epsilon: exploration when acting (DQN's epsilon; SAC samples when > 0).
        seed: the exploration generator.
    """

    horizon = 1

    def __init__(
        self,
        latent: LatentController,
        trainer: DreamTrainer,
        *,
        gamma: float = 0.99,
        epsilon: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.latent, self.trainer = latent, trainer
        self.gamma, self.epsilon = gamma, epsilon
        self.generator = torch.Generator().manual_seed(seed + 7)

    @property
    def model(self) -> LatentWorldModel:
        return self.latent.model

    def _belief(self, obs: Any) -> Any:
        self.latent.track(obs)
        assert self.latent.belief is not None
        return self.latent.belief

    @torch.no_grad()
    def quick_step(self, obs: Any) -> tuple[torch.Tensor, float]:
        """The policy's ``[A]`` action and the members' disagreement about where it leads."""
        belief = self._belief(obs)
        a = policy_actions(
            self.trainer.policy, belief.features, explore=self.epsilon, generator=self.generator
        )
        m = self.model
        h2 = m.transition(belief.h, belief.z, self.latent.spec.encode(a))
        return a[0], float(latent_disagreement(m, h2)[0])

    def propose(self, obs: Any, *, warm_start: Any = None, replans: int = 0) -> Proposal:
        """One candidate: the policy's action as a one-step sequence ``[1, 1, A]``."""
        a, _ = self.quick_step(obs)
        cand = a.view(1, 1, -1)
        return Proposal(cand, torch.zeros(1), cand[0], n_evaluated=1, n_nonfinite=0)

    @torch.no_grad()
    def imagine(
        self, obs: Any, candidates: Sequence[Any], *, horizon: int | None = None
    ) -> list[Outcome]:
        """Every prior head imagines each candidate's first step (see the module doc)."""
        belief = self._belief(obs)
        m, spec = self.model, self.latent.spec
        acts = torch.as_tensor(np.asarray(candidates, dtype=np.float32)).reshape(
            len(candidates), -1, spec.dim
        )[:, 0]
        c = acts.shape[0]
        h2 = m.transition(belief.h.expand(c, -1), belief.z.expand(c, -1), spec.encode(acts))
        dis = latent_disagreement(m, h2)
        values, ends = [], []
        for head in m.priors:
            z2 = m._sample(*_gaussian(head(h2)))
            feat = torch.cat([h2, z2], -1)
            cont = torch.sigmoid(m.continue_head(feat).squeeze(-1))
            v = self.trainer.policy.value(feat)
            values.append(m.reward_head(feat).squeeze(-1) + self.gamma * cont * v)
            ends.append(1 - cont)
        member = torch.stack(values)  # [E, C]
        end = torch.stack(ends).mean(0)
        return one_step_outcomes(
            candidates,
            member,
            dis,
            end,
            lambda i: {"source": "latent-policy", "p_end": float(end[i])},
        )

    def decide(self, outcomes: Sequence[Outcome], *, replans: int = 0) -> Decision:
        """Act on the policy's action (the first candidate)."""
        o = outcomes[0]
        d = _decision(o, "act", f"policy: disagreement {o.uncertainty:.3g}", "latent:policy")
        self.latent.record(d.action)
        return d

    def act(self, obs: Any) -> Decision:
        """One decision with no graph: the policy's action and the members' disagreement."""
        t0 = time.perf_counter()
        a, dis = self.quick_step(obs)
        d = _quick_decision(a, dis, f"policy: disagreement {dis:.3g}", "latent:policy", t0)
        self.latent.record(d.action)
        return d

    def reset(self) -> None:
        """A new episode: a new belief."""
        self.latent.reset()


@dataclass
class LatentHybridController(HybridController):
    """:class:`HybridController` over the latent policy and latent MPC, recording every action
    taken into the shared belief."""

    def decide(self, outcomes: Sequence[Outcome], *, replans: int = 0) -> Decision:
        d = super().decide(outcomes, replans=replans)
        if d.verdict != "replan" and d.action is not None:
            self.policy.latent.record(d.action)  # type: ignore[attr-defined]
        return d

    def act(self, obs: Any) -> Decision:
        d = super().act(obs)
        if d.action is not None:
            self.policy.latent.record(d.action)  # type: ignore[attr-defined]
        return d


class LatentDreamLearner(LatentLearner):
    """:class:`LatentLearner` with a dream round for the policy after each model round.

    Args:
        trainer: the dream trainer.
        policy_after: real steps before the first dream round.
        (the rest as :class:`LatentLearner`)
    """

    def __init__(
        self,
        model: LatentWorldModel,
        controller: LatentController,
        budget: int,
        trainer: DreamTrainer,
        config: LatentAgentConfig | None = None,
        *,
        policy_after: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(model, controller, budget, config, seed=seed)
        self.trainer, self.policy_after = trainer, int(policy_after)
        self.dream_rng = np.random.default_rng(seed + 13)
        self.strategy: Any = None
        """The run's :class:`LatentDreamStrategy` (set by ``run_latent_gym``)."""

    def train(self, steps: int) -> None:
        super().train(steps)
        if self.steps < self.policy_after:
            return
        cfg = self.trainer.config
        batch = self.replay.sample(cfg.sequences, self.config.seq_len, self.dream_rng)
        starts = episode_start_beliefs(
            self.model, self.replay.episodes, cfg.score_starts, self.dream_rng
        )
        self.trainer.round(batch, starts)


@dataclass
class LatentDreamStrategy:
    """Who acts when, for the dreamed policy (see the module doc).

    Attributes:
        mpc: latent MPC (the belief's owner).
        policy: the dreamed policy.
        learner: the dream learner (its trainer's score and threshold).
        hybrid: the hybrid; ``None`` for the ``policy`` agent.
        trust: the hybrid's trust (``None`` for the ``policy`` agent).
        policy_after: real steps before trust is considered.
        train_epsilon: the policy agent's exploration in training episodes.
    """

    mpc: LatentController
    policy: LatentPolicyController
    learner: LatentDreamLearner
    hybrid: LatentHybridController | None = None
    trust: HybridTrust | None = None
    policy_after: int = 400
    train_epsilon: float = 0.05
    current: Controller | None = field(default=None, init=False)

    def _calibrate(self) -> None:
        if self.hybrid is not None and math.isfinite(self.learner.trainer.threshold):
            self.hybrid.threshold = self.learner.trainer.threshold

    def for_training(self, steps: int) -> Controller:
        if self.hybrid is None:
            self.policy.epsilon = self.train_epsilon
            self.current = self.policy
            return self.policy
        assert self.trust is not None
        self._calibrate()
        rounds = len(self.learner.trainer.rounds)
        if steps >= self.policy_after and rounds:
            self.trust.offer(steps, self.learner.trainer.score, key=rounds)
        self.policy.epsilon = 0.0
        self.current = self.mpc if self.trust.state == "untrusted" else self.hybrid
        return self.current

    def for_evaluation(self, steps: int) -> Controller:
        self.policy.epsilon = 0.0
        if self.hybrid is None:
            return self.policy
        assert self.trust is not None
        self._calibrate()
        return self.hybrid if self.trust.state == "trusted" else self.mpc

    def episode_ended(self, controller: Controller, final: Mapping[str, Any], steps: int) -> None:
        if self.hybrid is not None and controller is self.hybrid and self.trust is not None:
            ret, fell = float(final["episode_return"]), bool(final["terminated"])
            self.trust.judge(steps, ret, fell, key=len(self.learner.trainer.rounds))
