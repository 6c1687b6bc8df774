"""Add a world-model node to a graph of your own, in a few lines.

A tiny hand-made graph: `suggest` writes two candidate CartPole action sequences, `imagine`
(from wm_agents) scores them with a learned ensemble, `decide` (from wm_agents) picks one and
says whether the ensemble agrees.  Run: python examples/world_model_node.py
"""

from typing import Any, TypedDict

import gymnasium as gym
import numpy as np
import torch
from langgraph.graph import END, START, StateGraph

from wm_agents import AgreementGate, EnsembleDynamicsModel, GymActuator
from wm_agents.graph import make_decide_node, make_imagine_node
from wm_agents.neural import fit_ensemble

torch.set_num_threads(1)
rng = np.random.default_rng(0)

# 1. Learn a model from 300 random CartPole steps.
actuator = GymActuator(gym.make("CartPole-v1"))
model = EnsembleDynamicsModel(actuator.obs_dim, actuator.action_spec, hidden=64, seed=0)
obs = actuator.reset(seed=0)
for _ in range(300):
    action = actuator.sample_action(rng)
    step = actuator.step(action)
    model.buffer.add(obs, action, step.reward, step.obs, step.terminated, step.truncated)
    obs = step.obs if not (step.terminated or step.truncated) else actuator.reset()
print(fit_ensemble(model, model.buffer.all()).summary())


# 2. Your own graph, with two wm_agents nodes in it.
class State(TypedDict, total=False):
    observation: list[float]
    candidates: list[Any]
    outcomes: list[Any]
    decision: Any


def suggest(state: State) -> State:
    # Two plans for the next 15 steps: always push left, or alternate right/left.
    return {"candidates": [[0] * 15, [1, 0] * 7 + [1]]}


graph = StateGraph(State)
graph.add_node("suggest", suggest)
graph.add_node("imagine", make_imagine_node(model, horizon=15))
graph.add_node("decide", make_decide_node(AgreementGate(action_spec=model.action_spec)))
graph.add_edge(START, "suggest")
graph.add_edge("suggest", "imagine")
graph.add_edge("imagine", "decide")
graph.add_edge("decide", END)
app = graph.compile()

start = actuator.reset(seed=1).tolist()
out = app.invoke({"observation": start})
for name, o in zip(["always left", "alternate"], out["outcomes"], strict=True):
    print(
        f"{name:12s} imagined return {o.value:5.1f} ± {o.uncertainty:4.1f}, "
        f"P(episode ends within 15 steps) = {o.risk:.2f}"
    )
d = out["decision"]
print(f"decision: {d.verdict} -> first action {d.action} ({d.reason})")
