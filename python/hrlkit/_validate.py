"""Argument checks shared by the Python faces: each error names the argument, what was
expected and what came."""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np


def describe(value: Any) -> str:
    """Short description of a value for an error message."""
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


INT64_MAX = 2**63 - 1  # the largest count the C++ core takes
UINT64_MAX = 2**64 - 1


def check_int(
    name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None, allow_none: bool = False
) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {describe(value)}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: expected an integer <= {maximum}, got {value}")
    return value


def check_float(
    name: str, value: Any, *, low: float | None = None, high: float | None = None, allow_none: bool = False
) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {describe(value)}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")
    if low is not None and value < low:
        raise ValueError(f"{name}: expected a number >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name}: expected a number <= {high}, got {value}")
    return value


def dtype_kind(x: Any) -> str:
    """numpy's dtype kind ('b', 'u', 'i', 'f', 'c', ...) of an array-like or a torch tensor."""
    if hasattr(x, "detach") and hasattr(x, "dtype") and not isinstance(x, np.ndarray):  # torch, unimported
        if x.dtype.is_floating_point:
            return "f"
        if x.dtype.is_complex:
            return "c"
        name = str(x.dtype)
        return "b" if name == "torch.bool" else ("u" if name == "torch.uint8" else "i")
    return np.asarray(x).dtype.kind


def to_numpy(name: str, value: Any) -> np.ndarray:
    """numpy view of an array-like; CPU torch tensors are shared, not copied."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor, without importing torch
        value = value.detach()
        if value.device.type != "cpu":
            value = value.cpu()
        return value.numpy()
    try:
        return np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - re-raised with the argument's name
        raise TypeError(f"{name}: expected an array-like, got {describe(value)}") from exc
