"""Who acts when, for the imagination agents: the controller strategies of the one run loop.

:func:`~wm_agents.run_loop.run_env_loop` asks a strategy for the controller of each training
episode and each evaluation (:class:`~wm_agents.run_loop.ControllerStrategy`):

* :class:`PolicyStrategy` (agents ``policy`` and ``dqn``): the learner's acting policy, exploring
  with the learner's epsilon in training, greedy in evaluations;
* :class:`HybridStrategy` (agent ``hybrid``): MPC until the policy has earned trust
  (:class:`HybridTrust`: imagined first, confirmed by a real episode), then the hybrid (the
  policy, with MPC where the members disagree about its action); it re-calibrates the hybrid's
  disagreement threshold after every model refit and tells the learner which real steps were
  MPC's demonstrations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from wm_agents.core import Controller
from wm_agents.imagination.controllers import HybridController, PolicyController
from wm_agents.imagination.mbpo import ImaginationLearner
from wm_agents.imagination.trust import calibrate_disagreement
from wm_agents.planning.mpc import MPCController

__all__ = ["HybridStrategy", "HybridTrust", "PolicyStrategy"]


@dataclass
class PolicyStrategy:
    """The learner's acting policy acts (``policy`` / ``dqn`` agents)."""

    policy: PolicyController
    learner: ImaginationLearner

    def for_training(self, steps: int) -> Controller:
        """The acting policy (it may have been replaced), exploring with the learner's epsilon."""
        self.policy.policy = self.learner.acting
        self.policy.epsilon = self.learner.epsilon
        return self.policy

    def for_evaluation(self, steps: int) -> Controller:
        """The acting policy, greedy."""
        self.policy.epsilon = 0.0
        self.policy.policy = self.learner.acting
        return self.policy

    def episode_ended(self, controller: Controller, final: Mapping[str, Any], steps: int) -> None:
        """Nothing to judge: the learner learned from every step."""


@dataclass
class HybridStrategy:
    """MPC until the policy is trusted, then the hybrid (see the module doc).

    Attributes:
        mpc, policy, hybrid: the three controllers (``hybrid`` combines the other two).
        learner: the imagination learner (its acting policy, score and version).
        trust: the trust state machine.
        policy_after: real steps before the policy is considered at all.
        threshold: a fixed disagreement threshold for the hybrid; ``None`` calibrates it after
            every refit as the ``quantile`` of the members' disagreement on the real data.
        calibrated: ``(fits so far, threshold)`` per calibration.
    """

    mpc: MPCController
    policy: PolicyController
    hybrid: HybridController
    learner: ImaginationLearner
    trust: HybridTrust
    policy_after: int = 400
    threshold: float | None = None
    quantile: float = 0.99
    calibrated: list[tuple[int, float]] = field(default_factory=list)
    current: Controller | None = None

    def for_training(self, steps: int) -> Controller:
        """Calibrate, offer trust, and pick MPC (untrusted) or the hybrid for this episode."""
        if self.learner.demo_source is None:
            # Set after the random warm-up (whose steps are nobody's demonstrations): the
            # planner's real choices are demonstrations, which the learner distills into policy
            # candidates that compete in imagination with the DQN / SAC snapshots.
            self.learner.demo_source = self._mpc_acted
        self.calibrate()
        self._offer_trust(steps)
        self.policy.policy = self.learner.acting  # the acting policy may have been replaced
        if self.trust.state == "untrusted":
            self.current = self.mpc
        else:
            self.policy.epsilon = 0.0
            self.current = self.hybrid
        return self.current

    def for_evaluation(self, steps: int) -> Controller:
        """The hybrid once trusted (probation is judged by training episodes), else MPC."""
        self.policy.epsilon = 0.0
        self.policy.policy = self.learner.acting
        controller: Controller = self.hybrid if self.trust.state == "trusted" else self.mpc
        self.calibrate()
        return controller

    def episode_ended(self, controller: Controller, final: Mapping[str, Any], steps: int) -> None:
        """A training episode the hybrid ran confirms or revokes trust."""
        if controller is self.hybrid:
            ret, fell = float(final["episode_return"]), bool(final["terminated"])
            self.trust.judge(steps, ret, fell, key=self._trust_key())

    def calibrate(self) -> None:
        """With no fixed threshold: re-derive the hybrid's once the model was refit."""
        model, fits = self.learner.model, len(self.learner.fits)
        if self.threshold is not None or not bool(model.fitted):
            return
        if self.calibrated and self.calibrated[-1][0] == fits:
            return
        data = model.buffer.all()
        thr = calibrate_disagreement(model, data.obs, data.action, quantile=self.quantile)
        self.hybrid.threshold = thr
        self.calibrated.append((fits, thr))

    def _mpc_acted(self) -> bool:
        """Whether the real step being recorded was chosen by MPC (a demonstration)."""
        trace = self.hybrid.trace
        return self.current is self.mpc or (bool(trace) and trace[-1].source == "mpc")

    def _trust_key(self) -> tuple[int, int]:
        """What must change before a revoked policy is offered again: a refit or a new
        acting policy (both re-score its imagined return)."""
        return len(self.learner.fits), self.learner.acting_version

    def _offer_trust(self, steps: int) -> None:
        """At an episode start: put the policy on probation once its imagined return (the
        learner's selection score, from real episode starts) reaches the bar."""
        if steps < self.policy_after or not bool(self.learner.model.fitted):
            return
        self.trust.offer(steps, self.learner.acting_score, self._trust_key())


@dataclass
class HybridTrust:
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
