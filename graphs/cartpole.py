"""The compiled CartPole planning graph, for `langgraph dev` / LangGraph Studio.

Studio can only send JSON, so the heavy objects (env, ensemble model, planner, Dyna learner) are
built here on first use: random warm-up steps, a first fit, then every run learns as it plans.
Invoke with input ``{"seed": 0}``; each run is one episode.
"""

from __future__ import annotations

import gymnasium as gym
import torch

from wm_agents.envs import GymActuator
from wm_agents.graph import EnvPlanningContext, create_env_planning_graph, episode_config
from wm_agents.neural.dyna import DynaLearner
from wm_agents.runner import build_agent, default_config, random_warmup

ENV_ID = "CartPole-v1"
SEED = 0


def make_context() -> EnvPlanningContext:
    """Env + model + controller + learner, warmed up on random steps (seeded)."""
    torch.set_num_threads(1)
    config = default_config(ENV_ID)
    actuator = GymActuator(gym.make(ENV_ID))
    model, controller = build_agent(actuator, config, SEED)
    learner = DynaLearner(model, config.refit_every, config.fit)
    random_warmup(actuator, learner, config.warmup_steps, seed=SEED)
    learner.fit()
    return EnvPlanningContext(actuator=actuator, controller=controller, learner=learner)


graph = (
    create_env_planning_graph(default_context=make_context)
    .compile()
    .with_config(episode_config(500))
)
