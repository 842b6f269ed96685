"""Replay buffers on the C++ column storage.

``ReplayBuffer`` samples uniformly, ``PrioritizedReplayBuffer`` proportionally to
(|delta| + eps)^alpha with importance weights. Either can carry option tags
(``num_options=K``): every row then has an int64 ``option`` field and ``sample(B, option=k)``
draws only rows of option k.

``add`` and the sampling core are C++ methods (``hrlkit._core.Replay``); this module declares
the spec, converts to torch, and saves/loads. ``device="cuda"`` gives the GPU-resident twin of
either class (``hrlkit._device_replay``): same arguments, same file format, CUDA tensors out.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import struct
from typing import Any, BinaryIO, Mapping

import numpy as np

from . import _core, _device_replay
from ._io import atomic_write
from ._validate import INT64_MAX, UINT64_MAX, check_float, check_int, describe, to_numpy

__all__ = ["ReplayBuffer", "PrioritizedReplayBuffer", "SUPPORTED_DTYPES", "to_bytes", "from_bytes_like"]

SUPPORTED_DTYPES = ("float32", "float64", "int64", "int32", "uint8", "bool")
_RESERVED = ("indices", "weights")

# The replay file: a prefix (magic, format version, header length, file length), the JSON
# header, one block per column (its first `size` rows, C order) then the priorities of those
# rows (prioritized buffers), and last the SHA-256 of every byte before it. The digest is
# checked over the whole file before the header is trusted or anything is allocated.
_MAGIC = b"HRLKITRB"
_FORMAT_VERSION = 2
_VERSION = struct.Struct("<8sI")  # magic, format version: the part every version shares
_PREFIX = struct.Struct("<8sIQQ")  # magic, format version, header length, file length
_DIGEST = hashlib.sha256().digest_size
_CHUNK = 1 << 20


def _normalize_spec(spec: Any, num_options: int | None) -> list[tuple[str, tuple[int, ...], str]]:
    if not isinstance(spec, Mapping) or not spec:
        raise ValueError(f"spec: expected a non-empty dict {{name: (shape, dtype)}}, got {describe(spec)}")
    fields = []
    for name, entry in spec.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"spec: field names must be identifiers, got {name!r}")
        if name in _RESERVED:
            raise ValueError(f"spec: field name {name!r} is reserved for sampled batches (reserved: {_RESERVED})")
        if name == "option" and num_options is not None:
            raise ValueError("spec: 'option' is added automatically when num_options is given; remove it from spec")
        if not isinstance(entry, (tuple, list)) or len(entry) != 2:
            raise ValueError(f"spec[{name!r}]: expected (shape, dtype), got {describe(entry)}")
        shape, dtype = entry
        if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
            shape = (int(shape),)
        if not isinstance(shape, (tuple, list)) or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and 0 < s <= INT64_MAX for s in shape
        ):
            raise ValueError(f"spec[{name!r}]: expected a shape tuple of positive ints (below 2**63), got {shape!r}")
        try:
            dt = np.dtype(dtype)
        except TypeError as exc:
            raise ValueError(f"spec[{name!r}]: unknown dtype {dtype!r}; expected one of {SUPPORTED_DTYPES}") from exc
        if dt.name not in SUPPORTED_DTYPES:
            raise ValueError(f"spec[{name!r}]: unsupported dtype {dt.name}; expected one of {SUPPORTED_DTYPES}")
        fields.append((name, tuple(int(s) for s in shape), dt.name))
    if num_options is not None:
        fields.append(("option", (), "int64"))
    return fields


def _checked_layout(capacity: Any, spec: Any, num_options: Any) -> tuple[int, list, int]:
    """The checks of capacity, spec and num_options that every constructor (host and device)
    and ``load`` share: (capacity, fields, num_options or 0)."""
    capacity = check_int("capacity", capacity, minimum=1, maximum=INT64_MAX)
    num_options = check_int("num_options", num_options, minimum=1, maximum=INT64_MAX, allow_none=True)
    return capacity, _normalize_spec(spec, num_options), num_options or 0


def _fresh_seed(seed: int | None) -> int:
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0])
    return check_int("seed", seed, minimum=0, maximum=UINT64_MAX)


class ReplayBuffer(_core.Replay):
    """Uniform replay over a fixed-capacity ring of named columns.

    Args:
        capacity: number of rows kept; the oldest is overwritten when full.
        spec: ``{name: (shape, dtype)}``, dtype one of ``SUPPORTED_DTYPES``.
        num_options: tag every row with an option id in ``[0, num_options)`` (field ``option``).
        seed: seed of the buffer's own sampling stream (random when None).
        device: None or "cpu" for host memory; "cuda" / "cuda:N" returns the device-resident
            twin (rows, tree and sampling on the GPU; ``sample`` returns CUDA tensors).

    ``add(**fields)`` takes one row (each field of its shape) or a batch of n rows (a leading
    dimension n on every field). Values are cast to the field dtype under numpy's 'same_kind'
    rule (float64 into float32 is fine; float into int is not).
    """

    _prioritized = False
    _HEADER_KEYS: tuple[str, ...] = ()  # the keys of _header_extra()

    def __new__(cls, *args: Any, device: Any = None, **kwargs: Any):
        if _device_replay.cuda_device(device) is not None:
            twin = _device_replay.DevicePrioritizedReplayBuffer if cls._prioritized else _device_replay.DeviceReplayBuffer
            return twin(*args, device=device, **kwargs)
        return super().__new__(cls)

    def __init__(self, capacity: int, spec: Mapping[str, Any], *, num_options: int | None = None, seed: int | None = None,
                 device: Any = None):
        self._init_core(**self._checked_args(capacity, spec, num_options=num_options, seed=seed))

    @classmethod
    def _checked_args(cls, capacity: Any, spec: Any, *, num_options: Any = None, seed: Any = None) -> dict:
        """The constructor's checks, giving ``_init_core``'s arguments. ``load`` passes a file's
        header through them too, so a header gets the checks and messages of ``ReplayBuffer(...)``."""
        capacity, fields, num_options = _checked_layout(capacity, spec, num_options)
        return {"capacity": capacity, "fields": fields, "num_options": num_options, "seed": _fresh_seed(seed)}

    def _init_core(self, capacity: int, fields, num_options: int, seed: int) -> None:
        super().__init__(capacity, fields, num_options, False, 0.6, 1e-6, seed)
        self._fields = fields

    # ---- introspection ------------------------------------------------------------------
    @property
    def spec(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """The fields, including ``option`` for a tagged buffer."""
        return {name: (shape, dtype) for name, shape, dtype in self._fields}

    def count(self, option: int | None = None) -> int:
        """Rows stored, of one option when ``option`` is given."""
        option = check_int("option", option, minimum=0, allow_none=True)
        return _core.Replay.count(self, -1 if option is None else option)

    def __repr__(self) -> str:
        tags = f", num_options={self.num_options}" if self.num_options else ""
        return f"{type(self).__name__}(capacity={self.capacity}, size={len(self)}{tags}, fields={list(self.spec)})"

    def to(self, device: Any):
        """This buffer on ``device``: itself for 'cpu', else a device-resident copy."""
        dev = _device_replay.cuda_device(device)
        if dev is None:
            return self
        twin = _device_replay.DevicePrioritizedReplayBuffer if self._prioritized else _device_replay.DeviceReplayBuffer
        self.lock()
        try:
            return twin.from_host(self, dev)
        finally:
            self.unlock()

    # ---- sampling -----------------------------------------------------------------------
    def sample(self, batch_size: int, *, option: int | None = None, as_torch: bool = False, device: Any = None) -> dict:
        """Draw ``batch_size`` rows with replacement: a dict of arrays plus ``indices``.

        ``option=k`` draws only rows of option k (tagged buffers). ``as_torch`` returns torch
        tensors sharing the sampled arrays' memory (moved to ``device`` when given).
        """
        return self._sample(batch_size, option, 0.0, as_torch, device)

    def _sample(self, batch_size, option, beta, as_torch, device) -> dict:
        if type(batch_size) is not int or batch_size < 1:
            batch_size = check_int("batch_size", batch_size, minimum=1)
        if option is not None:
            option = check_int("option", option, minimum=0)
        batch = _core.Replay.sample(self, batch_size, -1 if option is None else option, beta)
        return _to_torch(batch, device) if as_torch else batch

    def get(self, indices: Any, *, as_torch: bool = False, device: Any = None) -> dict:
        """Rows at the given slot indices (e.g. the ``indices`` of an earlier sample)."""
        idx = _check_indices(indices)
        batch = _core.Replay.gather(self, idx)
        return _to_torch(batch, device) if as_torch else batch

    # ---- save / load --------------------------------------------------------------------
    def _header_extra(self) -> dict:
        """Constructor arguments beyond capacity, spec and num_options, as saved in the header."""
        return {}

    def save(self, path: str | os.PathLike | BinaryIO) -> None:
        """Write the buffer (rows, ring position, priorities, RNG state) to ``path``.

        The file is written to a temporary name beside ``path``, synced, then renamed over it,
        so ``path`` always holds either the old file or the complete new one. ``path`` may also
        be an open binary file (e.g. ``io.BytesIO``), written from its current position. The file
        ends with a SHA-256 digest of all its other bytes, which :meth:`load` checks first.
        """
        if hasattr(path, "write"):
            return self._write(path, None)
        path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"path: directory {directory!r} does not exist")
        self._write(None, path)

    def _write(self, file: BinaryIO | None, path: str | None) -> None:
        """Serialize under the buffer's lock into ``file``, or atomically into ``path``."""
        self.lock()
        try:
            size = len(self)
            payload = [self.column(i)[:size] for i in range(len(self._fields))]
            if self.prioritized:
                payload.append(self.priorities()[:size])
            tagged = self.num_options > 0
            header = json.dumps({
                "class": type(self).__name__,
                "capacity": self.capacity,
                # the constructor's own spec: a tagged buffer adds its `option` field itself
                "spec": {n: [list(s), d] for n, s, d in self._fields if not (tagged and n == "option")},
                "num_options": self.num_options or None,
                **self._header_extra(),
                "size": size,
                "position": self.position,
                "max_priority": self.max_priority,
                "rng_state": [int(x) for x in self.rng_state()],
            }).encode()
            length = _PREFIX.size + len(header) + sum(a.nbytes for a in payload) + _DIGEST
            digest = hashlib.sha256()
            with contextlib.nullcontext(file) if path is None else atomic_write(path) as f:
                for part in [_PREFIX.pack(_MAGIC, _FORMAT_VERSION, len(header), length), header, *map(_bytes, payload)]:
                    digest.update(part)
                    f.write(part)
                f.write(digest.digest())
        finally:
            self.unlock()

    @classmethod
    def load(cls, path: str | os.PathLike | BinaryIO, *, seed: int | None = None, device: Any = None) -> "ReplayBuffer":
        """Read a buffer written by :meth:`save` from a path, or from an open binary file
        (read from its current position to its end). ``seed`` reseeds the sampling stream;
        by default the saved stream continues where it stopped. ``device="cuda"`` loads it into
        a device-resident buffer.

        The file's SHA-256 digest is checked before anything in it is used, and its header goes
        through the constructor's checks; a file that fails any check raises ValueError naming
        it (format 1 files, which carry no digest over their header, are refused)."""
        _device_replay.cuda_device(device)  # bad arguments fail before the file is read
        seed = None if seed is None else _fresh_seed(seed)
        if hasattr(path, "read"):
            name = getattr(path, "name", None)
            return cls._load(path, repr(name) if isinstance(name, str) else f"<{type(path).__name__}>", seed, device)
        path = os.fspath(path)
        with open(path, "rb") as f:
            return cls._load(f, repr(path), seed, device)

    @classmethod
    def _load(cls, f: BinaryIO, where: str, seed: int | None, device: Any) -> "ReplayBuffer":
        buf = cls._read(f, where, seed)
        return buf.to(device) if device is not None else buf

    @classmethod
    def _read(cls, f: BinaryIO, where: str, seed: int | None) -> "ReplayBuffer":
        """A new buffer from ``f`` (its position to its end), ``where`` naming it in errors. The
        file is read twice: once to check its digest before anything is allocated, once into
        the new buffer, checking that the bytes read are the bytes checked."""

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
        args, size, position, max_priority, rng_state = cls._parse_header(header_bytes, bad)
        row_bytes = [math.prod(shape) * np.dtype(dt).itemsize for _, shape, dt in args["fields"]]
        body = size * (sum(row_bytes) + (4 if cls._prioritized else 0))
        if _PREFIX.size + header_len + body + _DIGEST != length:
            raise bad(f"is corrupt: its header declares {body} bytes of rows, the file holds "
                      f"{length - _PREFIX.size - header_len - _DIGEST}")

        buf = cls.__new__(cls)
        try:
            buf._init_core(**args)
        except ValueError as exc:  # the core's checks of the sizes the header declares
            raise bad(f"has an invalid header: {exc}") from None
        except MemoryError as exc:
            raise MemoryError(f"path: {where}: {exc}") from None
        targets = [buf.column(i)[:size] for i in range(len(args["fields"]))]
        if cls._prioritized:
            targets.append(np.empty(size, np.float32))
        for dst in targets:
            view = _bytes(dst)
            if f.readinto(view) != view.nbytes:
                raise bad("is truncated: it ended while being read")
            reread.update(view)
        if reread.digest() != digest:
            raise bad("changed while being read: its contents no longer match its SHA-256 checksum")
        try:
            buf.restore(size, position, max_priority, targets[-1] if cls._prioritized else None)
            if seed is None:
                buf.set_rng_state(rng_state)
            else:
                buf.reseed(seed)
        except ValueError as exc:
            raise bad(f"has an invalid header: {exc}") from None
        return buf

    @classmethod
    def _parse_header(cls, header_bytes: bytes, bad) -> tuple[dict, int, int, float, list[int]]:
        """The header's constructor arguments, checked by the constructor's own checks, and the
        saved state (size, position, max_priority, RNG state); ``bad`` makes the errors."""
        try:
            header = json.loads(header_bytes, object_pairs_hook=_unique_keys)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise bad(f"has a corrupt header ({exc})") from None
        if not isinstance(header, dict):
            raise bad(f"has a corrupt header (expected a JSON object, got {describe(header)})")
        saved_class = header.get("class")
        if saved_class != cls.__name__:
            if saved_class in ("ReplayBuffer", "PrioritizedReplayBuffer"):
                raise bad(f"holds a {saved_class}, expected a {cls.__name__}; use {saved_class}.load")
            raise bad(f"has a corrupt header (class {describe(saved_class)})")
        extra = cls._HEADER_KEYS
        expected = {"class", "capacity", "spec", "num_options", "size", "position", "max_priority", "rng_state", *extra}
        if set(header) != expected:
            raise bad(f"has a corrupt header (missing keys {sorted(expected - set(header))}, "
                      f"unexpected keys {sorted(set(header) - expected)})")
        try:
            args = cls._checked_args(header["capacity"], header["spec"], num_options=header["num_options"], seed=0,
                                     **{k: header[k] for k in extra})
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


class PrioritizedReplayBuffer(_device_replay.BetaProperty, ReplayBuffer):
    """Proportional prioritized replay (Schaul et al., 2016).

    Rows are drawn with probability P(i) = p_i / sum_j p_j, p_i = (|delta_i| + eps)^alpha, by
    stratified sampling (one draw per equal slice of the total priority). New rows enter with
    the largest priority seen so far. Batches carry ``weights`` = (N P(i))^-beta / max_j w_j, the
    max over the rows that could be drawn (over option k's rows with ``option=k``).
    """

    _prioritized = True
    _HEADER_KEYS = ("alpha", "beta", "eps")

    def __init__(
        self,
        capacity: int,
        spec: Mapping[str, Any],
        *,
        alpha: float = 0.6,
        beta: float = 0.4,
        eps: float = 1e-6,
        num_options: int | None = None,
        seed: int | None = None,
        device: Any = None,
    ):
        self._init_core(**self._checked_args(capacity, spec, alpha=alpha, beta=beta, eps=eps, num_options=num_options,
                                             seed=seed))

    @classmethod
    def _checked_args(cls, capacity: Any, spec: Any, *, alpha: Any = 0.6, beta: Any = 0.4, eps: Any = 1e-6,
                      num_options: Any = None, seed: Any = None) -> dict:
        args = super()._checked_args(capacity, spec, num_options=num_options, seed=seed)
        return {**args, "alpha": check_float("alpha", alpha, low=0.0), "beta": check_float("beta", beta, low=0.0),
                "eps": check_float("eps", eps, low=0.0)}

    def _init_core(self, capacity, fields, num_options, seed, *, alpha=0.6, beta=0.4, eps=1e-6) -> None:
        _core.Replay.__init__(self, capacity, fields, num_options, True, alpha, eps, seed)
        self._fields = fields
        self._beta = beta

    def sample(
        self,
        batch_size: int,
        *,
        option: int | None = None,
        beta: float | None = None,
        as_torch: bool = False,
        device: Any = None,
    ) -> dict:
        """Draw ``batch_size`` rows by priority: arrays plus ``indices`` and ``weights``."""
        beta = self._beta if beta is None else check_float("beta", beta, low=0.0)
        return self._sample(batch_size, option, beta, as_torch, device)

    def update_priorities(self, indices: Any, td_errors: Any) -> None:
        """Set p_i = (|td_i| + eps)^alpha for the given slots (batched; numpy or torch)."""
        if (
            type(indices) is np.ndarray
            and type(td_errors) is np.ndarray
            and indices.dtype.kind in "iu"
            and td_errors.dtype.kind == "f"
            and indices.ndim == 1
        ):  # fast path: the core checks lengths, ranges and finiteness before it changes anything
            _core.Replay.update_priorities(self, indices, td_errors)
            return
        idx = _check_indices(indices)
        td = to_numpy("td_errors", td_errors)
        if td.dtype.kind not in "fiu":
            raise TypeError(f"td_errors: expected real numbers, got {describe(td)}")
        if td.ndim == 2 and td.shape[1] == 1:  # a (B, 1) column of TD errors
            td = td[:, 0]
        _core.Replay.update_priorities(self, idx, td.astype(np.float64, copy=False))

    def _header_extra(self) -> dict:
        return {"alpha": self.alpha, "beta": self._beta, "eps": self.eps}


def to_bytes(buffer) -> bytes:
    """A buffer (host or device) in the replay file format, in memory (e.g. inside a checkpoint)."""
    stream = io.BytesIO()
    buffer.save(stream)
    return stream.getvalue()


def from_bytes_like(buffer, blob: bytes):
    """The buffer saved in ``blob``, of ``buffer``'s kind (prioritized or not) and on its device."""
    cls = PrioritizedReplayBuffer if buffer.prioritized else ReplayBuffer
    device = None if isinstance(buffer, ReplayBuffer) else buffer.device
    return cls._load(io.BytesIO(blob), "<bytes>", None, device)


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


def _check_indices(indices: Any) -> np.ndarray:
    idx = to_numpy("indices", indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"indices: expected integers, got {describe(idx)}")
    if idx.ndim != 1:
        raise ValueError(f"indices: expected a 1-D array, got shape {idx.shape}")
    return idx.astype(np.int64, copy=False)


def _to_torch(batch: dict, device: Any) -> dict:
    import torch

    out = {k: torch.from_numpy(v) for k, v in batch.items()}
    if device is not None and torch.device(device).type != "cpu":
        out = {k: v.to(device, non_blocking=True) for k, v in out.items()}
    return out
