"""A point mass in a box: the 2-D continuous navigation task where DIAYN's skills can be drawn.

The agent is a point in [-1, 1]^2 starting at the centre (plus a small uniform jitter); an
action is a velocity in [-1, 1]^2, moving the point by ``max_speed * action`` per step, clipped
at the walls. Without a goal the reward is 0 (skill discovery supplies its own reward); with
``goal=(x, y)`` the reward is +1 and the episode terminates when the point comes within
``goal_radius`` of the goal (a sparse goal-reaching task for skill reuse downstream).
Episodes are truncated by the registration's ``max_episode_steps`` (100).
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class PointNavEnv(gym.Env):
    """Observation: the position (x, y) in [-1, 1]^2 (``Box(2,)``); action: a velocity in
    [-1, 1]^2 (``Box(2,)``)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, goal: tuple[float, float] | None = None, goal_radius: float = 0.1, max_speed: float = 0.1,
                 start_jitter: float = 0.05, render_mode: str | None = None):
        if goal is not None:
            goal = np.asarray(goal, dtype=np.float64)
            if goal.shape != (2,) or not np.all(np.abs(goal) <= 1.0):
                raise ValueError(f"goal: expected (x, y) inside [-1, 1]^2, got {goal.tolist()}")
        for name, value in (("goal_radius", goal_radius), ("max_speed", max_speed)):
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name}: expected a number > 0, got {value!r}")
        if not 0.0 <= start_jitter <= 1.0:
            raise ValueError(f"start_jitter: expected a number in [0, 1], got {start_jitter!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode: expected None or 'rgb_array', got {render_mode!r}")
        self.goal, self.goal_radius, self.max_speed, self.start_jitter = goal, goal_radius, max_speed, start_jitter
        self.render_mode = render_mode
        self.observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.pos = np.zeros(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-self.start_jitter, self.start_jitter, size=2)
        return self.pos.astype(np.float32), {}

    def step(self, action):
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        self.pos = np.clip(self.pos + self.max_speed * a, -1.0, 1.0)
        reward, terminated = 0.0, False
        if self.goal is not None and np.linalg.norm(self.pos - self.goal) <= self.goal_radius:
            reward, terminated = 1.0, True
        return self.pos.astype(np.float32), reward, terminated, False, {}

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        size = 128
        img = np.full((size, size, 3), 255, np.uint8)

        def px(p):
            return np.clip(((np.asarray(p) + 1.0) / 2.0 * (size - 1)).round().astype(int), 0, size - 1)

        if self.goal is not None:
            gx, gy = px(self.goal)
            img[max(0, size - 1 - gy - 3):size - gy + 2, max(0, gx - 3):gx + 4] = (40, 170, 40)
        x, y = px(self.pos)
        img[max(0, size - 1 - y - 2):size - y + 1, max(0, x - 2):x + 3] = (200, 40, 40)
        return img
