"""Pixel observations: the agent sees rendered frames only (issue 16, item 1)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from wm_agents.envs.pixels import PixelObservation, make_pixel_env, resize_area

pytest.importorskip("pygame", reason="rendering classic control needs the pixels extra")


def test_frames_are_small_stacked_uint8_images_and_the_stack_starts_still():
    env = make_pixel_env("CartPole-v1", size=64, frames=3)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.shape == (9, 64, 64) and obs.shape == (9, 64, 64)
    assert obs.dtype == np.uint8 and env.observation_space.contains(obs)
    assert np.array_equal(obs[0:3], obs[3:6]) and np.array_equal(obs[3:6], obs[6:9])
    for _ in range(6):
        obs, *_ = env.step(1)  # push right: the cart moves
    assert not np.array_equal(obs[0:3], obs[6:9])
    # The newest frame is last: it is what a fresh render of the current state shows.
    assert np.array_equal(obs[6:9], resize_area(env.env.render(), 64).transpose(2, 0, 1))
    env.close()


def test_the_same_seed_gives_the_same_frames():
    runs = []
    for _ in range(2):
        env = make_pixel_env("CartPole-v1", size=32, frames=2, grayscale=True)
        obs, _ = env.reset(seed=3)
        seen = [obs]
        for a in [0, 1, 1, 0, 1]:
            seen.append(env.step(a)[0])
        runs.append(np.stack(seen))
        env.close()
    assert runs[0].shape == (6, 2, 32, 32) and np.array_equal(runs[0], runs[1])


class _LeakyEnv(gym.Env):
    """Reports its state in info, as some envs do."""

    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)
    render_mode = "rgb_array"

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return np.zeros(2, np.float32), {"state": [0.0, 0.0], "kept": 1}

    def step(self, action):
        self.t += 1
        state = np.full(2, self.t / 10, np.float32)
        return state, 1.0, False, False, {"state": state, "true_state": state, "kept": 2}

    def render(self):
        frame = np.zeros((40, 40, 3), np.uint8)
        frame[: 4 * self.t + 4, :, 0] = 255
        return frame


def test_the_state_never_reaches_the_agent():
    env = PixelObservation(_LeakyEnv(), size=8, frames=2)
    obs, info = env.reset(seed=0)
    assert info == {"kept": 1}
    obs, _, _, _, info = env.step(1)
    assert info == {"kept": 2} and obs.shape == (6, 8, 8) and obs.dtype == np.uint8
    # What the agent's actuator passes on is the frames, not the state.
    from wm_agents.envs import GymActuator

    actuator = GymActuator(PixelObservation(_LeakyEnv(), size=8, frames=2))
    first = actuator.reset(seed=0)
    frames, _ = PixelObservation(_LeakyEnv(), size=8, frames=2).reset(seed=0)
    assert first.size == 2 * 3 * 8 * 8
    assert np.array_equal(first, frames.reshape(-1).astype(np.float32))


def test_area_resize_averages_every_pixel():
    frame = np.zeros((4, 6, 3), np.uint8)
    frame[0, 0] = 255  # one bright pixel in the top-left 2x3 block
    out = resize_area(frame, 2)
    assert out.shape == (2, 2, 3)
    assert out[0, 0, 0] == (255 + 3) // 6 and out[0, 1, 0] == 0 and out[1, 0, 0] == 0
    with pytest.raises(ValueError, match="size must be"):
        resize_area(frame, 5)


def test_bad_envs_are_refused_with_a_clear_error(monkeypatch):
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        PixelObservation(gym.make("CartPole-v1"))

    real_make = gym.make

    def no_pygame(*args, **kwargs):
        env = real_make(*args, **kwargs)

        def render():
            raise gym.error.DependencyNotInstalled("pygame is not installed")

        env.render = render
        return env

    monkeypatch.setattr(gym, "make", no_pygame)
    with pytest.raises(ImportError, match=r"wm-agents\[pixels\]"):
        make_pixel_env("CartPole-v1")


def test_a_pixel_run_still_stops_on_sigterm():
    """pygame's SDL would turn SIGTERM (and Ctrl-C) into a quit event nobody reads."""
    import os
    import signal
    import subprocess
    import sys

    code = (
        "import os, signal, time\n"
        "from wm_agents.envs.pixels import make_pixel_env\n"
        "env = make_pixel_env('CartPole-v1', size=16, frames=1)\n"
        "env.reset(seed=0)\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "time.sleep(5)\n"
        "print('survived')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDL_")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == -signal.SIGTERM, (done.returncode, done.stdout, done.stderr)
    assert "survived" not in done.stdout
