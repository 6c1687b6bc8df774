"""Thin entry point: see ``wm_agents.bench.uncertainty`` (and BENCHMARKS.md)."""

import sys

from wm_agents.bench.uncertainty import main

if __name__ == "__main__":
    sys.exit(main())
