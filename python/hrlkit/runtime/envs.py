"""Vector environments for training and single environments for evaluation.

Vector envs use gymnasium's SAME_STEP autoreset: when a sub-env's episode ends, ``step``
returns the first observation of its next episode and puts the last one in
``info["final_obs"]``. The runtime hands agents (obs, action, reward, real next obs) with that
final observation, so no transition ever spans two episodes.
"""
from __future__ import annotations

import difflib
import functools
from typing import Any

import gymnasium as gym
import numpy as np

from .config import ConfigError
from .errors import EnvError


def check_env_id(env_id: str) -> None:
    import hrlkit.envs  # noqa: F401 - registers hrlkit's own environments

    if not isinstance(env_id, str) or env_id not in gym.registry:
        close = difflib.get_close_matches(str(env_id), list(gym.registry), n=5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `hrlkit list` names the registered ids"
        raise ConfigError(f"env: unknown environment id {env_id!r}{hint}")


def make_env(env_id: str, env_kwargs: dict | None = None, render_mode: str | None = None) -> gym.Env:
    check_env_id(env_id)
    kwargs = dict(env_kwargs or {})
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    return gym.make(env_id, **kwargs)


def make_vector_env(
    env_id: str, num_envs: int, *, async_envs: bool = False, env_kwargs: dict | None = None
) -> gym.vector.VectorEnv:
    check_env_id(env_id)
    fns = [functools.partial(make_env, env_id, env_kwargs) for _ in range(num_envs)]
    cls = gym.vector.AsyncVectorEnv if async_envs else gym.vector.SyncVectorEnv
    return cls(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def real_next_obs(next_obs: np.ndarray, infos: dict[str, Any], done: np.ndarray) -> np.ndarray:
    """The observation each transition actually ended in: ``info["final_obs"]`` where the
    episode ended (SAME_STEP autoreset), else ``next_obs``."""
    if not done.any():
        return next_obs
    real = np.array(next_obs, copy=True)
    mask = infos.get("_final_obs", done)
    for i in np.flatnonzero(mask):
        real[i] = infos["final_obs"][i]
    return real


def step_envs(agent, actions):
    """``agent.envs.step(actions)``; an env whose output does not fit its space (which gymnasium
    reports as "Output array is the wrong shape") is an EnvError naming the env and the space."""
    try:
        return agent.envs.step(actions)
    except ValueError as exc:
        raise EnvError(f"env {agent.env_id!r}: step failed at step {agent.global_step} ({exc}); the agent expects "
                       f"observations in {agent.observation_space} and rewards as floats") from exc


def check_finite_step(agent, rewards: np.ndarray, real_next: np.ndarray, next_obs: np.ndarray) -> None:
    """An EnvError naming the env, the step, the sub-env and the field when the env returned a NaN
    or infinite reward or observation (it would turn every parameter NaN within an update)."""
    fields = [("reward", rewards), ("observation", real_next), ("observation", next_obs)]
    for name, values in fields:
        values = np.asarray(values)
        if values.dtype.kind not in "fc" or np.isfinite(values).all():
            continue
        bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        i = int(np.flatnonzero(bad)[0])
        raise EnvError(f"env {agent.env_id!r}: sub-env {i} returned a non-finite {name} at step {agent.global_step} "
                       f"({np.asarray(values[i]).ravel()[:8].tolist()}); hrlkit trains only on finite values")
