"""Named set-ups: an env, its wrapper chain and per-algorithm hyperparameters under one name, so a
user types one flag (``hrlkit train feudal --preset carracing``) or one call
(``FeudalNetwork(**hrlkit.presets.preset("carracing", "feudal"), seed=0)``).

``carracing`` is the pixel pipeline of SB3's AtariWrapper and rl-zoo's CarRacing set-up, from
gymnasium's own wrappers: each action repeated for 4 frames (:class:`hrlkit.wrappers.ActionRepeat`,
which does not draw the frames in between), grayscale, 64x64, and 4 stacked frames for the agents
without memory (Option-Critic, DIAYN; FuN's LSTMs see one frame). Observations stay uint8 until
the first conv layer; the envs run in their own processes. FuN and Option-Critic drive with the
discrete actions (``continuous=False``: nothing, left, right, gas, brake); DIAYN's SAC with the
continuous ones, 6 skills, its discriminator reading the frames' dashboard strip. FuN's critics see the
reward x 0.1, its advantages are standardized and it passes 4 times over each rollout. Each
agent step is 4 env frames (fewer at an episode's end): ``info["frames"]`` counts them.
"""
from __future__ import annotations

import copy
from typing import Any

from .runtime.config import ConfigError

_PIXELS = [
    {"name": "hrlkit.wrappers:ActionRepeat", "kwargs": {"repeat": 4}},
    {"name": "GrayscaleObservation", "kwargs": {"keep_dim": True}},
    {"name": "ResizeObservation", "kwargs": {"shape": [64, 64]}},
]
_STACK = [{"name": "FrameStackObservation", "kwargs": {"stack_size": 4}}]

PRESETS: dict[str, dict[str, Any]] = {
    "carracing": {
        "env": "CarRacing-v3",
        "frames_per_step": 4,
        "async_envs": True,
        "algos": {
            # CarRacing pays about 3 per tile and -0.4 per agent step: rewards x 0.1 keep the critics'
            # targets near 1, and standardized advantages keep the policy gradients' scale; 4 PPO-style
            # passes per rollout (one pass makes only 390 gradient steps in 500k frames)
            "feudal": {"env_kwargs": {"continuous": False}, "wrappers": _PIXELS,
                       "config": {"num_envs": 8, "rollout_steps": 40, "horizon": 10, "reward_scale": 0.1,
                                  "normalize_advantage": True, "update_epochs": 4,
                                  # measured without PopArt (FuN's default since session 12), with the
                                  # manager's term in every pass (the first pass only since session 16), with
                                  # whole-rollout passes and plain standardized advantages (discrete actions take
                                  # 4 minibatches and the worker's floored at 1 since session 19, the worker's
                                  # discount 0.99 since session 20): kept here
                                  "normalize_values": False, "manager_every_epoch": True, "num_minibatches": 1,
                                  "advantage_std_floor": 0.0, "manager_advantage_floor": True, "gamma_worker": 0.95}},
            "option-critic": {"env_kwargs": {"continuous": False}, "wrappers": _PIXELS + _STACK,
                              "config": {"num_envs": 8, "rollout_steps": 32, "num_minibatches": 4,
                                         "learning_rate": 2.5e-4, "clip_range": 0.1, "target_update_every": 10,
                                         # measured with n-step returns (lambda-returns are the default
                                         # since session 13) and discrete actions' defaults before session 14:
                                         # kept here
                                         "gae_lambda": 1.0, "update_epochs": 4, "separate_critic": False}},
            "diayn": {"env_kwargs": {"continuous": True}, "wrappers": _PIXELS + _STACK,
                      # pixel SAC updates limit the rate (36 agent steps/s in `benchmarks/carracing.py sps`):
                      # one gradient step per vector step of 4 envs (utd 0.25), batch 128. The discriminator
                      # reads the dashboard (rows 56-63 of the 64x64 frame: speed, wheel spin, steering, yaw
                      # rate), not the whole frame, whose track it memorized instead of telling skills apart;
                      # 6 skills (10 did not separate in 100k frames); a replay of 25,000 rows, so the
                      # discriminator learns from the skills' recent behaviour, not their first, alike one.
                      # Measured with a [256, 256] discriminator (the default before session 23): kept here
                      "config": {"num_envs": 4, "buffer_size": 25_000, "batch_size": 128, "utd_ratio": 0.25,
                                 "discriminator_rows": [56, 64], "num_skills": 6,
                                 "discriminator_hidden_sizes": [256, 256]}},
        },
    },
}


def names() -> list[str]:
    return sorted(PRESETS)


def _named(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ConfigError(f"preset: unknown preset {name!r}; expected one of {', '.join(names())}")
    return PRESETS[name]


def preset(name: str, algo: str) -> dict[str, Any]:
    """The agent constructor's keyword arguments for preset ``name`` and algorithm ``algo`` (a
    CLI name: ``feudal``, ``option-critic``, ``diayn``): ``env``, ``env_kwargs``, ``wrappers``,
    ``async_envs`` and ``config``. A fresh copy: change it freely."""
    p = _named(name)
    if algo not in p["algos"]:
        raise ConfigError(f"preset: {name!r} has no set-up for {algo!r}; it has {', '.join(sorted(p['algos']))}")
    a = copy.deepcopy(p["algos"][algo])
    return {"env": p["env"], "env_kwargs": a["env_kwargs"], "wrappers": a["wrappers"], "async_envs": p["async_envs"],
            "config": a["config"]}


def frames_per_step(name: str) -> int:
    """Env frames per agent step in preset ``name`` (its action repeat)."""
    return int(_named(name)["frames_per_step"])
