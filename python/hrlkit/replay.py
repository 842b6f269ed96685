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
import io
import json
import os
import struct
import zlib
from typing import Any, BinaryIO, Mapping

import numpy as np

from . import _core, _device_replay
from ._io import atomic_write
from ._validate import check_float, check_int, describe, to_numpy

__all__ = ["ReplayBuffer", "PrioritizedReplayBuffer", "SUPPORTED_DTYPES", "to_bytes", "from_bytes_like"]

SUPPORTED_DTYPES = ("float32", "float64", "int64", "int32", "uint8", "bool")
_RESERVED = ("indices", "weights")
_MAGIC = b"HRLKITRB"
_FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sIQ")  # magic, format version, header length


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
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in shape
        ):
            raise ValueError(f"spec[{name!r}]: expected a shape tuple of positive ints, got {shape!r}")
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


def _fresh_seed(seed: int | None) -> int:
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0])
    return check_int("seed", seed, minimum=0)


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

    def __new__(cls, *args: Any, device: Any = None, **kwargs: Any):
        if _device_replay.cuda_device(device) is not None:
            twin = _device_replay.DevicePrioritizedReplayBuffer if cls._prioritized else _device_replay.DeviceReplayBuffer
            return twin(*args, device=device, **kwargs)
        return super().__new__(cls)

    def __init__(self, capacity: int, spec: Mapping[str, Any], *, num_options: int | None = None, seed: int | None = None,
                 device: Any = None):
        capacity = check_int("capacity", capacity, minimum=1)
        num_options = check_int("num_options", num_options, minimum=1, allow_none=True)
        fields = _normalize_spec(spec, num_options)
        self._init_core(capacity, fields, num_options or 0, _fresh_seed(seed))

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
        return {}

    def save(self, path: str | os.PathLike | BinaryIO) -> None:
        """Write the buffer (rows, ring position, priorities, RNG state) to ``path``.

        The file is written to a temporary name beside ``path``, synced, then renamed over it,
        so ``path`` always holds either the old file or the complete new one. ``path`` may also
        be an open binary file (e.g. ``io.BytesIO``), written from its current position.
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
            prios = self.priorities()
            if prios is not None:
                payload.append(prios[:size])
            header = {
                "class": type(self).__name__,
                "capacity": self.capacity,
                "fields": [[n, list(s), d] for n, s, d in self._fields],
                "num_options": self.num_options,
                "size": size,
                "position": self.position,
                "max_priority": self.max_priority,
                "rng_state": [int(x) for x in self.rng_state()],
                "blocks": [{"nbytes": int(a.nbytes), "crc32": zlib.crc32(_bytes(a))} for a in payload],
                **self._header_extra(),
            }
            blob = json.dumps(header).encode()
            with contextlib.nullcontext(file) if path is None else atomic_write(path) as f:
                f.write(_HEADER.pack(_MAGIC, _FORMAT_VERSION, len(blob)))
                f.write(blob)
                for a in payload:
                    f.write(_bytes(a))
        finally:
            self.unlock()

    @classmethod
    def load(cls, path: str | os.PathLike | BinaryIO, *, seed: int | None = None, device: Any = None) -> "ReplayBuffer":
        """Read a buffer written by :meth:`save` from a path, or from an open binary file
        (read from its current position to its end). ``seed`` reseeds the sampling stream;
        by default the saved stream continues where it stopped. ``device="cuda"`` loads it into
        a device-resident buffer."""
        _device_replay.cuda_device(device)  # a bad device fails before the file is read
        if hasattr(path, "read"):
            buf = cls._read(path, getattr(path, "name", type(path).__name__), seed)
        else:
            path = os.fspath(path)
            with open(path, "rb") as f:
                buf = cls._read(f, path, seed)
        return buf.to(device) if device is not None else buf

    @classmethod
    def _read(cls, f: BinaryIO, path: str, seed: int | None) -> "ReplayBuffer":
        start = f.tell()
        file_size = f.seek(0, io.SEEK_END) - start  # bytes from here to the end
        f.seek(start)
        head = f.read(_HEADER.size)
        if len(head) != _HEADER.size or head[:8] != _MAGIC:
            raise ValueError(f"path: {path!r} is not an hrlkit replay file (bad magic)")
        _, version, hlen = _HEADER.unpack(head)
        if version != _FORMAT_VERSION:
            raise ValueError(f"path: {path!r} has format version {version}, expected {_FORMAT_VERSION}")
        if hlen > file_size - _HEADER.size:
            raise ValueError(f"path: {path!r} is truncated or corrupt (header length {hlen})")
        try:
            header = json.loads(f.read(hlen))
            saved_class = header["class"]
            fields = [(str(n), tuple(int(x) for x in s), str(d)) for n, s, d in header["fields"]]
            blocks = [(int(b["nbytes"]), int(b["crc32"])) for b in header["blocks"]]
            capacity, num_options = int(header["capacity"]), int(header["num_options"])
            size, position = int(header["size"]), int(header["position"])
            max_priority = float(header["max_priority"])
            rng_state = [int(x) for x in header["rng_state"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"path: {path!r} has a corrupt header ({exc})") from exc
        if saved_class != cls.__name__:
            raise ValueError(f"path: {path!r} holds a {saved_class}, expected a {cls.__name__}; use {saved_class}.load")
        expected = sum(nbytes for nbytes, _ in blocks)
        if file_size != _HEADER.size + hlen + expected:
            raise ValueError(
                f"path: {path!r} is truncated or corrupt: {file_size} bytes, expected {_HEADER.size + hlen + expected}"
            )
        buf = cls.__new__(cls)
        buf._init_core(capacity, fields, num_options, 0, **buf._core_kwargs_from_header(header))
        targets = [buf.column(i)[:size] for i in range(len(fields))]
        prios = buf.priorities()
        if prios is not None:
            targets.append(np.empty(size, np.float32))
        if len(targets) != len(blocks):
            raise ValueError(f"path: {path!r} is corrupt: {len(blocks)} data blocks, expected {len(targets)}")
        for i, (dst, (nbytes, crc)) in enumerate(zip(targets, blocks)):
            view = _bytes(dst)
            if view.nbytes != nbytes or f.readinto(view) != view.nbytes:
                raise ValueError(f"path: {path!r} is corrupt: data block {i} has the wrong size")
            if zlib.crc32(view) != crc:
                raise ValueError(f"path: {path!r} is corrupt: checksum mismatch in data block {i}")
        try:
            buf.restore(size, position, max_priority, targets[-1] if prios is not None else None)
        except ValueError as exc:
            raise ValueError(f"path: {path!r} is corrupt: {exc}") from exc
        if seed is None:
            buf.set_rng_state(rng_state)
        else:
            buf.reseed(_fresh_seed(seed))
        return buf

    def _core_kwargs_from_header(self, header: dict) -> dict:
        return {}


class PrioritizedReplayBuffer(_device_replay.BetaProperty, ReplayBuffer):
    """Proportional prioritized replay (Schaul et al., 2016).

    Rows are drawn with probability P(i) = p_i / sum_j p_j, p_i = (|delta_i| + eps)^alpha, by
    stratified sampling (one draw per equal slice of the total priority). New rows enter with
    the largest priority seen so far. Batches carry ``weights`` = (N P(i))^-beta / max_j w_j, the
    max over the rows that could be drawn (over option k's rows with ``option=k``).
    """

    _prioritized = True

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
        capacity = check_int("capacity", capacity, minimum=1)
        num_options = check_int("num_options", num_options, minimum=1, allow_none=True)
        alpha = check_float("alpha", alpha, low=0.0)
        beta = check_float("beta", beta, low=0.0)
        eps = check_float("eps", eps, low=0.0)
        fields = _normalize_spec(spec, num_options)
        self._init_core(capacity, fields, num_options or 0, _fresh_seed(seed), alpha=alpha, beta=beta, eps=eps)

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

    def _core_kwargs_from_header(self, header: dict) -> dict:
        try:
            return {"alpha": float(header["alpha"]), "beta": float(header["beta"]), "eps": float(header["eps"])}
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"corrupt replay file header: missing prioritization parameters ({exc})") from exc


def to_bytes(buffer) -> bytes:
    """A buffer (host or device) in the replay file format, in memory (e.g. inside a checkpoint)."""
    stream = io.BytesIO()
    buffer.save(stream)
    return stream.getvalue()


def from_bytes_like(buffer, blob: bytes):
    """The buffer saved in ``blob``, of ``buffer``'s kind (prioritized or not) and on its device."""
    cls = PrioritizedReplayBuffer if buffer.prioritized else ReplayBuffer
    device = None if isinstance(buffer, ReplayBuffer) else buffer.device
    return cls.load(io.BytesIO(blob), device=device)


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
