"""One logger for every agent: scalars to a CSV file, TensorBoard and (optionally) Weights & Biases,
under the same names (``charts/episodic_return``, ``charts/SPS``, ``losses/*``, ``options/*``)."""
from __future__ import annotations

import csv
import io
import math
import os
from typing import Any, Mapping

from .._io import atomic_write
from .config import ConfigError
from .tracking import WandbRun, read_hparams


# the scalars TensorBoard's HPARAMS tab shows beside each run's hyperparameters
HPARAM_METRICS = ("eval/mean_return", "charts/episodic_return")


class Logger:
    """Writes ``progress.csv`` (one row per ``dump``, a column per scalar name seen so far) and,
    when the ``tensorboard`` package is importable, TensorBoard event files, in ``run_dir``.

    The run's hyperparameters (``hparams``; by default read from ``run_dir/config.json``, which
    the trainer writes first) go to TensorBoard's HPARAMS tab. ``track``, a dict such as
    ``{"project": "hrlkit", "entity": None, "config": {...}}`` (every key optional; ``config``
    defaults to the hyperparameters), also sends every scalar and the hyperparameters to Weights &
    Biases; ``wandb`` is imported only then, and a ConfigError naming ``track`` says when it is
    not installed."""

    def __init__(self, run_dir: str, *, tensorboard: bool = True, track: Mapping[str, Any] | None = None,
                 hparams: Mapping[str, Any] | None = None):
        self.run_dir = run_dir
        os.makedirs(run_dir, exist_ok=True)
        self.csv_path = os.path.join(run_dir, "progress.csv")
        self._columns: list[str] = []
        self._rows: list[dict] = []
        self._pending: dict[str, float] = {}
        self._tb = None
        self._wandb = None
        resuming = os.path.exists(self.csv_path)
        if hparams is None:
            hparams = read_hparams(run_dir)
        if track is not None:
            extra = set(track) - {"project", "entity", "config", "name"}
            if extra:
                raise ConfigError(f"track: unknown keys {sorted(extra)}; expected project, entity, config, name")
            self._wandb = WandbRun(run_dir, project=track.get("project"), entity=track.get("entity"),
                                   config=track.get("config", hparams), name=track.get("name"), resume=resuming)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=run_dir)
            except ImportError:
                self._tb = None
        if self._tb is not None and hparams:
            self._write_hparams(hparams)
        if resuming:  # resuming: keep what was logged before
            with open(self.csv_path, newline="") as f:
                reader = csv.DictReader(f)
                self._columns = list(reader.fieldnames or [])
                self._rows = [dict(r) for r in reader]

    def record(self, name: str, value: float) -> None:
        self._pending[name] = float(value)

    def record_many(self, values: Mapping[str, float]) -> None:
        for k, v in values.items():
            self.record(k, v)

    def dump(self, step: int) -> dict[str, float]:
        """Write the pending scalars at ``step`` and return them."""
        if not self._pending:
            return {}
        row = {"global_step": step, **self._pending}
        if self._tb is not None:
            for k, v in self._pending.items():
                if math.isfinite(v):
                    self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in self._pending.items() if math.isfinite(v)}, step)
        new = [k for k in row if k not in self._columns]
        self._rows.append(row)
        if new:  # a new column: rewrite the whole file with the wider header
            self._columns += new
            self._rewrite()
        else:
            with open(self.csv_path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=self._columns).writerow(row)
        out, self._pending = self._pending, {}
        return out

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after ``step`` (a resumed run continues from its checkpoint)."""
        self._rows = [r for r in self._rows if int(float(r["global_step"])) <= step]
        self._rewrite()

    def steps_with(self, name: str) -> list[int]:
        """The steps of the rows that logged ``name``."""
        return [int(float(r["global_step"])) for r in self._rows if r.get(name) not in (None, "")]

    def _rewrite(self) -> None:
        with atomic_write(self.csv_path) as raw:
            text = io.TextIOWrapper(raw, newline="", write_through=True)
            w = csv.DictWriter(text, fieldnames=self._columns)
            w.writeheader()
            w.writerows(self._rows)
            text.detach()  # leave the binary file open for atomic_write to sync and rename

    def _write_hparams(self, hparams: Mapping[str, Any]) -> None:
        """The hyperparameters as TensorBoard's hparams-plugin summaries, in this run's own event
        file (``SummaryWriter.add_hparams`` would open a second run in a sub-folder), linked to the
        ``HPARAM_METRICS`` scalars this logger writes."""
        from torch.utils.tensorboard.summary import hparams as hparams_summaries

        writer = self._tb._get_file_writer()
        for summary in hparams_summaries(dict(hparams), {m: 0.0 for m in HPARAM_METRICS}):
            writer.add_summary(summary)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
