"""Looking at learned skills (DIAYN): roll every skill out, score how distinguishable and how
spread out they are, and draw them (``hrlkit skills RUN_DIR``).

2-D observation spaces (``hrlkit/PointNav-v0``) are drawn as paths in the plane, one colour per
skill. CarRacing (pixels) is drawn top-down: the car's path (its position from the env's state)
over the track. MuJoCo envs are drawn as the body's x-position and x-velocity over time per skill.
Other envs: paths in the plane of the two observation dimensions that tell the skills apart best
(the largest spread of the skills' end points relative to the spread of all visited states),
and the first of them over time. Axes are fitted to the data and named (``observation_names``
knows the classic-control and Box2D envs; elsewhere ``obs[i]``).
"""
from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

__all__ = ["rollout_skills", "discriminator_accuracy", "skill_accuracies", "endpoint_spread", "random_endpoints",
           "plot_skills", "observation_names", "telling_dimensions"]

# What each observation dimension is, for the standard envs whose observations are flat vectors
_OBSERVATION_NAMES = {
    "CartPole": ["cart position", "cart velocity", "pole angle", "pole angular velocity"],
    "Pendulum": ["cos(theta)", "sin(theta)", "angular velocity"],
    "MountainCar": ["position", "velocity"],
    "MountainCarContinuous": ["position", "velocity"],
    "Acrobot": ["cos(theta1)", "sin(theta1)", "cos(theta2)", "sin(theta2)", "theta1 velocity", "theta2 velocity"],
    "LunarLander": ["x", "y", "x velocity", "y velocity", "angle", "angular velocity", "left leg contact",
                    "right leg contact"],
}


def observation_names(env_id: str | None, dims: int) -> list[str]:
    """A name per observation dimension: the env's own (``_OBSERVATION_NAMES``, by the id without
    namespace and version) where known and of the right length, else ``obs[i]``."""
    base = (env_id or "").split("/")[-1].split(":")[-1].rsplit("-v", 1)[0]
    names = _OBSERVATION_NAMES.get(base)
    return list(names) if names is not None and len(names) == dims else [f"obs[{i}]" for i in range(dims)]


def telling_dimensions(rollouts: dict[int, list[dict[str, Any]]], count: int = 2) -> list[int]:
    """The ``count`` observation dimensions along which the skills' end points spread the most,
    each relative to the spread of every visited state along it (so scale does not decide)."""
    ends = _end_points(rollouts, None).astype(np.float64)
    visited = np.concatenate([ep["obs"] for eps in rollouts.values() for ep in eps]).astype(np.float64)
    score = ends.std(axis=0) / (visited.std(axis=0) + 1e-8)
    return [int(i) for i in np.argsort(-score, kind="stable")[:count]]


def _fit(ax, xs: list[np.ndarray], ys: list[np.ndarray]) -> None:
    """Axis limits around the data with a 5% margin (a flat dimension gets a unit-wide window)."""
    for values, setter in ((np.concatenate(xs), ax.set_xlim), (np.concatenate(ys), ax.set_ylim)):
        lo, hi = float(values.min()), float(values.max())
        pad = 0.05 * (hi - lo) if hi > lo else 0.5
        setter(lo - pad, hi + pad)


def _mujoco_x(env) -> tuple[float, float] | None:
    data = getattr(env.unwrapped, "data", None)
    if data is None or not hasattr(data, "qpos"):
        return None
    return float(data.qpos[0]), float(data.qvel[0])


def _car_xy(env) -> tuple[float, float] | None:
    """The car's position in a Box2D racing env (CarRacing's ``car.hull``), else None."""
    hull = getattr(getattr(env.unwrapped, "car", None), "hull", None)
    return None if hull is None else (float(hull.position[0]), float(hull.position[1]))


def _track(env) -> np.ndarray | None:
    """CarRacing's track centre line [n, 2] (x, y), else None."""
    track = getattr(env.unwrapped, "track", None)
    return np.array([[t[2], t[3]] for t in track], dtype=np.float32) if track else None


class _Positions:
    """What an episode records besides observations: MuJoCo's x / x-velocity, a car's xy."""

    def __init__(self, env):
        self.env, self.x, self.xy = env, [], []

    def record(self) -> None:
        x, xy = _mujoco_x(self.env), _car_xy(self.env)
        if x is not None:
            self.x.append(x)
        if xy is not None:
            self.xy.append(xy)

    def into(self, rec: dict[str, Any]) -> dict[str, Any]:
        if self.x:
            rec["x"], rec["xvel"] = (np.array(c) for c in zip(*self.x))
        if self.xy:
            rec["xy"] = np.array(self.xy, dtype=np.float32)
            rec["track"] = _track(self.env)
        return rec


def _stack(obs_list: list[np.ndarray]) -> np.ndarray:
    """The episode's observations: pixels kept uint8, vectors as float32."""
    obs = np.stack(obs_list)
    return obs if obs.dtype == np.uint8 else obs.astype(np.float32)


def rollout_skills(agent, episodes: int = 1, *, deterministic: bool = True, seed: int = 0,
                   video_dir: str | None = None) -> dict[int, list[dict[str, Any]]]:
    """``episodes`` episodes of every skill on fresh envs (episode i of every skill is seeded
    ``seed + i``, so skills start alike). Each episode: ``obs`` [T + 1, d] (the observations,
    the last one included; pixels stay uint8), ``return`` (the env's reward), for MuJoCo ``x`` /
    ``xvel`` [T + 1] (qpos[0] and qvel[0]), for CarRacing ``xy`` [T + 1, 2] (the car's position)
    and ``track`` (the track's centre line). ``video_dir``: an MP4 of each skill's first episode."""
    import gymnasium as gym

    from .runtime.evaluation import OptionOverlay

    out: dict[int, list[dict[str, Any]]] = {}
    for k in range(agent.config.num_skills):
        env, owned = agent.make_eval_env(render_mode="rgb_array" if video_dir else None)
        if video_dir:
            os.makedirs(video_dir, exist_ok=True)
            overlay = OptionOverlay(env)
            overlay.option = k
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*Overwriting existing videos.*")
                env = gym.wrappers.RecordVideo(overlay, video_dir, episode_trigger=lambda i: i == 0,
                                               name_prefix=f"skill{k}", disable_logger=True)
        episodes_k = []
        try:
            for ep in range(episodes):
                obs, _ = env.reset(seed=seed + ep)
                obs_list, pos, done, total = [np.asarray(obs)], _Positions(env), False, 0.0
                pos.record()
                while not done:
                    action, _ = agent.predict(np.asarray(obs)[None], {"skill": [k]}, deterministic=deterministic)
                    obs, reward, terminated, truncated, _ = env.step(action[0])
                    total += float(reward)
                    done = terminated or truncated
                    obs_list.append(np.asarray(obs))
                    pos.record()
                rec = pos.into({"obs": _stack(obs_list), "return": total})
                episodes_k.append(rec)
        finally:
            if owned:
                env.close()
        out[k] = episodes_k
    return out


def skill_confusion(agent, rollouts: dict[int, list[dict[str, Any]]]) -> np.ndarray:
    """One pass of the discriminator over the rollouts: counts [Z, Z], row z the next states s' of
    every step of skill z's rollouts, column j how many of them q(. | s') names j most likely."""
    import torch

    Z = agent.config.num_skills
    counts = np.zeros((Z, Z), dtype=np.int64)
    with torch.no_grad():
        for k, episodes in rollouts.items():
            for ep in episodes:
                pred = agent.discriminator_logits(agent._obs(ep["obs"][1:])).argmax(dim=-1).cpu().numpy()
                counts[int(k)] += np.bincount(pred, minlength=Z)
    return counts


def skill_accuracies(agent, rollouts: dict[int, list[dict[str, Any]]], *,
                     counts: np.ndarray | None = None) -> tuple[float, dict[int, float]]:
    """(the share of the visited next states s', every step of every rollout, whose most likely
    skill under q(z | s') is the skill that produced them; {skill: that share among the skill's own
    states}), from ``skill_confusion``'s diagonal (``counts``: that matrix of these rollouts, when
    the caller has it already)."""
    counts = skill_confusion(agent, rollouts) if counts is None else counts
    hits, totals = np.diag(counts), counts.sum(axis=1)
    overall = float(hits.sum() / max(1, totals.sum()))
    return overall, {int(k): float(hits[int(k)] / max(1, totals[int(k)])) for k in sorted(rollouts)}


def discriminator_accuracy(agent, rollouts: dict[int, list[dict[str, Any]]], *,
                           per_skill: bool = False) -> float | dict[int, float]:
    """skill_accuracies' overall share, or with ``per_skill`` its {skill: share}."""
    overall, per = skill_accuracies(agent, rollouts)
    return per if per_skill else overall


def _end_points(rollouts: dict[int, list[dict[str, Any]]], dims: list[int] | None, key: str = "obs") -> np.ndarray:
    ends = [np.asarray(ep[key][-1], dtype=np.float64).ravel() for k in sorted(rollouts) for ep in rollouts[k][:1]]
    ends = np.stack(ends)
    return ends if dims is None else ends[:, dims]


def endpoint_spread(rollouts: dict[int, list[dict[str, Any]]], dims: list[int] | None = None, *,
                    key: str = "obs") -> float:
    """Mean pairwise Euclidean distance between the skills' end points (the last ``key`` record of
    each skill's first episode: the observation, over ``dims``, all dims by default; ``key="xy"``:
    a car's position)."""
    e = _end_points(rollouts, dims, key)
    d = np.linalg.norm(e[:, None, :] - e[None, :, :], axis=-1)
    n = len(e)
    return float(d.sum() / max(1, n * (n - 1)))


def random_endpoints(env_id: str, env_kwargs: dict | None, policies: int, *, seed: int = 0) -> dict[int, list[dict[str, Any]]]:
    """The same record as :func:`rollout_skills` for ``policies`` uniform-random-action policies
    (the baseline of :func:`endpoint_spread`)."""
    from .runtime.envs import make_env

    out = {}
    for k in range(policies):
        env = make_env(env_id, env_kwargs)
        env.action_space.seed(seed + 1000 + k)
        obs, _ = env.reset(seed=seed)
        obs_list, pos, done = [np.asarray(obs)], _Positions(env), False
        pos.record()
        while not done:
            obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
            obs_list.append(np.asarray(obs))
            pos.record()
            done = terminated or truncated
        env.close()
        out[k] = [pos.into({"obs": _stack(obs_list), "return": 0.0})]
    return out


def plot_skills(rollouts: dict[int, list[dict[str, Any]]], out: str, *, title: str = "",
                dim_names: list[str] | None = None, baseline: dict[int, list[dict[str, Any]]] | None = None) -> str:
    """Draw the rollouts (see the module doc) to ``out`` (PNG); returns the path. ``dim_names``:
    a name per observation dimension (default ``obs[i]``; ``observation_names`` gives the
    standard envs' own). ``baseline``: for car paths, the random-action policies'
    (:func:`random_endpoints`), drawn in grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    skills = sorted(rollouts)
    cmap = plt.get_cmap("tab10" if len(skills) <= 10 else "tab20")
    colour = {k: cmap(i % cmap.N) for i, k in enumerate(skills)}
    first = rollouts[skills[0]][0]
    if "xy" in first:
        fig = _plot_car_paths(plt, rollouts, colour, baseline)
        return _finish(fig, out, title)
    dims = first["obs"].shape[1]
    names = dim_names if dim_names is not None and len(dim_names) == dims else [f"obs[{i}]" for i in range(dims)]
    if "x" in first:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for k in skills:
            for i, ep in enumerate(rollouts[k]):
                t = np.arange(len(ep["x"]))
                axes[0].plot(t, ep["x"], color=colour[k], lw=1, label=f"skill {k}" if i == 0 else None)
                axes[1].plot(t, ep["xvel"], color=colour[k], lw=0.8)
        axes[0].set(xlabel="step", ylabel="x-position")
        axes[1].set(xlabel="step", ylabel="x-velocity")
        axes[0].legend(fontsize=7, ncol=2)
    elif dims == 1:
        fig, ax = plt.subplots(figsize=(6, 4))
        for k in skills:
            for i, ep in enumerate(rollouts[k]):
                ax.plot(ep["obs"][:, 0], color=colour[k], lw=1, label=f"skill {k}" if i == 0 else None)
        ax.set(xlabel="step", ylabel=names[0])
        ax.legend(fontsize=7, ncol=2)
    else:
        a, b = (0, 1) if dims == 2 else telling_dimensions(rollouts)
        fig, axes = plt.subplots(1, 2 if dims > 2 else 1, figsize=(11 if dims > 2 else 6, 4.8), squeeze=False)
        ax = axes[0][0]
        paths = [ep["obs"] for k in skills for ep in rollouts[k]]
        for k in skills:
            for i, ep in enumerate(rollouts[k]):
                p = ep["obs"]
                ax.plot(p[:, a], p[:, b], color=colour[k], lw=1.2, alpha=0.9, label=f"skill {k}" if i == 0 else None)
                ax.scatter(p[-1, a], p[-1, b], color=colour[k], s=25, zorder=3)
            ax.scatter(rollouts[k][0]["obs"][0, a], rollouts[k][0]["obs"][0, b], color="k", s=12, zorder=4)
        _fit(ax, [p[:, a] for p in paths], [p[:, b] for p in paths])
        ax.set(xlabel=names[a], ylabel=names[b])
        if dims == 2:
            ax.set_aspect("equal", adjustable="datalim")
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        else:
            ax.set_title(f"the two dimensions that tell the skills apart best (of {dims})", fontsize=8)
            ax.legend(fontsize=7, ncol=2)
            over_time = axes[0][1]
            for k in skills:
                for ep in rollouts[k]:
                    over_time.plot(ep["obs"][:, a], color=colour[k], lw=1)
            over_time.set(xlabel="step", ylabel=names[a])
    return _finish(fig, out, title)


def _plot_car_paths(plt, rollouts, colour, baseline):
    """Top-down: the track's centre line, each skill's path (a dot at its end), random paths grey."""
    fig, ax = plt.subplots(figsize=(7, 6.5))
    first = rollouts[sorted(rollouts)[0]][0]
    if first.get("track") is not None:
        t = np.vstack([first["track"], first["track"][:1]])
        ax.plot(t[:, 0], t[:, 1], color="0.8", lw=6, zorder=0, label="track")
    for i, eps in enumerate((baseline or {}).values()):
        p = eps[0]["xy"]
        ax.plot(p[:, 0], p[:, 1], color="0.45", lw=0.8, ls="--", label="random actions" if i == 0 else None)
        ax.scatter(p[-1, 0], p[-1, 1], color="0.45", s=10)
    for k in sorted(rollouts):
        for i, ep in enumerate(rollouts[k]):
            p = ep["xy"]
            ax.plot(p[:, 0], p[:, 1], color=colour[k], lw=1.5, label=f"skill {k}" if i == 0 else None)
            ax.scatter(p[-1, 0], p[-1, 1], color=colour[k], s=30, zorder=3)
    ax.scatter(first["xy"][0, 0], first["xy"][0, 1], color="k", marker="x", s=40, zorder=4, label="start")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set(xlabel="x (the car's position)", ylabel="y")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def _finish(fig, out: str, title: str) -> str:
    if title:
        import textwrap

        fig.suptitle("\n".join(textwrap.wrap(title, 70)), fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return out
