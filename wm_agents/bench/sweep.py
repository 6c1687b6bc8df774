"""Run a benchmark's independent runs (seeds x envs x agent settings) one after another, or as
Ray tasks on this machine or a cluster, and hand the results back in the order they were asked.

A benchmark lists its runs as :class:`Job` values (a ``"module:function"`` and its keyword
arguments) and calls :func:`run_jobs`; what comes back is exactly what the function returned,
so the sequential and the Ray path feed the same JSON and PNG reports.

* no ``--workers`` (or ``--workers 1``) and no ``--ray``: the default, in this process, one job
  after another, on the caller's torch threads. Ray is never imported.
* ``--workers N`` (N > 1), or ``--ray`` without an address: a local Ray instance with N CPUs
  (``--ray`` alone: every core), one task per job.
* ``--ray ADDRESS``: a running cluster (``auto`` for the one ``ray start --head`` started on this
  machine); this package's code is shipped with the tasks, every node needs the same Python
  packages (``pip install "wm-agents[ray]"``). ``--workers N`` then caps the tasks in flight.

Every Ray task asks for one CPU and runs on one torch thread: these models' matmuls are small
(one thread is also the runners' default), and N workers then use N cores, no more. Runs take
explicit seeds, so a job gives the same result on either path. What Ray costs per sweep and per
task, and a cluster run (token authentication included): BENCHMARKS.md, "Sweeps on Ray".
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Job",
    "RayMissingError",
    "add_sweep_arguments",
    "connect_ray",
    "run_jobs",
    "sweep_info",
]

_PACKAGE = Path(__file__).resolve().parents[1]  # .../wm_agents


@dataclass(frozen=True)
class Job:
    """One run of a sweep: ``fn`` (``"module:function"``) called with ``kwargs``.

    A name rather than a function object, so a Ray worker imports the function from the
    package instead of unpickling a closure; ``kwargs`` must be picklable.
    """

    fn: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def run(self) -> Any:
        """Call the function here, in this process."""
        from wm_agents.cli import load

        return load(self.fn)(**self.kwargs)


class RayMissingError(ValueError):
    """``--workers`` / ``--ray`` asked for Ray, and it is not installed (a usage error: the CLI
    prints it as one ``error:`` line)."""


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    """``--workers N`` and ``--ray [ADDRESS]`` (see the module docstring)."""
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="runs at once, as Ray tasks with one torch thread each (needs the [ray] extra); "
        "default (or 1 without --ray): one after another in this process, without Ray",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="run on Ray: alone, a local instance (--workers CPUs, default every core); with "
        "an address, that cluster ('auto': the one `ray start --head` started here)",
    )


def sweep_info(args: argparse.Namespace) -> dict[str, Any]:
    """How the runs were spread, for the JSON next to ``machine_info()`` (``seconds`` per run
    are wall times under that load)."""
    return {"workers": args.workers, "ray": args.ray}


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise RayMissingError(
            "--workers > 1 and --ray run on Ray, which is not installed: "
            "pip install 'wm-agents[ray]' (or run without them, one run after another)"
        ) from err
    return ray


def connect_ray(address: str | None = None, *, workers: int | None = None) -> bool:
    """Start or join Ray unless this process already did; returns whether it started it now.

    ``address`` ``None`` or ``"local"``: a local instance with ``workers`` CPUs (default every
    core), whose workers import this package from where this process does.  Any other address:
    that cluster, with this package's code shipped along (``py_modules``).
    """
    ray = _import_ray()
    if ray.is_initialized():
        return False
    if address in (None, "local"):
        # Local workers start from the raylet's environment, not from this process's sys.path:
        # put the package's folder first so they run this checkout (an editable install, a
        # worktree, PYTHONPATH) and not another copy.
        paths = [
            str(_PACKAGE.parent),
            *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)),
        ]
        runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}}
        ray.init(num_cpus=workers, include_dashboard=False, runtime_env=runtime_env)
    else:
        try:
            ray.init(address=address, runtime_env={"py_modules": [str(_PACKAGE)]})
        except ConnectionError as err:
            # Ray 2.60 starts clusters with token authentication; a driver that joins one
            # sends the token only when told to (its log says InvalidAuthToken meanwhile).
            raise ValueError(
                f"could not join the Ray cluster at {address!r} ({err}); if it uses token "
                "authentication: export RAY_AUTH_MODE=token (the token is read from "
                "~/.ray/auth_token, or RAY_AUTH_TOKEN)"
            ) from err
    return True


def _run_on_one_thread(job: Job) -> Any:
    """The Ray task: one torch thread (the task holds one CPU), then the job."""
    import torch

    torch.set_num_threads(1)
    return job.run()


def run_jobs(
    jobs: Sequence[Job],
    *,
    workers: int | None = None,
    address: str | None = None,
    on_result: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """Run every job; returns their results in the order of ``jobs``.

    No ``address`` and ``workers`` ``None`` or 1: here, one after another.  Otherwise as Ray
    tasks (:func:`connect_ray`: ``workers`` CPUs for a local instance, every core when
    ``None``; on a cluster ``workers`` caps the tasks in flight).  A Ray instance started here
    is shut down at the end; one this process had already joined is kept.
    ``on_result(index, result)`` hears each job as it finishes (in finishing order on Ray),
    e.g. to print progress or save partial results.  A job that raises stops the sweep with
    its error.
    """
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    results: list[Any] = [None] * len(jobs)
    if address is None and workers in (None, 1):
        for i, job in enumerate(jobs):
            results[i] = job.run()
            if on_result is not None:
                on_result(i, results[i])
        return results
    ray = _import_ray()
    started = connect_ray(address, workers=workers)
    pending: dict[Any, int] = {}
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(_run_on_one_thread)
        # At most ``workers`` tasks in flight (a local instance started here has that many CPUs
        # anyway; a cluster or a joined instance may have more); None: all, Ray schedules.
        cap = workers or len(jobs)
        queue = list(enumerate(jobs))
        while queue or pending:
            while queue and len(pending) < cap:
                i, job = queue.pop(0)
                pending[task.remote(job)] = i
            done, _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(done[0])
            results[i] = ray.get(done[0])
            if on_result is not None:
                on_result(i, results[i])
    finally:
        for ref in pending:  # after an error: nothing left running in a kept session
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
    return results
