"""Trajectory optimizers: random shooting and the cross-entropy method (CEM).

A planner sees only an objective over a batch of action sequences::

    objective(actions: [B, H, A]) -> returns: [B] or [B, K]   (K particles / members)

and never the model, so planners and models change independently (mbrl-lib's split).  With
``K > 1`` the planner ranks candidates by the risk-aware score ``mean - risk_weight * std`` over
particles.  Non-finite scores rank last (``-inf``) and are counted, never silently replaced by a
small number that would beat every negative return.

Both planners work for Discrete spaces (per-step categorical distributions over action indices)
and Box spaces (per-step Gaussians clipped to the bounds), take an explicit seed or
``torch.Generator``, and warm-start from the previous plan shifted by one step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from wm_agents.spaces import ActionSpec

__all__ = [
    "CEMPlanner",
    "Objective",
    "Proposal",
    "RandomShootingPlanner",
    "risk_aware_score",
]

Objective = Callable[[torch.Tensor], torch.Tensor]


def risk_aware_score(returns: torch.Tensor, risk_weight: float = 0.0) -> tuple[torch.Tensor, int]:
    """``[B]`` or ``[B, K]`` returns -> (``[B]`` scores, number of non-finite scores).

    The score is ``mean - risk_weight * std`` over the K particles; a NaN or infinite score
    becomes ``-inf`` so it ranks last.
    """
    if returns.ndim == 1:
        returns = returns[:, None]
    if returns.ndim != 2:
        raise ValueError(f"objective must return [B] or [B, K] values, got {list(returns.shape)}")
    score = returns.mean(dim=1)
    if risk_weight and returns.shape[1] > 1:
        score = score - risk_weight * returns.std(dim=1, correction=0)
    bad = ~torch.isfinite(score)
    n_bad = int(bad.sum())
    if n_bad:
        score = score.masked_fill(bad, float("-inf"))
    return score, n_bad


@dataclass(frozen=True)
class Proposal:
    """Candidates a planner proposes after its search.

    Attributes:
        candidates: ``[C, H, A]`` best distinct sequences found, best first.
        scores: ``[C]`` their risk-aware scores.
        plan: ``[H, A]`` the best sequence (what a warm start shifts).
        n_evaluated: how many sequences were scored in total.
        n_nonfinite: how many of those had a non-finite score.
        iterations: search iterations run (CEM may stop early; 1 for random shooting).
    """

    candidates: torch.Tensor
    scores: torch.Tensor
    plan: torch.Tensor
    n_evaluated: int
    n_nonfinite: int
    iterations: int = 1


class _Planner:
    """Shared sampling, evaluation and bookkeeping for both planners."""

    def __init__(
        self,
        action_spec: ActionSpec,
        *,
        horizon: int,
        population: int,
        risk_weight: float,
        keep: int,
        seed: int | None,
        generator: torch.Generator | None,
    ) -> None:
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if population < 1:
            raise ValueError(f"population must be >= 1, got {population}")
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        if risk_weight < 0:
            raise ValueError(f"risk_weight must be >= 0 (it penalizes spread), got {risk_weight}")
        self.action_spec = action_spec
        self.horizon = horizon
        self.population = population
        self.risk_weight = risk_weight
        self.keep = keep
        if generator is None:
            generator = torch.Generator().manual_seed(0 if seed is None else seed)
        self.generator = generator
        if action_spec.kind == "box":
            self._low = action_spec.low_tensor(dtype=torch.float32)
            self._high = action_spec.high_tensor(dtype=torch.float32)

    def _evaluate(self, objective: Objective, actions: torch.Tensor) -> tuple[torch.Tensor, int]:
        returns = objective(actions)
        if returns.shape[0] != actions.shape[0]:
            raise ValueError(
                f"objective returned {returns.shape[0]} values for {actions.shape[0]} sequences"
            )
        return risk_aware_score(returns.detach().float(), self.risk_weight)

    def _uniform(self, n: int) -> torch.Tensor:
        spec, h = self.action_spec, self.horizon
        if spec.kind == "discrete":
            idx = torch.randint(0, spec.n, (n, h, 1), generator=self.generator)
            return idx.float()
        u = torch.rand(n, h, spec.dim, generator=self.generator)
        return self._low + u * (self._high - self._low)

    def _top(
        self, actions: torch.Tensor, scores: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Best ``keep`` distinct sequences, best first."""
        order = torch.argsort(scores, descending=True)
        actions, scores = actions[order], scores[order]
        if self.action_spec.kind == "discrete":
            # Discrete populations repeat sequences; keep distinct ones so the gate sees choices.
            _, inverse = torch.unique(actions.flatten(1), dim=0, return_inverse=True)
            first = torch.full((int(inverse.max()) + 1,), actions.shape[0], dtype=torch.long)
            first.scatter_reduce_(0, inverse, torch.arange(actions.shape[0]), reduce="amin")
            keep_idx = torch.sort(first).values
            actions, scores = actions[keep_idx], scores[keep_idx]
        return actions[: self.keep], scores[: self.keep]

    def shift(self, plan: torch.Tensor) -> torch.Tensor | None:
        """Warm start for the next step: drop the executed first action, repeat the last.

        ``None`` when ``plan`` is not ``[H, A]`` for this planner (e.g. a plan kept from a run
        with another horizon): such a plan is no valid warm start.
        """
        plan = torch.as_tensor(plan, dtype=torch.float32)
        if plan.shape != (self.horizon, self.action_spec.dim):
            return None
        return torch.cat([plan[1:], plan[-1:]], dim=0)


class RandomShootingPlanner(_Planner):
    """Sample ``population`` uniform sequences (plus the warm start), score all in one batch."""

    def __init__(
        self,
        action_spec: ActionSpec,
        *,
        horizon: int = 20,
        population: int = 500,
        risk_weight: float = 0.0,
        keep: int = 8,
        seed: int | None = 0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(
            action_spec,
            horizon=horizon,
            population=population,
            risk_weight=risk_weight,
            keep=keep,
            seed=seed,
            generator=generator,
        )

    def propose(
        self,
        objective: Objective,
        *,
        warm_start: torch.Tensor | None = None,
        population: int | None = None,
    ) -> Proposal:
        """Score random sequences (and the shifted previous plan) and keep the best."""
        n = population or self.population
        actions = self._uniform(n)
        if warm_start is not None:
            actions[0] = torch.as_tensor(warm_start, dtype=torch.float32)
        scores, bad = self._evaluate(objective, actions)
        cands, top = self._top(actions, scores)
        return Proposal(cands, top, cands[0], n, bad)


class CEMPlanner(_Planner):
    """Cross-entropy method over action sequences.

    Each iteration samples sequences from per-step distributions, scores them in one batch, and
    refits the distributions to the ``elites`` best (smoothed by ``alpha``: the weight kept on
    the old distribution).  The best sequence so far (first the warm start) is re-scored in
    every later population, so the result never gets worse across iterations.  Two habits of
    iCEM (Pinneri et al., 2020) avoid work:

    * ``stop_tol``: once an iteration's best score beats the previous iteration's best by no
      more than ``stop_tol * max(1, |previous|)``, the search has converged and stops (so at
      least two iterations run); ``None`` always runs ``iterations``;
    * ``keep_elites`` (off by default): the elites, with their scores, are carried into the next
      iteration's ranking, so each later iteration scores only ``population - elites`` new
      sequences.  With one particle per candidate a carried score is one member's opinion and
      the lucky ones stay elite (winner's curse): on CartPole and Pendulum the MPC agent did
      worse with it (``BENCHMARKS.md``, planning speed), so it is opt-in.

    Args:
        action_spec: action space.
        horizon: steps H per sequence.
        population: sequences scored per iteration.
        elites: how many of the best refit the distribution.
        iterations: refits per decision.
        alpha: smoothing toward the previous distribution, in ``[0, 1)``.
        risk_weight: lambda in ``mean - lambda * std`` over particles.
        keep: how many best distinct sequences are returned as candidates.
        min_std: floor on the Box std as a fraction of the action range (keeps exploring).
        explore: for Discrete, probability mass mixed back toward uniform each step.
        stop_tol: relative improvement below which the search stops early (``None``: never).
        keep_elites: carry the elites with their scores into the next iteration instead of
            re-scoring only the best one (less work; see the class doc for the cost).
        seed / generator: randomness source; never the global RNG.
    """

    def __init__(
        self,
        action_spec: ActionSpec,
        *,
        horizon: int = 20,
        population: int = 500,
        elites: int = 50,
        iterations: int = 5,
        alpha: float = 0.1,
        risk_weight: float = 0.0,
        keep: int = 8,
        min_std: float = 0.02,
        explore: float = 0.05,
        stop_tol: float | None = 1e-3,
        keep_elites: bool = False,
        seed: int | None = 0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(
            action_spec,
            horizon=horizon,
            population=population,
            risk_weight=risk_weight,
            keep=keep,
            seed=seed,
            generator=generator,
        )
        if stop_tol is not None and not stop_tol >= 0:
            raise ValueError(f"stop_tol must be >= 0 or None, got {stop_tol}")
        if not 1 <= elites <= population:
            raise ValueError(f"elites must be in [1, population={population}], got {elites}")
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        if not 0 <= alpha < 1:
            raise ValueError(f"alpha must be in [0, 1), got {alpha}")
        self.elites = elites
        self.iterations = iterations
        self.alpha = alpha
        self.min_std = min_std
        self.explore = explore
        self.stop_tol = stop_tol
        self.keep_elites = keep_elites

    def propose(
        self,
        objective: Objective,
        *,
        warm_start: torch.Tensor | None = None,
        population: int | None = None,
        iterations: int | None = None,
    ) -> Proposal:
        """Run CEM and return the best distinct sequences found."""
        n = population or self.population
        n_elite = min(self.elites, n)
        spec, h = self.action_spec, self.horizon
        g = self.generator
        if spec.kind == "discrete":
            probs = torch.full((h, spec.n), 1.0 / spec.n)
            if warm_start is not None:
                onehot = spec.encode(torch.as_tensor(warm_start, dtype=torch.float32))
                probs = (1 - self.explore) * (0.5 * onehot + 0.5 * probs) + self.explore * probs
        else:
            span = self._high - self._low
            mean = (self._low + self._high).expand(h, -1) / 2
            if warm_start is not None:
                mean = torch.as_tensor(warm_start, dtype=torch.float32).clone()
            std = (span / 4).expand(h, -1).clone()
        # The incumbent: the warm start, then each iteration's best (re-scored in the next
        # population unless the elites are carried with their scores).
        best_a = None
        if warm_start is not None:
            best_a = torch.as_tensor(warm_start, dtype=torch.float32)
        kept_a = torch.empty(0, h, spec.dim)  # the last iteration's elites, best first
        kept_s = torch.empty(0)
        all_a: list[torch.Tensor] = []
        all_s: list[torch.Tensor] = []
        total, bad_total, done = 0, 0, 0
        for it in range(iterations or self.iterations):
            carry = self.keep_elites and it > 0
            fresh = max(1, n - len(kept_a)) if carry else n
            if spec.kind == "discrete":
                idx = torch.multinomial(probs, fresh, replacement=True, generator=g)  # [H, n]
                actions = idx.T.unsqueeze(-1).float()
            else:
                noise = torch.randn(fresh, h, spec.dim, generator=g)
                actions = torch.maximum(torch.minimum(mean + std * noise, self._high), self._low)
            if not carry and best_a is not None:
                actions[0] = best_a
            scores, bad = self._evaluate(objective, actions)
            total += fresh
            bad_total += bad
            # Converged when this iteration's best is no clear improvement on the last one's:
            # both are maxima over a population.  Never after the first iteration: a warm start
            # nothing beat by stop_tol is one member's score against the luckiest of many, and
            # stopping there (acting on an unrefined search) cost the CartPole agent 2 of 5
            # seeds.
            incumbent = float(kept_s[0]) if it > 0 else None
            if carry:
                actions, scores = torch.cat([kept_a, actions]), torch.cat([kept_s, scores])
            elite_idx = torch.topk(scores, min(n_elite, len(scores))).indices
            kept_a, kept_s = actions[elite_idx], scores[elite_idx]
            best_a = kept_a[0].clone()
            all_a.append(kept_a)
            all_s.append(kept_s)
            done = it + 1
            if self._converged(incumbent, float(kept_s[0])):
                break
            if spec.kind == "discrete":
                freq = spec.encode(kept_a).mean(dim=0)  # [H, n]
                probs = self.alpha * probs + (1 - self.alpha) * freq
                probs = (1 - self.explore) * probs + self.explore / spec.n
            else:
                mean = self.alpha * mean + (1 - self.alpha) * kept_a.mean(dim=0)
                new_std = kept_a.std(dim=0, correction=0)
                std = self.alpha * std + (1 - self.alpha) * new_std
                std = torch.maximum(std, self.min_std * span)
        if self.keep_elites:  # the carried elites are the best of the whole search
            cands, top = self._top(all_a[-1], all_s[-1])
        else:
            cands, top = self._top(torch.cat(all_a), torch.cat(all_s))
        return Proposal(cands, top, cands[0], total, bad_total, iterations=done)

    def _converged(self, incumbent: float | None, best: float) -> bool:
        """Whether this iteration's best beat the incumbent by no more than ``stop_tol``."""
        if self.stop_tol is None or incumbent is None or not math.isfinite(incumbent):
            return False
        return best - incumbent <= self.stop_tol * max(1.0, abs(incumbent))
