"""When a run reached and held a return threshold, read off its evaluations.

Kept apart from :mod:`wm_agents.runner` (which re-exports them) so that reading results, as the
benchmarks' reports and ``--help`` do, imports neither torch nor gymnasium.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["Evaluation", "steps_to_hold", "steps_to_reach"]


class Evaluation(Protocol):
    """What :func:`steps_to_reach` / :func:`steps_to_hold` read of an evaluation (the runner's
    ``EvalPoint`` and the benchmarks' frozen twin both qualify)."""

    @property
    def real_steps(self) -> int: ...

    @property
    def mean(self) -> float: ...


def steps_to_reach(evals: Sequence[Evaluation], threshold: float) -> int | None:
    """Real steps at the first evaluation with mean ``>= threshold`` (``None``: never)."""
    for e in evals:
        if e.mean >= threshold:
            return e.real_steps
    return None


def steps_to_hold(evals: Sequence[Evaluation], threshold: float) -> int | None:
    """Real steps from which every later evaluation has mean ``>= threshold`` (``None``: never)."""
    held: int | None = None
    for e in evals:
        if e.mean >= threshold:
            held = e.real_steps if held is None else held
        else:
            held = None
    return held
