"""Shared by the benchmark scripts' ``--jobs``: a process pool whose workers do not outlive the
script. A plain ``ProcessPoolExecutor``'s workers keep training when the script that started
them is killed (``kill PID``, a closed terminal, an out-of-memory kill): they go on using the
cores, and every run measured beside them reports a slower wall time. Here each worker watches
its parent and exits when the parent is gone (about a second later)."""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import threading
import time
from typing import Any, Callable

WATCH_PERIOD_S = 1.0


def worker_pool(jobs: int, *, spawn: bool = False, initializer: Callable[..., Any] | None = None,
                initargs: tuple = ()) -> cf.ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` of ``jobs`` workers (``spawn``: started with the spawn method,
    else the platform's default) that each exit when the process that started them exits.
    ``initializer(*initargs)`` runs in each worker first, as ``ProcessPoolExecutor``'s does."""
    return cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn") if spawn else None,
                                  initializer=_start_worker, initargs=(initializer, initargs))


def _start_worker(initializer: Callable[..., Any] | None, initargs: tuple) -> None:
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True, name="exit-with-parent").start()
    if initializer is not None:
        initializer(*initargs)


def _exit_with_parent(parent: int) -> None:
    # an orphan is re-parented (to init or a subreaper), so its parent pid changes
    while os.getppid() == parent:
        time.sleep(WATCH_PERIOD_S)
    os._exit(1)
