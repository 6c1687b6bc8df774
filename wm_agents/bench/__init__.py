"""Side-by-side benchmarks, all run as ``wm-agents bench NAME ...`` (or
``python -m wm_agents bench NAME ...``); the command line and the list of names is
:mod:`wm_agents.bench.cli`.

* :mod:`~wm_agents.bench.sample_efficiency`: the planner vs. SB3 DQN vs. the seed's recipe;
* :mod:`~wm_agents.bench.planning_speed`: ms per CEM decision, GFLOP/s, the seed's loop;
* :mod:`~wm_agents.bench.graph_overhead`: the planning graph vs. a bare loop (and SQLite);
* :mod:`~wm_agents.bench.uncertainty`: risk weight lambda and ensemble size;
* :mod:`~wm_agents.bench.dyna_q`: tabular Dyna-Q against k; policy / MPC / hybrid agents;
* :mod:`~wm_agents.bench.simulate_cost`: what simulating a tool call on a shadow copy costs;
* :mod:`~wm_agents.bench.learned_outcomes`: the learned outcome model on 9,000 real calls;
* :mod:`~wm_agents.bench.llm_calibration`, :mod:`~wm_agents.bench.llm_concurrency`,
  :mod:`~wm_agents.bench.llm_latency`: the LLM outcome predictor's accuracy and speed;
* :mod:`~wm_agents.bench.startup`: import and ``--help`` start-up time.

Results (JSON, PNG) go to ``./benchmarks/results`` under the current folder unless an option
says otherwise (:data:`~wm_agents.bench.common.RESULTS_DIR`); numbers and commands are in
BENCHMARKS.md.
"""
