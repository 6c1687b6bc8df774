"""Evaluation episodes split across worker processes, each planning its share batched.

:func:`~wm_agents.batch_eval.evaluate_batched` plans every running episode in one batched pass
on one core; at the CartPole agent's sizes that pass is mostly matmul arithmetic, so a second
torch thread buys little (BENCHMARKS.md, "Batched evaluation").  Episodes are independent,
though: :func:`evaluate_parallel` gives each of ``workers`` forked processes a contiguous share
of them (episode ``i`` keeps env seed ``seed + i`` and its own random stream,
:meth:`~wm_agents.planning.MPCController.episode_generator`), each process runs
:func:`~wm_agents.batch_eval.evaluate_batched` on its share with one torch thread, and the
returns and step records come back in episode order.  Every decision is the one the
single-process evaluation makes (a batched rollout gives each episode the bits its own rollout
would: ``tests/test_parallel_eval.py`` checks every action and return), so the speed-up is for
the same evaluation.

The workers are forked (copy-on-write: the controller and its model are not pickled, and no
interpreter starts), so this needs the ``fork`` start method (Linux; macOS has it but Python
there defaults to ``spawn``); where it is missing the episodes run in this process.  Each
worker sets one torch thread before planning: a forked child must not enter an OpenMP
parallel region its parent's thread pool started.  What a worker's imagination adds to the
model's :class:`~wm_agents.neural.bounds.ClipStats` is added to the parent's model, so a run's
count of clipped imagined rows is the same either way.

CPU time: the workers' CPU seconds are not in this process's ``time.process_time``;
:func:`process_cpu_seconds` adds the CPU time of finished child processes, so an evaluation's
``cpu_seconds`` counts the work wherever it ran.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from wm_agents.batch_eval import BatchPlanner, evaluate_batched
from wm_agents.graph.env_graph import StepRecord

__all__ = ["evaluate_parallel", "process_cpu_seconds", "resolve_workers", "shares"]

# What the forked workers run: set just before the fork, read in the child (never pickled).
_JOB: tuple[Callable[[], gym.Env], BatchPlanner] | None = None


def process_cpu_seconds() -> float:
    """CPU seconds of this process (``time.process_time``) plus those of its finished,
    waited-for child processes (``os.times``): the whole cost of work handed to workers."""
    t = os.times()
    return time.process_time() + t.children_user + t.children_system


def resolve_workers(workers: int, episodes: int) -> int:
    """How many processes ``workers`` means for ``episodes`` episodes: ``0`` is one per CPU
    core this process may use; never more than the episodes; at least 1.

    Raises:
        ValueError: ``workers`` below 0.
    """
    if workers < 0:
        raise ValueError(f"workers must be >= 0 (0: one per CPU core), got {workers}")
    if workers == 0:
        usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else ()
        workers = len(usable) or os.cpu_count() or 1
    return max(1, min(workers, episodes))


def shares(episodes: int, workers: int) -> list[tuple[int, int]]:
    """``(first episode, count)`` of each worker: contiguous, in order, sizes differing by at
    most one (10 episodes on 3 workers: 4, 3, 3)."""
    base, extra = divmod(episodes, workers)
    out, start = [], 0
    for w in range(workers):
        count = base + (w < extra)
        out.append((start, count))
        start += count
    return out


def evaluate_parallel(
    env_fn: Callable[[], gym.Env],
    controller: BatchPlanner,
    episodes: int,
    *,
    seed: int,
    workers: int = 0,
) -> tuple[list[float], list[StepRecord]]:
    """:func:`~wm_agents.batch_eval.evaluate_batched` (same arguments, same returns and step
    records, episode by episode) with the episodes split across ``workers`` forked processes
    (0: one per CPU core; see the module doc).  One worker, one episode, or no ``fork`` start
    method: the episodes run here.

    Raises:
        ValueError: ``workers`` below 0, or what :func:`~wm_agents.batch_eval.evaluate_batched`
            raises in any worker (re-raised here; the other workers' episodes are dropped).
    """
    global _JOB
    if episodes < 0:
        raise ValueError(f"episodes must be >= 0, got {episodes}")
    n = resolve_workers(workers, episodes) if episodes else 1
    if n == 1 or "fork" not in multiprocessing.get_all_start_methods():
        return evaluate_batched(env_fn, controller, episodes, seed=seed)
    _JOB = (env_fn, controller)
    try:
        with multiprocessing.get_context("fork").Pool(n) as pool:
            parts = pool.starmap(_run_share, [(seed + s, c) for s, c in shares(episodes, n)])
    finally:
        _JOB = None
    stats = _clip_stats(controller)
    returns: list[float] = []
    records: list[StepRecord] = []
    for rets, recs, (rows, clipped) in parts:
        returns.extend(rets)
        records.extend(recs)
        if stats is not None:
            stats.add(rows, clipped)
    return returns, records


def _run_share(seed: int, episodes: int) -> tuple[list[float], list[StepRecord], tuple[int, int]]:
    """In a worker: episodes ``seed .. seed + episodes - 1``, and what they added to the
    model's clip counts."""
    import torch

    assert _JOB is not None, "a worker runs only in a process forked by evaluate_parallel"
    torch.set_num_threads(1)
    env_fn, controller = _JOB
    stats = _clip_stats(controller)
    before = (stats.rows, stats.clipped) if stats is not None else (0, 0)
    rets, recs = evaluate_batched(env_fn, controller, episodes, seed=seed)
    after = (stats.rows, stats.clipped) if stats is not None else (0, 0)
    return rets, recs, (after[0] - before[0], after[1] - before[1])


def _clip_stats(controller: Any) -> Any:
    """The controller's model's :class:`~wm_agents.neural.bounds.ClipStats`, if it keeps one."""
    return getattr(getattr(controller, "model", None), "clip_stats", None)
