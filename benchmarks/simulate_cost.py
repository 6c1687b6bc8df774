"""Thin entry point: see ``wm_agents.bench.simulate_cost`` (and benchmarks/SIMULATE_COST.md)."""

import sys

from wm_agents.bench.simulate_cost import main

if __name__ == "__main__":
    sys.exit(main())
