"""A replay buffer's storage in host memory: the C++ core (``hrlkit._core.Replay``).

The core holds the column ring, the priority tree and the sampling stream, and it writes,
samples, gathers and updates priorities in C++ with the GIL released, under its own lock. Its
``add``, ``sample``, ``gather`` and ``count`` are the storage's methods as they are (no Python
frame on the hot paths); the core refuses bad input tersely, and the buffer has
``hrlkit._replay_checks`` name what was wrong.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._replay_checks import check_index_array, check_priority_update
from ._validate import to_numpy

_CPU = None  # torch.device("cpu"), made at the first use


class HostStorage(_core.Replay):
    """Rows, priority tree and sampling stream in host memory (numpy views out)."""

    def __init__(self, capacity: int, fields: list, num_options: int, seed: int, *, prioritized: bool = False,
                 alpha: float = 0.6, eps: float = 1e-6, prefault: bool = False):
        super().__init__(capacity, fields, num_options, prioritized, alpha, eps, seed, prefault)
        self.fields = fields

    @property
    def device(self):
        global _CPU
        if _CPU is None:
            import torch

            _CPU = torch.device("cpu")
        return _CPU

    @property
    def generator(self) -> None:
        """None: the core draws from its own xoshiro256** stream (``rng_state``)."""
        return None

    def set_beta(self, beta: float) -> None:
        """Nothing to do: the core takes beta with every ``sample``."""

    def indices(self, indices: Any) -> np.ndarray:
        """Slot indices as the int64 array ``gather`` takes (checked: integers, 1-D)."""
        idx = to_numpy("indices", indices)
        check_index_array(idx)
        return idx.astype(np.int64, copy=False)

    def update_priorities(self, indices: Any, td_errors: Any, validate: bool = True) -> None:
        """The core's update of the given slots. ``validate`` is moot: the core checks lengths,
        ranges and finiteness in its own loop before it changes anything."""
        if (
            type(indices) is np.ndarray
            and type(td_errors) is np.ndarray
            and indices.dtype.kind in "iu"
            and td_errors.dtype.kind == "f"
            and indices.ndim == 1
            and td_errors.ndim == 1
        ):  # the fast path: arrays the core takes as they are
            _core.Replay.update_priorities(self, indices, td_errors)
            return
        idx = to_numpy("indices", indices)
        td = check_priority_update(idx, to_numpy("td_errors", td_errors))
        _core.Replay.update_priorities(self, idx.astype(np.int64, copy=False), td.astype(np.float64, copy=False))

    def deliver(self, batch: dict, as_torch: bool, device: Any) -> dict:
        """A batch as the caller asked for it: numpy arrays, or torch tensors sharing their memory
        (moved to ``device`` when it is not the CPU)."""
        if not as_torch:
            return batch
        import torch

        out = {k: torch.from_numpy(v) for k, v in batch.items()}
        if device is not None and torch.device(device).type != "cpu":
            out = {k: v.to(device, non_blocking=True) for k, v in out.items()}
        return out

    def to_host(self) -> "HostStorage":
        return self
