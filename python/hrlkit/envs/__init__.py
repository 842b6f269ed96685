"""Environments shipped with hrlkit, registered with gymnasium on import."""
from __future__ import annotations

import gymnasium as gym

from .four_rooms import FourRoomsEnv, GridWorldEnv, NineRoomsEnv
from .point_nav import PointNavEnv

REGISTERED = ("hrlkit/FourRooms-v0", "hrlkit/FourRoomsMaze-v0", "hrlkit/NineRoomsMaze-v0", "hrlkit/PointNav-v0", "hrlkit/PointNavGoal-v0")

if "hrlkit/FourRooms-v0" not in gym.registry:
    gym.register(id="hrlkit/FourRooms-v0", entry_point="hrlkit.envs.four_rooms:FourRoomsEnv", max_episode_steps=1000)
if "hrlkit/FourRoomsMaze-v0" not in gym.registry:
    # sparse and long: from the upper-left room's far corner (cell 0) to the lower-right room's
    # far corner (cell 103), three rooms away, slippery moves, 100 steps (uniform random actions
    # succeed 0.7% of the time: python benchmarks/feudal_maze.py --random-only 2000)
    gym.register(id="hrlkit/FourRoomsMaze-v0", entry_point="hrlkit.envs.four_rooms:FourRoomsEnv", max_episode_steps=100,
                 kwargs={"start": 0, "goal": 103})
if "hrlkit/NineRoomsMaze-v0" not in gym.registry:
    # sparser and longer: nine rooms, corner to corner (32 moves at best), slippery moves, 200 steps
    # (uniform random actions succeed 0.05% of the time); the agent sees its (row, column) scaled to
    # [0, 1], so that directions in the observation are directions in the maze
    gym.register(id="hrlkit/NineRoomsMaze-v0", entry_point="hrlkit.envs.four_rooms:NineRoomsEnv", max_episode_steps=200,
                 kwargs={"observation": "coords"})
if "hrlkit/PointNav-v0" not in gym.registry:
    gym.register(id="hrlkit/PointNav-v0", entry_point="hrlkit.envs.point_nav:PointNavEnv", max_episode_steps=100)
if "hrlkit/PointNavGoal-v0" not in gym.registry:
    # the sparse goal-reaching task for skills reused downstream: +1 and the end within 0.15 of (0.7, 0.7)
    gym.register(id="hrlkit/PointNavGoal-v0", entry_point="hrlkit.envs.point_nav:PointNavEnv", max_episode_steps=100,
                 kwargs={"goal": (0.7, 0.7), "goal_radius": 0.15})

__all__ = ["FourRoomsEnv", "GridWorldEnv", "NineRoomsEnv", "PointNavEnv", "REGISTERED"]
