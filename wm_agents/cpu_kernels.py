"""The same float32 kernels on every Intel x86 CPU, so a seed gives the same run on each.

A seed fixes every random draw, but not the arithmetic: torch picks its elementwise kernels by
the CPU's widest vector unit (AVX2 or AVX512) and MKL picks a matrix-multiply code path per
CPU, and each sums in a different order.  The last bits differ, a CEM search breaks a near-tie
the other way, and within a few hundred steps the runs part: CartPole seed 3 at 700 real
steps evaluated 92 / 97 on an AMD EPYC's native AVX512 kernels and 500 / 500 with AVX2
kernels (``tests/test_cpu_kernels.py`` shows such a split on any CPU that has AVX512).

:func:`pin_cpu_kernels` asks both libraries for their AVX2 path, which every x86-64 server of
the last decade runs: ``ATEN_CPU_CAPABILITY=avx2`` (torch's elementwise and reduction
kernels), ``MKL_CBWR=AVX2,STRICT`` (MKL's conditional numerical reproducibility: one code
path and summation order on every *Intel* CPU with AVX2) and ``ONEDNN_MAX_CPU_ISA=AVX2``
(oneDNN's convolutions, used by the pixel model).  MKL honours ``AVX2`` only on Intel
processors (elsewhere it supports only its ``AUTO`` and ``COMPATIBLE`` modes), so an AMD CPU
runs MKL's own path: measured, the same seed gives the same run on two Intel Xeon VMs and a
different one on an AMD EPYC (BENCHMARKS.md, "The same seed on any x86 CPU").  Measured on
the EPYC the pinning costs nothing noticeable for the planner's small matmuls (10-12 ms a
planning step either way, BENCHMARKS.md).

Both libraries read these variables once, when they first run, so they must be set before
torch does any work: ``import wm_agents`` does it (setting only variables the user has not
set).  ``WM_AGENTS_CPU_KERNELS=native`` leaves the CPU's own kernels in place (a little
faster on AVX512 machines, and then results depend on the CPU).  Non-x86 CPUs (ARM) and x86
CPUs without AVX2 are left alone: there is no common path to pin.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["PINNED_KERNEL_ENV", "kernel_label", "kernels_pinned", "pin_cpu_kernels"]

PINNED_KERNEL_ENV: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2,STRICT",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}
"""The variables :func:`pin_cpu_kernels` sets, and their values."""

_OPT_OUT = "WM_AGENTS_CPU_KERNELS"


def _has_avx2() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        # No /proc (macOS / Windows on x86): every x86-64 CPU such a system runs today has AVX2.
        return True
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return "avx2" in value.split()
    return False


def pin_cpu_kernels() -> dict[str, str]:
    """Set :data:`PINNED_KERNEL_ENV` in ``os.environ`` where the user has not set them.

    Returns what it set (empty: opted out with ``WM_AGENTS_CPU_KERNELS=native``, not an x86
    CPU with AVX2, or all set already).  Call it before torch runs anything; later it changes
    nothing torch has already chosen.
    """
    if os.environ.get(_OPT_OUT, "").strip().lower() == "native":
        return {}
    if platform.machine().lower() not in ("x86_64", "amd64") or not _has_avx2():
        return {}
    set_now = {}
    for name, value in PINNED_KERNEL_ENV.items():
        if name not in os.environ:
            os.environ[name] = value
            set_now[name] = value
    return set_now


def kernels_pinned() -> bool:
    """Whether torch runs the pinned AVX2 elementwise kernels in this process (imports torch).

    False when torch chose its kernels before :func:`pin_cpu_kernels` ran (torch did work
    before ``import wm_agents``), when opted out, or on a CPU with no common path.
    """
    import torch

    return (
        torch.backends.cpu.get_cpu_capability() == "AVX2"
        and os.environ.get("MKL_CBWR") == PINNED_KERNEL_ENV["MKL_CBWR"]
    )


def kernel_label() -> str:
    """What a run's results record: ``"pinned AVX2"`` or ``"native AVX512"`` (etc.)."""
    import torch

    kind = "pinned" if kernels_pinned() else "native"
    return f"{kind} {torch.backends.cpu.get_cpu_capability()}"
