"""The replay file: what ``save`` writes and ``load`` reads, for buffers on either storage (a CUDA
storage is copied to host memory and written from there).

Layout: a prefix (magic, format version, header length, file length), the JSON header, one block
per column (its first `size` rows, C order) then the priorities of those rows (prioritized
buffers), and last the SHA-256 of every byte before it. The digest is checked over the whole
file before the header is trusted or anything is allocated, and the header goes through the
constructor's checks.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import math
import os
import struct
from typing import BinaryIO, Callable

import numpy as np

from ._host_storage import HostStorage
from ._io import atomic_write
from ._validate import UINT64_MAX, check_float, check_int, describe

_MAGIC = b"HRLKITRB"
_FORMAT_VERSION = 2
_VERSION = struct.Struct("<8sI")  # magic, format version: the part every version shares
_PREFIX = struct.Struct("<8sIQQ")  # magic, format version, header length, file length
_DIGEST = hashlib.sha256().digest_size
_CHUNK = 1 << 20
_CLASSES = ("ReplayBuffer", "PrioritizedReplayBuffer")


def save(storage: HostStorage, header: dict, path: str | os.PathLike | BinaryIO) -> None:
    """Write ``storage`` with the buffer's ``header`` (class, capacity, spec, num_options and its
    other constructor arguments) to a path (atomically) or into an open binary file."""
    if hasattr(path, "write"):
        return _write(storage, header, path, None)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"path: directory {directory!r} does not exist")
    _write(storage, header, None, path)


def _write(storage: HostStorage, header: dict, file: BinaryIO | None, path: str | None) -> None:
    """Serialize under the storage's lock into ``file``, or atomically into ``path``."""
    storage.lock()
    try:
        size = len(storage)
        payload = [storage.column(i)[:size] for i in range(len(storage.fields))]
        if storage.prioritized:
            payload.append(storage.priorities()[:size])
        text = json.dumps({
            **header,
            "size": size,
            "position": storage.position,
            "max_priority": storage.max_priority,
            "rng_state": [int(x) for x in storage.rng_state()],
        }).encode()
        length = _PREFIX.size + len(text) + sum(a.nbytes for a in payload) + _DIGEST
        digest = hashlib.sha256()
        with contextlib.nullcontext(file) if path is None else atomic_write(path) as f:
            parts = itertools.chain([_PREFIX.pack(_MAGIC, _FORMAT_VERSION, len(text), length), text],
                                    *map(_chunks, payload))
            for part in parts:
                digest.update(part)
                f.write(part)
            f.write(digest.digest())
    finally:
        storage.unlock()


def read(f: BinaryIO, where: str, *, kind: str, extra_keys: tuple[str, ...], prioritized: bool,
         checked_args: Callable[..., dict], new_storage: Callable[[dict], HostStorage],
         seed: int | None) -> tuple[HostStorage, dict]:
    """A host storage from ``f`` (its position to its end) and the constructor arguments its
    header holds; ``where`` names the file in errors. ``kind`` is the buffer class the file must
    hold, ``extra_keys`` its header keys beyond the common ones, ``checked_args`` its
    constructor's checks and ``new_storage`` what allocates the storage.

    The file is read twice: once to check its digest before anything is allocated, once into
    the new storage, checking that the bytes read are the bytes checked."""

    def bad(what: str) -> ValueError:
        return ValueError(f"path: {where} {what}")

    try:
        start = f.tell()
        length = f.seek(0, io.SEEK_END) - start
        f.seek(start)
    except (OSError, ValueError) as exc:
        raise bad(f"cannot be read: expected a seekable binary file ({exc})") from None
    prefix = f.read(_PREFIX.size)
    if len(prefix) < _VERSION.size or prefix[:8] != _MAGIC:
        raise bad("is not an hrlkit replay file (bad magic)")
    version = _VERSION.unpack_from(prefix)[1]
    if version != _FORMAT_VERSION:
        hint = "; format 1 files carry no checksum over their header and are no longer read" if version == 1 else ""
        raise bad(f"has format version {version}, expected {_FORMAT_VERSION}{hint}")
    if len(prefix) != _PREFIX.size or length < _PREFIX.size + _DIGEST:
        raise bad(f"is truncated: {length} bytes")
    _, _, header_len, declared = _PREFIX.unpack(prefix)
    if declared != length:
        raise bad(f"is truncated or has bytes appended: {length} bytes, expected {declared}")
    if header_len > length - _PREFIX.size - _DIGEST:
        raise bad(f"is corrupt: header length {header_len} runs past the end of the file")

    digest = _check_digest(f, prefix, length, bad)
    f.seek(start + _PREFIX.size)
    header_bytes = f.read(header_len)
    reread = hashlib.sha256(prefix + header_bytes)
    args, size, position, max_priority, rng_state = _parse_header(header_bytes, bad, kind, extra_keys, checked_args)
    row_bytes = [math.prod(shape) * np.dtype(dt).itemsize for _, shape, dt in args["fields"]]
    body = size * (sum(row_bytes) + (4 if prioritized else 0))
    if _PREFIX.size + header_len + body + _DIGEST != length:
        raise bad(f"is corrupt: its header declares {body} bytes of rows, the file holds "
                  f"{length - _PREFIX.size - header_len - _DIGEST}")

    try:
        storage = new_storage(args)
    except ValueError as exc:  # the core's checks of the sizes the header declares
        raise bad(f"has an invalid header: {exc}") from None
    except MemoryError as exc:
        raise MemoryError(f"path: {where}: {exc}") from None
    targets = [storage.column(i)[:size] for i in range(len(args["fields"]))]
    if prioritized:
        targets.append(np.empty(size, np.float32))
    for dst in targets:
        for rows in _row_chunks(dst):  # packed rows are not contiguous: read each chunk, then place it
            into = rows if rows.flags.c_contiguous else np.empty(rows.shape, rows.dtype)
            view = _bytes(into)
            if f.readinto(view) != view.nbytes:
                raise bad("is truncated: it ended while being read")
            reread.update(view)
            if into is not rows:
                rows[...] = into
    if reread.digest() != digest:
        raise bad("changed while being read: its contents no longer match its SHA-256 checksum")
    try:
        storage.restore(size, position, max_priority, targets[-1] if prioritized else None)
        if seed is None:
            storage.set_rng_state(rng_state)
        else:
            storage.reseed(seed)
    except ValueError as exc:
        raise bad(f"has an invalid header: {exc}") from None
    return storage, args


def _parse_header(header_bytes: bytes, bad, kind: str, extra_keys: tuple[str, ...],
                  checked_args: Callable[..., dict]) -> tuple[dict, int, int, float, list[int]]:
    """The header's constructor arguments, checked by the constructor's own checks, and the
    saved state (size, position, max_priority, RNG state); ``bad`` makes the errors."""
    try:
        header = json.loads(header_bytes, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise bad(f"has a corrupt header ({exc})") from None
    if not isinstance(header, dict):
        raise bad(f"has a corrupt header (expected a JSON object, got {describe(header)})")
    saved_class = header.get("class")
    if saved_class != kind:
        if saved_class in _CLASSES:
            raise bad(f"holds a {saved_class}, expected a {kind}; use {saved_class}.load")
        raise bad(f"has a corrupt header (class {describe(saved_class)})")
    expected = {"class", "capacity", "spec", "num_options", "size", "position", "max_priority", "rng_state", *extra_keys}
    if set(header) != expected:
        raise bad(f"has a corrupt header (missing keys {sorted(expected - set(header))}, "
                  f"unexpected keys {sorted(set(header) - expected)})")
    try:
        args = checked_args(header["capacity"], header["spec"], num_options=header["num_options"], seed=0,
                            **{k: header[k] for k in extra_keys})
        size = check_int("size", header["size"], minimum=0, maximum=args["capacity"])
        position = check_int("position", header["position"], minimum=0, maximum=args["capacity"] - 1)
        max_priority = check_float("max_priority", header["max_priority"])
        rng_state = header["rng_state"]
        if not isinstance(rng_state, list) or len(rng_state) != 4:
            raise ValueError(f"rng_state: expected a list of 4 integers, got {describe(rng_state)}")
        rng_state = [check_int(f"rng_state[{i}]", x, minimum=0, maximum=UINT64_MAX) for i, x in enumerate(rng_state)]
    except (TypeError, ValueError) as exc:
        raise bad(f"has an invalid header: {exc}") from None
    return args, size, position, max_priority, rng_state


def _check_digest(f: BinaryIO, prefix: bytes, length: int, bad) -> bytes:
    """The SHA-256 that ends a replay file of ``length`` bytes, checked against the file's other
    bytes (``f`` is just past ``prefix``); read in chunks, so a file is never held in memory."""
    checked = hashlib.sha256(prefix)
    remaining = length - _PREFIX.size - _DIGEST
    while remaining > 0:
        chunk = f.read(min(remaining, _CHUNK))
        if not chunk:
            raise bad("is truncated: it ended while being read")
        checked.update(chunk)
        remaining -= len(chunk)
    digest = f.read(_DIGEST)
    if checked.digest() != digest:
        raise bad("is corrupt: its SHA-256 checksum does not match its contents")
    return digest


def _unique_keys(pairs: list) -> dict:
    """A JSON object, refusing repeated keys (json keeps the last silently)."""
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"repeated keys {sorted({k for k in keys if keys.count(k) > 1})}")
    return dict(pairs)


def _bytes(a: np.ndarray) -> np.ndarray:
    """A flat uint8 view of a C-contiguous array (zero rows included), for I/O and checksums."""
    return a.reshape(-1).view(np.uint8)


_CHUNK_BYTES = 8 << 20


def _row_chunks(a: np.ndarray) -> list[np.ndarray]:
    """``a`` whole when it is C-contiguous, else consecutive row ranges of about 8 MB each (a
    buffer's fields are strided views of its packed rows): the file holds each field's rows
    back to back in C order either way."""
    if a.flags.c_contiguous or len(a) == 0:
        return [a]
    step = max(1, _CHUNK_BYTES // max(1, a[0].nbytes))
    return [a[r:r + step] for r in range(0, len(a), step)]


def _chunks(a: np.ndarray):
    """The bytes of ``a`` in C order, as flat uint8 arrays (views where ``a`` is contiguous,
    otherwise one 8 MB copy at a time)."""
    for rows in _row_chunks(a):
        yield _bytes(rows if rows.flags.c_contiguous else np.ascontiguousarray(rows))

