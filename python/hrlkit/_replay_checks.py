"""The replay buffers' argument checks, written once for both storages (host and CUDA).

Every user-facing check of the constructors' and of ``add`` / ``sample`` / ``get`` /
``update_priorities`` / ``count``'s arguments is here; each error names the argument, what was
expected and what came. The checks take numpy arrays and torch tensors alike.

Where they run: the buffer runs the cheap ones (types, option ids against ``num_options``)
before it calls its storage. The ones that read every row or value (a row's shape and dtype,
option ids, indices among the rows written, finite TD errors) run where the data is: the CUDA
storage runs them before its kernels, which cannot refuse anything; the host storage's C++ core
refuses bad input in the loops that copy it anyway (it must, to stay memory-safe), and then
:func:`named` runs the same checks to say what was wrong. So the host's hot paths pay for no
check twice, and no check is written twice.

This module imports nothing from the buffers or storages, so each of them can import it.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from . import _cuda_ops
from ._validate import INT64_MAX, UINT64_MAX, check_float, check_int, describe, dtype_kind, to_numpy

SUPPORTED_DTYPES = ("float32", "float64", "int64", "int32", "uint8", "bool")
_BATCH_KEYS = ("indices", "weights")  # what sampled batches add to the fields
_RESERVED = (*_BATCH_KEYS, "validate")  # ... and add's own keyword

#: the exceptions the checks raise, and a storage's refusals that :func:`named` explains
REFUSALS = (ValueError, TypeError, IndexError)

# ---- constructors ---------------------------------------------------------------------------------
def normalize_spec(spec: Any, num_options: int | None) -> list[tuple[str, tuple[int, ...], str]]:
    """The spec as [(name, shape, dtype name)], with the ``option`` field of a tagged buffer last."""
    if not isinstance(spec, Mapping) or not spec:
        raise ValueError(f"spec: expected a non-empty dict {{name: (shape, dtype)}}, got {describe(spec)}")
    fields = []
    for name, entry in spec.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"spec: field names must be identifiers, got {name!r}")
        if name in _BATCH_KEYS:
            raise ValueError(f"spec: field name {name!r} is reserved for sampled batches (reserved: {_BATCH_KEYS})")
        if name in _RESERVED:
            raise ValueError(f"spec: field name {name!r} is reserved for add's keyword add(validate=...)")
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


def checked_layout(capacity: Any, spec: Any, num_options: Any) -> tuple[int, list, int]:
    """capacity, the normalized fields and num_options (0 for an untagged buffer): the checks
    every constructor and every file header goes through."""
    capacity = check_int("capacity", capacity, minimum=1, maximum=INT64_MAX)
    num_options = check_int("num_options", num_options, minimum=1, maximum=INT64_MAX, allow_none=True)
    return capacity, normalize_spec(spec, num_options), num_options or 0


def fresh_seed(seed: Any) -> int:
    """The seed of a buffer's sampling stream: the given one, checked, or a random one."""
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0])
    return check_int("seed", seed, minimum=0, maximum=UINT64_MAX)


def checked_exponents(alpha: Any, beta: Any, eps: Any) -> dict:
    """A prioritized buffer's alpha, beta and eps."""
    return {"alpha": check_float("alpha", alpha, low=0.0), "beta": check_float("beta", beta, low=0.0),
            "eps": check_float("eps", eps, low=0.0)}


def checked_prefault(prefault: Any) -> bool:
    """The constructors' ``prefault`` flag (True or False, numpy's bools too)."""
    if not isinstance(prefault, (bool, np.bool_)):
        raise TypeError(f"prefault: expected True or False, got {describe(prefault)}")
    return bool(prefault)


def resolve_device(device: Any):
    """The CUDA torch.device that ``device`` names, or None for host memory (None or 'cpu')."""
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


# ---- refusals -------------------------------------------------------------------------------------
def named(refused: Exception, check: Callable[..., Any], *args: Any) -> Exception:
    """What to raise for a call a storage refused: the error ``check(*args)`` gives, which names
    the argument; the storage's own where the checks find nothing wrong."""
    try:
        check(*args)
    except REFUSALS as error:
        return error
    return refused


# ---- add ------------------------------------------------------------------------------------------
_PYTHON_SCALARS = (bool, int, float)  # written as they are into a scalar field (numpy's float64 is a float)
_INT_RANGE = {"int64": (-(2**63), 2**63 - 1), "int32": (-(2**31), 2**31 - 1), "uint8": (0, 255)}


def check_rows(fields: list, num_options: int, values: Mapping[str, Any], validate: bool = True) -> tuple[int, dict]:
    """``add``'s checks of one row (each field of its shape) or n rows (a leading dimension n on
    every field): n, and each field's value as a numpy array (torch tensors as they came).

    Values are cast under numpy's 'same_kind' rule (Python scalars: a bool, int or float is
    written into a float field, a bool or an int that fits into an int field, a bool into a bool
    field). ``validate=False`` skips reading option ids that live on a CUDA device (a host sync)."""
    names = [name for name, _, _ in fields]
    n = first = None
    arrays = {}
    for name, shape, dtype in fields:
        if name not in values:
            raise ValueError(f"add: missing field '{name}' (expected fields: {', '.join(names)})")
        x = values[name]
        if not shape and isinstance(x, _PYTHON_SCALARS):
            _check_python_scalar(name, x, dtype)
            x, rows = np.asarray(x), 1
        else:
            x = _castable_array(name, x, dtype)
            rows = _rows(name, tuple(x.shape), shape)
        if n is None:
            n, first = rows, name
        elif rows != n:
            raise ValueError(f"add: fields disagree on the number of rows: '{first}' has {n}, '{name}' has {rows}")
        arrays[name] = x
    if len(values) != len(arrays):
        unknown = next(key for key in values if key not in arrays)
        raise ValueError(f"add: unknown field '{unknown}' (expected fields: {', '.join(names)})")
    if num_options and (validate or not _on_device(arrays["option"])):
        ids = arrays["option"].reshape(-1)
        bad = (ids < 0) | (ids >= num_options)
        if bad.any():
            raise ValueError(f"option: expected ids in [0, {num_options}), got {int(ids[bad][0])}")
    return n, arrays


def _check_python_scalar(name: str, x: Any, dtype: str) -> None:
    if dtype in ("float32", "float64"):
        return
    kind = "bool" if isinstance(x, bool) else "float" if isinstance(x, float) else "int"
    if kind == "float" or (dtype == "bool" and kind != "bool"):
        raise ValueError(f"{name}: expected a value castable to {dtype} (numpy 'same_kind'), got a Python {kind}")
    if dtype != "bool":
        low, high = _INT_RANGE[dtype]
        if not low <= x <= high:
            raise ValueError(f"{name}: value {x} does not fit in {dtype}")


def _castable_array(name: str, x: Any, dtype: str):
    """``x`` as an array (numpy; torch tensors as they are) whose dtype casts to ``dtype``."""
    want = np.dtype(dtype)
    if _is_tensor(x):
        got, text = _numpy_dtype_of_tensor(x), str(x.dtype)
    else:
        try:
            x = np.asarray(x)
        except Exception:  # noqa: BLE001 - numpy's reasons vary (ragged lists, ...); the message says what came
            raise ValueError(f"{name}: expected an array-like of {dtype}, got {type(x)}") from None
        got = x.dtype
        text = str(got)
    if got != want and not np.can_cast(got, want, "same_kind"):
        raise ValueError(f"{name}: expected dtype {dtype} (or one numpy casts to it under 'same_kind'), got {text}")
    return x


def _rows(name: str, got: tuple, shape: tuple) -> int:
    if got == shape:
        return 1
    if len(got) == len(shape) + 1 and got[1:] == shape and got[0] > 0:
        return got[0]
    batched = "(n" + "".join(f", {d}" for d in shape) + (")" if shape else ",)")
    raise ValueError(f"{name}: expected shape {shape} or {batched} with n >= 1, got {got}")


# ---- sample / count -------------------------------------------------------------------------------
def check_option(option: Any, num_options: int) -> int:
    """An option id of a tagged buffer."""
    option = check_int("option", option, minimum=0)
    if num_options == 0:
        raise ValueError("option: this buffer has no option tags (created without num_options)")
    if option >= num_options:
        raise IndexError(f"option: expected an option id in [0, {num_options}), got {option}")
    return option


def check_rows_to_draw(storage: Any, option: int) -> None:
    """``sample``'s check of the storage's rows: some (of ``option``, when it is >= 0) exist."""
    if option >= 0:
        if storage.count(option) == 0:
            raise ValueError(f"option: no rows of option {option} in the buffer yet (count(option={option}) == 0)")
    elif len(storage) == 0:
        raise ValueError("sample: the buffer is empty; add rows before sampling")


# ---- get / update_priorities ----------------------------------------------------------------------
def check_index_array(indices: Any) -> None:
    """Slot indices (numpy or torch): a 1-D array of integers."""
    if dtype_kind(indices) not in "iu":
        raise TypeError(f"indices: expected integers, got {describe(indices)}")
    if len(indices.shape) != 1:
        raise ValueError(f"indices: expected a 1-D array, got shape {tuple(indices.shape)}")


def check_index_range(indices: Any, size: int) -> None:
    """Indices among the rows written (reads every index: a host sync for CUDA tensors)."""
    bad = (indices < 0) | (indices >= size)
    if bad.any():
        j = int(bad.nonzero()[0][0])
        raise IndexError(f"indices: expected slots in [0, {size}) (rows written), got {int(indices[j])} at position {j}")


def check_priority_update(indices: Any, td_errors: Any) -> Any:
    """``update_priorities``' checks of kinds and shapes (numpy or torch): ``td_errors`` as one
    value per index (a (B, 1) column is taken as (B,))."""
    check_index_array(indices)
    if dtype_kind(td_errors) not in "fiu":
        raise TypeError(f"td_errors: expected real numbers, got {describe(td_errors)}")
    if len(td_errors.shape) == 2 and td_errors.shape[1] == 1:
        td_errors = td_errors[:, 0]
    if tuple(td_errors.shape) != tuple(indices.shape):
        raise ValueError(f"td_errors: expected shape {tuple(indices.shape)} (one per index), got {tuple(td_errors.shape)}")
    return td_errors


def check_priority_values(indices: Any, td_errors: Any, size: int) -> None:
    """``update_priorities``' checks that read every value: finite TD errors, indices among the
    rows written (host syncs for CUDA tensors)."""
    finite = np.isfinite(td_errors) if isinstance(td_errors, np.ndarray) else td_errors.isfinite()
    if not finite.all():
        j = int((~finite).nonzero()[0][0])
        raise ValueError(f"td_errors: expected finite values, got {float(td_errors[j])} at position {j}")
    check_index_range(indices, size)


def check_whole_priority_update(indices: Any, td_errors: Any, size: int) -> None:
    """Every check of ``update_priorities``' arguments, on host copies of them."""
    idx, td = to_numpy("indices", indices), to_numpy("td_errors", td_errors)
    check_priority_values(idx, check_priority_update(idx, td), size)


# ---- helpers --------------------------------------------------------------------------------------
def _is_tensor(x: Any) -> bool:
    return hasattr(x, "detach") and hasattr(x, "device") and not isinstance(x, np.ndarray)  # torch, unimported


def _on_device(x: Any) -> bool:
    return _is_tensor(x) and x.device.type != "cpu"


def _numpy_dtype_of_tensor(x: Any) -> np.dtype:
    try:
        return np.dtype(str(x.dtype).removeprefix("torch."))
    except TypeError:  # bfloat16 and the other types numpy lacks: the host core cannot read them either
        return np.dtype(object)
