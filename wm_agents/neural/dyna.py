"""The Dyna schedule: record real transitions, refit the model every so often.

Sutton's Dyna interleaves acting, model learning and planning.  Here planning is MPC (the
planner imagines with the model at every step); this object owns the "model learning" part:
each real transition goes into the model's replay buffer and the model is refit on a schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wm_agents.neural.ensemble import EnsembleDynamicsModel
from wm_agents.neural.trainer import FitConfig, FitReport, fit_ensemble

__all__ = ["DynaLearner"]


@dataclass
class DynaLearner:
    """Feeds real experience to a model and refits it every ``refit_every`` real steps.

    Attributes:
        model: the dynamics model to train (its ``buffer`` receives the transitions).
        refit_every: real steps between refits.
        fit_config: training options.
        budget: total real steps allowed for learning (``None`` = unlimited); ``exhausted``
            turns true when it is spent.
        steps: real steps recorded so far.
        fits: every :class:`FitReport`, oldest first.
    """

    model: EnsembleDynamicsModel
    refit_every: int = 200
    fit_config: FitConfig = field(default_factory=FitConfig)
    budget: int | None = None
    steps: int = 0
    fits: list[FitReport] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.refit_every < 1:
            raise ValueError(f"refit_every must be >= 1, got {self.refit_every}")

    @property
    def exhausted(self) -> bool:
        return self.budget is not None and self.steps >= self.budget

    def observe(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_obs: np.ndarray,
        terminated: bool,
        truncated: bool,
    ) -> FitReport | None:
        """Record one real transition; refit when the schedule says so. Returns the fit report."""
        if self.exhausted:
            raise RuntimeError(f"the learning budget of {self.budget} real steps is spent")
        self.model.buffer.add(obs, action, reward, next_obs, terminated, truncated)
        self.steps += 1
        if self.steps % self.refit_every == 0 or self.exhausted:
            return self.fit()
        return None

    def mark_episode_end(self) -> None:
        """The last recorded transition ends its episode (the run stopped there)."""
        self.model.buffer.mark_episode_end()

    def finish_warmup(self) -> None:
        """After random warm-up steps: fit now, unless the schedule has just fit on them all."""
        if self.steps % self.refit_every:
            self.fit()

    def fit(self) -> FitReport:
        """Refit the model on everything recorded so far."""
        report = fit_ensemble(self.model, self.model.buffer.all(), self.fit_config)
        self.fits.append(report)
        return report
