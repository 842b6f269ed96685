"""hrlkit's own gymnasium wrappers, for what ``gymnasium.wrappers`` lacks; usable anywhere a
wrapper is named (``--wrap hrlkit.wrappers:ActionRepeat:repeat=4``, ``wrappers=[...]``) and in
:mod:`hrlkit.presets`.

:class:`ActionRepeat` is the frame skip of SB3's AtariWrapper and rl-zoo's CarRacing setup (their
``MaxAndSkipEnv``/``FrameSkip``), without the max-pooling over the last two frames (an Atari
flicker fix that a rendered Box2D scene does not need).
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym


def _renders_state_pixels(env: gym.Env) -> bool:
    """Whether ``env`` is gymnasium's CarRacing, whose ``step`` renders its observation from the
    simulation (97% of a step's time) and whose other outputs never depend on that rendering."""
    try:
        from gymnasium.envs.box2d.car_racing import CarRacing
    except ImportError:  # box2d not installed: then it is not CarRacing either
        return False
    return isinstance(env.unwrapped, CarRacing)


class ActionRepeat(gym.Wrapper):
    """Each action is applied for ``repeat`` env frames; the rewards are summed and the last frame's
    observation returned; an episode that ends inside the repeat ends the step there.
    ``info["frames"]`` counts the frames stepped (``repeat``, or fewer at an episode's end), so
    env frames can be reported next to agent steps.

    ``skip_render`` (default True): for gymnasium's CarRacing, the frames in between are simulated
    but not rendered (their pixels are never seen; its ``step`` spends 97% of its time drawing
    them). The physics, rewards and episode ends are the same as with rendering: a test pins that
    a seeded episode gives the same rewards and final observation either way. Other envs are
    stepped as they are.
    """

    def __init__(self, env: gym.Env, repeat: int = 4, skip_render: bool = True):
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
            raise ValueError(f"repeat: expected an int >= 1, got {repeat!r}")
        if not isinstance(skip_render, bool):
            raise ValueError(f"skip_render: expected a bool, got {skip_render!r}")
        super().__init__(env)
        self.repeat = repeat
        self.skip_render = skip_render and _renders_state_pixels(env) and env.unwrapped.render_mode != "human"

    def step(self, action: Any):
        total, info, frames = 0.0, {}, 0
        inner = self.env.unwrapped
        for i in range(self.repeat):
            last = i == self.repeat - 1
            if self.skip_render and not last:
                # an instance attribute shadows CarRacing._render for this frame: the previous
                # observation stands in for the one nobody sees
                inner._render = lambda mode, _inner=inner: _inner.state.copy()
            try:
                obs, reward, terminated, truncated, info = self.env.step(action)
            finally:
                inner.__dict__.pop("_render", None)
            total += float(reward)
            frames += 1
            if terminated or truncated:
                if self.skip_render and not last:  # the episode ended on a frame that was not drawn
                    obs = inner.state = inner._render("state_pixels")
                break
        info = dict(info)
        info["frames"] = frames
        return obs, total, terminated, truncated, info
