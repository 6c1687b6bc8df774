"""Thin entry point: see ``wm_agents.bench.graph_overhead`` (and BENCHMARKS.md)."""

import sys

from wm_agents.bench.graph_overhead import main

if __name__ == "__main__":
    sys.exit(main())
