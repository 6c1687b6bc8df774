"""CartPole learned from scratch by planning with a learned world model, through the graph.

Random warm-up -> fit the ensemble -> MPC through the LangGraph planning graph, refitting as it
goes -> evaluation on a separate env.  A short budget here (600 real steps, 3 evaluation
episodes); `wm-agents cartpole` runs the full default.  Run: python examples/cartpole_planning.py
"""

import torch
from rich.console import Console

from wm_agents.reporting import summary_table
from wm_agents.runner import default_config, run_gym

torch.set_num_threads(1)
config = default_config("CartPole-v1", max_steps=600, eval_episodes=3, eval_every=0)
result = run_gym("CartPole-v1", seed=0, config=config, out="runs/example_cartpole")
Console().print(summary_table(result))
print(f"learning curve written to {result.plot_path}")
