"""Greedy evaluation, optionally recorded to MP4 with the active option drawn on each frame."""
from __future__ import annotations

import os
import warnings
from typing import Any

import gymnasium as gym
import numpy as np

from .config import ConfigError
from .envs import make_env
from .threads import torch_threads

# distinct colours for option ids (cycled past 10)
OPTION_COLOURS = np.array(
    [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
     (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128)],
    dtype=np.uint8,
)

# 3x5 bitmap digits for the option id
_DIGITS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001001001001",
    "8": "111101111101111", "9": "111101111001111",
}


def draw_option(frame: np.ndarray, option: int | None) -> np.ndarray:
    """A copy of ``frame`` with a band across the top in the option's colour and its id."""
    if option is None or frame is None:
        return frame
    out = np.array(frame, copy=True)
    h = max(6, out.shape[0] // 20)
    out[:h] = OPTION_COLOURS[option % len(OPTION_COLOURS)]
    scale = max(1, (h - 2) // 5)
    x = 2
    for ch in str(option):
        bits = np.array([int(b) for b in _DIGITS[ch]], dtype=bool).reshape(5, 3)
        glyph = np.kron(bits, np.ones((scale, scale), dtype=bool))
        gh, gw = glyph.shape
        if 1 + gh <= h and x + gw <= out.shape[1]:
            region = out[1 : 1 + gh, x : x + gw]
            region[glyph] = 255
        x += gw + scale
    return out


class OptionOverlay(gym.Wrapper):
    """Renders frames with the active option drawn on them (set ``option`` before each step)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.option: int | None = None

    def render(self):
        return draw_option(self.env.render(), self.option)


def check_video_support(env: Any, env_kwargs: dict | None = None) -> None:
    """Fail early (before training) when evaluation videos cannot be written. ``env``: an agent
    (its evaluation env is tried), or an env id with its kwargs."""
    try:
        import moviepy  # noqa: F401
    except ImportError as exc:
        raise ConfigError("video: recording needs moviepy; pip install 'hrlkit[video]'") from exc
    name = getattr(env, "env_id", env)
    try:
        if hasattr(env, "make_eval_env"):
            made, owned = env.make_eval_env(render_mode="rgb_array")
        else:
            made, owned = make_env(env, env_kwargs, render_mode="rgb_array"), True
        try:
            made.reset(seed=0)
            frame = made.render()
        finally:
            if owned:
                made.close()
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the env raises, say it is about rendering
        raise ConfigError(f"video: {name} cannot render rgb_array frames ({exc})") from exc
    if not (isinstance(frame, np.ndarray) and frame.ndim == 3):
        raise ConfigError(f"video: {name} returned no rgb_array frame")


def evaluate(agent, episodes: int = 10, *, seed: int | None = None, video_dir: str | None = None) -> np.ndarray:
    """Returns of ``episodes`` greedy episodes on the agent's evaluation env (seeded ``seed + i``;
    by default ``agent.seed + 10_000 + i``, never a training seed; observation statistics of
    normalization wrappers are the training envs', frozen; reward normalizers are left out, so
    the returns are the env's own). Uses no global RNG, so evaluating does not change what
    training does next."""
    base_seed = agent.seed + 10_000 if seed is None else seed
    env, owned = agent.make_eval_env(render_mode="rgb_array" if video_dir else None)
    overlay = None
    if video_dir:
        overlay = OptionOverlay(env)
        os.makedirs(video_dir, exist_ok=True)
        with warnings.catch_warnings():  # one folder for every evaluation; file names differ by step
            warnings.filterwarnings("ignore", message=".*Overwriting existing videos.*")
            env = gym.wrappers.RecordVideo(
                overlay, video_dir, episode_trigger=lambda i: i == 0, name_prefix=f"step{agent.global_step}",
                disable_logger=True,
            )
    returns = np.zeros(episodes)
    with torch_threads(agent.threads):
        try:
            for ep in range(episodes):
                obs, _ = env.reset(seed=base_seed + ep)
                state, done = None, False
                while not done:
                    action, state = agent.predict(np.asarray(obs)[None], state, deterministic=True)
                    if overlay is not None:
                        overlay.option = agent.active_option(state)
                    obs, reward, terminated, truncated, _ = env.step(action[0])
                    returns[ep] += float(reward)
                    done = terminated or truncated
        finally:
            if owned:
                env.close()
    return returns
