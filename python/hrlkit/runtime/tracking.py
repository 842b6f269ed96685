"""Optional experiment tracking for :class:`~hrlkit.runtime.logger.Logger`: a run's hyperparameters
as flat scalars, and Weights & Biases (``wandb``), imported only when tracking is asked for."""
from __future__ import annotations

import json
import math
import os
import secrets
import string
from typing import Any, Mapping

from .config import ConfigError

TRACKING_FILE = "tracking.json"  # in the run directory: the wandb run id, so a resumed run continues it


def require_wandb(option: str = "track"):
    """The ``wandb`` module, or a ConfigError naming ``option`` when it is not installed."""
    try:
        import wandb
    except ImportError as exc:
        raise ConfigError(f"{option}: logging to Weights & Biases needs wandb, which is not installed "
                          f"(pip install wandb)") from exc
    return wandb


def flat_hparams(meta: Mapping[str, Any]) -> dict[str, Any]:
    """A run's ``config.json`` as one flat dict of scalars: the agent's hyperparameters under their
    own names, the rest (algo, env_id, seed, ...) beside them, nested tables as ``outer/inner``;
    values that are not bool/int/float/str (None, lists) as their JSON text."""
    out: dict[str, Any] = {}

    def put(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                put(f"{prefix}/{k}" if prefix else str(k), v)
        elif isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value)):
            out[prefix] = value
        else:
            out[prefix] = json.dumps(value, default=str)

    rest = {k: v for k, v in meta.items() if k != "config"}
    put("", meta.get("config") or {})
    for k, v in rest.items():
        put(k if k not in out else f"run/{k}", v)
    return out


def read_hparams(run_dir: str) -> dict[str, Any]:
    """:func:`flat_hparams` of ``run_dir/config.json`` (empty when there is none)."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return flat_hparams(json.load(f))


class WandbRun:
    """One wandb run for one run directory, started on construction; with ``resume`` (the run
    directory already holds logs) it continues the wandb run whose id ``run_dir/tracking.json``
    saved, instead of starting a new one. ``log`` and ``finish``."""

    def __init__(self, run_dir: str, *, project: str | None = None, entity: str | None = None,
                 config: Mapping[str, Any] | None = None, name: str | None = None, resume: bool = False):
        wandb = require_wandb()
        id_path = os.path.join(run_dir, TRACKING_FILE)
        saved = {}
        if resume and os.path.isfile(id_path):
            with open(id_path) as f:
                saved = json.load(f)
        run_id = saved.get("wandb_id") or "".join(secrets.choice(string.ascii_lowercase + string.digits)
                                                  for _ in range(8))  # wandb's own id alphabet and length
        try:
            self._run = wandb.init(project=project, entity=entity, config=dict(config or {}), dir=run_dir,
                                   name=name or os.path.basename(os.path.normpath(run_dir)), id=run_id,
                                   resume="allow")
        except Exception as exc:  # noqa: BLE001 - no login, no network, a bad entity: say where it came from
            raise ConfigError(f"track: wandb.init failed ({type(exc).__name__}: {exc}); log in with `wandb login`, "
                              f"or set WANDB_MODE=offline and `wandb sync` later") from exc
        if saved.get("wandb_id") != run_id:
            with open(id_path, "w") as f:
                json.dump({"wandb_id": run_id}, f)

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        self._run.log(dict(scalars), step=step)

    def finish(self) -> None:
        self._run.finish()
