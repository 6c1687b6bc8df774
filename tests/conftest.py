"""Shared test setup: one torch thread (the machine is small and shared; one thread is also
what makes float reductions order-stable between runs), and one Ray instance for the tests that
ask for it (``ray_local``)."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance for the whole session (start-up takes seconds): 2 CPUs and real
    worker processes, not local mode, so jobs are pickled, shipped and imported from the package
    the way a cluster runs them.  Started by the sweep code itself, so its workers get the same
    runtime environment a ``--workers`` run gets; shut down at the end of the session.  Without
    Ray the tests skip, except in CI, whose ``make venv`` installs the ``[ray]`` extra."""
    try:
        import ray
    except ImportError:
        reason = "Ray is not installed: pip install 'wm-agents[ray]' (make venv does)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the Ray tests")
        pytest.skip(reason)
    from wm_agents.bench.sweep import connect_ray

    started = connect_ray(None, workers=2)
    yield ray
    if started:
        ray.shutdown()
