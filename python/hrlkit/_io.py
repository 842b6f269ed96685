"""Atomic file writes: nothing a user saved is ever left half-written."""
from __future__ import annotations

import contextlib
import os
from typing import BinaryIO, Iterator


@contextlib.contextmanager
def atomic_write(path: str) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for binary writing; on a clean exit it is synced and
    renamed over ``path``, on an exception it is removed and ``path`` is left as it was."""
    tmp = f"{path}.tmp-{os.getpid()}-{id(path)}"
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
