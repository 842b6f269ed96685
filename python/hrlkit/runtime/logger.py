"""One logger for every agent: scalars to a CSV file and TensorBoard, under the same names
(``charts/episodic_return``, ``charts/SPS``, ``losses/*``, ``options/*``)."""
from __future__ import annotations

import csv
import io
import math
import os
from typing import Mapping

from .._io import atomic_write


class Logger:
    """Writes ``progress.csv`` (one row per ``dump``, a column per scalar name seen so far) and,
    when the ``tensorboard`` package is importable, TensorBoard event files, in ``run_dir``."""

    def __init__(self, run_dir: str, *, tensorboard: bool = True):
        self.run_dir = run_dir
        os.makedirs(run_dir, exist_ok=True)
        self.csv_path = os.path.join(run_dir, "progress.csv")
        self._columns: list[str] = []
        self._rows: list[dict] = []
        self._pending: dict[str, float] = {}
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=run_dir)
            except ImportError:
                self._tb = None
        if os.path.exists(self.csv_path):  # resuming: keep what was logged before
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

    def _rewrite(self) -> None:
        with atomic_write(self.csv_path) as raw:
            text = io.TextIOWrapper(raw, newline="", write_through=True)
            w = csv.DictWriter(text, fieldnames=self._columns)
            w.writeheader()
            w.writerows(self._rows)
            text.detach()  # leave the binary file open for atomic_write to sync and rename

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None
