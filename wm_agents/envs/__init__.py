"""Real actuators for environments."""

from wm_agents.envs.gym_actuator import GymActuator, StepResult
from wm_agents.envs.make import EnvUnavailableError, env_spec, make_env

__all__ = ["EnvUnavailableError", "GymActuator", "StepResult", "env_spec", "make_env"]
