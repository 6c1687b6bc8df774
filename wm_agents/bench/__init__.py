"""Side-by-side benchmarks (``wm-agents bench ...`` and ``benchmarks/*.py``); the command line is
:mod:`wm_agents.bench.cli`.

* :mod:`~wm_agents.bench.sample_efficiency`: the planner vs. SB3 DQN vs. the seed's recipe;
* :mod:`~wm_agents.bench.planning_speed`: ms per CEM decision, GFLOP/s, the seed's loop;
* :mod:`~wm_agents.bench.graph_overhead`: the planning graph vs. a bare loop (and SQLite);
* :mod:`~wm_agents.bench.uncertainty`: risk weight lambda and ensemble size.

Results (JSON, PNG) go to ``benchmarks/results``; numbers and commands are in BENCHMARKS.md.
"""
