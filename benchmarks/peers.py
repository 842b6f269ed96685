"""The replay buffers hrlkit is measured against, behind one small interface.

- ``SeedListBuffer``: the seed draft's design (a Python list, ``list.pop(0)`` when full,
  ``random.sample`` then ``torch.tensor`` of the rows), rewritten here as the baseline.
- ``NumpyRing``: preallocated numpy columns, a ring index and fancy-index sampling.
- ``Cpprb`` / ``CpprbPrioritized``: cpprb's ReplayBuffer / PrioritizedReplayBuffer.
- ``Hrlkit`` / ``HrlkitPrioritized``: this library.

Every buffer holds obs (17 float32), action (6 float32), reward, next_obs (17 float32), done.
"""
from __future__ import annotations

import random

import numpy as np

OBS, ACT = 17, 6
SPEC = {
    "obs": ((OBS,), np.float32),
    "action": ((ACT,), np.float32),
    "reward": ((), np.float32),
    "next_obs": ((OBS,), np.float32),
    "done": ((), np.bool_),
}
ROW_BYTES = (OBS + ACT + 1 + OBS) * 4 + 1


def make_rows(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "obs": rng.standard_normal((n, OBS), dtype=np.float32),
        "action": rng.standard_normal((n, ACT), dtype=np.float32),
        "reward": rng.standard_normal(n, dtype=np.float32),
        "next_obs": rng.standard_normal((n, OBS), dtype=np.float32),
        "done": rng.random(n) < 0.01,
    }


def one_row(rows: dict, i: int = 0) -> dict:
    return {
        "obs": rows["obs"][i],
        "action": rows["action"][i],
        "reward": float(rows["reward"][i]),
        "next_obs": rows["next_obs"][i],
        "done": bool(rows["done"][i]),
    }


class SeedListBuffer:
    name = "seed list"
    prioritized = False

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.buffer: list = []

    def add_one(self, row: dict) -> None:
        if len(self.buffer) >= self.capacity:
            self.buffer.pop(0)
        self.buffer.append((row["obs"], row["action"], row["reward"], row["next_obs"], row["done"]))

    def add_batch(self, rows: dict) -> None:
        for i in range(len(rows["reward"])):
            self.add_one(one_row(rows, i))

    def fill(self, rows: dict) -> None:
        n = len(rows["reward"])
        while len(self.buffer) < self.capacity:
            i = len(self.buffer) % n
            self.buffer.append((rows["obs"][i], rows["action"][i], float(rows["reward"][i]), rows["next_obs"][i], bool(rows["done"][i])))

    def sample(self, batch_size: int):
        import torch

        batch = random.sample(self.buffer, batch_size)
        obs, act, rew, nxt, done = zip(*batch)
        return (
            torch.tensor(np.array(obs), dtype=torch.float32),
            torch.tensor(np.array(act), dtype=torch.float32),
            torch.tensor(rew, dtype=torch.float32).unsqueeze(-1),
            torch.tensor(np.array(nxt), dtype=torch.float32),
            torch.tensor(done, dtype=torch.float32).unsqueeze(-1),
        )


class NumpyRing:
    name = "numpy ring"
    prioritized = False

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.cols = {k: np.zeros((capacity, *shape), dtype) for k, (shape, dtype) in SPEC.items()}
        self.pos = 0
        self.size = 0
        self.rng = np.random.default_rng(0)

    def add_one(self, row: dict) -> None:
        for k, col in self.cols.items():
            col[self.pos] = row[k]
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def add_batch(self, rows: dict) -> None:
        n = len(rows["reward"])
        idx = (self.pos + np.arange(n)) % self.capacity
        for k, col in self.cols.items():
            col[idx] = rows[k]
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def fill(self, rows: dict) -> None:
        while self.size < self.capacity:
            self.add_batch(rows)

    def sample(self, batch_size: int) -> dict:
        idx = self.rng.integers(0, self.size, batch_size)
        return {k: col[idx] for k, col in self.cols.items()}


class _KeywordBuffer:
    """A buffer taking rows as keyword arrays (cpprb and hrlkit share this surface)."""

    name = ""
    prioritized = False
    index_key = "indices"

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.rb = self._make(capacity)

    def _make(self, capacity: int):
        raise NotImplementedError

    def stored(self) -> int:
        raise NotImplementedError

    def add_one(self, row: dict) -> None:
        self.rb.add(**row)

    def add_batch(self, rows: dict) -> None:
        self.rb.add(**rows)

    def fill(self, rows: dict) -> None:
        while self.stored() < self.capacity:
            self.rb.add(**rows)

    def sample(self, batch_size: int) -> dict:
        return self.rb.sample(batch_size)

    def sample_update(self, batch_size: int, td: np.ndarray) -> None:
        batch = self.rb.sample(batch_size)
        self.rb.update_priorities(batch[self.index_key], self._priorities(td))

    def _priorities(self, td: np.ndarray) -> np.ndarray:
        return td


class Cpprb(_KeywordBuffer):
    name = "cpprb"
    index_key = "indexes"

    def _make(self, capacity: int):
        import cpprb

        env_dict = {"obs": {"shape": OBS}, "action": {"shape": ACT}, "reward": {}, "next_obs": {"shape": OBS}, "done": {}}
        cls = cpprb.PrioritizedReplayBuffer if self.prioritized else cpprb.ReplayBuffer
        return cls(capacity, env_dict)

    def stored(self) -> int:
        return self.rb.get_stored_size()

    def _priorities(self, td: np.ndarray) -> np.ndarray:
        return np.abs(td) + 1e-6  # cpprb takes priorities (it applies alpha itself)


class CpprbPrioritized(Cpprb):
    name = "cpprb PER"
    prioritized = True


class Hrlkit(_KeywordBuffer):
    name = "hrlkit"

    def _make(self, capacity: int):
        import hrlkit

        cls = hrlkit.PrioritizedReplayBuffer if self.prioritized else hrlkit.ReplayBuffer
        return cls(capacity, SPEC, seed=0)

    def stored(self) -> int:
        return len(self.rb)


class HrlkitPrioritized(Hrlkit):
    name = "hrlkit PER"
    prioritized = True


UNIFORM = [SeedListBuffer, NumpyRing, Cpprb, Hrlkit]
PRIORITIZED = [CpprbPrioritized, HrlkitPrioritized]
