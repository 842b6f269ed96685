"""The one training loop every hrlkit agent runs under."""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
import warnings
from collections import defaultdict
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from .callbacks import BaseCallback, as_callback
from .config import ConfigError, to_dict
from .envs import check_finite_step, real_next_obs, step_envs
from .errors import NonFiniteError
from .evaluation import check_video_support, evaluate
from .logger import Logger
from .rundir import clear_unstarted_run, has_checkpoint, run_lock
from .threads import torch_threads


def default_run_dir(agent, root: str = "runs") -> str:
    env = agent.env_id.replace("/", "-")
    return os.path.join(root, f"{env}__{agent.name}__{agent.seed}__{int(time.time())}")


def train(
    agent,
    total_steps: int,
    *,
    run_dir: str | None = None,
    tensorboard_log: str | None = None,
    reset_num_timesteps: bool | None = None,
    log_every: int = 10_000,
    eval_every: int | None = 25_000,
    eval_episodes: int = 10,
    checkpoint_every: int | None = 50_000,
    progress: bool = True,
    tensorboard: bool = True,
    video: bool = False,
    track: Mapping[str, Any] | None = None,
    callback: Any = None,
    on_episode_end: Any = None,
    collectors: int = 0,
    sync_every: int = 20,
    collector_restarts: int = 3,
) -> str | None:
    """Train ``agent`` until ``agent.global_step`` reaches ``total_steps``; returns the run
    directory (None when the run is kept in memory).

    ``total_steps`` is the run's total, as ``hrlkit train --total-steps`` and ``--resume`` count
    it: a second call continues the same run, so ``learn(1000)`` then ``learn(3000)`` trains 1000
    then 2000 more steps, and ``learn(N)`` on an agent already at step N trains nothing (a
    warning says so; nothing is written). ``reset_num_timesteps=False`` (SB3's name) makes
    ``total_steps`` a number of steps to train MORE, as SB3's ``learn`` counts them;
    ``reset_num_timesteps=True`` is refused on a trained agent (hrlkit never resets its step
    count: schedules, logs and checkpoints follow it).

    Where the run goes: ``run_dir`` (``config.json``, ``progress.csv``, TensorBoard events unless
    ``tensorboard=False``, ``checkpoints/``; a directory already holding another run is refused);
    or ``tensorboard_log`` (SB3's name), a folder in which a run directory
    ``{env}__{algo}__{seed}__{time}`` is made (``hrlkit train``'s default is ``runs``); with
    neither, the run directory of this agent's previous ``learn`` if it had one (the run
    continues there), else nothing is written to disk: the log rows stay in memory
    (``agent.logger.rows``), no checkpoint is taken, and evaluations (``eval_every``) still run
    and are logged but no ``best.pt`` is kept.

    Every ``log_every`` env steps the scalars are logged; every ``eval_every`` steps a greedy
    evaluation over ``eval_episodes`` episodes is logged (and, with ``video``, recorded); every
    ``checkpoint_every`` steps, and at the end, a checkpoint is written to
    ``run_dir/checkpoints``. Checkpoints are taken right after an update, when an on-policy
    agent's rollout is empty, so resuming from one continues exactly. ``track``: the Logger's
    Weights & Biases settings (needs a run directory).

    ``callback``: a :class:`~hrlkit.runtime.callbacks.BaseCallback` or a list of them (their hooks
    run at every vector step; see :mod:`hrlkit.runtime.callbacks`), or a function called as
    ``callback(agent, logged_scalars)`` after each log row, which may return False to stop.
    ``on_episode_end``, if given, is called as
    ``on_episode_end(agent, env_index, episode_return, episode_length)`` whenever a sub-env's
    episode ends (before the agent's next action) and may return False to stop.

    ``collectors``: with N > 0 (off-policy agents; needs ``pip install "hrlkit[ray]"``), N Ray
    actors collect with their own envs and the learner broadcasts its acting networks every
    ``sync_every`` updates; a dead collector is restarted up to ``collector_restarts`` times (see
    :mod:`hrlkit.distributed.loop`). 0, the default, collects in this process.
    """
    for name, value, low in (("total_steps", total_steps, 1), ("log_every", log_every, 1), ("eval_episodes", eval_episodes, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"{name}: expected an int >= {low}, got {value!r}")
    for name, value in (("eval_every", eval_every), ("checkpoint_every", checkpoint_every)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
            raise ConfigError(f"{name}: expected an int >= 1 or None, got {value!r}")
    cb, log_callback = _split_callback(callback)
    run = _run
    if collectors != 0:  # Ray collectors: checked here, before anything is written
        from ..distributed.loop import distributed_run

        run = distributed_run(agent, collectors, sync_every, collector_restarts, cb)
    target = _target_step(agent, int(total_steps), reset_num_timesteps)
    run_dir = _resolve_run_dir(agent, run_dir, tensorboard_log)
    if run_dir is None:
        for name, asked in (("video", video), ("track", track is not None)):
            if asked:
                raise ConfigError(f"{name}: needs a run directory to write to; pass run_dir= or tensorboard_log=")
    if video:
        check_video_support(agent)
    if agent.global_step >= target:
        agent.run_dir = run_dir
        warnings.warn(f"learn({total_steps}): the agent is already at step {agent.global_step}, so nothing was trained; "
                      f"learn(N) trains until global_step reaches N: pass a larger N, or reset_num_timesteps=False to "
                      f"train N more steps", stacklevel=3)
        return run_dir
    lock = contextlib.nullcontext() if run_dir is None else run_lock(run_dir)
    with lock, torch_threads(agent.threads):  # the run's threads; the caller's given back after
        run(agent, target, run_dir, log_every=log_every, eval_every=eval_every, eval_episodes=eval_episodes,
             checkpoint_every=checkpoint_every, progress=progress, tensorboard=tensorboard, video=video, track=track,
             cb=cb, log_callback=log_callback, on_episode_end=on_episode_end)
    return run_dir


def _split_callback(callback: Any) -> tuple[BaseCallback | None, Any]:
    """``learn``'s ``callback`` as (a BaseCallback hooked at every step, a function called after
    each log row): one of them, or neither."""
    if callable(callback) and not isinstance(callback, BaseCallback):
        return None, callback
    return as_callback(callback), None


def _target_step(agent, total_steps: int, reset_num_timesteps: bool | None) -> int:
    if reset_num_timesteps is False:
        return agent.global_step + total_steps
    if reset_num_timesteps and agent.global_step > 0:
        raise ConfigError(f"reset_num_timesteps: hrlkit never resets an agent's step count (at {agent.global_step}); "
                          f"learn(N) trains until global_step reaches N, learn(N, reset_num_timesteps=False) trains "
                          f"N more steps")
    return total_steps


def _resolve_run_dir(agent, run_dir: str | None, tensorboard_log: str | None) -> str | None:
    """The run directory of this ``learn`` call (see :func:`train`), or None for a run in memory."""
    previous = getattr(agent, "run_dir", None)
    if run_dir is not None:
        if tensorboard_log is not None:
            raise ConfigError("tensorboard_log: pass run_dir or tensorboard_log, not both")
        return os.fspath(run_dir)
    if tensorboard_log is not None:
        root = os.fspath(tensorboard_log)
        if previous is not None and os.path.dirname(os.path.abspath(previous)) == os.path.abspath(root):
            return previous  # a second learn() continues its run
        return default_run_dir(agent, root)
    return previous


def _run(agent, total_steps, run_dir, *, log_every, eval_every, eval_episodes, checkpoint_every, progress, tensorboard,
         video, track, cb, log_callback, on_episode_end) -> None:
    resuming = agent.global_step > 0
    logger = _open_logger(agent, run_dir, total_steps, resuming, tensorboard, track)
    ckpt_dir = None if run_dir is None else os.path.join(run_dir, "checkpoints")
    video_dir = os.path.join(run_dir, "videos") if video else None
    log, evaluation, ckpt = (Every(n, agent.global_step)
                             for n in (log_every, eval_every, None if ckpt_dir is None else checkpoint_every))
    if resuming and isinstance(logger, Logger) and evaluation.enabled:
        _evaluation_skipped_by_a_stop(agent, logger, evaluation, eval_episodes, video_dir, ckpt_dir)
    stats = _Stats(agent)
    bar = _progress_bar(progress, total_steps, agent.global_step)
    if cb is not None:
        cb.init_callback(agent)
        cb.on_training_start({"self": agent, "total_steps": total_steps, "callback": cb}, globals())
    rollout_started = False
    try:
        while agent.global_step < total_steps and not stats.stop:
            # 1. one vector step of every env: act, step, hand the agent its transitions
            if cb is not None and not rollout_started:
                cb.on_rollout_start()
                rollout_started = True
            step = _collect(agent, stats, on_episode_end)
            if bar is not None:
                bar.update(agent.config.num_envs)
            if cb is not None:
                cb.update_locals(step)
                with stats.paused():
                    if not cb.on_step():
                        stats.stop = True
                        break
            # 2. a learning step when the agent has what it needs (a rollout, its update credit)
            if not agent.ready():
                continue
            if cb is not None:
                cb.on_rollout_end()
                rollout_started = False
            stats.add_losses(_checked(agent, agent.update()))
            agent.num_updates += 1
            # 3. what is due: checkpoint (right after an update, so a resume continues exactly), evaluation, log
            with stats.paused():
                if ckpt.due(agent.global_step):
                    _checkpoint(agent, ckpt_dir)
                if evaluation.due(agent.global_step):
                    _evaluate(agent, logger, eval_episodes, video_dir, ckpt_dir)
            if log.due(agent.global_step):
                scalars = stats.log(logger)
                if bar is not None and "charts/episodic_return" in scalars:
                    bar.set_postfix(SPS=f"{scalars['charts/SPS']:.0f}", ret=f"{scalars['charts/episodic_return']:.1f}")
                if log_callback is not None and log_callback(agent, scalars) is False:
                    stats.stop = True
        # the end: what is left to log, a last evaluation, a last checkpoint
        if stats.pending():
            stats.log(logger)
        if evaluation.enabled and evaluation.last != agent.global_step:
            _evaluate(agent, logger, eval_episodes, video_dir, ckpt_dir)
        if ckpt_dir is not None:
            _checkpoint(agent, ckpt_dir)
        if cb is not None:
            cb.on_training_end()
    finally:
        if bar is not None:
            bar.close()
        logger.close()


def _open_logger(agent, run_dir: str | None, total_steps: int, resuming: bool, tensorboard: bool, track):
    """The run's logger (``agent.logger``, as SB3 names it): a :class:`MemoryLogger` for a run
    without a directory (a second ``learn`` goes on adding rows to the first one's), else a
    :class:`Logger` of the run directory, which is checked and set up first."""
    if run_dir is None:
        agent.run_dir, agent.total_steps = None, total_steps
        previous = getattr(agent, "logger", None)
        agent.logger = previous if isinstance(previous, MemoryLogger) else MemoryLogger()
        return agent.logger
    _start_run_dir(agent, run_dir, total_steps, resuming)
    logger = Logger(run_dir, tensorboard=tensorboard, **({} if track is None else {"track": track}))
    if resuming:
        logger.truncate_after(agent.global_step)
    agent.logger = logger
    return logger


class MemoryLogger:
    """The logger of a run without a run directory: ``record`` / ``dump`` as :class:`Logger`'s,
    the rows (``{"global_step": step, name: value, ...}``, one per ``dump``) kept in ``rows``."""

    def __init__(self):
        self.run_dir = None
        self.rows: list[dict[str, float]] = []
        self._pending: dict[str, float] = {}

    def record(self, name: str, value: float) -> None:
        self._pending[name] = float(value)

    def record_many(self, values: Mapping[str, float]) -> None:
        self._pending.update({k: float(v) for k, v in values.items()})

    def dump(self, step: int) -> dict[str, float]:
        if not self._pending:
            return {}
        self.rows.append({"global_step": step, **self._pending})
        out, self._pending = self._pending, {}
        return out

    def close(self) -> None:
        pass


def _start_run_dir(agent, run_dir: str, total_steps: int, resuming: bool) -> None:
    """Check ``run_dir`` is free for this run (a run stopped before its first checkpoint starts
    again), then write config.json for a new run."""
    meta_path = os.path.join(run_dir, "config.json")
    if not resuming and os.path.exists(meta_path):
        if has_checkpoint(run_dir):
            raise ConfigError(
                f"run_dir: {run_dir!r} already holds a run; pass a new directory, or resume it (hrlkit train --resume)"
            )
        clear_unstarted_run(run_dir)
    agent.run_dir = run_dir
    agent.total_steps = total_steps
    os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
    if not resuming or not os.path.exists(meta_path):
        with open(meta_path, "w") as f:
            json.dump(
                {"algo": agent.name, "env_id": agent.env_id, "env_kwargs": agent.env_kwargs,
                 "env": agent.env_maker.spec(), "seed": agent.seed,
                 "threads": agent.threads, "total_steps": total_steps, "config": to_dict(agent.config)},
                f, indent=2,
            )


def _collect(agent, stats: "_Stats", on_episode_end) -> dict[str, Any]:
    """One step of the vector env: the agent acts, sees each transition with its real final
    observation, and sub-envs whose episode ended start a new one. Returns the step (callbacks'
    ``locals``, under SB3's names)."""
    obs = agent.obs
    actions = agent.act(obs)
    next_obs, rewards, terminated, truncated, infos = step_envs(agent, actions)
    done = np.logical_or(terminated, truncated)
    real_next = real_next_obs(next_obs, infos, done)
    check_finite_step(agent, rewards, real_next, next_obs)
    agent.observe(obs, actions, rewards, real_next, terminated, truncated)
    agent.episode_return += rewards
    agent.episode_length += 1
    for i in np.flatnonzero(done):
        stats.episodes.append((float(agent.episode_return[i]), int(agent.episode_length[i])))
        if on_episode_end is not None and on_episode_end(agent, int(i), *stats.episodes[-1]) is False:
            stats.stop = True
        agent.episode_return[i] = 0.0
        agent.episode_length[i] = 0
    agent.obs = next_obs
    agent.global_step += agent.config.num_envs
    if done.any():
        agent.on_episode_start(done)
    return {"actions": actions, "new_obs": next_obs, "rewards": rewards, "dones": done, "infos": infos}


class Every:
    """An event due every ``n`` env steps (never when ``n`` is None), counted from ``start``."""

    def __init__(self, n: int | None, start: int):
        self.n, self.enabled, self.last = n, n is not None, -1
        self.next = None if n is None else (start // n + 1) * n

    def due(self, step: int) -> bool:
        if self.next is None or step < self.next:
            return False
        self.next, self.last = (step // self.n + 1) * self.n, step
        return True


class _Stats:
    """What is logged between two log rows: losses, finished episodes, and the SPS clock (which
    leaves out the time spent in evaluations and checkpoints)."""

    def __init__(self, agent):
        self.agent, self.stop = agent, False
        self.losses: dict[str, list] = defaultdict(list)
        self.episodes: list[tuple[float, int]] = []
        self.since, self.since_step, self.excluded = time.perf_counter(), agent.global_step, 0.0

    def add_losses(self, stats: dict) -> None:
        for k, v in stats.items():
            self.losses[k].append(v)

    def pending(self) -> bool:
        return bool(self.losses or self.episodes)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.excluded += time.perf_counter() - t0

    def log(self, logger: Logger) -> dict[str, float]:
        now = time.perf_counter()
        sps = (self.agent.global_step - self.since_step) / max(now - self.since - self.excluded, 1e-9)
        scalars = _log(self.agent, logger, self.losses, self.episodes, sps)
        self.since, self.since_step, self.excluded = now, self.agent.global_step, 0.0
        return scalars


def _checked(agent, stats: dict) -> dict:
    _check_finite_losses(agent, stats)
    return stats


def _check_finite_losses(agent, stats: dict) -> None:
    """Stop at the first NaN/inf loss, before it is logged or anything is saved. Host floats and
    CPU tensors are read here; values an agent left on a GPU (no sync per update) are read when
    logged, and parameters are checked before every checkpoint."""
    for k, v in stats.items():
        if hasattr(v, "detach"):
            if v.device.type != "cpu" or bool(torch.isfinite(v).all()):
                continue
        elif math.isfinite(v):
            continue
        raise NonFiniteError(f"{k}: non-finite loss ({float(v)}) at step {agent.global_step}; training stopped, "
                             f"checkpoints/latest.pt keeps the last finite one")


def _progress_bar(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)


def _log(agent, logger: Logger, losses, episodes, sps: float) -> dict[str, float]:
    if episodes:
        rets, lens = zip(*episodes)
        logger.record("charts/episodic_return", float(np.mean(rets)))
        logger.record("charts/episodic_length", float(np.mean(lens)))
        logger.record("charts/episodes", len(episodes))
    logger.record("charts/SPS", sps)
    logger.record("charts/updates", agent.num_updates)
    for k, vals in losses.items():
        logger.record(k, _mean(vals))
    logger.record_many(agent.log_stats())
    losses.clear()
    episodes.clear()
    return logger.dump(agent.global_step)


def _mean(vals: list) -> float:
    """Mean of logged values: floats, or 0-dim tensors that an agent left on its device so that
    its update needs no host sync (they are read here, once per log interval)."""
    if vals and hasattr(vals[0], "detach"):
        mean = float(torch.stack([v.detach().reshape(()).double() for v in vals]).mean())
    else:
        mean = float(np.mean(vals))
    if not math.isfinite(mean):  # a GPU agent's loss, read here for the first time
        raise NonFiniteError(f"non-finite loss ({mean}) logged; training stopped, checkpoints/latest.pt keeps the "
                             f"last finite one")
    return mean


def _evaluate(agent, logger: Logger, episodes: int, video_dir: str | None, ckpt_dir: str | None) -> None:
    """Greedy evaluation into the logs; the best so far is also kept as checkpoints/best.pt (when
    the run has a directory)."""
    returns = evaluate(agent, episodes, video_dir=video_dir)
    mean, std = float(np.mean(returns)), float(np.std(returns))
    agent.last_evaluation = {"step": agent.global_step, "mean_return": mean, "std_return": std,
                             "episodes": len(returns)}
    logger.record("eval/mean_return", mean)
    logger.record("eval/std_return", std)
    logger.dump(agent.global_step)
    if mean > getattr(agent, "best_eval_return", -np.inf):
        agent.best_eval_return = mean
        if ckpt_dir is not None:
            agent.save(os.path.join(ckpt_dir, "best.pt"))


def _evaluation_skipped_by_a_stop(agent, logger: Logger, evaluation: "Every", episodes: int, video_dir: str | None,
                                  ckpt_dir: str | None) -> None:
    """At a resume: the evaluation due at the checkpoint's step where the run stopped after that
    checkpoint and before the evaluation (the trainer checkpoints first), so that a resumed run
    evaluates at the same steps, with the same results, as one that never stopped. Evaluations
    fall on the first update at or after each multiple of ``eval_every``: the one of the
    checkpoint's multiple is missing when the logs have none between that multiple and the
    checkpoint. An evaluation already logged at the checkpoint's step is not repeated at the end."""
    step, n = agent.global_step, evaluation.n
    made = [s for s in logger.steps_with("eval/mean_return") if s // n == step // n]
    if not made and step >= n:
        _evaluate(agent, logger, episodes, video_dir, ckpt_dir)
        made = [step]
    if step in made:
        evaluation.last = step


def _checkpoint(agent, ckpt_dir: str) -> None:
    path = os.path.join(ckpt_dir, f"step_{agent.global_step}.pt")
    agent.save(path)
    latest = os.path.join(ckpt_dir, "latest.pt")
    tmp = latest + ".tmp"
    if os.path.exists(tmp):
        os.remove(tmp)
    os.link(path, tmp)  # a second name for the same file, swapped in atomically
    os.replace(tmp, latest)
