"""The four-rooms grid of Sutton, Precup & Singh (1999), as used by Option-Critic (Bacon et al.,
2017): 104 free cells in four rooms joined by four doorways, 4 actions, each move going in a
random other direction with probability 1/3, reward +1 on reaching the goal (episode ends)."""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

LAYOUT = """\
wwwwwwwwwwwww
w     w     w
w     w     w
w           w
w     w     w
w     w     w
ww wwww     w
w     www www
w     w     w
w     w     w
w           w
w     w     w
wwwwwwwwwwwww"""

# up, down, left, right as (row, col) steps
MOVES = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])


class FourRoomsEnv(gym.Env):
    """Observation: the index of the agent's cell (``Discrete(104)``, row-major order).

    ``goal`` is a cell index (default 62, the east doorway, as in the Option-Critic paper);
    ``set_goal`` moves it (the transfer experiment). The start cell is uniform over the other
    cells, or ``start`` when given. ``slip`` is the probability that a move goes in one of the 3
    other directions.
    """

    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 8}

    def __init__(self, goal: int = 62, slip: float = 1.0 / 3.0, render_mode: str | None = None,
                 start: int | None = None):
        grid = np.array([[c == "w" for c in line] for line in LAYOUT.splitlines()])
        self.walls = grid
        self.cells = np.argwhere(~grid)  # (104, 2), row-major
        self.cell_index = -np.ones(grid.shape, dtype=np.int64)
        self.cell_index[~grid] = np.arange(len(self.cells))
        self.num_cells = len(self.cells)
        if not 0.0 <= slip <= 1.0:
            raise ValueError(f"slip: expected a probability in [0, 1], got {slip}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode: expected one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.slip = slip
        self.render_mode = render_mode
        self.observation_space = spaces.Discrete(self.num_cells)
        self.action_space = spaces.Discrete(4)
        self.goal = self._check_cell("goal", goal)
        self.start = None if start is None else self._check_cell("start", start)
        if self.start is not None and self.start == self.goal:
            raise ValueError(f"start: expected a cell other than the goal ({self.goal}), got {start}")
        self.state = 0

    # ---- transfer --------------------------------------------------------------------------
    def _check_cell(self, name: str, cell: Any) -> int:
        if isinstance(cell, bool) or not isinstance(cell, (int, np.integer)) or not 0 <= cell < self.num_cells:
            raise ValueError(f"{name}: expected a cell index in [0, {self.num_cells}), got {cell!r}")
        return int(cell)

    def set_goal(self, cell: int) -> None:
        """Move the goal to another cell (takes effect from the next step)."""
        self.goal = self._check_cell("cell", cell)

    def room_cells(self, room: str) -> np.ndarray:
        """Cell indices inside one room ('upper-left', 'upper-right', 'lower-left', 'lower-right'),
        doorways excluded."""
        r, c = self.cells[:, 0], self.cells[:, 1]
        # rooms: rows 1-5 / 7-11 on the left (wall row 6), rows 1-6 / 8-11 on the right (wall row 7)
        rooms = {
            "upper-left": (r <= 5) & (c <= 5),
            "lower-left": (r >= 7) & (c <= 5),
            "upper-right": (r <= 6) & (c >= 7),
            "lower-right": (r >= 8) & (c >= 7),
        }
        if room not in rooms:
            raise ValueError(f"room: expected one of {sorted(rooms)}, got {room!r}")
        return np.flatnonzero(rooms[room])

    # ---- gymnasium API ---------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if options and "goal" in options:
            self.set_goal(options["goal"])
        start = self.np_random.integers(self.num_cells - 1)
        self.state = int(start + (start >= self.goal))  # uniform over the cells except the goal
        if self.start is not None and self.start != self.goal:
            self.state = self.start
        return self.state, {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action: expected an int in [0, 4), got {action!r}")
        action = int(action)
        if self.np_random.random() < self.slip:
            others = [a for a in range(4) if a != action]
            action = others[self.np_random.integers(3)]
        r, c = self.cells[self.state] + MOVES[action]
        if not self.walls[r, c]:
            self.state = int(self.cell_index[r, c])
        reached = self.state == self.goal
        return self.state, float(reached), reached, False, {}

    def render(self):
        if self.render_mode == "ansi":
            rows = []
            for r, line in enumerate(LAYOUT.splitlines()):
                chars = list(line)
                for c in range(len(chars)):
                    idx = self.cell_index[r, c]
                    if idx == self.state:
                        chars[c] = "A"
                    elif idx == self.goal:
                        chars[c] = "G"
                rows.append("".join(chars))
            return "\n".join(rows)
        if self.render_mode == "rgb_array":
            scale = 16
            img = np.where(self.walls[..., None], 40, 235).astype(np.uint8).repeat(3, axis=2)
            gr, gc = self.cells[self.goal]
            ar, ac = self.cells[self.state]
            img[gr, gc] = (60, 180, 75)
            img[ar, ac] = (230, 25, 75)
            return img.repeat(scale, axis=0).repeat(scale, axis=1)
        return None
