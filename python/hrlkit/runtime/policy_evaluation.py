"""Evaluating a policy on any env, in Stable-Baselines3's shape, and the observation handling
every agent's ``predict`` shares (one observation or a batch, episode starts).

    mean, std = hrlkit.evaluate_policy(agent, gym.make("CartPole-v1"), n_eval_episodes=10)
    returns, lengths = hrlkit.evaluate_policy(agent, vec_env, 10, return_episode_rewards=True)
"""
from __future__ import annotations

import contextlib
from typing import Any

import gymnasium as gym
import numpy as np


# ---- what every agent's predict shares ---------------------------------------------------------
def batch_observation(space: gym.Space, obs: Any) -> tuple[Any, bool]:
    """``obs`` as a batch, and whether it was one observation (then ``predict`` returns one
    action). One observation has the space's shape (a bare int for Discrete, a vector for a flat
    Box, an (H, W, C) image); a batch has one more, leading, dimension. Torch tensors stay tensors."""
    if not hasattr(obs, "ndim"):
        obs = np.asarray(obs)
    shape = tuple(space.shape or ())
    if obs.ndim == len(shape):
        return obs[None], True
    if obs.ndim == len(shape) + 1:
        return obs, False
    raise ValueError(f"obs: expected one observation of shape {shape} or a batch of shape (N, *{shape}), "
                     f"got shape {tuple(obs.shape)}")


def episode_start_mask(episode_start: Any, n: int) -> np.ndarray | None:
    """``predict``'s ``episode_start`` (SB3's: one bool per row, True where an episode starts, so
    the row's options, skill or recurrent state begin afresh) as an [n] bool array, or None when
    no row starts."""
    if episode_start is None:
        return None
    mask = np.asarray(episode_start, dtype=bool).reshape(-1)
    if mask.size == 1:
        mask = np.repeat(mask, n)
    if mask.shape != (n,):
        raise ValueError(f"episode_start: expected one bool per observation ({n}), got {np.shape(episode_start)}")
    return mask if mask.any() else None


# ---- evaluate_policy ---------------------------------------------------------------------------
def evaluate_policy(
    model: Any,
    env: gym.Env | gym.vector.VectorEnv,
    n_eval_episodes: int = 10,
    deterministic: bool = True,
    return_episode_rewards: bool = False,
) -> tuple[float, float] | tuple[list[float], list[int]]:
    """Run ``n_eval_episodes`` episodes of ``model`` (anything with hrlkit's or SB3's
    ``predict(obs, state, deterministic=..., episode_start=...)``) on ``env`` and return the mean
    and standard deviation of their returns, or with ``return_episode_rewards=True`` the list of
    returns and the list of lengths.

    ``env``: a gymnasium Env, or a gymnasium VectorEnv (any autoreset mode), whose sub-envs share
    the episodes as SB3 shares them: sub-env ``i`` runs ``(n_eval_episodes + i) // num_envs``
    episodes, and episodes past a sub-env's share are not counted (so exactly
    ``n_eval_episodes`` are, without favouring short episodes). The model's running options,
    skills or recurrent states start afresh with each episode, per sub-env. ``env`` is reset
    here, without a seed (seed it first for repeatable results), and left open.
    """
    if isinstance(n_eval_episodes, bool) or not isinstance(n_eval_episodes, (int, np.integer)) or n_eval_episodes < 1:
        raise ValueError(f"n_eval_episodes: expected an int >= 1, got {n_eval_episodes!r}")
    if not callable(getattr(model, "predict", None)):
        raise TypeError(f"model: expected an agent with a predict method, got {type(model).__name__}")
    if isinstance(env, gym.vector.VectorEnv):
        episodes = _VectorEpisodes(env)
    elif isinstance(env, gym.Env):
        episodes = _SingleEpisodes(env)
    else:
        raise TypeError(f"env: expected a gymnasium.Env or a gymnasium.vector.VectorEnv, got {type(env).__name__}"
                        + (" (an env id: pass gymnasium.make(id))" if isinstance(env, str) else ""))
    n = episodes.num_envs
    targets = np.array([(n_eval_episodes + i) // n for i in range(n)], dtype=np.int64)
    counts = np.zeros(n, dtype=np.int64)
    current_return, current_length = np.zeros(n), np.zeros(n, dtype=np.int64)
    returns: list[float] = []
    lengths: list[int] = []
    threads = getattr(model, "threads", None)
    with _torch_threads(threads):
        obs = episodes.reset()
        state, starts = None, np.ones(n, dtype=bool)
        while (counts < targets).any():
            actions, state = model.predict(obs, state, deterministic=deterministic, episode_start=starts)
            obs, rewards, dones, counted = episodes.step(actions)
            current_return[counted] += rewards[counted]
            current_length[counted] += 1
            for i in np.flatnonzero(dones):
                if counts[i] < targets[i]:
                    returns.append(float(current_return[i]))
                    lengths.append(int(current_length[i]))
                    counts[i] += 1
                current_return[i], current_length[i] = 0.0, 0
            starts = episodes.starting
    if return_episode_rewards:
        return returns, lengths
    return float(np.mean(returns)), float(np.std(returns))


def _torch_threads(threads: int | None):
    if threads is None:
        return contextlib.nullcontext()
    from .threads import torch_threads

    return torch_threads(threads)


class _SingleEpisodes:
    """One gymnasium Env seen as a batch of one: reset after each episode."""

    num_envs = 1

    def __init__(self, env: gym.Env):
        self.env = env
        self.starting = np.ones(1, dtype=bool)

    def reset(self) -> np.ndarray:
        obs, _ = self.env.reset()
        return np.asarray(obs)[None]

    def step(self, actions: Any):
        obs, reward, terminated, truncated, _ = self.env.step(actions[0])
        done = bool(terminated or truncated)
        if done:
            obs, _ = self.env.reset()
        self.starting = np.array([done])
        return np.asarray(obs)[None], np.array([float(reward)]), self.starting.copy(), np.ones(1, dtype=bool)


class _VectorEpisodes:
    """A VectorEnv's steps as (obs, rewards, episodes that ended, steps that count), for each
    autoreset mode: SAME_STEP (the next episode's first observation comes with the end),
    NEXT_STEP (the step after an end only resets: it is not counted) and DISABLED (reset here)."""

    def __init__(self, env: gym.vector.VectorEnv):
        self.env = env
        self.num_envs = int(env.num_envs)
        mode = env.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
        self.mode = gym.vector.AutoresetMode(mode) if isinstance(mode, str) else mode
        self.resetting = np.zeros(self.num_envs, dtype=bool)  # NEXT_STEP: the sub-envs whose next step resets
        self.starting = np.ones(self.num_envs, dtype=bool)

    def reset(self) -> Any:
        obs, _ = self.env.reset()
        return obs

    def step(self, actions: Any):
        obs, rewards, terminated, truncated, _ = self.env.step(actions)
        counted = ~self.resetting
        dones = np.logical_or(terminated, truncated) & counted
        rewards = np.asarray(rewards, dtype=np.float64)
        if self.mode == gym.vector.AutoresetMode.NEXT_STEP:
            self.starting, self.resetting = self.resetting, dones
        elif self.mode == gym.vector.AutoresetMode.DISABLED and dones.any():
            obs, _ = self.env.reset(options={"reset_mask": dones})
            self.starting = dones
        else:
            self.starting = dones
        return obs, rewards, dones, counted
