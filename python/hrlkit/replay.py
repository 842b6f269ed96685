"""Replay buffers: ``ReplayBuffer`` samples uniformly, ``PrioritizedReplayBuffer`` proportionally
to (|delta| + eps)^alpha with importance weights. Either can carry option tags (``num_options=K``):
every row then has an int64 ``option`` field and ``sample(B, option=k)`` draws only rows of
option k. Either keeps its rows in host memory or on a CUDA device (``device=``).

The parts, after TorchRL's split of a buffer into storage, sampler and writer:

- the storage holds the rows and does the work where they are: ``HostStorage`` is the C++ core
  (column ring, sum tree, sampling stream: ``hrlkit._host_storage``), ``CudaStorage`` the same
  on a GPU (torch tensors and ``hrlkit._cuda`` kernels: ``hrlkit._cuda_storage``). The device is
  the storage's (``buffer.device``); ``buffer.to(device)`` is a copy on another storage.
- the buffer classes here are the sampling rule (uniform, or prioritized with its exponents and
  ``update_priorities``), the same over either storage.
- the arguments are checked once for both storages (``hrlkit._replay_checks``), and one file
  format serves both (``hrlkit._replay_file``).

Writer and sampler are not objects of their own: each storage writes its ring and draws from its
tree in one native call, which a split across Python calls would slow (a host ``add`` of one row
takes about a microsecond).
"""
from __future__ import annotations

import io
import os
from typing import Any, BinaryIO, Mapping

from . import _replay_file
from ._cuda_storage import CudaStorage
from ._host_storage import HostStorage
from ._replay_checks import (
    REFUSALS,
    SUPPORTED_DTYPES,
    check_index_range,
    check_option,
    check_rows,
    check_rows_to_draw,
    check_whole_priority_update,
    checked_exponents,
    checked_layout,
    checked_prefault,
    fresh_seed,
    named,
    resolve_device,
)
from ._validate import check_float, check_int

__all__ = ["ReplayBuffer", "PrioritizedReplayBuffer", "SUPPORTED_DTYPES", "to_bytes", "from_bytes_like"]


def _of_storage(name: str, doc: str) -> property:
    """A read-only property that is the storage's own."""
    return property(lambda self: getattr(self._storage, name), doc=doc)


class ReplayBuffer:
    """Uniform replay over a fixed-capacity ring of named columns.

    Args:
        capacity: number of rows kept; the oldest is overwritten when full.
        spec: ``{name: (shape, dtype)}``, dtype one of ``SUPPORTED_DTYPES``.
        num_options: tag every row with an option id in ``[0, num_options)`` (field ``option``).
        seed: seed of the buffer's own sampling stream (random when None).
        device: None or "cpu" for host memory; "cuda" / "cuda:N" keeps the rows, the tree and the
            sampling on that GPU (``sample`` then returns CUDA tensors).
        prefault: make all of the host memory resident in the constructor (as cpprb and numpy's
            zero-filled arrays do) rather than as rows are first written. The first fill of a
            fresh buffer then runs at the speed of later passes, and the constructor pays the
            page faults instead; the default keeps an empty buffer's memory unused. Device
            memory is always allocated whole.

    ``add(**fields)`` takes one row (each field of its shape) or a batch of n rows (a leading
    dimension n on every field). Values are cast to the field dtype under numpy's 'same_kind'
    rule (float64 into float32 is fine; float into int is not).
    """

    prioritized = False
    _HEADER_KEYS: tuple[str, ...] = ()  # the keys of _header_extra()

    def __init__(self, capacity: int, spec: Mapping[str, Any], *, num_options: int | None = None, seed: int | None = None,
                 device: Any = None, prefault: bool = False):
        device = resolve_device(device)
        args = {**self._checked_args(capacity, spec, num_options=num_options, seed=seed), "prefault": checked_prefault(prefault)}
        self._attach(self._new_storage(args, device), args)

    @classmethod
    def _checked_args(cls, capacity: Any, spec: Any, *, num_options: Any = None, seed: Any = None) -> dict:
        """The constructor's checks, giving the constructor's arguments. ``load`` passes a file's
        header through them too, so a header gets the checks and messages of ``ReplayBuffer(...)``."""
        capacity, fields, num_options = checked_layout(capacity, spec, num_options)
        return {"capacity": capacity, "fields": fields, "num_options": num_options, "seed": fresh_seed(seed)}

    @classmethod
    def _new_storage(cls, args: dict, device: Any) -> HostStorage | CudaStorage:
        """The storage for checked arguments ``args`` on ``device`` (None: host memory); the one
        place a buffer's memory is allocated."""
        layout = (args["capacity"], args["fields"], args["num_options"], args["seed"])
        exponents = {"prioritized": cls.prioritized, "alpha": args.get("alpha", 0.6), "eps": args.get("eps", 1e-6)}
        if device is None:
            return HostStorage(*layout, **exponents, prefault=args.get("prefault", False))
        return CudaStorage(*layout, device, **exponents)

    def _attach(self, storage: HostStorage | CudaStorage, args: dict) -> None:
        self._storage = storage

    @classmethod
    def _wrap(cls, storage: HostStorage | CudaStorage, args: dict) -> "ReplayBuffer":
        """A buffer of this class over an existing storage (a loaded or moved one)."""
        buf = cls.__new__(cls)
        buf._attach(storage, args)
        return buf

    def _sampling_args(self) -> dict:
        """The arguments of the sampling rule, which a copy on another storage keeps."""
        return {}

    # ---- introspection ------------------------------------------------------------------
    device = _of_storage("device", "Where the rows are: the storage's torch.device (``cpu`` for host memory).")
    capacity = _of_storage("capacity", "Rows kept; the oldest is overwritten when full.")
    num_options = _of_storage("num_options", "Option ids per row, 0 for an untagged buffer.")
    position = _of_storage("position", "The slot the next row goes to.")
    max_priority = _of_storage("max_priority", "Largest |td| + eps seen (new rows of a prioritized buffer enter with "
                                               "it); 1 at first.")
    nbytes = _of_storage("nbytes", "Bytes of the rows (all ``capacity`` of them, padding excluded).")
    generator = _of_storage("generator", "The torch generator sampling draws from on a CUDA storage (register it "
                                         "with a CUDA graph that captures ``sample``); None in host memory, where "
                                         "the core has its own stream.")

    @property
    def spec(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """The fields, including ``option`` for a tagged buffer."""
        return {name: (shape, dtype) for name, shape, dtype in self._storage.fields}

    def __len__(self) -> int:
        return len(self._storage)

    def count(self, option: int | None = None) -> int:
        """Rows stored, of one option when ``option`` is given."""
        if option is None:
            return len(self._storage)
        return self._storage.count(check_option(option, self._storage.num_options))

    def column(self, i: int):
        """Field ``i``'s rows, all ``capacity`` of them (a numpy view, or a device tensor). In host
        memory a row's fields sit side by side, so the view is strided (``option`` excepted)."""
        return self._storage.column(i)

    def priorities(self):
        """The leaves p_i^alpha of a prioritized buffer (a numpy view of all ``capacity`` slots in
        host memory, a tensor of the rows written on a device); None for a uniform buffer."""
        return self._storage.priorities()

    def rng_state(self):
        """The state of the sampling stream (the core's four 64-bit words; a device generator's state)."""
        return self._storage.rng_state()

    def __repr__(self) -> str:
        tags = f", num_options={self.num_options}" if self.num_options else ""
        where = "" if self.device.type == "cpu" else f", device={self.device}"
        return f"{type(self).__name__}(capacity={self.capacity}, size={len(self)}{tags}{where}, fields={list(self.spec)})"

    def to(self, device: Any) -> "ReplayBuffer":
        """This buffer on ``device``: itself if its storage is there already, else a copy on a
        storage there ('cpu': host memory)."""
        target = resolve_device(device)
        storage = self._storage
        if target == (None if storage.device.type == "cpu" else storage.device):
            return self
        host = storage.to_host()
        return self._wrap(host if target is None else CudaStorage.from_host(host, target), self._sampling_args())

    # ---- add ----------------------------------------------------------------------------
    def add(self, *, validate: bool = True, **fields: Any) -> None:
        """Append one row or a batch of n rows (numpy, Python values or torch tensors; CUDA tensors
        for a CUDA storage). The whole call is checked before anything is written.
        ``validate=False`` lets a CUDA storage skip reading option ids that are CUDA tensors (a
        host sync); in host memory the checks are part of the copy and always run."""
        try:
            self._storage.add(fields, validate)
        except REFUSALS as refused:
            raise named(refused, check_rows, self._storage.fields, self._storage.num_options, fields, validate) from None

    # ---- sampling -----------------------------------------------------------------------
    def sample(self, batch_size: int, *, option: int | None = None, as_torch: bool = False, device: Any = None) -> dict:
        """Draw ``batch_size`` rows with replacement: a dict of arrays plus ``indices``.

        ``option=k`` draws only rows of option k (tagged buffers). ``as_torch`` returns torch
        tensors sharing the sampled arrays' memory (moved to ``device`` when given); a CUDA
        storage always returns CUDA tensors (moved to ``device`` when given).
        """
        return self._draw(batch_size, option, 0.0, as_torch, device)

    def _draw(self, batch_size: Any, option: Any, beta: float, as_torch: bool, device: Any) -> dict:
        if type(batch_size) is not int or batch_size < 1:
            batch_size = check_int("batch_size", batch_size, minimum=1)
        storage = self._storage
        option = -1 if option is None else check_option(option, storage.num_options)
        try:
            batch = storage.sample(batch_size, option, beta)
        except REFUSALS as refused:
            raise named(refused, check_rows_to_draw, storage, option) from None
        return storage.deliver(batch, as_torch, device) if as_torch or device is not None else batch

    def get(self, indices: Any, *, as_torch: bool = False, device: Any = None) -> dict:
        """Rows at the given slot indices (e.g. the ``indices`` of an earlier sample), plus
        ``indices``; as torch tensors like ``sample``."""
        storage = self._storage
        idx = storage.indices(indices)
        try:
            batch = storage.gather(idx)
        except REFUSALS as refused:
            raise named(refused, check_index_range, idx, len(storage)) from None
        return storage.deliver(batch, as_torch, device) if as_torch or device is not None else batch

    def update_priorities(self, indices: Any, td_errors: Any, *, validate: bool = True) -> None:
        """Only prioritized buffers have priorities (see :class:`PrioritizedReplayBuffer`)."""
        raise TypeError("update_priorities: this buffer is not prioritized")

    # ---- save / load --------------------------------------------------------------------
    def _header_extra(self) -> dict:
        """Constructor arguments beyond capacity, spec and num_options, as saved in the header."""
        return {}

    def save(self, path: str | os.PathLike | BinaryIO) -> None:
        """Write the buffer (rows, ring position, priorities, RNG state) to ``path``.

        The file is written to a temporary name beside ``path``, synced, then renamed over it,
        so ``path`` always holds either the old file or the complete new one. ``path`` may also
        be an open binary file (e.g. ``io.BytesIO``), written from its current position. The file
        ends with a SHA-256 digest of all its other bytes, which :meth:`load` checks first. A CUDA
        storage is copied to host memory and written from there, in the same format.
        """
        storage = self._storage
        tagged = storage.num_options > 0
        header = {
            "class": type(self).__name__,
            "capacity": storage.capacity,
            # the constructor's own spec: a tagged buffer adds its `option` field itself
            "spec": {n: [list(s), d] for n, s, d in storage.fields if not (tagged and n == "option")},
            "num_options": storage.num_options or None,
            **self._header_extra(),
        }
        _replay_file.save(storage.to_host(), header, path)

    @classmethod
    def load(cls, path: str | os.PathLike | BinaryIO, *, seed: int | None = None, device: Any = None) -> "ReplayBuffer":
        """Read a buffer written by :meth:`save` from a path, or from an open binary file
        (read from its current position to its end). ``seed`` reseeds the sampling stream;
        by default the saved stream continues where it stopped. ``device="cuda"`` loads it onto
        a CUDA storage.

        The file's SHA-256 digest is checked before anything in it is used, and its header goes
        through the constructor's checks; a file that fails any check raises ValueError naming
        it (format 1 files, which carry no digest over their header, are refused)."""
        resolve_device(device)  # bad arguments fail before the file is read
        seed = None if seed is None else fresh_seed(seed)
        if hasattr(path, "read"):
            name = getattr(path, "name", None)
            return cls._load(path, repr(name) if isinstance(name, str) else f"<{type(path).__name__}>", seed, device)
        path = os.fspath(path)
        with open(path, "rb") as f:
            return cls._load(f, repr(path), seed, device)

    @classmethod
    def _load(cls, f: BinaryIO, where: str, seed: int | None, device: Any) -> "ReplayBuffer":
        storage, args = _replay_file.read(f, where, kind=cls.__name__, extra_keys=cls._HEADER_KEYS,
                                          prioritized=cls.prioritized, checked_args=cls._checked_args,
                                          new_storage=lambda a: cls._new_storage(a, None), seed=seed)
        buf = cls._wrap(storage, args)
        return buf.to(device) if device is not None else buf


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay (Schaul et al., 2016).

    Rows are drawn with probability P(i) = p_i / sum_j p_j, p_i = (|delta_i| + eps)^alpha, by
    stratified sampling (one draw per equal slice of the total priority). New rows enter with
    the largest priority seen so far. Batches carry ``weights`` = (N P(i))^-beta / max_j w_j, the
    max over the rows that could be drawn (over option k's rows with ``option=k``).
    """

    prioritized = True
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
        prefault: bool = False,
    ):
        device = resolve_device(device)
        args = {**self._checked_args(capacity, spec, alpha=alpha, beta=beta, eps=eps, num_options=num_options, seed=seed),
                "prefault": checked_prefault(prefault)}
        self._attach(self._new_storage(args, device), args)

    @classmethod
    def _checked_args(cls, capacity: Any, spec: Any, *, alpha: Any = 0.6, beta: Any = 0.4, eps: Any = 1e-6,
                      num_options: Any = None, seed: Any = None) -> dict:
        args = super()._checked_args(capacity, spec, num_options=num_options, seed=seed)
        return {**args, **checked_exponents(alpha, beta, eps)}

    def _attach(self, storage: HostStorage | CudaStorage, args: dict) -> None:
        super()._attach(storage, args)
        self._beta = args["beta"]
        storage.set_beta(self._beta)

    def _sampling_args(self) -> dict:
        return {"beta": self._beta}

    alpha = _of_storage("alpha", "The priority exponent: p_i = (|td_i| + eps)^alpha.")
    eps = _of_storage("eps", "Added to |td_i| so that no row's priority is 0.")

    @property
    def beta(self) -> float:
        """Default importance-sampling exponent of ``sample`` (anneal it towards 1)."""
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        self._beta = check_float("beta", value, low=0.0)
        self._storage.set_beta(self._beta)  # outside any graph capture: a CUDA storage reads it on the device

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
        return self._draw(batch_size, option, beta, as_torch, device)

    def update_priorities(self, indices: Any, td_errors: Any, *, validate: bool = True) -> None:
        """Set p_i = (|td_i| + eps)^alpha for the given slots (batched; numpy or torch; the last of
        duplicated indices wins). ``validate=False`` lets a CUDA storage skip the range and
        finiteness checks (host syncs); in host memory they are part of the update and always run."""
        storage = self._storage
        try:
            storage.update_priorities(indices, td_errors, validate)
        except REFUSALS as refused:
            raise named(refused, check_whole_priority_update, indices, td_errors, len(storage)) from None

    def _header_extra(self) -> dict:
        return {"alpha": self.alpha, "beta": self._beta, "eps": self.eps}


def to_bytes(buffer: ReplayBuffer) -> bytes:
    """A buffer (on either storage) in the replay file format, in memory (e.g. inside a checkpoint)."""
    stream = io.BytesIO()
    buffer.save(stream)
    return stream.getvalue()


def from_bytes_like(buffer: ReplayBuffer, blob: bytes) -> ReplayBuffer:
    """The buffer saved in ``blob``, of ``buffer``'s kind (prioritized or not) and on its device."""
    cls = PrioritizedReplayBuffer if buffer.prioritized else ReplayBuffer
    device = buffer.device
    return cls._load(io.BytesIO(blob), "<bytes>", None, None if device.type == "cpu" else device)
