"""The benchmark scripts stay runnable: every peer buffer and the comparison table, on a tiny
capacity (the real measurements are in benchmarks/, run by hand)."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

BENCH_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH_DIR)

import peers  # noqa: E402

pytest.importorskip("cpprb")


@pytest.mark.parametrize("cls", peers.UNIFORM + peers.PRIORITIZED, ids=lambda c: c.name)
def test_peer_roundtrip(cls):
    rows = peers.make_rows(64, seed=3)
    buf = cls(100)
    buf.fill(rows)
    buf.add_one(peers.one_row(rows, 5))
    buf.add_batch(rows)
    if cls.prioritized:
        buf.sample_update(32, np.linspace(0.0, 1.0, 32))
    else:
        batch = buf.sample(32)
        obs = batch[0] if isinstance(batch, tuple) else batch["obs"]
        assert tuple(obs.shape) == (32, peers.OBS)
        # every sampled obs is one of the rows that were added
        known = {r.tobytes() for r in rows["obs"]}
        assert all(np.asarray(o, dtype=np.float32).tobytes() in known for o in np.asarray(obs))


def test_replay_table_runs(tmp_path, capsys):
    import replay_table

    out = tmp_path / "table.md"
    assert replay_table.main(["--capacity", "2048", "--rounds", "1", "--min-time", "0.001", "--no-memory", "--out", str(out)]) == 0
    text = out.read_text()
    for op in ("single add", "batched add (1024 rows)", "uniform sample (256)", "PER sample + update (256)"):
        assert op in text
