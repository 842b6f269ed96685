"""Distributed collection for the off-policy agents: N Ray actors step their own vector envs with
a CPU copy of the acting networks and hand the learner numpy batches of the very rows the agent's
``observe`` would have added to its replay (Ape-X's layout: many collectors, one learner, one
central replay).

A collector is the agent itself, built on the CPU from the run's env spec (or factory) and
configuration, with its replay replaced by a :class:`RecordingBuffer`: it runs the trainer's own
``_collect`` (act, step, real final observations, ``observe``, episode starts), so option state,
skills, SMDP segments and the update-to-data credit are computed by the agent's own code, in the
collector, and no transition can span two episodes. What ``observe`` added, step by step, goes to
the learner as one dict of numpy columns (Ray moves numpy through its object store without
copies); the learner adds it to its C++ replay one vector step at a time, with the gradient steps
owed for it, as the in-process loop does.
"""
from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from ..runtime.config import ConfigError

# The networks each off-policy agent's act() reads: what the learner broadcasts to the collectors.
# (Modules an agent lacks in a configuration, e.g. DIAYN's encoder on vector observations, are skipped.)
ACTING_MODULES: dict[str, tuple[str, ...]] = {
    "soft-option-critic": ("actor", "option_net"),
    "diayn": ("actor", "encoder"),
    "diayn-manager": ("q",),
}


def check_distributable(agent, collectors: Any, sync_every: Any, max_restarts: Any) -> None:
    """A ConfigError naming the argument, before anything starts, when ``agent`` cannot be trained
    with ``collectors`` Ray collectors."""
    for name, value, low in (("collectors", collectors, 0), ("sync_every", sync_every, 1),
                             ("collector_restarts", max_restarts, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"{name}: expected an int >= {low}, got {value!r}")
    if agent.name not in ACTING_MODULES:
        raise ConfigError(f"collectors: distributed collection is for the off-policy agents "
                          f"({', '.join(ACTING_MODULES)}), which learn from a replay; {agent.name} learns on-policy "
                          f"from its own rollouts, so it takes collectors=0, got collectors={collectors}")
    maker = agent.env_maker
    if maker.env_id is None and maker.factory is None:
        kind = "gymnasium.Env instance" if maker.instance is not None else "VectorEnv"
        raise ConfigError(f"collectors: each collector builds its own envs, from an env id or a zero-argument factory; "
                          f"this agent's env is a {kind}, which cannot be copied to another process")


def env_source(agent) -> dict[str, Any]:
    """How a collector rebuilds the agent's envs: the recorded spec of an id (its kwargs, wrappers
    and env modules), or the factory (pickled by Ray) with the wrapper chain."""
    maker = agent.env_maker
    if maker.env_id is not None:
        return {"spec": maker.spec()}
    return {"factory": maker.factory, "wrappers": maker.wrappers, "env_module": maker.env_module}


def acting_weights(agent) -> dict[str, dict[str, np.ndarray]]:
    """The acting networks' state dicts as numpy arrays on the host (what crosses the object store)."""
    mods = agent.modules()
    return {name: {k: v.detach().cpu().numpy() for k, v in mods[name].state_dict().items()}
            for name in ACTING_MODULES[agent.name] if name in mods}


def load_acting_weights(agent, weights: dict[str, dict[str, np.ndarray]]) -> None:
    import torch

    mods = agent.modules()
    for name, state in weights.items():
        mods[name].load_state_dict({k: torch.tensor(v) for k, v in state.items()})


class RecordingBuffer:
    """Stands in for a collector agent's replay: keeps what ``observe`` adds, and how many rows
    each vector step added, until :meth:`take`."""

    prioritized = False

    def __init__(self):
        self.adds: list[dict[str, np.ndarray]] = []
        self.rows_per_step: list[int] = []
        self._rows = 0

    def add(self, **columns: Any) -> None:
        columns = {k: np.asarray(v) for k, v in columns.items()}
        n = len(next(iter(columns.values()))) if columns else 0
        self.adds.append({k: np.array(v, copy=True) for k, v in columns.items()})
        self._rows += n

    def __len__(self) -> int:
        return self._rows

    def end_step(self) -> None:
        self.rows_per_step.append(self._rows - sum(self.rows_per_step))

    def take(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """(columns of every row added, concatenated; rows added per vector step), emptied."""
        columns = ({k: np.concatenate([a[k] for a in self.adds]) for k in self.adds[0]} if self.adds else {})
        per_step = np.asarray(self.rows_per_step, dtype=np.int64)
        self.adds, self.rows_per_step, self._rows = [], [], 0
        return columns, per_step


class _Episodes:
    """What the trainer's ``_collect`` needs of its stats: the finished episodes, a stop flag."""

    def __init__(self):
        self.episodes: list[tuple[float, int]] = []
        self.stop = False


class Collector:
    """One collector (a Ray actor in a run; a plain object in tests): the agent ``algo`` built on
    the CPU from ``source`` and ``config``, seeded ``seed``, its replay a RecordingBuffer. It acts
    only with weights the learner sent (its first ``collect`` carries them), so a replacement
    (``generation`` > 0: built again from these small arguments after its predecessor died) never
    acts with freshly initialised networks, and steps new episodes (its seed moved by the
    generation), not a replay of its predecessor's."""

    def __init__(self, algo: str, source: dict[str, Any], config: dict[str, Any], seed: int, total_steps: int,
                 index: int = 0, generation: int = 0):
        import torch

        from ..agents import ALGORITHMS
        from ..runtime.envs import EnvMaker

        torch.set_num_threads(1)
        self.index = index
        seed = seed + 1_000_003 * int(generation)  # a replacement: new episodes, not a replay of the dead collector's
        maker = (EnvMaker.from_spec(source["spec"]) if "spec" in source else
                 EnvMaker(source["factory"], wrappers=source["wrappers"], env_module=source["env_module"]))
        config = dict(config)
        config["buffer_size"] = max(1, int(config.get("batch_size", 1)))  # never sampled: keep it small
        cls = ALGORITHMS[algo]
        self.agent = cls(maker, seed=seed, device="cpu", threads=1, config=config)
        self.agent.total_steps = total_steps
        self.agent.buffer = self.recorder = RecordingBuffer()
        self.version: int | None = None  # the learner's update count of the weights it acts with

    def collect(self, vector_steps: int, learner_step: int, weights: dict | None, version: int) -> dict[str, Any]:
        """Step the envs ``vector_steps`` times with the newest weights given (``weights``, policy
        ``version``; None: keep the current ones); returns the rows ``observe`` added (columns and
        rows per vector step), the gradient steps owed per vector step, the finished episodes and
        the weights' version the batch was collected with."""
        from ..runtime.trainer import _collect

        t0 = time.perf_counter()
        if weights is not None:
            load_acting_weights(self.agent, weights)
            self.version = version
        elif self.version is None:  # a restarted process, asked by a request sent before it died
            return {"need_weights": True, "collector": self.index, "pid": os.getpid()}
        agent = self.agent
        # the learner's step count rules schedules (learning_starts, epsilon) and the credit's start
        agent.global_step = max(agent.global_step, int(learner_step))
        stats = _Episodes()
        credit = np.zeros(vector_steps)
        ends: list[tuple[float, int, int, int]] = []  # (return, length, sub-env, vector step)
        for t in range(vector_steps):
            before = agent.update_credit
            done_before = len(stats.episodes)
            step = _collect(agent, stats, None)
            self.recorder.end_step()
            credit[t] = agent.update_credit - before
            for i in np.flatnonzero(step["dones"]):
                ret, length = stats.episodes[done_before]
                ends.append((ret, length, int(i), t))
                done_before += 1
        agent.update_credit = 0.0
        columns, per_step = self.recorder.take()
        return {"columns": columns, "rows_per_step": per_step, "credit": credit, "episodes": ends,
                "steps": vector_steps * agent.config.num_envs, "version": self.version, "collector": self.index,
                "busy_s": time.perf_counter() - t0, "pid": os.getpid()}

    def ping(self) -> int:
        return os.getpid()
