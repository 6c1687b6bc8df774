"""A learned tabular world model: counts of what each state-action led to.

For every visited ``(s, a)`` the model keeps how often each outcome ``(s', terminated)`` followed,
and the mean reward of that outcome.  Predictions sample an outcome in proportion to its count,
so the model is exactly as stochastic as the experience it saw (deterministic after one visit to a
deterministic environment, a frequency estimate on FrozenLake's slippery ice).

``sample_visited`` draws the start of a planning update as in Sutton & Barto's Tabular Dyna-Q: a
random previously observed state, then a random action previously taken in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ModelPrediction", "TabularModel"]


@dataclass(frozen=True)
class ModelPrediction:
    """One imagined step: ``reward``, ``next_state`` and whether the episode ``terminated``."""

    reward: float
    next_state: int
    terminated: bool


@dataclass
class _Outcomes:
    """What followed one ``(s, a)``: outcome keys in first-seen order, counts, reward sums."""

    keys: list[tuple[int, bool]] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    reward_sums: list[float] = field(default_factory=list)
    total: int = 0


class TabularModel:
    """Transition and reward counts per state-action (a tabular :class:`WorldModel` in spirit).

    Args:
        n_states, n_actions: sizes of the ``Discrete`` spaces (used to validate inputs).
    """

    def __init__(self, n_states: int, n_actions: int) -> None:
        if n_states < 1 or n_actions < 1:
            raise ValueError(f"need n_states >= 1 and n_actions >= 1, got {n_states}, {n_actions}")
        self.n_states, self.n_actions = n_states, n_actions
        self._table: dict[tuple[int, int], _Outcomes] = {}
        self._states: list[int] = []  # visited states, first-visit order (uniform sampling)
        self._actions: dict[int, list[int]] = {}  # actions taken in each visited state
        self.n_updates = 0

    def __len__(self) -> int:
        """Number of distinct state-actions seen."""
        return len(self._table)

    def update(
        self, state: int, action: int, reward: float, next_state: int, terminated: bool
    ) -> None:
        """Record one real transition."""
        s, a, s2 = (
            self._check(state, "state"),
            self._check_action(action),
            self._check(next_state, "next_state"),
        )
        out = self._table.get((s, a))
        if out is None:
            out = self._table[(s, a)] = _Outcomes()
            if s not in self._actions:
                self._states.append(s)
                self._actions[s] = []
            self._actions[s].append(a)
        key = (s2, bool(terminated))
        try:
            i = out.keys.index(key)
        except ValueError:
            out.keys.append(key)
            out.counts.append(0)
            out.reward_sums.append(0.0)
            i = len(out.keys) - 1
        out.counts[i] += 1
        out.reward_sums[i] += float(reward)
        out.total += 1
        self.n_updates += 1

    def counts(self, state: int, action: int) -> dict[tuple[int, bool], int]:
        """``{(next_state, terminated): count}`` for one state-action (empty if never seen)."""
        out = self._table.get((int(state), int(action)))
        return {} if out is None else dict(zip(out.keys, out.counts, strict=True))

    def probabilities(self, state: int, action: int) -> dict[int, float]:
        """Estimated ``P(next_state | state, action)`` (empty if never seen)."""
        out = self._table.get((int(state), int(action)))
        if out is None:
            return {}
        probs: dict[int, float] = {}
        for (s2, _), c in zip(out.keys, out.counts, strict=True):
            probs[s2] = probs.get(s2, 0.0) + c / out.total
        return probs

    def mean_reward(self, state: int, action: int, next_state: int, terminated: bool) -> float:
        """Mean observed reward of one outcome; ``KeyError`` if it was never seen."""
        out = self._table[(int(state), int(action))]
        i = out.keys.index((int(next_state), bool(terminated)))
        return out.reward_sums[i] / out.counts[i]

    def predict(self, state: int, action: int, u: float) -> ModelPrediction:
        """Sample an outcome of a seen ``(s, a)`` using a uniform number ``u`` in ``[0, 1)``.

        Taking ``u`` instead of a generator lets callers draw all their random numbers in one
        batched call.  Raises ``KeyError`` for a state-action the model never saw.
        """
        out = self._table.get((int(state), int(action)))
        if out is None:
            raise KeyError(f"the model never saw state {state} with action {action}")
        target = u * out.total
        i, acc = 0, out.counts[0]
        while acc <= target and i + 1 < len(out.counts):
            i += 1
            acc += out.counts[i]
        s2, term = out.keys[i]
        return ModelPrediction(out.reward_sums[i] / out.counts[i], s2, term)

    def sample_visited(self, u_state: float, u_action: float) -> tuple[int, int]:
        """A random seen state, then a random action taken in it, from two uniforms in [0, 1)."""
        if not self._states:
            raise ValueError("the model has seen nothing yet: update it before sampling")
        s = self._states[int(u_state * len(self._states))]
        acts = self._actions[s]
        return s, acts[int(u_action * len(acts))]

    def squared_error(self, true_p: Mapping[int, Mapping[int, list[tuple]]]) -> float:
        """Mean over seen ``(s, a)`` of ``sum_s' (p_hat(s') - p(s'))^2`` against a true table.

        ``true_p`` is gymnasium's toy-text ``P[s][a] = [(prob, next_state, reward, done), ...]``.
        NaN when nothing was seen.
        """
        if not self._table:
            return float("nan")
        errors = []
        for s, a in self._table:
            truth: dict[int, float] = {}
            for prob, s2, *_ in true_p[s][a]:
                truth[int(s2)] = truth.get(int(s2), 0.0) + float(prob)
            est = self.probabilities(s, a)
            keys = truth.keys() | est.keys()
            errors.append(sum((est.get(k, 0.0) - truth.get(k, 0.0)) ** 2 for k in keys))
        return float(np.mean(errors))

    def _check(self, x: int, name: str) -> int:
        i = int(x)
        if not 0 <= i < self.n_states:
            raise ValueError(f"{name} must be in [0, {self.n_states - 1}], got {x}")
        return i

    def _check_action(self, x: int) -> int:
        i = int(x)
        if not 0 <= i < self.n_actions:
            raise ValueError(f"action must be in [0, {self.n_actions - 1}], got {x}")
        return i
