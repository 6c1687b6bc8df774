"""Real actuators for environments."""

from wm_agents._lazy import lazy_exports

_EXPORTS = {
    "EnvUnavailableError": "wm_agents.envs.make",
    "GymActuator": "wm_agents.envs.gym_actuator",
    "PixelObservation": "wm_agents.envs.pixels",
    "StepResult": "wm_agents.envs.gym_actuator",
    "env_spec": "wm_agents.envs.make",
    "make_env": "wm_agents.envs.make",
    "make_pixel_env": "wm_agents.envs.pixels",
}
"""Each public name and the module it lives in (imported on first use)."""


__all__ = [
    "EnvUnavailableError",
    "GymActuator",
    "PixelObservation",
    "StepResult",
    "env_spec",
    "make_env",
    "make_pixel_env",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
