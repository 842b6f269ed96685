"""pytest-benchmark suite: hrlkit's replay against its peers, all in the same run.

    pytest benchmarks/test_bench_replay.py --benchmark-group-by=group

Capacity defaults to 1,000,000 rows (HRLKIT_BENCH_CAPACITY overrides it; CI uses a small one
with --benchmark-disable to keep the suite from rotting). Every buffer is filled to capacity
first, so adds measure the steady state in which the oldest row is overwritten.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import peers

CAPACITY = int(os.environ.get("HRLKIT_BENCH_CAPACITY", "1000000"))
BATCH = 256
ADD_BATCH = 1024

pytest.importorskip("cpprb")


@pytest.fixture(scope="module")
def rows():
    return peers.make_rows(ADD_BATCH)


_filled: dict = {}


def filled(cls, rows):
    # One filled buffer per peer for the whole module: filling 1M rows is the slow part.
    if cls not in _filled:
        buf = cls(CAPACITY)
        buf.fill(rows)
        _filled[cls] = buf
    return _filled[cls]


@pytest.mark.parametrize("cls", peers.UNIFORM + peers.PRIORITIZED, ids=lambda c: c.name)
def test_single_add(benchmark, cls, rows):
    benchmark.group = "single add"
    buf = filled(cls, rows)
    row = peers.one_row(rows, 3)
    benchmark(buf.add_one, row)


@pytest.mark.parametrize("cls", peers.UNIFORM + peers.PRIORITIZED, ids=lambda c: c.name)
def test_batch_add_1024(benchmark, cls, rows):
    benchmark.group = "batched add (1024 rows)"
    buf = filled(cls, rows)
    if cls is peers.SeedListBuffer:
        benchmark.pedantic(buf.add_batch, args=(rows,), rounds=3, iterations=1)
    else:
        benchmark(buf.add_batch, rows)


@pytest.mark.parametrize("cls", peers.UNIFORM, ids=lambda c: c.name)
def test_uniform_sample_256(benchmark, cls, rows):
    benchmark.group = "uniform sample (256)"
    buf = filled(cls, rows)
    benchmark(buf.sample, BATCH)


@pytest.mark.parametrize("cls", peers.PRIORITIZED, ids=lambda c: c.name)
def test_per_sample_update_256(benchmark, cls, rows):
    benchmark.group = "PER sample + update_priorities (256)"
    buf = filled(cls, rows)
    td = np.random.default_rng(1).random(BATCH)
    benchmark(buf.sample_update, BATCH, td)
