"""Sample efficiency on CartPole-v1 (see ``wm_agents.bench.sample_efficiency``).

python benchmarks/sample_efficiency.py run --method dqn --seeds 0 1 2 3 4
python benchmarks/sample_efficiency.py run --method seed_recipe
python benchmarks/sample_efficiency.py run --method planner
python benchmarks/sample_efficiency.py report
"""

import sys

from wm_agents.bench.sample_efficiency import main

if __name__ == "__main__":
    sys.exit(main())
