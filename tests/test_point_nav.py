"""hrlkit/PointNav-v0: a point mass in [-1, 1]^2 moved by velocity actions."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import hrlkit  # noqa: F401 - registers the env
from hrlkit.envs import PointNavEnv


def test_passes_gymnasium_env_checker():
    check_env(gym.make("hrlkit/PointNav-v0").unwrapped)


def test_moves_by_velocity_and_stops_at_the_walls():
    env = PointNavEnv(start_jitter=0.0)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, [0.0, 0.0])
    obs, r, term, trunc, _ = env.step(np.array([1.0, -0.5]))
    np.testing.assert_allclose(obs, [0.1, -0.05], atol=1e-7)
    assert (r, term, trunc) == (0.0, False, False)
    for _ in range(30):
        obs, *_ = env.step(np.array([5.0, 5.0]))  # actions are clipped to [-1, 1]
    np.testing.assert_allclose(obs, [1.0, 1.0])


def test_time_limit_and_seeded_starts():
    env = gym.make("hrlkit/PointNav-v0")
    a, _ = env.reset(seed=3)
    b, _ = env.reset(seed=3)
    np.testing.assert_array_equal(a, b)
    assert np.all(np.abs(a) <= 0.05)
    steps, done = 0, False
    while not done:
        _, _, term, trunc, _ = env.step(np.zeros(2, np.float32))
        steps += 1
        done = term or trunc
    assert steps == 100 and trunc and not term


def test_goal_reward_terminates():
    env = gym.make("hrlkit/PointNav-v0", goal=(0.5, 0.0))
    env.reset(seed=0)
    total, term = 0.0, False
    for _ in range(10):
        _, r, term, _, _ = env.step(np.array([1.0, 0.0], np.float32))
        total += r
        if term:
            break
    assert term and total == 1.0


@pytest.mark.parametrize("kw, name", [
    (dict(goal=(2.0, 0.0)), "goal"),
    (dict(goal=(0.0,)), "goal"),
    (dict(goal_radius=0.0), "goal_radius"),
    (dict(max_speed=-1.0), "max_speed"),
    (dict(start_jitter=2.0), "start_jitter"),
    (dict(render_mode="human"), "render_mode"),
])
def test_bad_arguments_name_themselves(kw, name):
    with pytest.raises(ValueError, match=name):
        PointNavEnv(**kw)


def test_renders_rgb():
    env = PointNavEnv(goal=(0.5, 0.5), render_mode="rgb_array")
    env.reset(seed=0)
    img = env.render()
    assert img.shape == (128, 128, 3) and img.dtype == np.uint8 and (img != 255).any()
