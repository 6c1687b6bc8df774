"""SB3 DQN with rl-baselines3-zoo's CartPole-v1 settings (needs ``pip install "wm-agents[bench]"``).

Same as ``python benchmarks/sample_efficiency.py run --method dqn``; arguments are passed on.
"""

import sys

from wm_agents.bench.sample_efficiency import main

if __name__ == "__main__":
    sys.exit(main(["run", "--method", "dqn", *sys.argv[1:]]))
