"""Thin entry point: see ``wm_agents.bench.planning_speed`` (and BENCHMARKS.md)."""

import sys

from wm_agents.bench.planning_speed import main

if __name__ == "__main__":
    sys.exit(main())
