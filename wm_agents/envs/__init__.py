"""Real actuators for environments."""

from wm_agents.envs.gym_actuator import GymActuator, StepResult

__all__ = ["GymActuator", "StepResult"]
