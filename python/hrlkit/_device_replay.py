"""Replay buffers resident on a CUDA device: ``ReplayBuffer(..., device="cuda")``.

Rows live in torch tensors on the GPU; sampling, priority updates and the gather of every field
are single launches of ``hrlkit._cuda`` kernels on torch's current stream, so ``sample`` returns
CUDA tensors and ``update_priorities`` takes them without a host round trip. The priority tree
has the CPU tree's layout (16-ary, per-option sums and mins; csrc/core/tree_math.hpp holds the
node arithmetic both use), so both pick the same rows for the same random numbers.

Host work per call is the ring bookkeeping (position and size live on the host, since the host
decides where rows go). ``validate=False`` on ``add``/``update_priorities`` skips the checks that
need a device-to-host copy (option ids and indices in range, finite TD errors) for training
loops that produce these values themselves.
"""
from __future__ import annotations

import os
from typing import Any, BinaryIO, Mapping

import numpy as np

from . import _core, _cuda_ops
from ._validate import check_float, check_int, describe, dtype_kind

_FAN = _core.TREE_FAN  # the CPU tree's fan-out: both trees share one layout
_STAGE_ROWS = 1024  # adds of up to this many host rows go through pinned staging (async copies)
_KIND_ORDER = {"b": 0, "u": 1, "i": 1, "f": 2}


def _round_up(n: int) -> int:
    return (n + _FAN - 1) // _FAN * _FAN


def _torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64, "int32": torch.int32,
            "uint8": torch.uint8, "bool": torch.bool}[name]


class BetaProperty:
    """The importance-sampling exponent of both prioritized buffers (host and device)."""

    _beta: float

    @property
    def beta(self) -> float:
        """Default importance-sampling exponent of ``sample`` (anneal it towards 1)."""
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        self._beta = check_float("beta", value, low=0.0)
        self._beta_changed()

    def _beta_changed(self) -> None:
        pass


def cuda_device(device: Any):
    """The torch.device for ``device`` when it names a CUDA device, else None."""
    if device is None:
        return None
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {device!r}") from exc
    if dev.type == "cpu":
        return None
    if dev.type != "cuda":
        raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if not _cuda_ops.available():
        raise ValueError(
            f"device: {device!r} needs a GPU and hrlkit._cuda (built where CMake finds nvcc); "
            f"torch sees {'a GPU' if torch.cuda.is_available() else 'no GPU'}, hrlkit._cuda is "
            f"{'built' if _cuda_ops._cuda is not None else 'not built'}"
        )
    return torch.device("cuda", torch.cuda.current_device() if dev.index is None else dev.index)


class DeviceReplayBuffer:
    """Uniform replay with its rows on a CUDA device (see :class:`hrlkit.ReplayBuffer`)."""

    prioritized = False

    def __init__(self, capacity: int, spec: Mapping[str, Any], *, num_options: int | None = None,
                 seed: int | None = None, device: Any = "cuda"):
        from .replay import _checked_layout, _fresh_seed

        capacity, fields, num_options = _checked_layout(capacity, spec, num_options)
        self._setup(capacity, fields, num_options, _fresh_seed(seed), cuda_device(device) or _no_cuda(device))

    def _setup(self, capacity: int, fields, num_options: int, seed: int, device) -> None:
        import torch

        # The host buffer's checks of these sizes (and its messages), before any device memory
        # is taken: a capacity whose bytes overflow 64 bits is a ValueError naming capacity.
        nbytes = _core.required_bytes(capacity, fields, num_options, self.prioritized)
        try:
            self._allocate(capacity, fields, num_options, seed, device)
        except torch.cuda.OutOfMemoryError:
            raise MemoryError(f"capacity: {capacity} rows of these fields need about {nbytes} bytes "
                              f"({nbytes >> 30} GiB), more than {device} could allocate; expected a capacity "
                              "whose rows fit in its memory") from None

    def _allocate(self, capacity: int, fields, num_options: int, seed: int, device) -> None:
        import torch

        self.capacity, self.num_options, self.device = capacity, num_options, device
        self._fields = fields
        self._size = self._pos = 0
        with torch.cuda.device(device):
            self._gen = torch.Generator(device=device)
            self._gen.manual_seed(seed % 2**63)
            rows = _round_up(capacity)
            self._cols = {}
            for name, shape, dt in fields:
                if name == "option":  # padded for the tree's leaf scans; pad rows carry no priority
                    self._option_col = torch.full((rows,), -1, dtype=torch.int64, device=device)
                    self._cols[name] = self._option_col[:capacity]
                else:
                    self._cols[name] = torch.zeros((capacity, *shape), dtype=_torch_dtype(dt), device=device)
            self._names = [name for name, _, _ in fields]
            self._src = [self._cols[k].data_ptr() for k in self._names]
            self._row_bytes = [self._cols[k][0].numel() * self._cols[k].element_size() for k in self._names]
            self._counts = torch.zeros(max(num_options, 1), dtype=torch.int64, device=device)
            self._max_priority = torch.ones(1, dtype=torch.float64, device=device)
            self._beta_dev = torch.zeros(1, dtype=torch.float64, device=device)  # read by the sampling kernel
            self._beta_written: float | None = None
            self._stage_event = None  # pinned staging of host rows (made at the first add of host data)
            self._tree = None
            if self.prioritized or num_options > 0:
                self._build_tree(rows)

    def _build_tree(self, rows: int) -> None:
        import torch

        slots = self.num_options + 1 if self.num_options > 0 else 1
        offsets, strides, total, n = [], [], 0, self.capacity
        while True:
            n = (n + _FAN - 1) // _FAN
            stride = _round_up(n)
            offsets.append(total)
            strides.append(stride)
            total += stride * slots
            if n == 1:
                break
        dev = self.device
        self._leaves = torch.zeros(rows, dtype=torch.float32, device=dev)
        self._sums = torch.zeros(total, dtype=torch.float64, device=dev)
        self._mins = torch.full((total,), float("inf"), dtype=torch.float32, device=dev)
        self._owner = torch.empty(self.capacity, dtype=torch.int32, device=dev)
        tags = self._option_col.data_ptr() if self.num_options > 0 else 0
        self._tree = _cuda_ops._cuda.Tree(self._leaves.data_ptr(), tags, self._sums.data_ptr(), self._mins.data_ptr(),
                                          offsets, strides, slots)

    # ---- introspection ----------------------------------------------------------------------------
    @property
    def spec(self) -> dict[str, tuple[tuple[int, ...], str]]:
        return {name: (shape, dtype) for name, shape, dtype in self._fields}

    @property
    def position(self) -> int:
        return self._pos

    @property
    def generator(self):
        """The device RNG that sampling draws from (register it with a CUDA graph that captures
        ``sample``: ``graph.register_generator_state(buffer.generator)``)."""
        return self._gen

    @property
    def max_priority(self) -> float:
        """Largest |td| + eps seen (new rows enter with it; a host sync)."""
        return float(self._max_priority[0])

    @property
    def nbytes(self) -> int:
        return sum(c.numel() * c.element_size() for c in self._cols.values())

    def __len__(self) -> int:
        return self._size

    def count(self, option: int | None = None) -> int:
        """Rows stored, of one option when ``option`` is given (a host sync)."""
        option = check_int("option", option, minimum=0, allow_none=True)
        if option is None:
            return self._size
        self._check_option("count", option)
        return int(self._counts[option])

    def __repr__(self) -> str:
        tags = f", num_options={self.num_options}" if self.num_options else ""
        return (f"{type(self).__name__}(capacity={self.capacity}, size={len(self)}{tags}, device={self.device}, "
                f"fields={list(self.spec)})")

    def _check_option(self, what: str, option: int) -> None:
        if self.num_options == 0:
            raise ValueError(f"{what}: this buffer has no option tags (created without num_options)")
        if option >= self.num_options:
            raise IndexError(f"{what}: expected an option id in [0, {self.num_options}), got {option}")

    # ---- add --------------------------------------------------------------------------------------
    def add(self, validate: bool = True, **fields: Any) -> None:
        """Append one row or a batch of n rows (numpy, torch CPU or CUDA data); the whole call is
        checked before anything is written. ``validate=False`` skips the option-id range check
        of CUDA data (a host sync)."""
        import torch

        names = self._names
        for key in fields:
            if key not in names:
                raise ValueError(f"add: unknown field '{key}' (expected fields: {', '.join(names)})")
        tensors, n, first = {}, None, None
        for name, shape, dt in self._fields:
            if name not in fields:
                raise ValueError(f"add: missing field '{name}' (expected fields: {', '.join(names)})")
            x = fields[name]
            if not isinstance(x, torch.Tensor):
                x = np.asarray(x)
            kind = dtype_kind(x)
            target = np.dtype(dt).kind
            if kind not in _KIND_ORDER or _KIND_ORDER[kind] > _KIND_ORDER[target]:
                raise TypeError(f"{name}: expected values castable to {dt} (numpy 'same_kind'), got {describe(x)}")
            got = tuple(x.shape)
            if got == shape:
                rows = 1
            elif len(got) == len(shape) + 1 and got[1:] == shape:
                rows = got[0]
            else:
                want = f"{shape} or (n, {', '.join(map(str, shape))})" if shape else "() or (n,)"
                raise ValueError(f"{name}: expected shape {want}, got {got}")
            if n is None:
                n, first = rows, name
            elif rows != n:
                raise ValueError(f"add: fields disagree on the number of rows: '{first}' has {n}, '{name}' has {rows}")
            tensors[name] = x
        if "option" in tensors:
            o = tensors["option"]
            if isinstance(o, torch.Tensor) and o.device.type != "cpu":
                bad = validate and bool(((o < 0) | (o >= self.num_options)).any())
            else:
                o = np.asarray(o.cpu() if isinstance(o, torch.Tensor) else o)
                bad = o.size > 0 and (int(o.min()) < 0 or int(o.max()) >= self.num_options)
            if bad:
                raise IndexError(f"option: expected ids in [0, {self.num_options})")
        if n == 0:
            return
        self._write(tensors, n)

    def _write(self, tensors: dict, n: int) -> None:
        import torch

        cap, dev = self.capacity, self.device
        keep = min(n, cap)  # more rows than capacity: only the newest cap survive
        start = (self._pos + n - keep) % cap
        old_size = self._size
        segments = [(start, min(start + keep, cap), 0)]
        if start + keep > cap:
            segments.append((0, start + keep - cap, cap - start))
        src = {name: torch.as_tensor(tensors[name]).reshape(n, *shape)[n - keep:] for name, shape, _ in self._fields}
        if keep <= _STAGE_ROWS and any(x.device.type == "cpu" for x in src.values()):
            src = self._stage(src, keep)
        if self.num_options > 0:
            for a, b, _ in segments:  # rows that held data lose their old option's count
                hi = min(b, old_size)
                if hi > a:
                    old = self._cols["option"][a:hi]
                    self._counts.index_add_(0, old, torch.full_like(old, -1))
        for a, b, off in segments:  # one copy per field and segment, host or device data alike
            for name, _, _ in self._fields:
                self._cols[name][a:b].copy_(src[name][off:off + b - a], non_blocking=True)
            if self.num_options > 0:
                new = self._cols["option"][a:b]
                self._counts.index_add_(0, new, torch.ones_like(new))
        if self._stage_event is not None:
            self._stage_event.record()
        self._size = min(cap, old_size + n)
        self._pos = (self._pos + n) % cap
        if self._tree is not None:
            mode = 1 if self.prioritized else 2
            self._tree.fill(start, keep, cap, mode, self._max_priority.data_ptr(), self._alpha(),
                            _cuda_ops.stream(dev))

    def _stage(self, src: dict, rows: int) -> dict:
        """Host rows into pinned staging tensors (one per field, reused), so that their copies to
        the device are asynchronous; the previous add's copies must have left the staging first."""
        import torch

        if self._stage_event is None:
            self._stage_event = torch.cuda.Event()
            self._staging = {name: torch.empty((_STAGE_ROWS, *shape), dtype=_torch_dtype(dt), pin_memory=True)
                             for name, shape, dt in self._fields}
        self._stage_event.synchronize()
        out = {}
        for name, x in src.items():
            if x.device.type == "cpu":
                self._staging[name][:rows].copy_(x)
                x = self._staging[name][:rows]
            out[name] = x
        return out

    def _alpha(self) -> float:
        return 1.0

    # ---- sample / get -----------------------------------------------------------------------------
    def sample(self, batch_size: int, *, option: int | None = None, as_torch: bool = True, device: Any = None) -> dict:
        """Draw ``batch_size`` rows with replacement: CUDA tensors plus ``indices``."""
        return self._sample(batch_size, option, None, device)

    def _write_beta(self, beta: float) -> None:
        if beta != self._beta_written:
            self._beta_dev.fill_(beta)  # stream-ordered: the next sample (or graph replay) reads it
            self._beta_written = beta

    def _sample(self, batch_size, option, beta, device) -> dict:
        """beta: None for the buffer's own (already on the device), or an explicit override."""
        import torch

        if type(batch_size) is not int or batch_size < 1:
            batch_size = check_int("batch_size", batch_size, minimum=1)
        if option is not None:
            option = check_int("option", option, minimum=0)
            self._check_option("sample", option)
        if self._size == 0:
            raise ValueError("sample: the buffer is empty; add rows before sampling")
        if option is not None and int(self._counts[option]) == 0:
            raise ValueError(f"sample: option {option} has no rows yet")
        dev = self.device
        rand = torch.rand(batch_size, generator=self._gen, device=dev, dtype=torch.float64)
        idx = torch.empty(batch_size, dtype=torch.int64, device=dev)
        weights = torch.empty(batch_size, dtype=torch.float32, device=dev) if self.prioritized else None
        slot = option if option is not None else self.num_options  # the all-rows slot (0 untagged)
        out = self._outputs(batch_size)
        if self.prioritized:  # a no-op unless the exponent changed since the last write
            self._write_beta(self._beta if beta is None else beta)
        _cuda_ops._cuda.sample(self._tree, slot, batch_size, self._size, rand.data_ptr(), self._beta_dev.data_ptr(),
                               idx.data_ptr(), 0 if weights is None else weights.data_ptr(), self._src,
                               [out[k].data_ptr() for k in self._names], self._row_bytes, _cuda_ops.stream(dev))
        out["indices"] = idx
        if weights is not None:
            out["weights"] = weights
        if device is not None:
            out = {k: v.to(device) for k, v in out.items()}
        return out

    def _outputs(self, n: int) -> dict:
        import torch

        return {name: torch.empty((n, *shape), dtype=_torch_dtype(dt), device=self.device)
                for name, shape, dt in self._fields}

    def _gather(self, idx) -> dict:
        out = self._outputs(idx.shape[0])
        _cuda_ops._cuda.gather(self._src, [out[k].data_ptr() for k in self._names], self._row_bytes, idx.data_ptr(),
                               idx.shape[0], _cuda_ops.stream(self.device))
        return out

    def get(self, indices: Any, *, as_torch: bool = True, device: Any = None) -> dict:
        """Rows at the given slot indices (checked against the rows written: a host sync)."""
        idx = self._indices(indices, validate=True)
        out = self._gather(idx)
        out["indices"] = idx
        return out if device is None else {k: v.to(device) for k, v in out.items()}

    def _indices(self, indices: Any, validate: bool):
        import torch

        if not isinstance(indices, torch.Tensor):
            indices = np.asarray(indices)
        if dtype_kind(indices) not in "iu":
            raise TypeError(f"indices: expected integers, got {describe(indices)}")
        if len(indices.shape) != 1:
            raise ValueError(f"indices: expected a 1-D array, got shape {tuple(indices.shape)}")
        idx = torch.as_tensor(indices).to(device=self.device, dtype=torch.int64).contiguous()
        if validate and idx.numel() and bool(((idx < 0) | (idx >= self._size)).any()):
            raise IndexError(f"indices: expected slots in [0, {self._size}) (rows written), got "
                             f"{int(idx.min())}..{int(idx.max())}")
        return idx

    # ---- moving between host and device ------------------------------------------------------------
    def to(self, device: Any):
        """This buffer on ``device``: itself if already there, else a copy ('cpu' gives the C++ buffer)."""
        dev = cuda_device(device)
        if dev == self.device:
            return self
        host = self._to_host()
        return host if dev is None else host.to(dev)

    def _to_host(self):
        from .replay import PrioritizedReplayBuffer, ReplayBuffer

        cls = PrioritizedReplayBuffer if self.prioritized else ReplayBuffer
        buf = cls.__new__(cls)
        buf._init_core(self.capacity, self._fields, self.num_options, 0, **self._host_kwargs())
        size = self._size
        for i, (name, _, _) in enumerate(self._fields):
            buf.column(i)[:size] = self._cols[name][:size].cpu().numpy()
        leaves = self._leaves[:size].cpu().numpy() if self.prioritized else None
        buf.restore(size, self._pos, self.max_priority, leaves)
        state = self._gen.get_state()  # carried into the host stream so that a round trip keeps going
        buf.reseed(int.from_bytes(bytes(state.tolist()[:8]), "little") ^ int(state.sum()))
        return buf

    def _host_kwargs(self) -> dict:
        return {}

    @classmethod
    def from_host(cls, host, device) -> "DeviceReplayBuffer":
        """A device copy of a C++ buffer (rows, ring position, priorities)."""
        import torch

        buf = cls.__new__(cls)
        buf._init_from(host)
        dev = cuda_device(device) or _no_cuda(device)
        seed = int(np.random.SeedSequence([int(x) for x in host.rng_state()]).generate_state(1, np.uint64)[0]) >> 1
        buf._setup(host.capacity, list(host._fields), host.num_options, seed, dev)
        size = len(host)
        for i, (name, _, _) in enumerate(host._fields):
            buf._cols[name][:size].copy_(torch.from_numpy(np.ascontiguousarray(host.column(i)[:size])))
        buf._size, buf._pos = size, host.position
        if buf.prioritized:
            buf._write_beta(buf._beta)
        if host.num_options > 0 and size:
            opts = buf._cols["option"][:size]
            buf._counts.index_add_(0, opts, torch.ones_like(opts))
        if buf._tree is not None and size:
            if buf.prioritized:
                buf._leaves[:size].copy_(torch.from_numpy(np.ascontiguousarray(host.priorities()[:size])))
                buf._max_priority.fill_(host.max_priority)
            buf._tree.fill(0, size, buf.capacity, 0 if buf.prioritized else 2, buf._max_priority.data_ptr(),
                           buf._alpha(), _cuda_ops.stream(dev))
        return buf

    def _init_from(self, host) -> None:
        pass

    # ---- save / load ---------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike | BinaryIO) -> None:
        """Write the buffer in the C++ buffer's file format (atomic for paths); load it back with
        ``ReplayBuffer.load(path, device=...)`` on either side."""
        self._to_host().save(path)


class DevicePrioritizedReplayBuffer(BetaProperty, DeviceReplayBuffer):
    """Proportional prioritized replay on a CUDA device (see :class:`hrlkit.PrioritizedReplayBuffer`)."""

    prioritized = True

    def __init__(self, capacity: int, spec: Mapping[str, Any], *, alpha: float = 0.6, beta: float = 0.4,
                 eps: float = 1e-6, num_options: int | None = None, seed: int | None = None, device: Any = "cuda"):
        from .replay import _checked_layout, _fresh_seed

        capacity, fields, num_options = _checked_layout(capacity, spec, num_options)
        self.alpha = check_float("alpha", alpha, low=0.0)
        beta = check_float("beta", beta, low=0.0)
        self.eps = check_float("eps", eps, low=0.0)
        self._setup(capacity, fields, num_options, _fresh_seed(seed), cuda_device(device) or _no_cuda(device))
        self.beta = beta

    def _init_from(self, host) -> None:
        self.alpha, self.eps = host.alpha, host.eps
        self._beta = host.beta  # written to the device by from_host once the buffer exists

    def _alpha(self) -> float:
        return self.alpha

    def _host_kwargs(self) -> dict:
        return {"alpha": self.alpha, "beta": self._beta, "eps": self.eps}

    def _beta_changed(self) -> None:
        self._write_beta(self._beta)  # outside any graph capture; sampling reads it on the device

    def priorities(self):
        """The leaves p_i^alpha of the rows written (a device tensor)."""
        return self._leaves[: self._size]

    def sample(self, batch_size: int, *, option: int | None = None, beta: float | None = None,
               as_torch: bool = True, device: Any = None) -> dict:
        """Draw ``batch_size`` rows by priority: CUDA tensors plus ``indices`` and ``weights``."""
        beta = None if beta is None else check_float("beta", beta, low=0.0)
        return self._sample(batch_size, option, beta, device)

    def update_priorities(self, indices: Any, td_errors: Any, *, validate: bool = True) -> None:
        """p_i = (|td_i| + eps)^alpha for the given slots, in one kernel (the last of duplicated
        indices wins). ``validate=False`` skips the range and finiteness checks (host syncs)."""
        import torch

        idx = self._indices(indices, validate)
        if not isinstance(td_errors, torch.Tensor):
            td_errors = np.asarray(td_errors)
        if dtype_kind(td_errors) not in "fiu":
            raise TypeError(f"td_errors: expected real numbers, got {describe(td_errors)}")
        td = torch.as_tensor(td_errors)
        if td.ndim == 2 and td.shape[1] == 1:
            td = td[:, 0]
        if tuple(td.shape) != tuple(idx.shape):
            raise ValueError(f"td_errors: expected shape {tuple(idx.shape)} (one per index), got {tuple(td.shape)}")
        f64 = td.dtype == torch.float64
        td = td.to(device=self.device, dtype=torch.float64 if f64 else torch.float32).contiguous()
        if validate and td.numel() and not bool(torch.isfinite(td).all()):
            raise ValueError("td_errors: expected finite values")
        self._tree.update(idx.data_ptr(), td.data_ptr(), f64, idx.shape[0], self.alpha, self.eps,
                          self._max_priority.data_ptr(), self._owner.data_ptr(), _cuda_ops.stream(self.device))


def _no_cuda(device: Any):
    raise ValueError(f"device: device buffers need a CUDA device, got {device!r}")
