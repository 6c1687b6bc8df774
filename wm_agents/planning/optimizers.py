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

Each search is a small ask/tell object (:class:`Search`): :meth:`~CEMPlanner.propose` runs one
against an objective, :meth:`~CEMPlanner.propose_many` runs several in lockstep against a
:data:`BatchObjective`, so N searches (N states, each with its own warm start and generator)
score their populations in one batched model pass, each drawing and deciding exactly as it
would alone; :func:`propose_together` does the same for searches of several planners (the
agents of a sweep).  (The module is longer than most, ~530 lines, because each planner and its
search are one algorithm: splitting them would put CEM's loop in one file and its state in
another.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from wm_agents.spaces import ActionSpec

__all__ = [
    "BatchObjective",
    "CEMPlanner",
    "Objective",
    "Proposal",
    "RandomShootingPlanner",
    "Search",
    "propose_together",
    "risk_aware_score",
]

Objective = Callable[[torch.Tensor], torch.Tensor]

BatchObjective = Callable[[Sequence[int], Sequence[torch.Tensor]], Sequence[torch.Tensor]]
"""``(which searches, one [B_i, H, A] batch of sequences each) -> one [B_i] or [B_i, K] each``:
the objectives of several searches (one per state) scored together (see
:meth:`CEMPlanner.propose_many`)."""


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


class Search(Protocol):
    """One planner search as ask/tell: ``ask`` the sequences to score next, ``tell`` their
    scores, until ``done``; then ``result``."""

    done: bool

    def ask(self) -> torch.Tensor:
        """``[B, H, A]`` sequences to score next (draws from the search's generator)."""
        ...

    def tell(self, scores: torch.Tensor, n_bad: int) -> None:
        """Their ``[B]`` risk-aware scores and how many were non-finite."""
        ...

    def result(self) -> Proposal:
        """The best distinct sequences found."""
        ...


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

    def _score(self, returns: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, int]:
        if returns.shape[0] != actions.shape[0]:
            raise ValueError(
                f"objective returned {returns.shape[0]} values for {actions.shape[0]} sequences"
            )
        return risk_aware_score(returns.detach().float(), self.risk_weight)

    def _run(self, search: Search, objective: Objective) -> Proposal:
        """One search against one objective, to the end."""
        while not search.done:
            actions = search.ask()
            search.tell(*self._score(objective(actions), actions))
        return search.result()

    def search(
        self,
        *,
        warm_start: torch.Tensor | None = None,
        population: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Search:
        """One search (:class:`Search`) drawing from ``generator`` (default the planner's)."""
        raise NotImplementedError

    def propose_many(
        self,
        objective: BatchObjective,
        *,
        warm_starts: Sequence[torch.Tensor | None],
        generators: Sequence[torch.Generator],
        populations: Sequence[int | None] | None = None,
    ) -> list[Proposal]:
        """``propose`` for several states at once: search ``i`` draws from ``generators[i]``
        and starts from ``warm_starts[i]`` (population ``populations[i]``); each round one
        ``objective`` call scores the sequences of every search still running (a CEM search
        that converges early drops out), so each search draws and decides exactly as
        ``propose`` with its generator would (:func:`propose_together` with this planner
        for every search)."""
        return propose_together(
            [self] * len(warm_starts),
            objective,
            warm_starts=warm_starts,
            generators=generators,
            populations=populations,
        )

    def _uniform(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        spec, h = self.action_spec, self.horizon
        g = self.generator if generator is None else generator
        if spec.kind == "discrete":
            idx = torch.randint(0, spec.n, (n, h, 1), generator=g)
            return idx.float()
        u = torch.rand(n, h, spec.dim, generator=g)
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
        return self._run(self.search(warm_start=warm_start, population=population), objective)

    def search(
        self,
        *,
        warm_start: torch.Tensor | None = None,
        population: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Search:
        """One search (:class:`Search`) drawing from ``generator`` (default the planner's)."""
        return _ShootingSearch(self, warm_start, population or self.population, generator)


class _ShootingSearch:
    """Random shooting as one ask/tell round."""

    def __init__(
        self,
        planner: RandomShootingPlanner,
        warm_start: torch.Tensor | None,
        population: int,
        generator: torch.Generator | None,
    ) -> None:
        self.planner, self.warm_start, self.n, self.generator = (
            planner,
            warm_start,
            population,
            generator,
        )
        self.done = False
        self._actions = self._scores = torch.empty(0)
        self._bad = 0

    def ask(self) -> torch.Tensor:
        actions = self.planner._uniform(self.n, self.generator)
        if self.warm_start is not None:
            actions[0] = torch.as_tensor(self.warm_start, dtype=torch.float32)
        self._actions = actions
        return actions

    def tell(self, scores: torch.Tensor, n_bad: int) -> None:
        self._scores, self._bad, self.done = scores, n_bad, True

    def result(self) -> Proposal:
        cands, top = self.planner._top(self._actions, self._scores)
        return Proposal(cands, top, cands[0], self.n, self._bad)


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
        search = self.search(warm_start=warm_start, population=population, iterations=iterations)
        return self._run(search, objective)

    def search(
        self,
        *,
        warm_start: torch.Tensor | None = None,
        population: int | None = None,
        iterations: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Search:
        """One CEM search (:class:`Search`) drawing from ``generator`` (default the planner's)."""
        return _CEMSearch(
            self,
            warm_start,
            population or self.population,
            iterations or self.iterations,
            self.generator if generator is None else generator,
        )

    def _converged(self, incumbent: float | None, best: float) -> bool:
        """Whether this iteration's best beat the incumbent by no more than ``stop_tol``."""
        if self.stop_tol is None or incumbent is None or not math.isfinite(incumbent):
            return False
        return best - incumbent <= self.stop_tol * max(1.0, abs(incumbent))


class _CEMSearch:
    """One CEM search as ask/tell (the iterations of :meth:`CEMPlanner.propose`)."""

    def __init__(
        self,
        planner: CEMPlanner,
        warm_start: torch.Tensor | None,
        population: int,
        iterations: int,
        generator: torch.Generator,
    ) -> None:
        self.p, self.n, self.iterations, self.g = planner, population, iterations, generator
        self.n_elite = min(planner.elites, population)
        spec, h = planner.action_spec, planner.horizon
        if spec.kind == "discrete":
            self.probs = torch.full((h, spec.n), 1.0 / spec.n)
            if warm_start is not None:
                onehot = spec.encode(torch.as_tensor(warm_start, dtype=torch.float32))
                self.probs = (1 - planner.explore) * (
                    0.5 * onehot + 0.5 * self.probs
                ) + planner.explore * self.probs
        else:
            self.span = planner._high - planner._low
            self.mean = (planner._low + planner._high).expand(h, -1) / 2
            if warm_start is not None:
                self.mean = torch.as_tensor(warm_start, dtype=torch.float32).clone()
            self.std = (self.span / 4).expand(h, -1).clone()
        # The incumbent: the warm start, then each iteration's best (re-scored in the next
        # population unless the elites are carried with their scores).
        self.best_a = None
        if warm_start is not None:
            self.best_a = torch.as_tensor(warm_start, dtype=torch.float32)
        self.kept_a = torch.empty(0, h, spec.dim)  # the last iteration's elites, best first
        self.kept_s = torch.empty(0)
        self.all_a: list[torch.Tensor] = []
        self.all_s: list[torch.Tensor] = []
        self.total = self.bad_total = self.it = 0
        self.done = False
        self._actions = torch.empty(0)
        self._carry = False

    def ask(self) -> torch.Tensor:
        p, spec = self.p, self.p.action_spec
        carry = self._carry = p.keep_elites and self.it > 0
        fresh = max(1, self.n - len(self.kept_a)) if carry else self.n
        if spec.kind == "discrete":
            idx = torch.multinomial(self.probs, fresh, replacement=True, generator=self.g)
            actions = idx.T.unsqueeze(-1).float()  # [n, H, 1]
        else:
            noise = torch.randn(fresh, p.horizon, spec.dim, generator=self.g)
            actions = torch.maximum(torch.minimum(self.mean + self.std * noise, p._high), p._low)
        if not carry and self.best_a is not None:
            actions[0] = self.best_a
        self._actions = actions
        return actions

    def tell(self, scores: torch.Tensor, n_bad: int) -> None:
        p, spec, actions = self.p, self.p.action_spec, self._actions
        self.total += len(actions)
        self.bad_total += n_bad
        # Converged when this iteration's best is no clear improvement on the last one's:
        # both are maxima over a population.  Never after the first iteration: a warm start
        # nothing beat by stop_tol is one member's score against the luckiest of many, and
        # stopping there (acting on an unrefined search) cost the CartPole agent 2 of 5
        # seeds.
        incumbent = float(self.kept_s[0]) if self.it > 0 else None
        if self._carry:
            actions, scores = torch.cat([self.kept_a, actions]), torch.cat([self.kept_s, scores])
        elite_idx = torch.topk(scores, min(self.n_elite, len(scores))).indices
        self.kept_a, self.kept_s = actions[elite_idx], scores[elite_idx]
        self.best_a = self.kept_a[0].clone()
        self.all_a.append(self.kept_a)
        self.all_s.append(self.kept_s)
        self.it += 1
        if p._converged(incumbent, float(self.kept_s[0])) or self.it >= self.iterations:
            self.done = True
            return
        if spec.kind == "discrete":
            freq = spec.encode(self.kept_a).mean(dim=0)  # [H, n]
            probs = p.alpha * self.probs + (1 - p.alpha) * freq
            self.probs = (1 - p.explore) * probs + p.explore / spec.n
        else:
            self.mean = p.alpha * self.mean + (1 - p.alpha) * self.kept_a.mean(dim=0)
            new_std = self.kept_a.std(dim=0, correction=0)
            std = p.alpha * self.std + (1 - p.alpha) * new_std
            self.std = torch.maximum(std, p.min_std * self.span)

    def result(self) -> Proposal:
        p = self.p
        if p.keep_elites:  # the carried elites are the best of the whole search
            cands, top = p._top(self.all_a[-1], self.all_s[-1])
        else:
            cands, top = p._top(torch.cat(self.all_a), torch.cat(self.all_s))
        return Proposal(cands, top, cands[0], self.total, self.bad_total, iterations=self.it)


def propose_together(
    planners: Sequence[CEMPlanner | RandomShootingPlanner],
    objective: BatchObjective,
    *,
    warm_starts: Sequence[torch.Tensor | None],
    generators: Sequence[torch.Generator],
    populations: Sequence[int | None] | None = None,
) -> list[Proposal]:
    """Search ``i`` is ``planners[i]``'s (its options, its risk weight), drawing from
    ``generators[i]`` from ``warm_starts[i]`` (population ``populations[i]``); the searches
    run in lockstep: each round one ``objective`` call scores the sequences of every search
    still running (a CEM search that converges early drops out), each search told its own
    scores.  So each search draws and decides exactly as its planner's ``propose`` with that
    generator would, and several agents' planners (a sweep's) share one batched model pass."""
    n = len(planners)
    pops = populations or [None] * n
    if not len(warm_starts) == len(generators) == len(pops) == n:
        raise ValueError(
            f"{n} planners, {len(warm_starts)} warm starts, {len(generators)} generators and "
            f"{len(pops)} populations: one each"
        )
    searches = [
        p.search(warm_start=w, population=pop, generator=g)
        for p, w, pop, g in zip(planners, warm_starts, pops, generators, strict=True)
    ]
    while live := [i for i, search in enumerate(searches) if not search.done]:
        asked = [searches[i].ask() for i in live]
        returns = objective(live, asked)
        if len(returns) != len(live):
            raise ValueError(
                f"batch objective returned {len(returns)} results for {len(live)} searches"
            )
        for i, actions, ret in zip(live, asked, returns, strict=True):
            searches[i].tell(*planners[i]._score(ret, actions))
    return [search.result() for search in searches]
