"""Tests of hrlkit.ReplayBuffer and hrlkit.PrioritizedReplayBuffer.

Every check compares the buffer against a small numpy ring reference kept by the test
(`RingRef`), or against the closed-form prioritized-replay formulas:
  p_i = (|td_i| + eps)^alpha,   P(i) = p_i / sum_j p_j,   w_i = (p_min / p_i)^beta.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hrlkit import SUPPORTED_DTYPES, PrioritizedReplayBuffer, ReplayBuffer

BUFFERS = [ReplayBuffer, PrioritizedReplayBuffer]

SPEC = {
    "obs": ((3,), "float32"),
    "action": ((), "int64"),
    "reward": ((), "float64"),
    "done": ((), "bool"),
    "next_obs": ((3,), "float32"),
}


# ---- helpers --------------------------------------------------------------------------------
def rows_for(ids, options=None) -> dict:
    """A batch of rows in which every field is derived from the row id (distinct per id)."""
    ids = np.asarray(ids, dtype=np.int64)
    obs = ids[:, None].astype(np.float32) + np.array([0.0, 0.25, 0.5], np.float32)
    rows = {
        "obs": obs,
        "action": ids.copy(),
        "reward": ids.astype(np.float64) * 10.0,
        "done": ids % 2 == 0,
        "next_obs": obs + np.float32(0.125),
    }
    if options is not None:
        rows["option"] = np.asarray(options, dtype=np.int64)
    return rows


def one_row(i, option=None) -> dict:
    """Row `i` as single (unbatched) values."""
    return {k: v[0] for k, v in rows_for([i], None if option is None else [option]).items()}


class RingRef:
    """Reference ring: row j of the stream goes to slot (start + j) % capacity."""

    def __init__(self, capacity: int, spec: dict):
        self.capacity = capacity
        self.cols = {name: np.zeros((capacity, *shape), dtype) for name, (shape, dtype) in spec.items()}
        self.pos = 0
        self.size = 0

    def add(self, rows: dict) -> None:
        n = len(next(iter(rows.values())))
        for j in range(n):
            for name, col in self.cols.items():
                col[self.pos] = rows[name][j]
            self.pos = (self.pos + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def count(self, option: int) -> int:
        return int(np.sum(self.cols["option"][: self.size] == option))


def columns(buf) -> dict:
    return {name: np.array(buf.column(i)) for i, name in enumerate(buf.spec)}


def assert_matches_ref(buf, ref: RingRef) -> None:
    assert len(buf) == ref.size
    assert buf.position == ref.pos
    for i, name in enumerate(buf.spec):
        np.testing.assert_array_equal(buf.column(i)[: ref.size], ref.cols[name][: ref.size], err_msg=name)


def assert_batch_matches_ref(batch: dict, ref: RingRef) -> None:
    idx = batch["indices"]
    assert idx.min() >= 0 and idx.max() < ref.size
    for name, col in ref.cols.items():
        np.testing.assert_array_equal(batch[name], col[idx], err_msg=name)


def snapshot(buf) -> dict:
    """Everything observable about a buffer's state."""
    prios = buf.priorities()
    return {
        "len": len(buf),
        "position": buf.position,
        "columns": columns(buf),
        "priorities": None if prios is None else np.array(prios),
        "max_priority": buf.max_priority,
        "counts": [buf.count(k) for k in range(buf.num_options)],
        "rng": list(buf.rng_state()),
        "beta": getattr(buf, "beta", None),
    }


def assert_same_state(before: dict, after: dict) -> None:
    assert after["len"] == before["len"]
    assert after["position"] == before["position"]
    assert after["max_priority"] == before["max_priority"]
    assert after["counts"] == before["counts"]
    assert after["rng"] == before["rng"]
    assert after["beta"] == before["beta"]
    for name, col in before["columns"].items():
        np.testing.assert_array_equal(after["columns"][name], col, err_msg=name)
    if before["priorities"] is None:
        assert after["priorities"] is None
    else:
        np.testing.assert_array_equal(after["priorities"], before["priorities"])


def chi2_critical_999(df: int) -> float:
    """0.999 quantile of chi-square(df): scipy when installed, else Wilson-Hilferty."""
    try:
        from scipy.stats import chi2
    except ImportError:
        return wilson_hilferty_999(df)
    return float(chi2.ppf(0.999, df))


def wilson_hilferty_999(df: int) -> float:
    z = 3.090232306167813  # standard normal 0.999 quantile
    c = 2.0 / (9.0 * df)
    return df * (1.0 - c + z * math.sqrt(c)) ** 3


def chi2_statistic(observed: np.ndarray, expected_p: np.ndarray) -> float:
    expected = expected_p / expected_p.sum() * observed.sum()
    return float(np.sum((observed - expected) ** 2 / expected))


def per_priority(td, alpha, eps):
    return (np.abs(np.asarray(td, np.float64)) + eps) ** alpha


# ---- add / ring ----------------------------------------------------------------------------
@pytest.mark.parametrize("cls", BUFFERS)
def test_add_single_and_batched_rows(cls):
    buf = cls(10, SPEC, seed=0)
    ref = RingRef(10, SPEC)
    assert (len(buf), buf.capacity, buf.position) == (0, 10, 0)

    buf.add(**one_row(0))
    ref.add(rows_for([0]))
    assert (len(buf), buf.position) == (1, 1)

    buf.add(**rows_for([1, 2, 3]))
    ref.add(rows_for([1, 2, 3]))
    assert (len(buf), buf.capacity, buf.position) == (4, 10, 4)
    assert_matches_ref(buf, ref)


@pytest.mark.parametrize("cls", BUFFERS)
def test_single_row_as_leading_dim_one_equals_unbatched(cls):
    a, b = cls(4, SPEC, seed=0), cls(4, SPEC, seed=0)
    a.add(**one_row(7))
    b.add(**rows_for([7]))
    for col_a, col_b in zip(columns(a).values(), columns(b).values()):
        np.testing.assert_array_equal(col_a, col_b)


@pytest.mark.parametrize("cls", BUFFERS)
def test_ring_wraparound_keeps_newest_rows_at_ring_slots(cls):
    cap = 8
    buf = cls(cap, SPEC, seed=0)
    ref = RingRef(cap, SPEC)
    sizes = [3, 1, 5, 2, 4, 1, 4]  # 20 rows = 2.5 x capacity, batches straddle the ring end
    assert sum(sizes) == int(2.5 * cap)
    next_id = 0
    for n in sizes:
        ids = np.arange(next_id, next_id + n)
        next_id += n
        if n == 1:
            buf.add(**one_row(int(ids[0])))
        else:
            buf.add(**rows_for(ids))
        ref.add(rows_for(ids))
        assert_matches_ref(buf, ref)
    # exactly the newest `cap` ids are present
    assert sorted(buf.column(list(buf.spec).index("action"))) == list(range(next_id - cap, next_id))
    assert buf.position == (20 % cap)


@pytest.mark.parametrize("cls", BUFFERS)
@pytest.mark.parametrize("prefill", [0, 3, 8])
@pytest.mark.parametrize("n", [10, 16, 21])
def test_batch_larger_than_capacity_keeps_newest_rows(cls, prefill, n):
    cap = 8
    buf = cls(cap, SPEC, seed=0)
    ref = RingRef(cap, SPEC)
    if prefill:
        buf.add(**rows_for(np.arange(100, 100 + prefill)))
        ref.add(rows_for(np.arange(100, 100 + prefill)))
    buf.add(**rows_for(np.arange(n)))
    ref.add(rows_for(np.arange(n)))
    assert_matches_ref(buf, ref)
    assert sorted(buf.column(list(buf.spec).index("action"))) == list(range(n - cap, n))


@pytest.mark.parametrize("cls", BUFFERS)
@pytest.mark.parametrize("prefill", [0, 3, 8])
@pytest.mark.parametrize("n", [19, 21])
def test_tagged_batch_larger_than_capacity_counts_and_sampling(cls, prefill, n):
    """A batch of n > capacity option-1 rows into a capacity-8 tagged buffer: all 8 rows are option 1."""
    cap = 8
    buf = cls(cap, SPEC, num_options=2, seed=0)
    ref = RingRef(cap, buf.spec)
    if prefill:
        pre = rows_for(np.arange(100, 100 + prefill), options=[0] * prefill)
        buf.add(**pre)
        ref.add(pre)
    rows = rows_for(np.arange(n), options=[1] * n)
    buf.add(**rows)
    ref.add(rows)
    assert_matches_ref(buf, ref)
    assert buf.count(1) == 8
    assert buf.count(0) == 0, "count(option=0) must be 0 after every slot was overwritten by option 1"
    with pytest.raises(ValueError, match="option"):
        buf.sample(4, option=0)
    batch = buf.sample(64, option=1)
    assert np.all(batch["option"] == 1)


# ---- sample ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", BUFFERS)
def test_sample_fields_shapes_dtypes_and_values(cls):
    buf = cls(16, SPEC, seed=3)
    ref = RingRef(16, SPEC)
    rows = rows_for(np.arange(11))
    buf.add(**rows)
    ref.add(rows)
    batch = buf.sample(32)
    expected_keys = set(SPEC) | {"indices"} | ({"weights"} if cls is PrioritizedReplayBuffer else set())
    assert set(batch) == expected_keys
    for name, (shape, dtype) in SPEC.items():
        assert isinstance(batch[name], np.ndarray)
        assert batch[name].shape == (32, *shape), name
        assert batch[name].dtype == np.dtype(dtype), name
    assert batch["indices"].shape == (32,) and batch["indices"].dtype == np.int64
    if cls is PrioritizedReplayBuffer:
        assert batch["weights"].shape == (32,) and batch["weights"].dtype == np.float32
    assert_batch_matches_ref(batch, ref)
    # get() returns the same rows for the same slots
    again = buf.get(batch["indices"])
    for name in SPEC:
        np.testing.assert_array_equal(again[name], batch[name])


@pytest.mark.parametrize("cls", BUFFERS)
def test_sampled_rows_match_reference_after_wraparound(cls):
    buf = cls(8, SPEC, seed=11)
    ref = RingRef(8, SPEC)
    rng = np.random.default_rng(0)
    next_id = 0
    for _ in range(12):
        n = int(rng.integers(1, 6))
        rows = rows_for(np.arange(next_id, next_id + n))
        next_id += n
        buf.add(**rows)
        ref.add(rows)
        assert_batch_matches_ref(buf.sample(16), ref)


def test_uniform_sampling_frequencies_are_uniform():
    buf = ReplayBuffer(64, SPEC, seed=5)
    buf.add(**rows_for(np.arange(40)))
    counts = np.zeros(40)
    for _ in range(100):
        counts += np.bincount(buf.sample(400)["indices"], minlength=40)
    stat = chi2_statistic(counts, np.ones(40))
    assert stat < chi2_critical_999(39)


@pytest.mark.parametrize("cls", BUFFERS)
def test_as_torch_shares_memory_with_numpy(cls, monkeypatch):
    buf = cls(16, SPEC, seed=1)
    buf.add(**rows_for(np.arange(9)))
    converted = []
    real_from_numpy = torch.from_numpy

    def spy(arr):
        tensor = real_from_numpy(arr)
        converted.append((arr, tensor))
        return tensor

    monkeypatch.setattr(torch, "from_numpy", spy)
    batch = buf.sample(8, as_torch=True, device="cpu")
    expected_keys = set(SPEC) | {"indices"} | ({"weights"} if cls is PrioritizedReplayBuffer else set())
    assert set(batch) == expected_keys
    assert len(converted) == len(expected_keys)
    by_ptr = {t.data_ptr(): arr for arr, t in converted}
    for name, tensor in batch.items():
        assert isinstance(tensor, torch.Tensor)
        assert tensor.device.type == "cpu"
        arr = by_ptr[tensor.data_ptr()]  # the tensor is a view of the numpy array, not a copy
        assert np.shares_memory(tensor.numpy(), arr)
        assert tensor.numpy().dtype == arr.dtype
    ref = buf.get(batch["indices"].numpy())
    for name in SPEC:
        np.testing.assert_array_equal(batch[name].numpy(), ref[name])


def test_as_torch_same_values_as_numpy_for_same_seed():
    a, b = PrioritizedReplayBuffer(16, SPEC, seed=9), PrioritizedReplayBuffer(16, SPEC, seed=9)
    for buf in (a, b):
        buf.add(**rows_for(np.arange(12)))
        buf.update_priorities(np.arange(12), np.linspace(0.1, 3.0, 12))
    tb, nb = a.sample(20, as_torch=True), b.sample(20)
    for name in nb:
        np.testing.assert_array_equal(tb[name].numpy(), nb[name])


# ---- dtype casting --------------------------------------------------------------------------
SCALAR_SPEC = {
    "f32_val": ((), "float32"),
    "f64_val": ((), "float64"),
    "i64_val": ((), "int64"),
    "i32_val": ((), "int32"),
    "u8_val": ((), "uint8"),
    "flag": ((), "bool"),
}


def test_supported_dtypes_round_trip():
    assert set(SUPPORTED_DTYPES) == {"float32", "float64", "int64", "int32", "uint8", "bool"}
    buf = ReplayBuffer(4, SCALAR_SPEC, seed=0)
    row = {"f32_val": np.float32(1.5), "f64_val": 2.25, "i64_val": -(2**40), "i32_val": -7, "u8_val": 200, "flag": True}
    buf.add(**row)
    got = buf.get([0])
    for name, (_, dtype) in SCALAR_SPEC.items():
        assert got[name].dtype == np.dtype(dtype)
        assert got[name][0] == row[name], name


def test_float64_obs_into_float32_field_is_cast():
    buf = ReplayBuffer(4, SPEC, seed=0)
    rows = rows_for([1, 2])
    rows["obs"] = rows["obs"].astype(np.float64) + 1e-9
    buf.add(**rows)
    np.testing.assert_array_equal(buf.column(0)[:2], rows["obs"].astype(np.float32))


def test_python_scalars_into_scalar_fields():
    buf = ReplayBuffer(8, SCALAR_SPEC, seed=0)
    buf.add(f32_val=1, f64_val=True, i64_val=3, i32_val=4, u8_val=5, flag=False)  # int/bool into float: same_kind
    buf.add(f32_val=0.5, f64_val=-2.5, i64_val=True, i32_val=-1, u8_val=0, flag=True)
    got = buf.get([0, 1])
    np.testing.assert_array_equal(got["f32_val"], np.array([1.0, 0.5], np.float32))
    np.testing.assert_array_equal(got["f64_val"], [1.0, -2.5])
    np.testing.assert_array_equal(got["i64_val"], [3, 1])
    np.testing.assert_array_equal(got["i32_val"], [4, -1])
    np.testing.assert_array_equal(got["u8_val"], [5, 0])
    np.testing.assert_array_equal(got["flag"], [False, True])


def test_python_list_rows_are_accepted():
    buf = ReplayBuffer(8, SPEC, seed=0)
    buf.add(obs=[[1, 2, 3], [4, 5, 6]], action=[1, 2], reward=[0.5, 1.5], done=[True, False], next_obs=[[0, 0, 0]] * 2)
    np.testing.assert_array_equal(buf.column(0)[:2], [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(buf.column(3)[:2], [True, False])


VALID_SCALARS = dict(f32_val=1.0, f64_val=1.0, i64_val=1, i32_val=1, u8_val=1, flag=True)


@pytest.mark.parametrize(
    "field, value",
    [
        ("i64_val", 1.5),  # Python float into int64
        ("i64_val", np.array(2.0)),  # numpy float into int64
        ("i64_val", np.array([1.0, 2.0])),
        ("i32_val", 2.0),
        ("u8_val", 256),  # out of range
        ("u8_val", -1),
        ("i32_val", 2**31),
        ("i64_val", 2**63),
        ("flag", 1),  # Python int into bool
        ("flag", 1.0),
        ("flag", np.array([0, 1])),  # numpy int into bool
    ],
)
def test_unsafe_casts_are_rejected_and_write_nothing(field, value):
    buf = ReplayBuffer(4, SCALAR_SPEC, seed=0)
    buf.add(**VALID_SCALARS)
    before = snapshot(buf)
    kwargs = dict(VALID_SCALARS)
    if np.ndim(value) == 1:  # a batch: make every other field a batch of the same length
        kwargs = {k: np.full(len(value), v, dtype=SCALAR_SPEC[k][1]) for k, v in kwargs.items()}
    kwargs[field] = value
    with pytest.raises(ValueError, match=rf"^{field}:"):
        buf.add(**kwargs)
    assert_same_state(before, snapshot(buf))


def test_process_exits_cleanly_after_casting_add():
    """A float64 -> float32 (or list) add must not crash the interpreter at exit."""
    code = textwrap.dedent(
        """
        import numpy as np
        from hrlkit import ReplayBuffer
        buf = ReplayBuffer(4, {"x": ((3,), "float32")}, seed=0)
        buf.add(x=np.zeros(3))          # cast path: float64 into a float32 field
        buf.add(x=[1.0, 2.0, 3.0])      # list path
        print("done")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "done" in proc.stdout
    assert proc.returncode == 0, f"interpreter crashed at exit (rc={proc.returncode}):\n{proc.stderr[-2000:]}"


# ---- option tags ----------------------------------------------------------------------------
@pytest.mark.parametrize("cls", BUFFERS)
def test_option_field_and_count(cls):
    buf = cls(16, SPEC, num_options=3, seed=0)
    assert buf.spec["option"] == ((), "int64")
    assert buf.num_options == 3
    opts = [0, 2, 2, 1, 2, 0, 2]
    buf.add(**rows_for(np.arange(7), options=opts))
    assert [buf.count(k) for k in range(3)] == [2, 1, 4]
    assert buf.count() == 7 == len(buf)
    buf.add(**one_row(7, option=1))
    assert [buf.count(k) for k in range(3)] == [2, 2, 4]


@pytest.mark.parametrize("cls", BUFFERS)
def test_sample_by_option_returns_only_that_option(cls):
    buf = cls(32, SPEC, num_options=3, seed=4)
    ref = RingRef(32, buf.spec)
    rng = np.random.default_rng(1)
    rows = rows_for(np.arange(20), options=rng.integers(0, 3, size=20))
    buf.add(**rows)
    ref.add(rows)
    if cls is PrioritizedReplayBuffer:
        buf.update_priorities(np.arange(20), rng.uniform(0.1, 5.0, size=20))
    for k in range(3):
        batch = buf.sample(500, option=k)
        assert np.all(batch["option"] == k)
        assert_batch_matches_ref(batch, ref)
        # every row of option k is reachable
        assert set(batch["indices"]) == set(np.flatnonzero(ref.cols["option"][:20] == k))


@pytest.mark.parametrize("cls", BUFFERS)
def test_wraparound_moves_rows_between_options(cls):
    cap = 8
    buf = cls(cap, SPEC, num_options=2, seed=2)
    ref = RingRef(cap, buf.spec)
    rows = rows_for(np.arange(8), options=[0] * 8)
    buf.add(**rows)
    ref.add(rows)
    for i in range(8, 13):  # overwrite slots 0..4 with option-1 rows, one at a time
        buf.add(**one_row(i, option=1))
        ref.add(rows_for([i], options=[1]))
    assert_matches_ref(buf, ref)
    assert (buf.count(0), buf.count(1)) == (3, 5)
    for _ in range(20):
        b0 = buf.sample(64, option=0)
        assert set(b0["indices"]) <= {5, 6, 7}
        assert np.all(b0["option"] == 0)
        assert_batch_matches_ref(b0, ref)
        b1 = buf.sample(64, option=1)
        assert set(b1["indices"]) <= {0, 1, 2, 3, 4}
        assert np.all(b1["option"] == 1)
    rows = rows_for(np.arange(13, 16), options=[1, 1, 1])  # a batch overwriting the rest
    buf.add(**rows)
    ref.add(rows)
    assert (buf.count(0), buf.count(1)) == (0, 8)
    with pytest.raises(ValueError, match="option"):
        buf.sample(1, option=0)
    assert np.all(buf.sample(256, option=1)["option"] == 1)


def test_tagged_uniform_option_frequencies_are_uniform():
    buf = ReplayBuffer(64, SPEC, num_options=2, seed=8)
    opts = np.arange(50) % 2
    buf.add(**rows_for(np.arange(50), options=opts))
    slots = np.flatnonzero(opts == 1)
    counts = np.bincount(np.concatenate([buf.sample(500, option=1)["indices"] for _ in range(40)]), minlength=50)
    assert counts[opts == 0].sum() == 0
    assert chi2_statistic(counts[slots].astype(float), np.ones(len(slots))) < chi2_critical_999(len(slots) - 1)


# ---- prioritized: distribution, weights, max priority ---------------------------------------
def test_wilson_hilferty_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    for df in (10, 49, 200):
        assert wilson_hilferty_999(df) == pytest.approx(scipy_stats.chi2.ppf(0.999, df), rel=1e-2)


@pytest.mark.parametrize("alpha", [0.6, 1.0])
def test_per_sampling_frequencies_match_priorities(alpha):
    rng = np.random.default_rng(123)
    n_rows = 50
    td = rng.uniform(0.05, 4.0, size=n_rows) * rng.choice([-1, 1], size=n_rows)
    buf = PrioritizedReplayBuffer(64, SPEC, alpha=alpha, eps=1e-3, seed=7)
    buf.add(**rows_for(np.arange(n_rows)))
    buf.update_priorities(np.arange(n_rows), td)
    expected_p = per_priority(td, alpha, 1e-3)
    counts = np.zeros(n_rows)
    for _ in range(2000):
        counts += np.bincount(buf.sample(64)["indices"], minlength=64)[:n_rows]
    assert counts.sum() == 2000 * 64  # no draws outside the 50 written rows
    stat = chi2_statistic(counts, expected_p)
    assert stat < chi2_critical_999(n_rows - 1), stat
    # and not merely uniform: the statistic against uniform frequencies is enormous
    assert chi2_statistic(counts, np.ones(n_rows)) > 10 * chi2_critical_999(n_rows - 1)


def test_per_option_sampling_frequencies_match_option_priorities():
    rng = np.random.default_rng(5)
    n_rows = 60
    opts = rng.integers(0, 3, size=n_rows)
    td = rng.uniform(0.1, 3.0, size=n_rows)
    buf = PrioritizedReplayBuffer(64, SPEC, alpha=0.7, num_options=3, seed=1)
    buf.add(**rows_for(np.arange(n_rows), options=opts))
    buf.update_priorities(np.arange(n_rows), td)
    for k in range(3):
        slots = np.flatnonzero(opts == k)
        counts = np.bincount(np.concatenate([buf.sample(64, option=k)["indices"] for _ in range(600)]), minlength=64)
        assert counts[np.setdiff1d(np.arange(64), slots)].sum() == 0
        stat = chi2_statistic(counts[slots].astype(float), per_priority(td[slots], 0.7, 1e-6))
        assert stat < chi2_critical_999(len(slots) - 1), (k, stat)


def test_priorities_view_holds_p_alpha_and_is_zero_copy():
    alpha, eps = 0.6, 1e-6
    buf = PrioritizedReplayBuffer(16, SPEC, alpha=alpha, eps=eps, seed=0)
    buf.add(**rows_for(np.arange(5)))
    view = buf.priorities()
    assert view.dtype == np.float32 and view.shape == (16,)
    np.testing.assert_array_equal(view[:5], np.ones(5, np.float32))  # max priority starts at 1
    np.testing.assert_array_equal(view[5:], np.zeros(11, np.float32))  # unwritten slots are empty
    td = np.array([0.5, -2.0, 0.0, 3.0, 1.0])
    buf.update_priorities(np.arange(5), td)
    # the earlier view sees the update: it is the buffer's own memory
    np.testing.assert_allclose(view[:5], per_priority(td, alpha, eps), rtol=1e-6)


def test_new_rows_enter_with_max_priority():
    alpha, eps = 0.5, 0.01
    buf = PrioritizedReplayBuffer(16, SPEC, alpha=alpha, eps=eps, seed=0)
    assert buf.max_priority == 1.0
    buf.add(**rows_for([0, 1, 2]))
    np.testing.assert_array_equal(buf.priorities()[:3], [1.0, 1.0, 1.0])

    buf.update_priorities([0, 1], [0.2, 0.3])  # below the initial 1.0: max stays 1.0
    assert buf.max_priority == 1.0
    buf.add(**one_row(3))
    assert buf.priorities()[3] == pytest.approx(1.0)

    buf.update_priorities([0], [-8.0])
    assert buf.max_priority == pytest.approx(8.0 + eps)
    buf.update_priorities([0], [0.1])  # lowering a row later does not lower the max
    assert buf.max_priority == pytest.approx(8.0 + eps)
    buf.add(**rows_for([4, 5]))
    np.testing.assert_allclose(buf.priorities()[4:6], (8.0 + eps) ** alpha, rtol=1e-6)
    np.testing.assert_allclose(buf.priorities()[0], (0.1 + eps) ** alpha, rtol=1e-6)


def test_new_rows_enter_with_max_priority_sampling_frequency():
    buf = PrioritizedReplayBuffer(16, SPEC, alpha=1.0, eps=0.0, seed=3)
    buf.add(**rows_for(np.arange(4)))
    buf.update_priorities(np.arange(4), [1.0, 1.0, 1.0, 9.0])
    buf.update_priorities([3], [1.0])  # the row is lowered again; max priority stays 9
    buf.add(**one_row(4))  # enters with priority 9: P = 9 / 13
    counts = np.bincount(np.concatenate([buf.sample(100)["indices"] for _ in range(100)]), minlength=5)
    assert counts[4] / counts.sum() == pytest.approx(9 / 13, abs=0.01)


@pytest.mark.parametrize("beta", [0.0, 0.4, 1.0])
def test_per_weights_formula(beta):
    alpha, eps = 0.6, 1e-6
    rng = np.random.default_rng(2)
    buf = PrioritizedReplayBuffer(32, SPEC, alpha=alpha, eps=eps, beta=beta, seed=5)
    buf.add(**rows_for(np.arange(20)))
    td = rng.uniform(0.5, 2.0, size=20)
    buf.update_priorities(np.arange(20), td)
    p = buf.priorities()[:20].astype(np.float64)
    np.testing.assert_allclose(p, per_priority(td, alpha, eps), rtol=1e-6)
    seen_min = False
    for _ in range(50):
        batch = buf.sample(64)
        w = batch["weights"]
        expected = (p.min() / p[batch["indices"]]) ** beta
        np.testing.assert_allclose(w, expected, rtol=1e-5)
        assert np.all(w <= 1.0)
        if np.argmin(p) in batch["indices"]:
            seen_min = True
            assert w[batch["indices"] == np.argmin(p)][0] == pytest.approx(1.0)
    assert seen_min


def test_per_weights_normalised_over_the_option():
    alpha, beta = 1.0, 0.5
    buf = PrioritizedReplayBuffer(16, SPEC, alpha=alpha, beta=beta, eps=0.0, num_options=2, seed=5)
    opts = np.array([0, 0, 0, 1, 1, 1])
    buf.add(**rows_for(np.arange(6), options=opts))
    td = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    buf.update_priorities(np.arange(6), td)
    for k, p_min in ((0, 1.0), (1, 8.0)):
        batch = buf.sample(300, option=k)
        np.testing.assert_allclose(batch["weights"], (p_min / td[batch["indices"]]) ** beta, rtol=1e-6)
        assert batch["weights"].max() == pytest.approx(1.0)  # the option's min-priority row
    everything = buf.sample(300)
    np.testing.assert_allclose(everything["weights"], (1.0 / td[everything["indices"]]) ** beta, rtol=1e-6)


def test_beta_override_and_property():
    buf = PrioritizedReplayBuffer(16, SPEC, alpha=1.0, beta=0.4, eps=0.0, seed=0)
    buf.add(**rows_for(np.arange(4)))
    buf.update_priorities(np.arange(4), [1.0, 2.0, 4.0, 8.0])
    p = np.array([1.0, 2.0, 4.0, 8.0])

    def weights_ok(batch, beta):
        np.testing.assert_allclose(batch["weights"], (1.0 / p[batch["indices"]]) ** beta, rtol=1e-6)

    assert buf.beta == 0.4
    weights_ok(buf.sample(64), 0.4)
    weights_ok(buf.sample(64, beta=0.0), 0.0)
    weights_ok(buf.sample(64, beta=1.0), 1.0)
    assert buf.beta == 0.4  # an override does not change the default
    buf.beta = 0.9
    assert buf.beta == 0.9
    weights_ok(buf.sample(64), 0.9)
    buf.beta = 1  # ints are fine
    assert buf.beta == 1.0


@pytest.mark.parametrize("value, exc", [(-0.1, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
                                        ("0.5", TypeError), (None, TypeError), (True, TypeError)])
def test_beta_setter_is_validated(value, exc):
    buf = PrioritizedReplayBuffer(4, SPEC, beta=0.4, seed=0)
    with pytest.raises(exc, match="beta"):
        buf.beta = value
    assert buf.beta == 0.4


# ---- unwritten / foreign slots are never sampled --------------------------------------------
@pytest.mark.parametrize("cls", BUFFERS)
def test_unwritten_slots_are_never_sampled(cls):
    buf = cls(1000, SPEC, seed=0)
    buf.add(**rows_for([0, 1, 2]))
    idx = buf.sample(100_000)["indices"]
    assert idx.min() >= 0 and idx.max() < 3
    assert set(idx) == {0, 1, 2}


@pytest.mark.parametrize("cls", BUFFERS)
def test_unwritten_slots_are_never_sampled_by_option(cls):
    buf = cls(1000, SPEC, num_options=2, seed=0)
    buf.add(**rows_for([0, 1, 2], options=[1, 0, 1]))
    assert set(buf.sample(50_000, option=0)["indices"]) == {1}  # unwritten slots hold tag 0 bytes
    assert set(buf.sample(50_000, option=1)["indices"]) == {0, 2}
    assert set(buf.sample(50_000)["indices"]) == {0, 1, 2}


@pytest.mark.parametrize("alpha, eps", [(0.6, 1e-6), (1.0, 0.0)])
def test_extreme_priorities_never_reach_unwritten_or_foreign_slots(alpha, eps):
    buf = PrioritizedReplayBuffer(1000, SPEC, alpha=alpha, eps=eps, num_options=2, seed=0)
    opts = np.array([0, 1, 0, 1, 0])
    buf.add(**rows_for(np.arange(5), options=opts))
    buf.update_priorities(np.arange(5), [1e30, 1e-30, 1e-30, 1e30, 1e-30])
    for option in (None, 0, 1):
        batch = buf.sample(20_000, option=option)
        assert batch["indices"].max() < 5
        if option is not None:
            assert np.all(opts[batch["indices"]] == option)
        assert np.all(np.isfinite(batch["weights"])) and np.all(batch["weights"] <= 1.0)
    # and the other way round: the big one is the single row of its option
    buf.update_priorities(np.arange(5), [1e-30, 1e-30, 1e-30, 1e30, 1e-30])
    assert set(buf.sample(5000, option=0)["indices"]) <= {0, 2, 4}


def test_huge_td_error_keeps_priorities_and_weights_finite():
    """A finite TD error whose priority overflows float32 must not produce inf priorities / 0 weights."""
    buf = PrioritizedReplayBuffer(16, SPEC, alpha=1.0, eps=1e-6, seed=0)
    buf.add(**rows_for(np.arange(4)))
    buf.update_priorities([0], [1e39])  # finite in float64, accepted by update_priorities
    assert np.all(np.isfinite(buf.priorities())), buf.priorities()[:4]
    batch = buf.sample(64)
    assert np.all(np.isfinite(batch["weights"])) and np.all(batch["weights"] > 0)


TAGGED_CAP, TAGGED_K = 8, 3

add_op = st.tuples(st.just("add"), st.lists(st.integers(0, TAGGED_K - 1), min_size=1, max_size=2 * TAGGED_CAP + 3))
update_op = st.tuples(
    st.just("update"),
    st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.sampled_from([1e-30, 1e30, 0.0, 0.5, -2.0, 7.0])),
             min_size=1, max_size=6),
)
sample_op = st.tuples(st.just("sample"), st.one_of(st.none(), st.integers(0, TAGGED_K - 1)), st.integers(1, 64))


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(st.one_of(add_op, update_op, sample_op), min_size=1, max_size=25),
       alpha=st.sampled_from([0.6, 1.0]), eps=st.sampled_from([0.0, 1e-6]))
def test_property_tagged_per_sampling_respects_written_slots_and_options(ops, alpha, eps):
    buf = PrioritizedReplayBuffer(TAGGED_CAP, {"x": ((), "int64")}, alpha=alpha, eps=eps, num_options=TAGGED_K, seed=1)
    tags = np.zeros(TAGGED_CAP, np.int64)
    prio = np.zeros(TAGGED_CAP)  # reference p^alpha per slot
    size = pos = 0
    max_p = 1.0
    next_id = 0
    for op in ops:
        if op[0] == "add":
            options = np.array(op[1], np.int64)
            n = len(options)
            buf.add(x=np.arange(next_id, next_id + n), option=options)
            next_id += n
            for o in options:
                tags[pos], prio[pos] = o, max_p ** alpha
                pos = (pos + 1) % TAGGED_CAP
                size = min(size + 1, TAGGED_CAP)
        elif op[0] == "update":
            if size == 0:
                continue
            idx = np.array([int(f * size) for f, _ in op[1]], np.int64)
            td = np.array([t for _, t in op[1]])
            buf.update_priorities(idx, td)
            for i, t in zip(idx, td):
                prio[i] = np.float32((abs(t) + eps) ** alpha)
                max_p = max(max_p, abs(t) + eps)
        else:
            _, option, batch_size = op
            rows = np.arange(size) if option is None else np.flatnonzero(tags[:size] == option)
            if len(rows) == 0 or not np.any(prio[rows] > 0):
                with pytest.raises(ValueError):
                    buf.sample(batch_size, option=option)
                continue
            batch = buf.sample(batch_size, option=option)
            idx = batch["indices"]
            assert np.all((idx >= 0) & (idx < len(buf)))
            assert np.all(prio[idx] > 0), "sampled a slot of zero priority"
            if option is not None:
                assert np.all(tags[idx] == option) and np.all(batch["option"] == option)
            assert np.all(np.isfinite(batch["weights"])) and np.all(batch["weights"] <= 1.0)
        assert len(buf) == size and buf.position == pos
        assert [buf.count(k) for k in range(TAGGED_K)] == [int(np.sum(tags[:size] == k)) for k in range(TAGGED_K)]
        np.testing.assert_allclose(buf.priorities(), prio.astype(np.float32), rtol=1e-6)


# ---- save / load ----------------------------------------------------------------------------
def build(kind: str, seed: int = 21):
    """A partially wrapped buffer of the given kind, with varied priorities."""
    if kind == "uniform":
        buf = ReplayBuffer(12, SPEC, seed=seed)
    elif kind == "prioritized":
        buf = PrioritizedReplayBuffer(12, SPEC, alpha=0.7, beta=0.3, eps=1e-4, seed=seed)
    elif kind == "tagged-uniform":
        buf = ReplayBuffer(12, SPEC, num_options=3, seed=seed)
    else:
        buf = PrioritizedReplayBuffer(12, SPEC, alpha=0.7, beta=0.3, eps=1e-4, num_options=3, seed=seed)
    tagged = buf.num_options > 0
    for start in (0, 7, 12):
        ids = np.arange(start, start + (7 if start < 12 else 3))
        buf.add(**rows_for(ids, options=(ids % 3) if tagged else None))
    if buf.prioritized:
        buf.update_priorities(np.arange(12), np.linspace(-3.0, 2.0, 12))
    return buf


KINDS = ["uniform", "prioritized", "tagged-uniform", "tagged-prioritized"]


def sample_stream(buf, n=5):
    out = []
    for i in range(n):
        option = (i % buf.num_options) if buf.num_options and i % 2 else None
        out.append(buf.sample(16, option=option))
    return out


def assert_streams_equal(a, b):
    for ba, bb in zip(a, b):
        assert set(ba) == set(bb)
        for name in ba:
            np.testing.assert_array_equal(ba[name], bb[name], err_msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(kind, tmp_path):
    buf = build(kind)
    buf.sample(8)  # advance the stream
    path = tmp_path / "buf.hrl"
    buf.save(path)
    cls = type(buf)
    loaded = cls.load(path)
    assert type(loaded) is cls
    assert loaded.spec == buf.spec
    assert (loaded.capacity, len(loaded), loaded.position, loaded.num_options) == (
        buf.capacity, len(buf), buf.position, buf.num_options)
    assert loaded.max_priority == buf.max_priority
    assert [loaded.count(k) for k in range(buf.num_options)] == [buf.count(k) for k in range(buf.num_options)]
    if buf.prioritized:
        assert (loaded.alpha, loaded.beta, loaded.eps) == (buf.alpha, buf.beta, buf.eps)
    assert_same_state(snapshot(buf), snapshot(loaded))
    # the sampling stream continues identically
    assert_streams_equal(sample_stream(buf), sample_stream(loaded))
    # and so does writing
    more = rows_for([50, 51, 52], options=[0, 1, 2] if buf.num_options else None)
    buf.add(**more)
    loaded.add(**more)
    assert_same_state(snapshot(buf), snapshot(loaded))
    assert_streams_equal(sample_stream(buf), sample_stream(loaded))


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_through_open_binary_files(kind, tmp_path):
    """save/load also take an open binary file: the same bytes as a path, from its position."""
    import io

    buf = build(kind)
    buf.sample(8)
    path = tmp_path / "buf.hrl"
    buf.save(path)
    stream = io.BytesIO(b"prefix")
    stream.seek(0, io.SEEK_END)
    buf.save(stream)
    assert stream.getvalue()[6:] == path.read_bytes()
    stream.seek(6)
    loaded = type(buf).load(stream)
    assert_same_state(snapshot(buf), snapshot(loaded))
    assert_streams_equal(sample_stream(buf), sample_stream(loaded))
    with pytest.raises(ValueError, match="truncated"):
        type(buf).load(io.BytesIO(path.read_bytes()[:-1]))


@pytest.mark.parametrize("kind", KINDS)
def test_load_with_seed_reseeds(kind, tmp_path):
    buf = build(kind, seed=21)
    buf.sample(8)
    path = tmp_path / "buf.hrl"
    buf.save(path)
    cls = type(buf)
    a, b = cls.load(path, seed=99), cls.load(path, seed=99)
    assert_streams_equal(sample_stream(a), sample_stream(b))
    fresh = build(kind, seed=99)  # same content, built with seed 99: same stream as the reseeded load
    assert_streams_equal(sample_stream(cls.load(path, seed=99)), sample_stream(fresh))
    continued = sample_stream(cls.load(path))
    reseeded = sample_stream(cls.load(path, seed=99))
    assert any(not np.array_equal(x["indices"], y["indices"]) for x, y in zip(continued, reseeded))


@pytest.mark.parametrize("cls", BUFFERS)
def test_save_load_empty_buffer(cls, tmp_path):
    buf = cls(5, SPEC, seed=0)
    buf.save(tmp_path / "empty.hrl")
    loaded = cls.load(tmp_path / "empty.hrl")
    assert len(loaded) == 0 and loaded.position == 0 and loaded.capacity == 5
    with pytest.raises(ValueError, match="empty"):
        loaded.sample(1)


@pytest.mark.parametrize("fail_at", ["fsync", "write", "replace"])
def test_save_is_atomic_when_the_write_fails(fail_at, tmp_path, monkeypatch):
    path = tmp_path / "buf.hrl"
    old = build("prioritized")
    old.save(path)
    old_bytes = path.read_bytes()

    new = build("prioritized", seed=3)
    new.add(**rows_for(np.arange(200, 205)))

    def boom(*args, **kwargs):
        raise OSError("disk on fire")

    if fail_at == "fsync":
        monkeypatch.setattr(os, "fsync", boom)
    elif fail_at == "replace":
        monkeypatch.setattr(os, "replace", boom)
    else:
        import builtins

        real_open = builtins.open

        class FailingFile:
            def __init__(self, f):
                self._f, self._writes = f, 0

            def write(self, data):
                self._writes += 1
                if self._writes == 3:  # after the magic and the header: midway through the data
                    raise OSError("disk on fire")
                return self._f.write(data)

            def __getattr__(self, name):
                return getattr(self._f, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return self._f.__exit__(*exc)

        def failing_open(file, mode="r", *args, **kwargs):
            f = real_open(file, mode, *args, **kwargs)
            return FailingFile(f) if "w" in mode else f

        monkeypatch.setattr(builtins, "open", failing_open)

    with pytest.raises(OSError, match="disk on fire"):
        new.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == old_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["buf.hrl"]  # no temp file left behind
    assert_same_state(snapshot(old), snapshot(PrioritizedReplayBuffer.load(path)))
    # the buffer itself is unlocked and usable after the failed save
    new.add(**one_row(300))
    new.sample(4)


def test_save_into_missing_directory_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="path"):
        build("uniform").save(tmp_path / "nope" / "buf.hrl")


@pytest.fixture
def saved_file(tmp_path):
    path = tmp_path / "buf.hrl"
    build("tagged-prioritized").save(path)
    return path


def test_load_detects_flipped_data_byte(saved_file):
    data = bytearray(saved_file.read_bytes())
    data[-3 - 32] ^= 0x40  # inside the last data block (the file ends with a 32-byte SHA-256)
    saved_file.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        PrioritizedReplayBuffer.load(saved_file)


@pytest.mark.parametrize("keep", [0, 5, 20, 40, -1, -100])
def test_load_detects_truncation(saved_file, keep):
    data = saved_file.read_bytes()
    saved_file.write_bytes(data[:keep] if keep >= 0 else data[:keep])
    with pytest.raises(ValueError, match="truncated|bad magic"):
        PrioritizedReplayBuffer.load(saved_file)


def test_load_rejects_random_bytes(tmp_path):
    path = tmp_path / "noise.bin"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, size=4096, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="bad magic"):
        ReplayBuffer.load(path)


def test_load_rejects_the_wrong_class(tmp_path):
    build("prioritized").save(tmp_path / "per.hrl")
    build("uniform").save(tmp_path / "uni.hrl")
    with pytest.raises(ValueError, match="PrioritizedReplayBuffer"):
        ReplayBuffer.load(tmp_path / "per.hrl")
    with pytest.raises(ValueError, match="ReplayBuffer"):
        PrioritizedReplayBuffer.load(tmp_path / "uni.hrl")


def test_load_rejects_corrupt_header(saved_file):
    data = bytearray(saved_file.read_bytes())
    data[28 + 5] = ord("}")  # inside the JSON header (after the 28-byte prefix)
    saved_file.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="is corrupt: its SHA-256 checksum does not match"):
        PrioritizedReplayBuffer.load(saved_file)


# ---- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, exc, name",
    [
        (lambda: ReplayBuffer(0, SPEC), ValueError, "capacity"),
        (lambda: ReplayBuffer(-3, SPEC), ValueError, "capacity"),
        (lambda: ReplayBuffer(2.5, SPEC), TypeError, "capacity"),
        (lambda: ReplayBuffer(True, SPEC), TypeError, "capacity"),
        (lambda: PrioritizedReplayBuffer(0, SPEC), ValueError, "capacity"),
        (lambda: ReplayBuffer(4, {}), ValueError, "spec"),
        (lambda: ReplayBuffer(4, [("obs", ((3,), "float32"))]), ValueError, "spec"),
        (lambda: ReplayBuffer(4, {"obs": ((3,), "complex64")}), ValueError, "spec"),
        (lambda: ReplayBuffer(4, {"obs": ((3,), "not-a-dtype")}), ValueError, "spec"),
        (lambda: ReplayBuffer(4, {"obs": ((3,), "float16")}), ValueError, "spec"),
        (lambda: ReplayBuffer(4, {"obs": ((0,), "float32")}), ValueError, "spec"),
        (lambda: ReplayBuffer(4, {"obs": ((-1,), "float32")}), ValueError, "spec"),
        (lambda: ReplayBuffer(4, {"obs": ((2.5,), "float32")}), ValueError, "spec"),
        (lambda: ReplayBuffer(4, {"obs": "float32"}), ValueError, "spec"),
        (lambda: ReplayBuffer(4, {"indices": ((), "int64")}), ValueError, "spec"),
        (lambda: PrioritizedReplayBuffer(4, {"weights": ((), "float32")}), ValueError, "spec"),
        (lambda: ReplayBuffer(4, {"option": ((), "int64")}, num_options=2), ValueError, "spec"),
        (lambda: ReplayBuffer(4, {"bad name": ((), "int64")}), ValueError, "spec"),
        (lambda: ReplayBuffer(4, SPEC, num_options=0), ValueError, "num_options"),
        (lambda: ReplayBuffer(4, SPEC, seed=-1), ValueError, "seed"),
        (lambda: PrioritizedReplayBuffer(4, SPEC, alpha=-0.5), ValueError, "alpha"),
        (lambda: PrioritizedReplayBuffer(4, SPEC, beta=-0.5), ValueError, "beta"),
        (lambda: PrioritizedReplayBuffer(4, SPEC, eps=-1e-6), ValueError, "eps"),
        (lambda: PrioritizedReplayBuffer(4, SPEC, alpha=float("nan")), ValueError, "alpha"),
    ],
)
def test_constructor_rejects_bad_arguments(make, exc, name):
    with pytest.raises(exc, match=name):
        make()


def filled_tagged_per():
    buf = PrioritizedReplayBuffer(16, SPEC, num_options=3, seed=13)
    buf.add(**rows_for(np.arange(11), options=[0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0]))  # no option-2 rows
    buf.update_priorities(np.arange(11), np.linspace(0.1, 2.0, 11))
    return buf


def good_rows(n=3, options=None):
    return rows_for(np.arange(500, 500 + n), options=[0] * n if options is None else options)


def without(d, key):
    return {k: v for k, v in d.items() if k != key}


def with_(d, **kw):
    return {**d, **kw}


BAD_CALLS = [
    # add
    ("missing field", lambda b: b.add(**without(good_rows(), "reward")), ValueError, "reward"),
    ("missing option", lambda b: b.add(**without(good_rows(), "option")), ValueError, "option"),
    ("unknown field", lambda b: b.add(**good_rows(), bogus=np.zeros(3)), ValueError, "bogus"),
    ("wrong shape", lambda b: b.add(**with_(good_rows(), obs=np.zeros((3, 4), np.float32))), ValueError, "obs"),
    ("wrong row shape", lambda b: b.add(**with_(good_rows(1), obs=np.zeros(2, np.float32))), ValueError, "obs"),
    ("empty batch", lambda b: b.add(**good_rows(0)), ValueError, "obs"),
    ("float into int", lambda b: b.add(**with_(good_rows(), action=np.array([1.0, 2.0, 3.0]))), ValueError, "action"),
    ("int into bool", lambda b: b.add(**with_(good_rows(), done=np.array([0, 1, 0]))), ValueError, "done"),
    ("string into float", lambda b: b.add(**with_(good_rows(), reward=np.array(["a", "b", "c"]))), ValueError, "reward"),
    ("object field", lambda b: b.add(**with_(good_rows(), reward=object())), ValueError, "reward"),
    ("rows disagree", lambda b: b.add(**with_(good_rows(3), reward=np.zeros(2))), ValueError, "reward"),
    ("last option too big", lambda b: b.add(**good_rows(4, options=[0, 1, 2, 3])), ValueError, "option"),
    ("last option negative", lambda b: b.add(**good_rows(4, options=[0, 1, 2, -1])), ValueError, "option"),
    ("scalar option too big", lambda b: b.add(**{k: v[0] for k, v in good_rows(1, options=[7]).items()}), ValueError, "option"),
    ("float option", lambda b: b.add(**with_(good_rows(2), option=np.array([0.0, 1.0]))), ValueError, "option"),
    # sample
    ("batch_size 0", lambda b: b.sample(0), ValueError, "batch_size"),
    ("batch_size negative", lambda b: b.sample(-4), ValueError, "batch_size"),
    ("batch_size float", lambda b: b.sample(4.0), TypeError, "batch_size"),
    ("batch_size None", lambda b: b.sample(None), TypeError, "batch_size"),
    ("option without rows", lambda b: b.sample(4, option=2), ValueError, "option"),
    ("option out of range", lambda b: b.sample(4, option=3), IndexError, "option"),
    ("option negative", lambda b: b.sample(4, option=-1), ValueError, "option"),
    ("option float", lambda b: b.sample(4, option=1.0), TypeError, "option"),
    ("beta negative", lambda b: b.sample(4, beta=-1.0), ValueError, "beta"),
    ("beta nan", lambda b: b.sample(4, beta=float("nan")), ValueError, "beta"),
    ("count option out of range", lambda b: b.count(option=3), IndexError, "option"),
    # update_priorities
    ("last td nan", lambda b: b.update_priorities([0, 1, 2], [0.5, 0.7, float("nan")]), ValueError, "td_errors"),
    ("td inf", lambda b: b.update_priorities([0, 1], [float("inf"), 0.5]), ValueError, "td_errors"),
    ("td -inf torch", lambda b: b.update_priorities(torch.tensor([0, 1]), torch.tensor([0.5, -float("inf")])),
     ValueError, "td_errors"),
    ("td strings", lambda b: b.update_priorities([0, 1], ["a", "b"]), TypeError, "td_errors"),
    ("index out of range", lambda b: b.update_priorities([0, 16], [0.5, 0.5]), IndexError, "indices"),
    ("index not yet written", lambda b: b.update_priorities([0, 1, 11], [9.0, 9.0, 9.0]), IndexError, "indices"),
    ("index negative", lambda b: b.update_priorities([0, -1], [9.0, 9.0]), IndexError, "indices"),
    ("float indices", lambda b: b.update_priorities(np.array([0.0, 1.0]), [9.0, 9.0]), TypeError, "indices"),
    ("2-D indices", lambda b: b.update_priorities(np.zeros((2, 2), np.int64), np.ones(4)), ValueError, "indices"),
    ("length mismatch", lambda b: b.update_priorities([0, 1, 2], [9.0, 9.0]), ValueError, "td_errors"),
    ("length mismatch 2", lambda b: b.update_priorities([0], [9.0, 9.0]), ValueError, "td_errors"),
    # get
    ("get not yet written", lambda b: b.get([0, 12]), IndexError, "indices"),
    ("get float indices", lambda b: b.get([0.5]), TypeError, "indices"),
]


@pytest.mark.parametrize("call, exc, name", [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_input_names_argument_and_changes_nothing(call, exc, name):
    buf = filled_tagged_per()
    before = snapshot(buf)
    with pytest.raises(exc, match=name) as info:
        call(buf)
    assert not str(info.value).startswith("Replay refused"), "the core's terse refusal, not the named error"
    assert_same_state(before, snapshot(buf))
    # still fully usable afterwards
    buf.add(**good_rows(2))
    buf.sample(4)


UNTAGGED_UNIFORM_BAD_CALLS = [
    ("sample empty", lambda b: ReplayBuffer(4, SPEC).sample(1), ValueError, "empty"),
    ("sample empty PER", lambda b: PrioritizedReplayBuffer(4, SPEC).sample(1), ValueError, "empty"),
    ("option on untagged", lambda b: b.sample(2, option=0), ValueError, "option"),
    ("count option on untagged", lambda b: b.count(option=0), ValueError, "option"),
    ("update_priorities on uniform", lambda b: b.update_priorities([0], [1.0]), TypeError, "prioritized"),
    ("option field on untagged", lambda b: b.add(**good_rows(2)), ValueError, "option"),
]


@pytest.mark.parametrize("call, exc, name", [c[1:] for c in UNTAGGED_UNIFORM_BAD_CALLS],
                         ids=[c[0] for c in UNTAGGED_UNIFORM_BAD_CALLS])
def test_bad_input_on_untagged_uniform_buffer(call, exc, name):
    buf = ReplayBuffer(8, SPEC, seed=0)
    buf.add(**rows_for(np.arange(5)))
    before = snapshot(buf)
    with pytest.raises(exc, match=name):
        call(buf)
    assert_same_state(before, snapshot(buf))


def test_all_zero_priorities_raise_clear_error():
    buf = PrioritizedReplayBuffer(8, SPEC, eps=0.0, seed=0)
    buf.add(**rows_for(np.arange(3)))
    buf.update_priorities(np.arange(3), np.zeros(3))
    with pytest.raises(ValueError, match="eps"):
        buf.sample(2)


def test_update_priorities_accepts_torch_and_column_vectors():
    a = PrioritizedReplayBuffer(8, SPEC, alpha=1.0, eps=0.0, seed=0)
    a.add(**rows_for(np.arange(4)))
    a.update_priorities(torch.tensor([0, 2]), torch.tensor([[3.0], [-5.0]]))  # (B, 1) TD errors
    np.testing.assert_allclose(a.priorities()[:4], [3.0, 1.0, 5.0, 1.0])


# ---- concurrency ----------------------------------------------------------------------------
ID_SPEC = {
    "obs": ((4,), "float32"),
    "next_obs": ((4,), "float64"),
    "reward": ((), "float64"),
    "step": ((), "int64"),
}


def id_rows(ids):
    ids = np.asarray(ids, np.int64)
    obs = np.repeat(ids.astype(np.float32)[:, None], 4, axis=1)
    return {"obs": obs, "next_obs": obs.astype(np.float64) + 0.5, "reward": ids.astype(np.float64), "step": ids}


def assert_untorn(batch):
    ids = batch["step"]
    np.testing.assert_array_equal(batch["obs"], np.repeat(ids.astype(np.float32)[:, None], 4, axis=1))
    np.testing.assert_array_equal(batch["next_obs"], np.repeat(ids[:, None] + 0.5, 4, axis=1))
    np.testing.assert_array_equal(batch["reward"], ids.astype(np.float64))
    if "option" in batch:
        np.testing.assert_array_equal(batch["option"], ids % 3)


@pytest.mark.parametrize("cls, num_options", [(ReplayBuffer, None), (PrioritizedReplayBuffer, None),
                                              (PrioritizedReplayBuffer, 3)])
def test_concurrent_add_and_sample_never_tear_rows(cls, num_options):
    buf = cls(128, ID_SPEC, num_options=num_options, seed=17)

    def rows(ids):
        r = id_rows(ids)
        if num_options:
            r["option"] = np.asarray(ids) % 3
        return r

    buf.add(**rows(np.arange(32)))
    stop = threading.Event()
    errors = []
    stats = {"added": 0, "sampled": 0}

    def writer():
        rng = np.random.default_rng(0)
        next_id = 32
        try:
            while not stop.is_set():
                n = int(rng.integers(1, 48))
                buf.add(**rows(np.arange(next_id, next_id + n)))
                next_id = (next_id + n) % (1 << 22)  # keep ids exact in float32
                stats["added"] += n
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def reader():
        rng = np.random.default_rng(1)
        try:
            while not stop.is_set():
                option = int(rng.integers(0, 3)) if num_options else None
                batch = buf.sample(64, option=option)
                assert_untorn(batch)
                if option is not None:
                    assert np.all(batch["option"] == option)
                if buf.prioritized:
                    buf.update_priorities(batch["indices"], rng.uniform(0.0, 3.0, size=64))
                stats["sampled"] += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    # run until both threads have done enough work (not for a fixed time, which a loaded machine
    # can eat up), or an error, or a generous deadline
    deadline = time.monotonic() + 20.0
    time.sleep(0.6)
    while time.monotonic() < deadline and not errors and not (stats["added"] > 1000 and stats["sampled"] > 50):
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, repr(errors[0])
    assert stats["added"] > 1000 and stats["sampled"] > 50, stats
    assert_untorn(buf.get(np.arange(len(buf))))


def test_save_during_concurrent_adds_writes_consistent_snapshots(tmp_path):
    buf = PrioritizedReplayBuffer(64, ID_SPEC, num_options=3, seed=4)
    buf.add(**id_rows(np.arange(8)), option=np.arange(8) % 3)
    stop = threading.Event()
    errors = []
    added = [0]

    def writer():
        rng = np.random.default_rng(0)
        next_id = 8
        try:
            while not stop.is_set():
                n = int(rng.integers(1, 20))
                ids = np.arange(next_id, next_id + n)
                buf.add(**id_rows(ids), option=ids % 3)
                next_id += n
                added[0] += n
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for i in range(5):
            target, deadline = added[0] + 200, time.monotonic() + 5
            while added[0] < target and time.monotonic() < deadline:  # let the writer move on
                time.sleep(0.001)
            path = tmp_path / f"snap{i}.hrl"
            buf.save(path)
            loaded = PrioritizedReplayBuffer.load(path)
            rows = loaded.get(np.arange(len(loaded)))
            assert_untorn(rows)
            assert [loaded.count(k) for k in range(3)] == [int(np.sum(rows["option"] == k)) for k in range(3)]
            assert np.all(loaded.priorities()[: len(loaded)] > 0)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert not errors, repr(errors[0])
    assert added[0] >= 1000


def test_sampling_frequencies_stay_exact_after_many_extreme_updates():
    """Priority changes patch the tree's sums by their difference; after thousands of updates
    spanning 40 orders of magnitude (cancellation included), setting known priorities must
    give exactly the proportional sampling distribution again."""
    spec = {"x": ((), np.float32)}
    buf = PrioritizedReplayBuffer(64, spec, alpha=1.0, eps=0.0, seed=3)
    buf.add(x=np.arange(64, dtype=np.float32))
    rng = np.random.default_rng(0)
    for _ in range(3000):
        idx = rng.integers(0, 64, 8)
        buf.update_priorities(idx, 10.0 ** rng.uniform(-20, 20, 8))
    target = np.linspace(1.0, 4.0, 64)
    buf.update_priorities(np.arange(64), target)
    counts = np.zeros(64)
    for _ in range(200):
        counts += np.bincount(buf.sample(512)["indices"], minlength=64)
    expected = target / target.sum() * counts.sum()
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 120.0, chi2  # 63 degrees of freedom: the 0.9999 quantile is about 117


# ---- device= on the host-only build / machine ---------------------------------------------------------
def test_device_argument_errors_name_the_argument_and_write_nothing(tmp_path):
    from hrlkit import _cuda_ops

    spec = {"x": ((2,), "float32")}
    for bad in ("tpu", "cuda:x", 3.5):
        with pytest.raises(ValueError, match="device"):
            ReplayBuffer(10, spec, device=bad)
    cpu = PrioritizedReplayBuffer(10, spec, num_options=2)
    cpu.add(x=np.ones((3, 2), np.float32), option=[0, 1, 1])
    path = tmp_path / "r.bin"
    cpu.save(path)
    with pytest.raises(ValueError, match="device"):
        PrioritizedReplayBuffer.load(path, device="tpu")
    assert ReplayBuffer(10, spec, device="cpu").to("cpu").capacity == 10
    if not _cuda_ops.available():  # this machine cannot hold a device buffer: said, not faked
        with pytest.raises(ValueError, match="needs a GPU and hrlkit._cuda"):
            ReplayBuffer(10, spec, device="cuda")
        with pytest.raises(ValueError, match="needs a GPU"):
            cpu.to("cuda")
        assert len(cpu) == 3  # the host buffer is untouched


# ---- one class tree --------------------------------------------------------------------------------
REPLAY_MODULES = ["replay", "_host_storage", "_cuda_storage", "_replay_checks", "_replay_file"]


def _hrlkit_imports(module: str) -> set[str]:
    """The hrlkit modules ``hrlkit.<module>`` imports anywhere in its source, inside functions too."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(f"hrlkit.{module}")
    tree = ast.parse(open(spec.origin).read())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:  # from . import x / from .x import y
                out |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
            elif node.level == 0 and (node.module or "").startswith("hrlkit."):
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("hrlkit.")}
    return out - {module}


def test_replay_imports_nothing_that_imports_it_back():
    """The modules behind hrlkit.replay (found by importing it with the package's own __init__
    left out, which imports the agents) import nothing of the buffer tree that imports them
    back; read from their source, so imports inside functions count too."""
    probe = textwrap.dedent(
        """
        import importlib.util, json, sys, types
        spec = importlib.util.find_spec("hrlkit")
        bare = types.ModuleType("hrlkit")  # the package without its __init__ (which imports the agents)
        bare.__path__ = list(spec.submodule_search_locations)
        sys.modules["hrlkit"] = bare
        import hrlkit.replay
        print(json.dumps(sorted(m.split(".", 1)[1] for m in sys.modules if m.startswith("hrlkit."))))
        """
    )
    import json

    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert {"replay", "_host_storage", "_cuda_storage", "_replay_checks", "_replay_file"} <= loaded
    assert not {m for m in loaded if m.startswith("agents") or m.startswith("runtime")}, loaded
    python_modules = {m for m in loaded if m not in ("_core", "_cuda")}  # the extensions import nothing
    graph = {m: _hrlkit_imports(m) for m in python_modules}
    for start in python_modules - {"replay"}:  # nothing hrlkit.replay loads reaches it again
        seen, todo = set(), [start]
        while todo:
            m = todo.pop()
            if m in seen or m not in graph:
                continue
            seen.add(m)
            todo += graph[m]
        assert "replay" not in seen, f"hrlkit.{start} imports hrlkit.replay (through {sorted(seen)})"


def test_one_class_per_rule_whatever_the_storage():
    """No class swaps itself for another: a buffer is of the class it was made as, and where its
    rows are is its storage's device."""
    import io

    from hrlkit.replay import to_bytes

    for cls in BUFFERS:
        assert "__new__" not in vars(cls)
        for device in (None, "cpu"):
            buf = cls(8, SPEC, seed=0, device=device)
            assert type(buf) is cls and buf.device.type == "cpu" and buf.generator is None
            assert buf.to("cpu") is buf and buf.to(None) is buf
        loaded = cls.load(io.BytesIO(to_bytes(buf)))
        assert type(loaded) is cls
    per = PrioritizedReplayBuffer(8, SPEC, alpha=0.5, beta=0.3, eps=1e-3, seed=0)
    assert (per.alpha, per.beta, per.eps) == (0.5, 0.3, 1e-3)
    assert "alpha" not in dir(ReplayBuffer(8, SPEC))  # the exponents are the prioritized rule's
    assert ReplayBuffer(8, SPEC).priorities() is None
    assert repr(ReplayBuffer(8, SPEC, num_options=2)) == (
        "ReplayBuffer(capacity=8, size=0, num_options=2, fields=['obs', 'action', 'reward', 'done', 'next_obs', 'option'])")


def test_validate_is_accepted_in_host_memory_and_reserved_in_the_spec():
    buf = ReplayBuffer(8, SPEC, num_options=2, seed=0)
    buf.add(**rows_for([1, 2], options=[0, 1]), validate=False)  # the host core checks anyway
    assert len(buf) == 2
    with pytest.raises(ValueError, match="option: expected ids in"):
        buf.add(**rows_for([3], options=[2]), validate=False)
    with pytest.raises(ValueError, match="reserved for add's keyword"):
        ReplayBuffer(8, {"validate": ((), "bool")})


CHECKED_VALUES = [
    True, False, 0, 1, -1, 255, 256, 2**31, 2**63, -(2**63) - 1, 0.5, -2.5, float("nan"), np.float64(1.5),
    np.float32(1.5), np.int64(3), np.uint8(7), np.bool_(True), "a", None, object(), [], [1, 2], [[1, 2]], [1.0, 2.5],
    [True, False], [[1], [2, 3]], np.zeros(0), np.zeros((0, 2)), np.ones((2, 2), np.float16),
    torch.ones(2), torch.ones(2, dtype=torch.float64), torch.ones(2, dtype=torch.int64), torch.ones(2, dtype=torch.uint8),
    torch.ones(2, dtype=torch.bool), torch.ones(2, dtype=torch.int8), torch.ones(2, dtype=torch.bfloat16),
    torch.ones(2, dtype=torch.complex64), torch.ones((2, 2)),
] + [np.ones(n, dtype) for n in (1, 2) for dtype in ["float32", "float64", "int64", "int32", "uint8", "bool", "int8",
                                                         "uint64", "complex64", "U1", "datetime64[s]"]]


CHECKED_SPEC = {**SCALAR_SPEC, "vec": ((2,), "float32")}


@pytest.mark.parametrize("field", [*CHECKED_SPEC, "option"])
def test_the_checks_refuse_exactly_what_the_core_refuses(field):
    """add's checks (hrlkit._replay_checks.check_rows, which the CUDA storage runs before it
    writes) accept exactly the rows the host core accepts, so both storages take the same rows
    and every refusal of the core gets the checks' message."""
    from hrlkit._host_storage import HostStorage
    from hrlkit._replay_checks import check_rows, normalize_spec

    fields = normalize_spec(CHECKED_SPEC, 3)
    valid = {**VALID_SCALARS, "vec": np.ones(2, np.float32), "option": 1}
    extra = [np.ones((2, 2), np.float32), np.ones((1, 2)), np.ones((2, 3)), [[1, 2], [3, 4]], torch.ones(2, 2), [0, 3],
             [-1, 0], np.array([2, 1]), torch.tensor([2, 5])]
    for value in CHECKED_VALUES + extra:
        batched = hasattr(value, "__len__") and not isinstance(value, str)  # the other fields: as many rows
        row = {k: np.repeat(np.asarray(v, dtype=dict(CHECKED_SPEC, option=((), "int64"))[k][1])[None], len(value), axis=0)
               if batched else v for k, v in valid.items()}
        row[field] = value
        core = HostStorage(4, fields, 3, 0)
        try:
            core.add(row, True)
            core_error = None
        except (ValueError, TypeError, IndexError) as exc:
            core_error = exc
        try:
            check_rows(fields, 3, row)
            check_error = None
        except (ValueError, TypeError, IndexError) as exc:
            check_error = exc
        assert (core_error is None) == (check_error is None), (field, value, core_error, check_error)
        if core_error is not None:
            assert str(core_error).startswith("Replay refused") and not str(check_error).startswith("Replay")
