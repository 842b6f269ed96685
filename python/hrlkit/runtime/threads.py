"""The torch CPU thread count of a run: one setting, applied the same way by every entry point.

hrlkit's networks are small, so one torch thread per process is the fast choice: more threads
only contend, and beside another process (a second seed, an env worker) they stall at every
update. Large networks (pixel encoders on big batches) can gain from more, when a core is free.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

from .config import ConfigError

DEFAULT_THREADS = 1


def check_threads(threads) -> int:
    """``threads`` as an int >= 1, or a ConfigError naming it."""
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ConfigError(f"threads: expected an int >= 1 (torch CPU threads), got {threads!r}")
    return int(threads)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads, then give back the caller's setting."""
    import torch

    before = torch.get_num_threads()
    if before != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
