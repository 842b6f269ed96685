"""Atomic file writes: nothing a user saved is ever left half-written."""
from __future__ import annotations

import contextlib
import glob
import os
import re
from typing import BinaryIO, Iterator

_TMP = re.compile(r"\.tmp-(\d+)-\d+$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_temporaries(path: str) -> list[str]:
    """Remove ``path``'s temporary files left by saves whose process died (killed mid-write)."""
    removed = []
    for tmp in glob.glob(glob.escape(path) + ".tmp-*"):
        m = _TMP.search(tmp)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
                removed.append(tmp)
    return removed


@contextlib.contextmanager
def atomic_write(path: str) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for binary writing; on a clean exit it is synced and
    renamed over ``path``, on an exception it is removed and ``path`` is left as it was.
    ``path`` must be a regular file or not exist: a rename would replace a device node, a FIFO or
    a directory entry by a regular file."""
    path = os.fspath(path)
    if os.path.lexists(path) and not os.path.isfile(path):
        raise ValueError(f"path: expected a regular file or a new path, got {path!r}, which exists and is not a "
                         f"regular file")
    remove_stale_temporaries(path)
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
