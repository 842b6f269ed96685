"""Checkpoints: one format for every agent, written atomically."""
from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

from .._io import atomic_write

FORMAT = "hrlkit-checkpoint"
VERSION = 1


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save(path: str, payload: dict[str, Any]) -> None:
    """torch.save to a temporary file beside ``path``, fsync, then rename over ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_write(path) as f:
        torch.save({"format": FORMAT, "version": VERSION, **payload}, f)


def load(path: str, *, expect_algo: str | None = None) -> dict[str, Any]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: no checkpoint at {path!r}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the file is bad
        raise ValueError(f"path: {path!r} is not a readable hrlkit checkpoint ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"path: {path!r} is not an hrlkit checkpoint")
    if data.get("version") != VERSION:
        raise ValueError(f"path: {path!r} has checkpoint version {data.get('version')}, expected {VERSION}")
    if expect_algo is not None and data.get("algo") != expect_algo:
        raise ValueError(f"path: {path!r} holds a {data.get('algo')!r} checkpoint, expected {expect_algo!r}")
    return data
