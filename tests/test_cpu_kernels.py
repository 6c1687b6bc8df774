"""The same seed gives the same run on any x86 CPU: ``import wm_agents`` pins torch's and MKL's
AVX2 kernels.  A CPU of another kind is played by restricting this one (torch's and MKL's own
switches for "this CPU has no AVX512"): with the pinned kernels the two agree bit for bit."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from wm_agents.cpu_kernels import PINNED_KERNEL_ENV, pin_cpu_kernels

# Fit the default ensemble on random CartPole steps and plan 60 steps: enough arithmetic that
# differently ordered sums show in the bits.
PROBE = r"""
import json, wm_agents, torch, numpy as np
from wm_agents.runner import build_agent, default_config
from wm_agents.envs.gym_actuator import GymActuator
from wm_agents.envs.make import make_env
from wm_agents.neural.trainer import fit_ensemble
from wm_agents.cpu_kernels import kernels_pinned
from dataclasses import replace
torch.set_num_threads(1)
cfg = default_config("CartPole-v1")
act = GymActuator(make_env("CartPole-v1"))
model, ctrl = build_agent(act, cfg, 0)
rng = np.random.default_rng(0); obs = act.reset(seed=0)
for _ in range(200):
    a = act.sample_action(rng); r = act.step(a)
    model.buffer.add(obs, a, r.reward, r.obs, r.terminated, r.truncated); obs = r.obs
    if r.terminated or r.truncated: obs = act.reset(seed=1)
fit_ensemble(model, model.buffer.all(), replace(cfg.fit, value=True))
ctrl.reset(); s = act.reset(seed=3); scores = []
for _ in range(60):
    d = ctrl.plan(s).decision; scores.append(d.value); s = act.step(np.asarray(d.action)).obs
params = [p.detach().double().sum().item() for p in model.parameters()]
print(json.dumps({"pinned": kernels_pinned(), "cap": torch.backends.cpu.get_cpu_capability(),
                  "bits": [float(x).hex() for x in scores + params]}))
"""

_X86 = platform.machine().lower() in ("x86_64", "amd64")


def probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in PINNED_KERNEL_ENV}
    clean.pop("WM_AGENTS_CPU_KERNELS", None)
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_pinning_sets_only_what_the_user_left_unset(monkeypatch) -> None:
    for name in PINNED_KERNEL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    monkeypatch.delenv("WM_AGENTS_CPU_KERNELS", raising=False)
    set_now = pin_cpu_kernels()
    if _X86:
        assert set_now == {k: v for k, v in PINNED_KERNEL_ENV.items() if k != "MKL_CBWR"}
        assert os.environ["ATEN_CPU_CAPABILITY"] == "avx2"
    assert os.environ["MKL_CBWR"] == "COMPATIBLE"  # the user's choice stands
    monkeypatch.delenv("ATEN_CPU_CAPABILITY")
    monkeypatch.setenv("WM_AGENTS_CPU_KERNELS", "native")
    assert pin_cpu_kernels() == {} and "ATEN_CPU_CAPABILITY" not in os.environ


@pytest.mark.skipif(not _X86, reason="kernels are pinned on x86 CPUs only")
def test_a_seed_plans_the_same_on_a_cpu_without_avx512() -> None:
    # An "older CPU": torch's and MKL's kernels restricted to AVX2.
    older = dict(ATEN_CPU_CAPABILITY="avx2", MKL_ENABLE_INSTRUCTIONS="AVX2")
    here, there = probe(), probe(**older)
    assert here["pinned"] and there["pinned"] and here["cap"] == "AVX2"
    assert here["bits"] == there["bits"]
    # MKL's own choice of code path changes the bits (here: its default path against its AVX2
    # one), which is why a seed landed differently on another CPU; opted out, that choice is
    # back.
    native = probe(WM_AGENTS_CPU_KERNELS="native")
    assert not native["pinned"]
    if native["bits"] == here["bits"]:  # pragma: no cover - a CPU whose default path is AVX2
        pytest.skip("this CPU's own kernels happen to be the pinned ones")
    assert native["bits"] != here["bits"]
