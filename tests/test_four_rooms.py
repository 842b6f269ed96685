import gymnasium as gym
import numpy as np
import pytest

import hrlkit  # noqa: F401 - registers the env
from hrlkit.envs import FourRoomsEnv


def test_layout_has_104_cells_in_four_rooms_and_four_doorways():
    env = FourRoomsEnv()
    assert env.num_cells == 104
    rooms = [env.room_cells(r) for r in ("upper-left", "upper-right", "lower-left", "lower-right")]
    assert sum(len(r) for r in rooms) == 100
    assert len(set(np.concatenate(rooms))) == 100
    assert tuple(env.cells[env.goal]) == (7, 9)  # default goal: the east doorway


def test_registered_with_time_limit_and_reset_never_starts_on_goal():
    env = gym.make("hrlkit/FourRooms-v0")
    assert env.spec.max_episode_steps == 1000
    starts = {env.reset(seed=s)[0] for s in range(300)}
    assert env.unwrapped.goal not in starts
    assert len(starts) > 80


def test_moves_respect_walls_and_slip_rate():
    env = FourRoomsEnv(slip=1 / 3)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    intended = 0
    trials = 6000
    for _ in range(trials):
        env.state = int(rng.choice(env.room_cells("upper-left")))
        before = env.cells[env.state].copy()
        action = int(rng.integers(4))
        env.step(action)
        after = env.cells[env.state]
        step = after - before
        assert np.abs(step).sum() <= 1  # one cell at most, never through a wall
        if np.abs(step).sum() == 1 and tuple(step) == tuple((-1, 0) if action == 0 else (1, 0) if action == 1 else (0, -1) if action == 2 else (0, 1)):
            intended += 1
    # intended direction taken with prob 2/3 (minus moves blocked by walls, which stay put)
    assert 0.45 < intended / trials < 0.7


def test_goal_reward_terminates_and_goal_moves():
    env = FourRoomsEnv(slip=0.0)
    env.reset(seed=0)
    r, c = env.cells[env.goal]
    env.state = int(env.cell_index[r - 1, c])  # just above the doorway
    _, reward, terminated, truncated, _ = env.step(1)  # down
    assert (reward, terminated, truncated) == (1.0, True, False)
    new_goal = int(env.room_cells("lower-right")[0])
    env.set_goal(new_goal)
    assert env.goal == new_goal


@pytest.mark.parametrize("bad", [-1, 104, 3.5, True, "x"])
def test_bad_goal_is_rejected(bad):
    env = FourRoomsEnv()
    with pytest.raises(ValueError, match="cell"):
        env.set_goal(bad)
    assert env.goal == 62


def test_bad_action_is_rejected():
    env = FourRoomsEnv()
    env.reset(seed=0)
    state = env.state
    with pytest.raises(ValueError, match="action"):
        env.step(7)
    assert env.state == state


def test_renders_rgb_and_ansi():
    env = FourRoomsEnv(render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == (13 * 16, 13 * 16, 3)
    text = FourRoomsEnv(render_mode="ansi")
    text.reset(seed=0)
    assert "A" in text.render() and "G" in text.render()


def test_fixed_start_and_the_maze_registration():
    import gymnasium as gym

    env = gym.make("hrlkit/FourRoomsMaze-v0")
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        assert obs == 0
    assert env.unwrapped.goal == 103 and env.spec.max_episode_steps == 100
    with pytest.raises(ValueError, match="start"):
        FourRoomsEnv(goal=5, start=5)
    with pytest.raises(ValueError, match="start"):
        FourRoomsEnv(start=104)


def _shortest_path(env, start: int, goal: int) -> int:
    from collections import deque

    from hrlkit.envs.four_rooms import MOVES

    dist, queue = {start: 0}, deque([start])
    while queue:
        s = queue.popleft()
        for m in MOVES:
            r, c = env.cells[s] + m
            if not env.walls[r, c] and int(env.cell_index[r, c]) not in dist:
                dist[int(env.cell_index[r, c])] = dist[s] + 1
                queue.append(int(env.cell_index[r, c]))
    return dist[goal]


def test_nine_rooms_maze_registration_coords_and_path_length():
    from hrlkit.envs import NineRoomsEnv

    env = gym.make("hrlkit/NineRoomsMaze-v0")
    assert env.spec.max_episode_steps == 200
    assert env.observation_space == gym.spaces.Box(0.0, 1.0, (2,), np.float32)
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs, [1 / 18, 1 / 18], rtol=1e-6)  # cell (1, 1) of the 19 x 19 grid
    maze = env.unwrapped
    assert maze.num_cells == 236 and maze.goal == 235 and tuple(maze.cells[maze.goal]) == (17, 17)
    assert _shortest_path(maze, 0, 235) == 32
    wall_lines = [(r, c) for r in range(19) for c in range(19) if (r % 6 == 0 or c % 6 == 0) and not maze.walls[r, c]]
    assert len(wall_lines) == 11  # the doorways (bottom-middle and bottom-right rooms not joined directly)
    assert all(_shortest_path(maze, 0, cell) < 200 for cell in range(maze.num_cells))  # every cell reachable
    # coords and index observations walk the same cells under the same seed
    idx = NineRoomsEnv(observation="index")
    idx.reset(seed=3)
    env.reset(seed=3)
    for a in [3, 3, 1, 1, 0, 2] * 5:
        i = idx.step(a)[0]
        xy = env.step(a)[0]
        np.testing.assert_allclose(xy, idx.cells[i] / 18.0, rtol=1e-6)
    assert isinstance(i, int) and xy.dtype == np.float32


def test_grid_world_rejects_bad_layouts_and_observations():
    from hrlkit.envs import GridWorldEnv
    from hrlkit.envs.four_rooms import LAYOUT

    with pytest.raises(ValueError, match="layout: expected equal-length lines"):
        GridWorldEnv("www\nw w\nww", goal=0)
    with pytest.raises(ValueError, match="layout: expected equal-length lines"):
        GridWorldEnv("www\nwxw\nwww", goal=0)
    with pytest.raises(ValueError, match="closed by walls"):
        GridWorldEnv("www\n  w\nwww", goal=0)
    with pytest.raises(ValueError, match="observation: expected one of .*'pixels'"):
        GridWorldEnv(LAYOUT, goal=0, observation="pixels")
    with pytest.raises(ValueError, match="layout: expected at least 2 free cells"):
        GridWorldEnv("www\nw w\nwww", goal=0)
    with pytest.raises(ValueError, match="layout: expected at least 2 free cells"):
        GridWorldEnv("www\nwww", goal=0)
    assert GridWorldEnv("wwww\nw  w\nwwww", goal=1).num_cells == 2
