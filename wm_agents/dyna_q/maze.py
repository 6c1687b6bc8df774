"""Sutton & Barto's Dyna maze (Figure 8.2) as a small gymnasium environment.

A 9 x 6 grid with seven wall cells; the agent starts at the left of the third row and is rewarded
1 for reaching the top-right corner, 0 for every other step.  Moves into a wall or off the grid
leave the agent where it is.  The shortest path takes 14 steps.  There is no time limit, as in the
book: the first episode of plain Q-learning wanders for about a thousand steps.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
from gymnasium import spaces

__all__ = ["DYNA_MAZE_ID", "DynaMazeEnv", "shortest_path_length"]

DYNA_MAZE_ID = "wm_agents/DynaMaze-v0"

# (row, col), row 0 at the top; the layout of Sutton & Barto (2018), Figure 8.2.
_WALLS = frozenset({(1, 2), (2, 2), (3, 2), (4, 5), (0, 7), (1, 7), (2, 7)})
_ROWS, _COLS = 6, 9
_START, _GOAL = (2, 0), (0, 8)
# up, down, right, left
_MOVES = ((-1, 0), (1, 0), (0, 1), (0, -1))


class DynaMazeEnv(gym.Env):
    """The Dyna maze: ``Discrete(54)`` states (``row * 9 + col``), ``Discrete(4)`` actions.

    Actions are up, down, right, left.  Deterministic, so ``P`` (gymnasium's toy-text transition
    table, ``P[s][a] = [(prob, next_state, reward, terminated)]``) is exact.
    """

    metadata = {"render_modes": []}  # noqa: RUF012  (gymnasium's class attribute)

    def __init__(self) -> None:
        self.rows, self.cols = _ROWS, _COLS
        self.walls = _WALLS
        self.start = _START[0] * _COLS + _START[1]
        self.goal = _GOAL[0] * _COLS + _GOAL[1]
        self.observation_space = spaces.Discrete(_ROWS * _COLS)
        self.action_space = spaces.Discrete(len(_MOVES))
        self.P = {s: {a: [self._transition(s, a)] for a in range(4)} for s in range(54)}
        self._state = self.start

    def _transition(self, s: int, a: int) -> tuple[float, int, float, bool]:
        if s == self.goal:  # absorbing; never reached by an agent since the goal terminates
            return 1.0, s, 0.0, True
        r, c = divmod(s, _COLS)
        nr, nc = r + _MOVES[a][0], c + _MOVES[a][1]
        if not (0 <= nr < _ROWS and 0 <= nc < _COLS) or (nr, nc) in _WALLS:
            nr, nc = r, c
        nxt = nr * _COLS + nc
        return 1.0, nxt, float(nxt == self.goal), nxt == self.goal

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        super().reset(seed=seed)
        self._state = self.start
        return self._state, {}

    def step(self, action: Any) -> tuple[int, float, bool, bool, dict[str, Any]]:
        a = int(action)
        if not 0 <= a < 4:
            raise ValueError(f"action must be 0 (up), 1 (down), 2 (right) or 3 (left), got {a}")
        _, nxt, reward, terminated = self.P[self._state][a][0]
        self._state = nxt
        return nxt, reward, terminated, False, {}


def shortest_path_length(env: DynaMazeEnv) -> int:
    """Steps of the shortest start-to-goal path (breadth-first search over ``env.P``)."""
    dist = {env.start: 0}
    queue = deque([env.start])
    while queue:
        s = queue.popleft()
        for a in range(4):
            nxt = env.P[s][a][0][1]
            if nxt not in dist:
                dist[nxt] = dist[s] + 1
                queue.append(nxt)
    return dist[env.goal]


def _register() -> None:
    if DYNA_MAZE_ID not in gym.registry:
        gym.register(id=DYNA_MAZE_ID, entry_point=DynaMazeEnv)


_register()
