"""One process per run directory: an exclusive lock held while a run trains."""
from __future__ import annotations

import contextlib
import errno
import glob
import os
from typing import Iterator

from .config import ConfigError

LOCK_NAME = ".lock"


@contextlib.contextmanager
def run_lock(run_dir: str) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir`` for the block; a second process that asks for it gets
    a ConfigError naming the directory and the holder's pid. The lock is the kernel's (flock), so
    it dies with its process: a run killed with -9 leaves no stale lock behind."""
    import fcntl

    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise ConfigError(f"run_dir: {run_dir!r} is in use by another hrlkit process (pid {holder}); wait for it "
                              f"or pass another directory") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def has_checkpoint(run_dir: str) -> bool:
    ckpt = os.path.join(run_dir, "checkpoints")
    return bool(glob.glob(os.path.join(glob.escape(ckpt), "*.pt")))


def clear_unstarted_run(run_dir: str) -> None:
    """Remove what a run stopped before its first checkpoint wrote (its config and logs), so the
    run can start again in the same directory; the caller holds the lock."""
    for name in ("config.json", "progress.csv"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(run_dir, name))
    for events in glob.glob(os.path.join(glob.escape(run_dir), "events.out.tfevents.*")):
        os.remove(events)
