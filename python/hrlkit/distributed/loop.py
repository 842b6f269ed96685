"""The learner's loop with Ray collectors (``learn(..., collectors=N)``, ``hrlkit train --collectors N``).

The in-process loop (:func:`hrlkit.runtime.trainer._run`) steps the envs, then learns, in turn.
Here N :class:`~hrlkit.distributed.collectors.Collector` actors step their own envs while the
learner learns: each collector has ``IN_FLIGHT`` batch requests queued, so it starts the next
batch as soon as it hands one over, and the learner never waits for an env step unless every
collector is behind (the queue also bounds how far ahead they run: the policy lag). A batch is
added to the agent's replay one vector step at a time, each followed by the agent's owed gradient
steps exactly as in-process (``agent.ready()`` then ``agent.update()``), so the update-to-data
ratio, the schedules and the logs keep their meaning. Every ``sync_every`` updates the learner
puts its acting networks in the object store once (``ray.put``) and hands the reference to each
collector with its next request.

A collector that dies (its process killed, its env crashing it) is replaced by a new actor, up
to ``max_restarts`` times per collector; the batch it was collecting is dropped whole, so nothing
half-collected enters the replay and nothing already in it is lost; the replacement gets the
newest weights and starts new episodes. A collector that has used up its restarts is dropped and
the run goes on with the others (an error when none is left). The pool replaces collectors
itself rather than through Ray's actor restarts: with those (Ray 2.60), requests queued to a
restarting actor sometimes neither ran nor failed, and the run waited on them for good.
"""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from typing import Any

import numpy as np

from ..runtime.config import ConfigError, to_dict
from .cluster import cluster_cpus, connect, require_ray
from .collectors import Collector, acting_weights, check_distributable, env_source

IN_FLIGHT = 2  # batch requests queued per collector
BATCH_TRANSITIONS = 64  # transitions per batch (rounded up to whole vector steps)


class CollectorPool:
    """N collector actors, their queued requests and the weights they act with."""

    def __init__(self, agent, n: int, *, sync_every: int, max_restarts: int, total_steps: int,
                 cpus_per_collector: float = 1.0):
        self.ray = ray = connect(what="collectors")
        have = cluster_cpus(ray)
        if n * cpus_per_collector > have:
            raise ConfigError(f"collectors: {n} collectors of {cpus_per_collector:g} CPU each need "
                              f"{n * cpus_per_collector:g} CPUs; the Ray cluster has {have:g}")
        self.agent, self.sync_every, self.max_restarts = agent, sync_every, max_restarts
        self.vector_steps = max(1, math.ceil(BATCH_TRANSITIONS / agent.config.num_envs))
        # a dead actor stays dead (its queued requests fail at once); the pool builds its replacement
        self.actor_cls = ray.remote(num_cpus=cpus_per_collector, max_restarts=0, max_task_retries=0)(Collector)
        self.args = (agent.name, env_source(agent), to_dict(agent.config))
        self.total_steps = total_steps
        self.version = agent.num_updates
        self.weights_ref = ray.put(acting_weights(agent))
        self.actors = {i: self._spawn(i, 0) for i in range(n)}
        self.sent: dict[int, int | None] = {i: None for i in range(n)}  # the weights' version each was last given
        self.pids = self._started()  # each collector's process: a new one is a restart
        self.restarts = 0
        self.deaths = {i: 0 for i in range(n)}  # deaths of each collector's process seen here
        self.last_error = ""
        self.pending: dict[Any, int] = {}
        for i in range(n):
            for _ in range(IN_FLIGHT):
                self._request(i)

    def _spawn(self, i: int, generation: int):
        """Collector i's actor; generation > 0: a replacement (new episodes)."""
        return self.actor_cls.remote(*self.args, self.agent.seed + 7919 * (i + 1), self.total_steps, i, generation)

    def _started(self) -> dict[int, int]:
        """Each collector's pid, once built (a constructor that raises is an error here)."""
        from ray.exceptions import RayActorError

        try:
            return dict(zip(self.actors, self.ray.get([a.ping.remote() for a in self.actors.values()])))
        except RayActorError as exc:
            self.close()
            raise RuntimeError(f"collectors: a collector could not be built ({_last_line(exc)})") from None

    def _request(self, i: int) -> None:
        stale = self.sent[i] != self.version
        ref = self.actors[i].collect.remote(self.vector_steps, self.agent.global_step,
                                           self.weights_ref if stale else None, self.version)
        self.sent[i] = self.version
        self.pending[ref] = i

    def broadcast(self) -> None:
        """Put the learner's acting networks in the object store once; each collector gets the
        reference with its next request."""
        self.weights_ref = self.ray.put(acting_weights(self.agent))
        self.version = self.agent.num_updates

    def next_batch(self) -> dict[str, Any]:
        """The next finished batch of any collector (a new request queued in its place)."""
        from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

        while True:
            if not self.pending:
                raise RuntimeError("collectors: every collector died and used up its restarts "
                                   f"(max_restarts={self.max_restarts}); the run cannot go on; last error: "
                                   f"{self.last_error}")
            (ref,), _ = self.ray.wait(list(self.pending), num_returns=1)
            i = self.pending.pop(ref)
            try:
                batch = self.ray.get(ref)
            except ActorUnavailableError:  # died and being restarted by Ray: its batch is dropped whole
                self.sent[i] = None  # the new process must be sent the weights
                time.sleep(0.05)
                self._request(i)
                continue
            except RayActorError as exc:  # its process died under this request
                self._died(i, exc)
                continue
            except RayTaskError as exc:  # the env or the agent raised: the same error as in-process
                raise exc.as_instanceof_cause() from None
            if self.pids[i] != batch["pid"]:  # a new process: its replacement delivers
                self.pids[i] = batch["pid"]
                self.restarts += 1
            if batch.get("need_weights"):
                self.sent[i] = None
                self._request(i)
                continue
            self._request(i)
            return batch

    def _died(self, i: int, cause: Exception) -> None:
        """Collector i's actor died under a request. Its other queued requests died with it
        (dropped here, so one death counts once); up to ``max_restarts`` times a new actor takes
        its place and is asked again (with the weights: a new process has none), then it is
        dropped. A new actor, not Ray's restart of the old one: see the module's docstring."""
        lost = [ref for ref, j in self.pending.items() if j == i]
        for ref in lost:
            del self.pending[ref]
        self.deaths[i] += 1
        if self.deaths[i] > self.max_restarts:
            self._drop(i, cause)
            return
        with contextlib.suppress(Exception):
            self.ray.kill(self.actors[i], no_restart=True)
        self.actors[i] = self._spawn(i, self.deaths[i])
        self.sent[i] = None
        for _ in range(len(lost) + 1):  # the request that failed, and the others it took with it
            self._request(i)

    def _drop(self, i: int, cause: Exception) -> None:
        """Collector i is dead for good (its restarts used up): the run goes on without it."""
        self.pending = {r: j for r, j in self.pending.items() if j != i}
        self.last_error = f"collector {i}: {_last_line(cause)}"
        self.actors.pop(i, None)
        warnings.warn(f"collector {i} died and used up its restarts (max_restarts={self.max_restarts}); the run goes "
                      f"on with {len(self.actors)} collector(s); last error: {self.last_error}", RuntimeWarning,
                      stacklevel=3)

    def close(self) -> None:
        for actor in self.actors.values():
            with contextlib.suppress(Exception):
                self.ray.kill(actor, no_restart=True)
        self.actors, self.pending = {}, {}


def _last_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else repr(exc)


class _Rates:
    """What the logs show of the distributed run between two log rows."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.since, self.steps, self.updates, self.busy, self.lags = time.perf_counter(), 0, 0, 0.0, []

    def record(self, logger, pool: CollectorPool, excluded: float) -> None:
        wall = max(time.perf_counter() - self.since - excluded, 1e-9)
        logger.record("distributed/collection_sps", self.steps / wall)
        if self.busy > 0:
            logger.record("distributed/collector_sps", self.steps / self.busy)  # one collector's rate while stepping
        logger.record("distributed/learner_updates_per_s", self.updates / wall)
        if self.lags:
            logger.record("distributed/policy_lag", float(np.mean(self.lags)))
            logger.record("distributed/policy_lag_max", float(np.max(self.lags)))
        logger.record("distributed/collectors", len(pool.actors))
        logger.record("distributed/restarts", pool.restarts)
        self.reset()


def distributed_run(agent, collectors: Any, sync_every: Any, max_restarts: Any, cb: Any):
    """The trainer's run function for ``collectors`` Ray collectors, after checking every argument
    (a ConfigError naming it, before anything is written or started)."""
    import functools

    check_distributable(agent, collectors, sync_every, max_restarts)
    require_ray("collectors")
    if cb is not None:
        raise ConfigError("callback: BaseCallback hooks run at every vector step of in-process collection; with "
                          "collectors use a function callback(agent, logged_scalars), called after each log row")
    return functools.partial(run_distributed, collectors=int(collectors), sync_every=int(sync_every),
                             max_restarts=int(max_restarts))


def run_distributed(agent, total_steps, run_dir, *, collectors, sync_every, max_restarts, log_every, eval_every,
                    eval_episodes, checkpoint_every, progress, tensorboard, video, track, cb, log_callback,
                    on_episode_end) -> None:
    """:func:`hrlkit.runtime.trainer._run` with the env steps taken by ``collectors`` Ray actors."""
    import os

    from ..runtime import trainer as tr

    pool = CollectorPool(agent, collectors, sync_every=sync_every, max_restarts=max_restarts, total_steps=total_steps)
    logger = tr._open_logger(agent, run_dir, total_steps, agent.global_step > 0, tensorboard, track)
    ckpt_dir = None if run_dir is None else os.path.join(run_dir, "checkpoints")
    video_dir = os.path.join(run_dir, "videos") if video else None
    log, evaluation, ckpt = (tr.Every(n, agent.global_step)
                             for n in (log_every, eval_every, None if ckpt_dir is None else checkpoint_every))
    stats, rates = tr._Stats(agent), _Rates()
    bar = tr._progress_bar(progress, total_steps, agent.global_step)
    num_envs = agent.config.num_envs
    try:
        while agent.global_step < total_steps and not stats.stop:
            batch = pool.next_batch()
            rates.busy += batch["busy_s"]
            lag = agent.num_updates - batch["version"]
            ends = batch["episodes"]
            columns, per_step, start = batch["columns"], batch["rows_per_step"], 0
            for t, rows in enumerate(per_step):
                if agent.global_step >= total_steps or stats.stop:
                    break
                # one vector step of the batch: its rows into the replay, then the gradient steps owed
                if rows:
                    agent.buffer.add(**{k: v[start:start + rows] for k, v in columns.items()})
                    start += rows
                agent.update_credit += float(batch["credit"][t])
                agent.global_step += num_envs
                rates.steps += num_envs
                rates.lags.append(lag)
                if bar is not None:
                    bar.update(num_envs)
                for ret, length, i, _ in (e for e in ends if e[3] == t):
                    stats.episodes.append((ret, length))
                    env_index = batch["collector"] * num_envs + i  # numbered across collectors
                    if on_episode_end is not None and on_episode_end(agent, env_index, ret, length) is False:
                        stats.stop = True
                if not agent.ready():
                    continue
                stats.add_losses(tr._checked(agent, agent.update()))
                agent.num_updates += 1
                rates.updates += 1
                lag += 1
                if agent.num_updates % sync_every == 0:
                    pool.broadcast()
                with stats.paused():
                    if ckpt.due(agent.global_step):
                        tr._checkpoint(agent, ckpt_dir)
                    if evaluation.due(agent.global_step):
                        tr._evaluate(agent, logger, eval_episodes, video_dir, ckpt_dir)
                if log.due(agent.global_step):
                    _log_row(agent, logger, stats, rates, pool, bar, log_callback)
        if stats.pending():
            _log_row(agent, logger, stats, rates, pool, None, None)
        if evaluation.enabled and evaluation.last != agent.global_step:
            tr._evaluate(agent, logger, eval_episodes, video_dir, ckpt_dir)
        if ckpt_dir is not None:
            tr._checkpoint(agent, ckpt_dir)
    finally:
        pool.close()
        if bar is not None:
            bar.close()
        logger.close()


def _log_row(agent, logger, stats, rates: _Rates, pool: CollectorPool, bar, log_callback) -> None:
    rates.record(logger, pool, stats.excluded)
    scalars = stats.log(logger)
    if bar is not None and "charts/episodic_return" in scalars:
        bar.set_postfix(SPS=f"{scalars['charts/SPS']:.0f}", ret=f"{scalars['charts/episodic_return']:.1f}")
    if log_callback is not None and log_callback(agent, scalars) is False:
        stats.stop = True
