"""Tabular Dyna-Q: the count model, the Q update, the Dyna maze and the k>0 vs k=0 result."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from wm_agents.cli import main as dyna_main
from wm_agents.dyna_q import (
    DynaMazeEnv,
    DynaQAgent,
    DynaQConfig,
    TabularModel,
    dyna_task,
    make_discrete_env,
    run_dyna,
    shortest_path_length,
)

# ---------------------------------------------------------------- the model


def test_model_reproduces_the_counts_it_saw() -> None:
    m = TabularModel(5, 2)
    seen = [(0, 1, 0.0, 2, False)] * 3 + [(0, 1, 1.0, 3, False)] + [(0, 1, 5.0, 4, True)] * 2
    seen += [(2, 0, -1.0, 2, False), (2, 0, -3.0, 2, False)]
    for t in seen:
        m.update(*t)
    assert m.counts(0, 1) == {(2, False): 3, (3, False): 1, (4, True): 2}
    assert m.counts(2, 0) == {(2, False): 2}
    assert m.counts(1, 0) == {}
    assert m.probabilities(0, 1) == pytest.approx({2: 0.5, 3: 1 / 6, 4: 1 / 3})
    assert m.mean_reward(2, 0, 2, False) == -2.0  # mean of -1 and -3
    assert len(m) == 2 and m.n_updates == 8


def test_model_samples_outcomes_in_proportion_to_counts() -> None:
    m = TabularModel(5, 2)
    for t in [(0, 1, 0.0, 2, False)] * 3 + [(0, 1, 1.0, 3, False)]:
        m.update(*t)
    # Counts 3 then 1: u in [0, 0.75) gives the first outcome, [0.75, 1) the second.
    assert m.predict(0, 1, 0.0).next_state == 2
    assert m.predict(0, 1, 0.7499).next_state == 2
    p = m.predict(0, 1, 0.75)
    assert (p.next_state, p.reward, p.terminated) == (3, 1.0, False)
    rng = np.random.default_rng(0)
    draws = [m.predict(0, 1, u).next_state for u in rng.random(4000)]
    assert abs(draws.count(2) / 4000 - 0.75) < 0.02


def test_model_samples_only_seen_state_actions() -> None:
    m = TabularModel(6, 3)
    with pytest.raises(ValueError, match="seen nothing"):
        m.sample_visited(0.5, 0.5)
    m.update(4, 2, 0.0, 1, False)
    m.update(1, 0, 0.0, 4, False)
    m.update(4, 1, 0.0, 1, False)
    pairs = {m.sample_visited(us, ua) for us in np.linspace(0, 0.99, 7) for ua in (0.0, 0.6)}
    assert pairs == {(4, 2), (4, 1), (1, 0)}
    with pytest.raises(KeyError, match="never saw state 0"):
        m.predict(0, 0, 0.1)


def test_model_rejects_out_of_range_inputs() -> None:
    m = TabularModel(3, 2)
    with pytest.raises(ValueError, match="state must be in"):
        m.update(3, 0, 0.0, 0, False)
    with pytest.raises(ValueError, match="action must be in"):
        m.update(0, 2, 0.0, 0, False)
    with pytest.raises(ValueError, match="n_states >= 1"):
        TabularModel(0, 2)


def test_model_error_against_frozenlake_table_shrinks_with_data() -> None:
    env = make_discrete_env("FrozenLake-v1")
    true_p = env.unwrapped.P
    rng = np.random.default_rng(0)
    m = TabularModel(16, 4)
    errors = []
    for n in (20, 2000):
        while m.n_updates < n:
            s, a = int(rng.integers(16)), int(rng.integers(4))
            probs = np.array([p for p, *_ in true_p[s][a]])
            _, s2, r, done = true_p[s][a][rng.choice(len(probs), p=probs)]
            m.update(s, a, r, s2, done)
        errors.append(m.squared_error(true_p))
    assert errors[1] < errors[0] / 5
    assert math.isnan(TabularModel(16, 4).squared_error(true_p))


# ---------------------------------------------------------------- the agent


def test_q_update_by_hand() -> None:
    agent = DynaQAgent(3, 2, DynaQConfig(alpha=0.5, gamma=0.9))
    agent.q[1] = [2.0, 4.0]
    td = agent.q_update(0, 1, 1.0, 1, False)  # target 1 + 0.9 * 4 = 4.6
    assert td == pytest.approx(4.6) and agent.q[0, 1] == pytest.approx(2.3)
    agent.q_update(0, 1, 1.0, 1, True)  # terminal: target 1
    assert agent.q[0, 1] == pytest.approx(2.3 + 0.5 * (1.0 - 2.3))


def test_planning_propagates_value_without_new_real_steps() -> None:
    # A chain 0 -> 1 -> 2 (goal): after one real pass, planning alone fills Q(0, .).
    agent = DynaQAgent(3, 1, DynaQConfig(alpha=1.0, gamma=0.5, planning_steps=0), seed=0)
    agent.observe(0, 0, 0.0, 1, False)
    agent.observe(1, 0, 1.0, 2, True)
    assert agent.q[0, 0] == 0.0  # Q-learning alone has not propagated the reward back yet
    agent.plan(20)
    assert agent.q[0, 0] == pytest.approx(0.5) and agent.q[1, 0] == pytest.approx(1.0)
    assert agent.planning_updates == 20


def test_agent_is_reproducible_from_its_seed() -> None:
    a = run_dyna("DynaMaze", planning_steps=5, seed=3, episodes=5)
    b = run_dyna("DynaMaze", planning_steps=5, seed=3, episodes=5)
    assert a.episode_lengths == b.episode_lengths
    c = run_dyna("DynaMaze", planning_steps=5, seed=4, episodes=5)
    assert a.episode_lengths != c.episode_lengths


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="planning_steps"):
        DynaQConfig(planning_steps=-1)
    with pytest.raises(ValueError, match="alpha"):
        DynaQConfig(alpha=0.0)
    with pytest.raises(ValueError, match="Discrete for both"):
        make_discrete_env("CartPole-v1")


# ---------------------------------------------------------------- the maze and the result


def test_dyna_maze_layout() -> None:
    env = DynaMazeEnv()
    assert shortest_path_length(env) == 14  # Sutton & Barto: "the shortest path is 14 steps"
    s, _ = env.reset(seed=0)
    assert s == 18  # row 2, column 0
    assert env.step(3)[0] == 18  # left: off the grid, stays
    s = env.step(0)[0]  # up to row 1
    assert s == 9
    assert env.step(2)[0] == 10 and env.step(2)[0] == 10  # (1, 2) is a wall
    assert dyna_task("DynaMaze").solve_length == 16


# Measured on this code: episodes until the greedy path is near-optimal (<= 16 steps),
# seeds 0-4.  k=0: [19, 17, 24, 25, 20]; k=5: [5, 6, 7, 4, 6]; k=50: [2, 2, 2, 3, 2].
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planning_solves_the_maze_in_fewer_real_episodes(seed: int) -> None:
    runs = {
        k: run_dyna("DynaMaze", planning_steps=k, seed=seed, episodes=40, stop_when_solved=True)
        for k in (0, 5, 50)
    }
    eps = {k: r.solved_at_episode for k, r in runs.items()}
    assert all(e is not None for e in eps.values()), eps
    assert eps[50] <= 3 and eps[50] < eps[5] < eps[0], eps
    assert eps[0] >= 15, eps  # plain Q-learning needs many episodes, as in the book
    assert runs[50].solved_at_step < runs[0].solved_at_step / 3
    assert runs[0].planning_updates == 0
    assert runs[50].planning_updates == 50 * runs[50].real_steps


def test_maze_episodes_to_solve_exact_seed_0() -> None:
    eps = {
        k: run_dyna("DynaMaze", planning_steps=k, seed=0, episodes=40).solved_at_episode
        for k in (0, 5, 50)
    }
    assert eps == {0: 19, 5: 5, 50: 2}


def test_dyna_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    rc = dyna_main(["dyna", "--env", "DynaMaze", "-k", "10", "--episodes", "8", "--json"])
    assert rc == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("env", "seed", "real_steps", "eval_returns", "eval_mean", "solved_at_step"):
        assert key in s
    assert s["planning_steps"] == 10 and s["episodes"] == 8
    assert s["episodes_to_solve"] is not None and s["episodes_to_solve"] <= 8
    assert s["model_val_mse"] == 0.0  # deterministic maze: every seen (s, a) is exact
    assert s["real_steps"] == sum(s["episode_lengths"])


def test_dyna_cli_rejects_box_envs(capsys: pytest.CaptureFixture[str]) -> None:
    assert dyna_main(["dyna", "--env", "Pendulum-v1"]) == 2
    assert "Discrete for both" in capsys.readouterr().err
