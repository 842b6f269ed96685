"""Checkpoints: one format for every agent, checksummed, written atomically, loaded without
running code.

A file is ``MAGIC``, one JSON header line (format version, body length, SHA-256 of the body),
then the body: ``torch.save`` of the payload with every numpy array and numpy scalar turned into
plain bytes, lists and numbers first. The body is read back with ``torch.load(weights_only=True)``,
whose unpickler builds only tensors and plain containers, so no file can make a load run code;
a changed byte anywhere fails the checksum before anything is unpickled.

The one thing in a checkpoint that needs the full pickle is the vector environment's state
(``payload["envs"]``, bytes), used only for an exact resume: :func:`load` hands it back only
with ``trust_pickle=True`` (``hrlkit train --resume ... --trust-checkpoint``); otherwise it is
dropped and a resumed run starts new, seeded episodes.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import random
from typing import Any

import numpy as np
import torch

from .._io import atomic_write

MAGIC = b"HRLKIT-CHECKPOINT\n"
FORMAT = "hrlkit-checkpoint"
VERSION = 2
_HEADER_MAX = 4096
_ZIP_MAGIC = b"PK\x03\x04"  # format 1 was a bare torch.save file
# what every agent's from_payload reads; a file lacking one is refused naming the key
REQUIRED_KEYS = ("algo", "env_id", "seed", "config", "global_step", "num_updates", "modules", "rng", "obs",
                 "episode_return", "episode_length")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: names the file and what is wrong with it."""


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


# ---- plain values in, plain values out ----------------------------------------------------------
def _encode(value: Any, where: str) -> Any:
    """``value`` with numpy arrays and scalars turned into what the weights-only unpickler builds."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError(f"checkpoint: {where} is an object array, which cannot be saved without pickle")
        return {"__ndarray__": np.ascontiguousarray(value).tobytes(), "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _encode(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        out = [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if isinstance(value, tuple) else out
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    raise TypeError(f"checkpoint: {where} is a {type(value).__name__}, which cannot be saved without pickle")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "__ndarray__" in value:
            dtype = np.dtype(value["dtype"])
            if dtype.hasobject:
                raise ValueError("an object array")
            return np.frombuffer(value["__ndarray__"], dtype=dtype).reshape(value["shape"]).copy()
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_decode(v) for v in value)
    return value


# ---- files -----------------------------------------------------------------------------------------
def save(path: str, payload: dict[str, Any]) -> None:
    """Write ``payload`` to a temporary file beside ``path``, fsync, then rename over ``path``."""
    buf = io.BytesIO()
    torch.save(_encode({"format": FORMAT, "version": VERSION, **payload}, "payload"), buf)
    body = buf.getvalue()
    header = json.dumps({"format": FORMAT, "version": VERSION, "body_bytes": len(body),
                         "sha256": hashlib.sha256(body).hexdigest()}).encode() + b"\n"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_write(path) as f:
        f.write(MAGIC + header + body)


def _read_verified_body(path: str) -> bytes:
    """The body of the checkpoint at ``path`` once its length and checksum are verified."""
    with open(path, "rb") as f:
        head = f.read(len(MAGIC) + _HEADER_MAX)
        if head.startswith(_ZIP_MAGIC):
            raise CheckpointError(
                f"path: {path!r} is a checkpoint of format 1 (hrlkit 0.1 before the safe format), which loads only by "
                f"unpickling and so can run code; if you trust the file, convert it: "
                f"hrlkit convert-checkpoint {path} NEW_PATH")
        if not head.startswith(MAGIC):
            raise CheckpointError(f"path: {path!r} is not an hrlkit checkpoint")
        end = head.find(b"\n", len(MAGIC))
        if end < 0:
            raise CheckpointError(f"path: {path!r} is not an hrlkit checkpoint (its header does not end)")
        try:
            header = json.loads(head[len(MAGIC):end])
            body_bytes, digest, version = int(header["body_bytes"]), str(header["sha256"]), header["version"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"path: {path!r} has a corrupted checkpoint header ({exc})") from exc
        if version != VERSION:
            raise CheckpointError(f"path: {path!r} has checkpoint version {version!r}, expected {VERSION}")
        start = end + 1
        size = os.fstat(f.fileno()).st_size
        if size - start != body_bytes:
            raise CheckpointError(f"path: {path!r} is corrupted or truncated: the header declares {body_bytes} body "
                                  f"bytes, the file holds {size - start}")
        f.seek(start)
        body = f.read()
    if hashlib.sha256(body).hexdigest() != digest:
        raise CheckpointError(f"path: {path!r} is corrupted: its contents do not match their checksum")
    return body


def load(path: str, *, expect_algo: str | None = None, trust_pickle: bool = False) -> dict[str, Any]:
    """The payload of the checkpoint at ``path``, verified. No code runs: ``payload["envs"]`` (the
    pickled vector env, for an exact resume) is kept only with ``trust_pickle=True``; it is
    unpickled by the agent, never here."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: no checkpoint at {path!r}")
    body = _read_verified_body(path)
    try:
        data = _decode(torch.load(io.BytesIO(body), map_location="cpu", weights_only=True))
    except Exception as exc:  # noqa: BLE001 - a body that passed the checksum but will not decode
        raise CheckpointError(f"path: {path!r} is not a readable hrlkit checkpoint ({exc})") from exc
    return check_payload(data, path, expect_algo=expect_algo, trust_pickle=trust_pickle)


def check_payload(data: Any, path: str, *, expect_algo: str | None = None, trust_pickle: bool = False) -> dict[str, Any]:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"path: {path!r} is not an hrlkit checkpoint")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"path: {path!r} lacks the checkpoint key(s) {', '.join(map(repr, missing))}")
    if expect_algo is not None and data.get("algo") != expect_algo:
        raise CheckpointError(f"path: {path!r} holds a {data.get('algo')!r} checkpoint, expected {expect_algo!r}")
    if not trust_pickle:
        data["envs"] = None
    return data


def convert(old_path: str, new_path: str) -> dict[str, Any]:
    """Rewrite a format-1 checkpoint (a bare ``torch.save`` file) in the current format. Format 1
    loads only by full unpickling, which runs whatever code the file holds: convert only files
    you trust (your own runs)."""
    old_path, new_path = os.fspath(old_path), os.fspath(new_path)
    if not os.path.isfile(old_path):
        raise FileNotFoundError(f"old_path: no checkpoint at {old_path!r}")
    if os.path.abspath(old_path) == os.path.abspath(new_path):
        raise ValueError(f"new_path: expected a path other than the old checkpoint's, got {new_path!r}")
    with open(old_path, "rb") as f:
        if not f.read(4).startswith(_ZIP_MAGIC):
            raise CheckpointError(f"old_path: {old_path!r} is not a format-1 hrlkit checkpoint")
    try:
        data = torch.load(old_path, map_location="cpu", weights_only=False)  # the caller trusts this file
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"old_path: {old_path!r} is not a readable hrlkit checkpoint ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != 1:
        raise CheckpointError(f"old_path: {old_path!r} is not a format-1 hrlkit checkpoint")
    check_payload(data, old_path, trust_pickle=True)
    payload = {k: v for k, v in data.items() if k not in ("format", "version")}
    extra = payload.get("extra") or {}
    if extra.get("replay") is not None:
        # replay bytes of format 1 carry no checksum and are no longer read: the converted run
        # resumes with an empty replay (networks, optimizers, counters and RNG states are kept)
        payload["extra"] = {**extra, "replay": None}
        payload["dropped_replay"] = True
    save(new_path, payload)
    return payload
