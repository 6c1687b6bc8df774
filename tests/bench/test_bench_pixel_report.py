"""``wm-agents bench pixel-report`` on the stored Pendulum-from-pixels results and on small
hand-written ones: rows, medians, first reach, the picture, and clear errors for files that
are not what it reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wm_agents.bench.pixel_report import pixel_rows
from wm_agents.cli import main

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def latent_result(tmp_path: Path, seed: int, means: list[float], env: str = "Pendulum-v1"):
    folder = tmp_path / f"latent{seed}"
    folder.mkdir()
    data = {
        "env": env,
        "obs": "pixels",
        "seed": seed,
        "real_steps": 1000 * len(means),
        "eval_mean": means,
        "eval_steps": [1000 * (i + 1) for i in range(len(means))],
        "cpu_s": 100.0 * (seed + 1),
        "agent": "mpc",
    }
    (folder / "result.json").write_text(json.dumps(data))
    return folder


def baseline_result(tmp_path: Path, curves: dict[int, list[float]], env: str = "Pendulum-v1"):
    runs = [
        {
            "seed": seed,
            "algo": "sac",
            "policy": "CnnPolicy",
            "learn_cpu_seconds": 50.0,
            "evals": [{"real_steps": 1000 * (i + 1), "mean": m} for i, m in enumerate(means)],
        }
        for seed, means in curves.items()
    ]
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({"benchmark": "pixel-baseline", "env": env, "runs": runs}))
    return path


def test_the_stored_seed_zero_comparison(tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.json"
    argv = ["bench", "pixel-report", "--out", str(out)]
    argv += ["--latent", str(RESULTS / "pixels_pendulum_seed0")]
    argv += ["--baseline", str(RESULTS / "pixel_baseline_pendulum.json")]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["env"] == "Pendulum-v1" and report["threshold"] == -200.0
    latent, sac = report["summary"]["latent mpc"], report["summary"]["SB3 SAC CnnPolicy"]
    assert latent["median_last"] == pytest.approx(-591.23) and latent["reached"] == 0
    assert sac["median_last"] == pytest.approx(-1102, abs=1) and sac["seeds"] == [0]
    assert latent["cpu"] != sac["cpu"]  # the two CPU-seconds are said to differ in kind
    assert out.with_suffix(".png").stat().st_size > 0
    assert "latent mpc: seeds [0]; last evaluation median -591.2" in capsys.readouterr().out


def test_medians_and_first_reach_over_seeds(tmp_path: Path) -> None:
    latent = [
        latent_result(tmp_path, 0, [-900.0, -150.0, -300.0]),
        latent_result(tmp_path, 1, [-800.0, -400.0, -250.0]),
        latent_result(tmp_path, 2, [-700.0, -600.0, -199.0]),
    ]
    baseline = baseline_result(tmp_path, {0: [-1200.0, -1100.0], 1: [-1000.0, -180.0]})
    env, threshold, rows = pixel_rows(latent, [baseline])
    assert (env, threshold) == ("Pendulum-v1", -200.0)
    reach = {(r["agent"], r["seed"]): r["steps_to_reach"] for r in rows}
    assert reach[("latent mpc", 0)] == 2000  # first reach, not hold
    assert reach[("latent mpc", 1)] is None and reach[("latent mpc", 2)] == 3000
    assert reach[("SB3 SAC CnnPolicy", 1)] == 2000
    out = tmp_path / "r.json"
    assert main(["bench", "pixel-report", "--latent", *map(str, latent), "--baseline",
                 str(baseline), "--out", str(out)]) == 0  # fmt: skip
    summary = json.loads(out.read_text())["summary"]
    assert summary["latent mpc"]["median_last"] == -250.0
    assert summary["latent mpc"]["reached"] == 2
    assert summary["latent mpc"]["median_cpu_s"] == 200.0
    assert summary["SB3 SAC CnnPolicy"]["median_last"] == pytest.approx((-1100 - 180) / 2)


def test_files_that_do_not_fit_are_refused_by_name(tmp_path: Path, capsys) -> None:
    good = latent_result(tmp_path, 0, [-500.0])
    other_env = baseline_result(tmp_path, {0: [-100.0]}, env="CartPole-v1")
    with pytest.raises(ValueError, match="different envs"):
        pixel_rows([good], [other_env])
    with pytest.raises(ValueError, match="appears twice"):
        pixel_rows([good, good], [])
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match=r"broken\.json"):
        pixel_rows([broken], [])
    state_run = tmp_path / "state.json"
    state_run.write_text(json.dumps({"env": "Pendulum-v1", "obs": "state", "seed": 0,
                                     "real_steps": 1, "eval_mean": [], "eval_steps": [],
                                     "cpu_s": 1.0}))  # fmt: skip
    with pytest.raises(ValueError, match="not a `wm-agents gym --obs pixels` result"):
        pixel_rows([state_run], [])
    with pytest.raises(ValueError, match="not written by `wm-agents bench pixel-baseline`"):
        pixel_rows([good], [good / "result.json"])
    # From the command line: one error line, exit 2, nothing written.
    out = tmp_path / "never.json"
    code = main(["bench", "pixel-report", "--latent", str(broken), "--baseline", str(other_env),
                 "--out", str(out)])  # fmt: skip
    assert code == 2 and not out.exists()
    assert "broken.json" in capsys.readouterr().err
