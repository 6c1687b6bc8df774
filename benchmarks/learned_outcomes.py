"""Thin entry point: see ``wm_agents.bench.learned_outcomes`` (BENCHMARKS.md: learned model)."""

import sys

from wm_agents.bench.learned_outcomes import main

if __name__ == "__main__":
    sys.exit(main())
