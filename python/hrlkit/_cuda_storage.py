"""A replay buffer's storage on a CUDA device: ``ReplayBuffer(..., device="cuda")``.

Rows live in torch tensors on the GPU; sampling, priority updates and the gather of every field
are single launches of ``hrlkit._cuda`` kernels on torch's current stream, so ``sample`` returns
CUDA tensors and ``update_priorities`` takes them without a host round trip. The priority tree
has the CPU tree's layout (16-ary, per-option sums and mins; csrc/core/tree_math.hpp holds the
node arithmetic both use), so both pick the same rows for the same random numbers.

Host work per call is the ring bookkeeping (position and size live on the host, since the host
decides where rows go). The kernels cannot refuse anything, so this storage runs the buffer's
checks (``hrlkit._replay_checks``) before it launches them; ``validate=False`` on ``add`` and
``update_priorities`` skips the ones that need a device-to-host copy (option ids and indices in
range, finite TD errors) for training loops that produce these values themselves.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import _core, _cuda_ops
from ._host_storage import HostStorage
from ._replay_checks import (
    check_index_array,
    check_index_range,
    check_priority_update,
    check_priority_values,
    check_rows,
    check_rows_to_draw,
)

_FAN = _core.TREE_FAN  # the CPU tree's fan-out: both trees share one layout
_STAGE_ROWS = 1024  # adds of up to this many host rows go through pinned staging (async copies)


def _round_up(n: int) -> int:
    return (n + _FAN - 1) // _FAN * _FAN


def _torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64, "int32": torch.int32,
            "uint8": torch.uint8, "bool": torch.bool}[name]


class CudaStorage:
    """Rows, priority tree and RNG on a CUDA device (torch tensors out)."""

    def __init__(self, capacity: int, fields: list, num_options: int, seed: int, device, *, prioritized: bool = False,
                 alpha: float = 0.6, eps: float = 1e-6):
        import torch

        self.prioritized, self.alpha, self.eps = prioritized, alpha, eps
        # The host core's checks of these sizes (and its messages), before any device memory is
        # taken: a capacity whose bytes overflow 64 bits is a ValueError naming capacity.
        nbytes = _core.required_bytes(capacity, fields, num_options, prioritized)
        try:
            self._allocate(capacity, fields, num_options, seed, device)
        except torch.cuda.OutOfMemoryError:
            raise MemoryError(f"capacity: {capacity} rows of these fields need about {nbytes} bytes "
                              f"({nbytes >> 30} GiB), more than {device} could allocate; expected a capacity "
                              "whose rows fit in its memory") from None

    def _allocate(self, capacity: int, fields: list, num_options: int, seed: int, device) -> None:
        import torch

        self.capacity, self.num_options, self.device = capacity, num_options, device
        self.fields = fields
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

    def count(self, option: int) -> int:
        """Rows stored, of one option when ``option`` >= 0 (a host sync)."""
        return self._size if option < 0 else int(self._counts[option])

    def column(self, i: int):
        """Field i's rows, all ``capacity`` of them (a device tensor)."""
        return self._cols[self._names[i]]

    def priorities(self):
        """The leaves p_i^alpha of the rows written (a device tensor); None if not prioritized."""
        return self._leaves[: self._size] if self.prioritized else None

    def rng_state(self):
        """The state of the device generator sampling draws from."""
        return self._gen.get_state()

    # ---- add --------------------------------------------------------------------------------------
    def add(self, fields: dict, validate: bool = True) -> None:
        """Append one row or a batch of n rows (numpy, torch CPU or CUDA data); the whole call is
        checked before anything is written. ``validate=False`` skips the option-id range check
        of CUDA data (a host sync)."""
        n, arrays = check_rows(self.fields, self.num_options, fields, validate)
        self._write(arrays, n)

    def _write(self, tensors: dict, n: int) -> None:
        import torch

        cap, dev = self.capacity, self.device
        keep = min(n, cap)  # more rows than capacity: only the newest cap survive
        start = (self._pos + n - keep) % cap
        old_size = self._size
        segments = [(start, min(start + keep, cap), 0)]
        if start + keep > cap:
            segments.append((0, start + keep - cap, cap - start))
        src = {name: torch.as_tensor(tensors[name]).reshape(n, *shape)[n - keep:] for name, shape, _ in self.fields}
        if keep <= _STAGE_ROWS and any(x.device.type == "cpu" for x in src.values()):
            src = self._stage(src, keep)
        if self.num_options > 0:
            for a, b, _ in segments:  # rows that held data lose their old option's count
                hi = min(b, old_size)
                if hi > a:
                    old = self._cols["option"][a:hi]
                    self._counts.index_add_(0, old, torch.full_like(old, -1))
        for a, b, off in segments:  # one copy per field and segment, host or device data alike
            for name, _, _ in self.fields:
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
                             for name, shape, dt in self.fields}
        self._stage_event.synchronize()
        out = {}
        for name, x in src.items():
            if x.device.type == "cpu":
                self._staging[name][:rows].copy_(x)
                x = self._staging[name][:rows]
            out[name] = x
        return out

    def _alpha(self) -> float:
        return self.alpha if self.prioritized else 1.0

    # ---- sample / get -----------------------------------------------------------------------------
    def set_beta(self, beta: float) -> None:
        """The importance-sampling exponent the sampling kernel reads on the device; written when it
        changes (stream-ordered: the next sample, or graph replay, reads it). Outside any graph
        capture, so that a captured ``sample`` reads the newest value at every replay."""
        if beta != self._beta_written:
            self._beta_dev.fill_(beta)
            self._beta_written = beta

    def sample(self, batch_size: int, option: int, beta: float) -> dict:
        """Draw ``batch_size`` rows (of ``option``, when it is >= 0): CUDA tensors plus
        ``indices`` (and ``weights`` when prioritized). Arguments checked by the buffer."""
        import torch

        check_rows_to_draw(self, option)  # a host sync when option >= 0
        dev = self.device
        rand = torch.rand(batch_size, generator=self._gen, device=dev, dtype=torch.float64)
        idx = torch.empty(batch_size, dtype=torch.int64, device=dev)
        weights = torch.empty(batch_size, dtype=torch.float32, device=dev) if self.prioritized else None
        slot = option if option >= 0 else self.num_options  # the all-rows slot (0 untagged)
        out = self._outputs(batch_size)
        if self.prioritized:  # a no-op unless the exponent changed since the last write
            self.set_beta(beta)
        _cuda_ops._cuda.sample(self._tree, slot, batch_size, self._size, rand.data_ptr(), self._beta_dev.data_ptr(),
                               idx.data_ptr(), 0 if weights is None else weights.data_ptr(), self._src,
                               [out[k].data_ptr() for k in self._names], self._row_bytes, _cuda_ops.stream(dev))
        out["indices"] = idx
        if weights is not None:
            out["weights"] = weights
        return out

    def _outputs(self, n: int) -> dict:
        import torch

        return {name: torch.empty((n, *shape), dtype=_torch_dtype(dt), device=self.device)
                for name, shape, dt in self.fields}

    def indices(self, indices: Any, validate: bool = True):
        """Slot indices as a device int64 tensor (checked: integers, 1-D and, with ``validate``,
        among the rows written: a host sync)."""
        import torch

        if not isinstance(indices, torch.Tensor):
            indices = np.asarray(indices)
        check_index_array(indices)
        idx = torch.as_tensor(indices).to(device=self.device, dtype=torch.int64).contiguous()
        if validate:
            check_index_range(idx, self._size)
        return idx

    def gather(self, idx) -> dict:
        """The rows at device indices ``idx`` (from :meth:`indices`), plus ``indices``."""
        out = self._outputs(idx.shape[0])
        _cuda_ops._cuda.gather(self._src, [out[k].data_ptr() for k in self._names], self._row_bytes, idx.data_ptr(),
                               idx.shape[0], _cuda_ops.stream(self.device))
        out["indices"] = idx
        return out

    def deliver(self, batch: dict, as_torch: bool, device: Any) -> dict:
        """A batch as the caller asked for it: CUDA tensors always (``as_torch`` is moot), moved to
        ``device`` when given."""
        return batch if device is None else {k: v.to(device) for k, v in batch.items()}

    # ---- priorities -------------------------------------------------------------------------------
    def update_priorities(self, indices: Any, td_errors: Any, validate: bool = True) -> None:
        """p_i = (|td_i| + eps)^alpha for the given slots, in one kernel (the last of duplicated
        indices wins). ``validate=False`` skips the range and finiteness checks (host syncs)."""
        import torch

        idx = self.indices(indices, validate=False)
        if not isinstance(td_errors, torch.Tensor):
            td_errors = np.asarray(td_errors)
        td = torch.as_tensor(check_priority_update(idx, td_errors))
        f64 = td.dtype == torch.float64
        td = td.to(device=self.device, dtype=torch.float64 if f64 else torch.float32).contiguous()
        if validate:
            check_priority_values(idx, td, self._size)
        self._tree.update(idx.data_ptr(), td.data_ptr(), f64, idx.shape[0], self.alpha, self.eps,
                          self._max_priority.data_ptr(), self._owner.data_ptr(), _cuda_ops.stream(self.device))

    # ---- moving between host and device ------------------------------------------------------------
    def to_host(self) -> HostStorage:
        """A host copy (rows, ring position, priorities; the host stream seeded from this one's)."""
        host = HostStorage(self.capacity, self.fields, self.num_options, 0, prioritized=self.prioritized,
                           alpha=self.alpha, eps=self.eps)
        size = self._size
        for i, (name, _, _) in enumerate(self.fields):
            host.column(i)[:size] = self._cols[name][:size].cpu().numpy()
        leaves = self._leaves[:size].cpu().numpy() if self.prioritized else None
        host.restore(size, self._pos, self.max_priority, leaves)
        state = self._gen.get_state()  # carried into the host stream so that a round trip keeps going
        host.reseed(int.from_bytes(bytes(state.tolist()[:8]), "little") ^ int(state.sum()))
        return host

    @classmethod
    def from_host(cls, host: HostStorage, device) -> "CudaStorage":
        """A device copy of a host storage (rows, ring position, priorities), made under its lock."""
        import torch

        host.lock()
        try:
            seed = int(np.random.SeedSequence([int(x) for x in host.rng_state()]).generate_state(1, np.uint64)[0]) >> 1
            storage = cls(host.capacity, list(host.fields), host.num_options, seed, device, prioritized=host.prioritized,
                          alpha=host.alpha, eps=host.eps)
            size = len(host)
            for i, (name, _, _) in enumerate(host.fields):
                storage._cols[name][:size].copy_(torch.from_numpy(np.ascontiguousarray(host.column(i)[:size])))
            storage._size, storage._pos = size, host.position
            if host.num_options > 0 and size:
                opts = storage._cols["option"][:size]
                storage._counts.index_add_(0, opts, torch.ones_like(opts))
            if storage._tree is not None and size:
                if storage.prioritized:
                    storage._leaves[:size].copy_(torch.from_numpy(np.ascontiguousarray(host.priorities()[:size])))
                    storage._max_priority.fill_(host.max_priority)
                storage._tree.fill(0, size, storage.capacity, 0 if storage.prioritized else 2,
                                   storage._max_priority.data_ptr(), storage._alpha(), _cuda_ops.stream(device))
            return storage
        finally:
            host.unlock()
