"""Grid worlds: the four-rooms grid of Sutton, Precup & Singh (1999), as used by Option-Critic
(Bacon et al., 2017): 104 free cells in four rooms joined by four doorways, 4 actions, each move
going in a random other direction with probability 1/3, reward +1 on reaching the goal (episode
ends); and a larger nine-rooms maze on the same rules (:data:`NINE_ROOMS`)."""
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

# 3 x 3 rooms of 5 x 5 cells, 11 doorways at staggered positions (the bottom-middle and bottom-right
# rooms are not joined directly): 236 free cells; from the
# upper-left corner (cell 0) to the lower-right one (cell 235) the shortest path is 32 moves
NINE_ROOMS = """\
wwwwwwwwwwwwwwwwwww
w     w     w     w
w     w           w
w           w     w
w     w     w     w
w     w     w     w
ww wwwwww wwwww www
w     w     w     w
w     w     w     w
w           w     w
w     w           w
w     w     w     w
wwww www wwwwwww ww
w     w     w     w
w     w     w     w
w           w     w
w     w     w     w
w     w     w     w
wwwwwwwwwwwwwwwwwww"""

OBSERVATIONS = ("index", "coords")

# up, down, left, right as (row, col) steps
MOVES = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])


class GridWorldEnv(gym.Env):
    """A grid of walls ('w') and free cells (' ') given as text, 4 slippery moves, +1 at the goal.

    Observation (``observation``): ``"index"``, the index of the agent's cell (``Discrete(n)``,
    row-major order over the free cells), or ``"coords"``, its (row, column) scaled to [0, 1]
    (``Box(0, 1, (2,))``), for agents that should see the grid's geometry.

    ``goal`` is a cell index; ``set_goal`` moves it (the transfer experiment). The start cell is
    uniform over the other cells, or ``start`` when given. ``slip`` is the probability that a move
    goes in one of the 3 other directions.
    """

    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 8}

    def __init__(self, layout: str, goal: int, slip: float = 1.0 / 3.0, render_mode: str | None = None,
                 start: int | None = None, observation: str = "index"):
        lines = layout.splitlines() if isinstance(layout, str) else []
        if not lines or len({len(x) for x in lines}) != 1 or set("".join(lines)) - {"w", " "}:
            raise ValueError("layout: expected equal-length lines of 'w' (wall) and ' ' (free), "
                             f"got {layout!r:.80}")
        grid = np.array([[c == "w" for c in line] for line in lines])
        if not (grid[0].all() and grid[-1].all() and grid[:, 0].all() and grid[:, -1].all()):
            raise ValueError("layout: expected a grid closed by walls on all four sides")
        if (~grid).sum() < 2:
            raise ValueError(f"layout: expected at least 2 free cells (a start and a goal), got {(~grid).sum()}")
        self.walls = grid
        self.cells = np.argwhere(~grid)  # (cells, 2), row-major
        self.cell_index = -np.ones(grid.shape, dtype=np.int64)
        self.cell_index[~grid] = np.arange(len(self.cells))
        self.num_cells = len(self.cells)
        if not 0.0 <= slip <= 1.0:
            raise ValueError(f"slip: expected a probability in [0, 1], got {slip}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode: expected one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation: expected one of {OBSERVATIONS}, got {observation!r}")
        self.layout = layout
        self.slip = slip
        self.render_mode = render_mode
        self.observation = observation
        self._coords = (self.cells / (np.array(grid.shape) - 1)).astype(np.float32)
        if observation == "index":
            self.observation_space = spaces.Discrete(self.num_cells)
        else:
            self.observation_space = spaces.Box(0.0, 1.0, (2,), np.float32)
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

    def _obs(self):
        return self.state if self.observation == "index" else self._coords[self.state].copy()

    # ---- gymnasium API ---------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if options and "goal" in options:
            self.set_goal(options["goal"])
        start = self.np_random.integers(self.num_cells - 1)
        self.state = int(start + (start >= self.goal))  # uniform over the cells except the goal
        if self.start is not None and self.start != self.goal:
            self.state = self.start
        return self._obs(), {}

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
        return self._obs(), float(reached), reached, False, {}

    def render(self):
        if self.render_mode == "ansi":
            rows = []
            for r, line in enumerate(self.layout.splitlines()):
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


class FourRoomsEnv(GridWorldEnv):
    """The four-rooms grid (:data:`LAYOUT`). ``goal`` defaults to 62, the east doorway, as in the
    Option-Critic paper."""

    def __init__(self, goal: int = 62, slip: float = 1.0 / 3.0, render_mode: str | None = None,
                 start: int | None = None, observation: str = "index"):
        super().__init__(LAYOUT, goal, slip, render_mode, start, observation)

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


class NineRoomsEnv(GridWorldEnv):
    """The nine-rooms maze (:data:`NINE_ROOMS`), by default from the upper-left corner (cell 0)
    to the lower-right one (cell 235)."""

    def __init__(self, goal: int = 235, slip: float = 1.0 / 3.0, render_mode: str | None = None,
                 start: int | None = 0, observation: str = "index"):
        super().__init__(NINE_ROOMS, goal, slip, render_mode, start, observation)
