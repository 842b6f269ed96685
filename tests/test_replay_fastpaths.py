"""The host replay's fast paths (issue 19): numpy scalars, 0-d arrays and arrays of another
dtype converted in the core instead of through numpy, the batched priority-tree descent, the
prefetching gather. Each gives what the general path gives, bit for bit, and bad input is still
refused with an error naming the argument and the buffer left as it was. No timings here: the
speed is the benchmark's to measure (benchmarks/replay_table.py)."""
from __future__ import annotations

import numpy as np
import pytest

from hrlkit import PrioritizedReplayBuffer, ReplayBuffer

SPEC = {
    "obs": ((3,), np.float32),
    "reward": ((), np.float32),
    "steps": ((), np.int64),
    "small": ((), np.int32),
    "byte": ((), np.uint8),
    "done": ((), np.bool_),
    "value": ((), np.float64),
}


def _state(buf) -> list:
    cols = [np.array(buf.column(i)[: len(buf)]) for i in range(len(buf.spec))]
    prios = buf.priorities()
    return cols + ([] if prios is None else [np.array(prios[: len(buf)])]) + [len(buf), buf.position]


def _same(a, b) -> None:
    sa, sb = _state(a), _state(b)
    assert len(sa) == len(sb)
    for x, y in zip(sa, sb):
        np.testing.assert_array_equal(x, y)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype


def _general(value):
    """The same value as the general path takes it: a list (np.asarray + astype in the core)."""
    a = np.asarray(value)
    return a.tolist() if a.ndim else [a.item()]


NUMPY_SCALAR_ROWS = [
    dict(obs=np.array([1, 2, 3], np.float64), reward=np.float32(0.25), steps=np.int64(7), small=np.int32(-3),
         byte=np.uint8(200), done=np.bool_(True), value=np.float64(1.5)),
    dict(obs=np.array([1.5, -2, 3e10], np.float32)[::1], reward=np.float64(1e-3), steps=np.int32(-9), small=np.int8(5),
         byte=np.uint8(0), done=np.bool_(False), value=np.float32(3.25)),
    dict(obs=np.array([7, 8, 9], np.int64), reward=np.int16(4), steps=np.uint32(4_000_000_000), small=np.uint16(65535),
         byte=np.bool_(True), done=np.bool_(True), value=np.int64(2**53 + 1)),
    dict(obs=np.array([1, 2, 3], np.int32), reward=np.uint64(2**64 - 1), steps=np.longlong(-1), small=np.int32(2**31 - 1),
         byte=np.uint8(255), done=np.bool_(False), value=np.uint8(9)),
    # 0-d arrays, of the field's dtype and of others
    dict(obs=np.array([0.1, 0.2, 0.3]), reward=np.array(0.5), steps=np.array(3), small=np.array(4, np.int32),
         byte=np.array(5, np.uint8), done=np.array(True), value=np.array(1.25, np.float32)),
]


@pytest.mark.parametrize("row", NUMPY_SCALAR_ROWS, ids=range(len(NUMPY_SCALAR_ROWS)))
@pytest.mark.parametrize("prioritized", [False, True])
def test_numpy_scalars_and_0d_arrays_store_what_the_general_path_stores(row, prioritized):
    cls = PrioritizedReplayBuffer if prioritized else ReplayBuffer
    fast, slow = cls(4, SPEC, seed=1), cls(4, SPEC, seed=1)
    for _ in range(3):  # and around the ring
        fast.add(**row)
        slow.add(**{k: np.asarray(v).astype(np.asarray(v).dtype) if np.asarray(v).ndim else _general(v)[0]
                    if isinstance(v, (float, bool)) else np.asarray(v)[()] for k, v in row.items()})
    ref = cls(4, SPEC, seed=1)
    for _ in range(3):
        ref.add(**{k: np.asarray(v).astype(SPEC[k][1]) for k, v in row.items()})  # numpy's own cast, then the field's dtype
    _same(fast, ref)
    _same(slow, ref)


@pytest.mark.parametrize("src", [np.float64, np.float32, np.int64, np.int32, np.int16, np.uint8, np.bool_])
def test_rows_and_batches_of_another_dtype_match_numpy_astype(src):
    rng = np.random.default_rng(0)
    obs = (rng.standard_normal((5, 3)) * 100).astype(src)
    reward = (rng.standard_normal(5) * 100).astype(src)
    spec = {"obs": ((3,), np.float32), "reward": ((), np.float64)}
    fast, ref = ReplayBuffer(8, spec, seed=0), ReplayBuffer(8, spec, seed=0)
    fast.add(obs=obs, reward=reward)  # a batch
    fast.add(obs=obs[2], reward=reward[2])  # a row view
    fast.add(obs=obs[3], reward=reward[3:4].reshape(()))  # a 0-d array
    ref.add(obs=obs.astype(np.float32), reward=reward.astype(np.float64))
    ref.add(obs=obs[2].astype(np.float32), reward=float(reward[2]))
    ref.add(obs=obs[3].astype(np.float32), reward=float(reward[3]))
    _same(fast, ref)


def test_int_fields_take_numpy_ints_with_numpys_wraparound():
    spec = {"a": ((), np.int32), "b": ((), np.uint8)}
    fast, ref = ReplayBuffer(4, spec, seed=0), ReplayBuffer(4, spec, seed=0)
    vals = {"a": np.int64(2**40 + 5), "b": np.uint16(300)}  # same kind, narrower: numpy wraps
    fast.add(**vals)
    ref.add(**{k: np.array([v]).astype(spec[k][1]) for k, v in vals.items()})
    _same(fast, ref)


REFUSED = [
    ("steps", np.float32(1.0), "steps"),  # float into int: not same_kind
    ("done", np.int64(1), "done"),  # int into bool
    ("done", np.float32(1.0), "done"),
    ("byte", np.int8(3), "byte"),  # signed into unsigned: numpy says no
    ("reward", np.complex64(1), "reward"),
    ("reward", np.array([1.0, 2.0]), "reward"),  # two rows where the others have one
    ("obs", np.float32(1.0), "obs"),  # a scalar for a (3,) field
    ("obs", np.array([[1, 2]], np.float64), "obs"),  # wrong row shape, another dtype
    ("obs", np.array(["a", "b", "c"]), "obs"),
    ("steps", np.array(1.5), "steps"),  # 0-d float into int
]


@pytest.mark.parametrize("field,value,named", REFUSED, ids=[f"{f}-{np.asarray(v).dtype}" for f, v, _ in REFUSED])
def test_bad_values_are_still_refused_naming_the_field_and_change_nothing(field, value, named):
    base = dict(obs=np.zeros(3, np.float32), reward=np.float32(1), steps=np.int64(1), small=np.int32(1),
                byte=np.uint8(1), done=np.bool_(False), value=np.float64(0))
    buf = PrioritizedReplayBuffer(4, SPEC, seed=0)
    buf.add(**base)
    before = _state(buf)
    with pytest.raises((ValueError, TypeError)) as err:
        buf.add(**{**base, field: value})
    assert str(err.value).startswith(named) or f"'{named}'" in str(err.value), str(err.value)
    after = _state(buf)
    for x, y in zip(before, after):
        np.testing.assert_array_equal(x, y)


def test_numpy_scalar_subclass_goes_the_general_way():
    class MyFloat(np.float32):
        pass

    spec = {"r": ((), np.float32)}
    buf = ReplayBuffer(2, spec, seed=0)
    buf.add(r=MyFloat(0.5))
    assert buf.column(0)[0] == np.float32(0.5)


def test_non_contiguous_and_byteswapped_rows_go_the_general_way():
    spec = {"obs": ((3,), np.float32)}
    fast, ref = ReplayBuffer(4, spec, seed=0), ReplayBuffer(4, spec, seed=0)
    wide = np.arange(12, dtype=np.float64).reshape(3, 4)
    swapped = np.array([1.5, 2.5, 3.5], dtype=">f8")
    fast.add(obs=wide[:, 1])  # strided
    fast.add(obs=swapped)
    ref.add(obs=np.ascontiguousarray(wide[:, 1]).astype(np.float32))
    ref.add(obs=swapped.astype(np.float32))
    _same(fast, ref)


@pytest.mark.parametrize("idx_dtype", [np.int64, np.int32, np.uint16])
@pytest.mark.parametrize("td_dtype", [np.float64, np.float32, np.int64])
@pytest.mark.parametrize("n", [1, 3])
def test_small_priority_updates_match_the_general_path(idx_dtype, td_dtype, n):
    rows = {"obs": np.zeros((8, 3), np.float32), "reward": np.zeros(8, np.float32)}
    spec = {"obs": ((3,), np.float32), "reward": ((), np.float32)}
    a, b = PrioritizedReplayBuffer(8, spec, seed=3), PrioritizedReplayBuffer(8, spec, seed=3)
    a.add(**rows)
    b.add(**rows)
    idx = np.array([5, 1, 6][:n], idx_dtype)
    td = np.array([2, -3, 7][:n], td_dtype)
    a.update_priorities(idx, td)
    b.update_priorities(idx.tolist(), td.tolist())
    np.testing.assert_array_equal(a.priorities(), b.priorities())
    assert a.max_priority == b.max_priority
    np.testing.assert_array_equal(a.sample(16)["indices"], b.sample(16)["indices"])


@pytest.mark.parametrize("idx,td,named", [
    (np.array([1, 9]), np.array([1.0, 2.0]), "indices"),
    (np.array([1, 2]), np.array([1.0, np.nan]), "td_errors"),
    (np.array([1, 2]), np.array([1.0]), "td_errors"),
    (np.array([1.0, 2.0]), np.array([1.0, 2.0]), "indices"),
    (np.array([-1]), np.array([1.0], np.float32), "indices"),
])
def test_bad_priority_updates_are_refused_and_change_nothing(idx, td, named):
    spec = {"obs": ((3,), np.float32)}
    buf = PrioritizedReplayBuffer(8, spec, seed=3)
    buf.add(obs=np.zeros((4, 3), np.float32))
    before = np.array(buf.priorities()), buf.max_priority
    with pytest.raises((ValueError, TypeError, IndexError)) as err:
        buf.update_priorities(idx, td)
    assert str(err.value).startswith(named), str(err.value)
    np.testing.assert_array_equal(buf.priorities(), before[0])
    assert buf.max_priority == before[1]


def test_batched_descent_lands_on_positive_leaves_in_stratum_order():
    """The descent shares a node's prefixes between consecutive draws: every draw still lands on
    a row of positive priority (of its option), and stratified draws stay in order."""
    rng = np.random.default_rng(7)
    n = 3000
    spec = {"obs": ((1,), np.float32)}
    buf = PrioritizedReplayBuffer(n, spec, alpha=1.0, eps=0.0, num_options=3, seed=11)
    buf.add(obs=np.zeros((n, 1), np.float32), option=rng.integers(0, 3, n))
    td = rng.random(n) * 10
    td[rng.random(n) < 0.2] = 0.0  # empty rows the descent must skip
    td[100:400] = 0.0
    buf.update_priorities(np.arange(n), td)
    leaves = np.array(buf.priorities()[:n])
    options = np.array(buf.column(list(buf.spec).index("option"))[:n])
    for _ in range(20):
        got = buf.sample(256)["indices"]
        assert np.all(leaves[got] > 0) and np.all(np.diff(got) >= 0)
        for k in range(3):
            got = buf.sample(64, option=k)["indices"]
            assert np.all(leaves[got] > 0) and np.all(options[got] == k) and np.all(np.diff(got) >= 0)


# ---- prefault: the pages made resident in the constructor; the buffer is the same --------------
@pytest.mark.parametrize("cls", [ReplayBuffer, PrioritizedReplayBuffer])
@pytest.mark.parametrize("num_options", [None, 3])
def test_prefaulted_buffer_matches_the_lazy_one(cls, num_options):
    capacity = 300_000  # columns of more than one 2 MB huge page: the mapped, populated path
    spec = {"obs": ((5,), np.float32), "done": ((), np.bool_)}
    lazy = cls(capacity, spec, seed=7, num_options=num_options)
    eager = cls(capacity, spec, seed=7, num_options=num_options, prefault=True)
    for buf in (lazy, eager):  # zeros everywhere, written or not
        assert len(buf) == 0 and not np.any(buf.column(0)) and not np.any(buf.column(1))
    rng = np.random.default_rng(0)
    for n in (1, 1000, capacity, 77):  # the last add wraps around the ring
        rows = {"obs": rng.standard_normal((n, 5), dtype=np.float32), "done": rng.random(n) < 0.5}
        if num_options:
            rows["option"] = rng.integers(0, num_options, n)
        lazy.add(**rows)
        eager.add(**rows)
    _same(lazy, eager)
    option = 1 if num_options else None
    a, b = lazy.sample(256, option=option), eager.sample(256, option=option)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    if cls is PrioritizedReplayBuffer:
        td = rng.standard_normal(256)
        lazy.update_priorities(a["indices"], td)
        eager.update_priorities(b["indices"], td)
        _same(lazy, eager)


@pytest.mark.parametrize("cls", [ReplayBuffer, PrioritizedReplayBuffer])
@pytest.mark.parametrize("bad", [1, 0, "yes", None, np.array([True])])
def test_prefault_must_be_a_bool(cls, bad):
    with pytest.raises(TypeError, match=r"prefault: expected True or False"):
        cls(10, {"x": ((), np.float32)}, prefault=bad)


def test_prefault_takes_numpy_bools_and_small_buffers():
    buf = ReplayBuffer(5, {"x": ((2,), np.float32)}, seed=1, prefault=np.bool_(True))  # calloc'd, below a huge page
    buf.add(x=np.ones((7, 2), np.float32))
    assert len(buf) == 5 and buf.column(0).sum() == 10


# ---- the four-lane (AVX2) descent picks what the one-draw descent picks, to the last bit --------
_DESCENT_SCRIPT = r"""
import sys
import numpy as np
from hrlkit import PrioritizedReplayBuffer, ReplayBuffer
rng = np.random.default_rng(5)
out = {}
for capacity, tags in ((70_001, None), (4_099, 3), (37, None)):
    spec = {"obs": ((2,), np.float32)}
    buf = PrioritizedReplayBuffer(capacity, spec, alpha=0.6, eps=0.0, num_options=tags, seed=2)
    extra = {"option": rng.integers(0, tags, capacity)} if tags else {}
    buf.add(obs=rng.standard_normal((capacity, 2)).astype(np.float32), **extra)
    td = rng.random(capacity) * np.exp(rng.normal(0, 8, capacity))  # sums over 20+ orders of magnitude
    td[rng.random(capacity) < 0.2] = 0.0  # empty rows the descent must skip
    td[capacity // 3: capacity // 2] = 0.0
    buf.update_priorities(np.arange(capacity), td)
    for r in range(30):
        b = buf.sample(253 if r % 2 else 256, beta=0.4)  # a batch with 1 draw left over for the one-draw path
        out[f"{capacity}_{r}_i"], out[f"{capacity}_{r}_w"] = b["indices"], b["weights"]
        buf.update_priorities(b["indices"], rng.random(len(b["indices"])) * 5)
        for k in range(tags or 0):
            out[f"{capacity}_{r}_{k}"] = buf.sample(64, option=k, beta=0.4)["indices"]
    if not tags:
        uni = ReplayBuffer(capacity, spec, num_options=None, seed=4)
        uni.add(obs=np.zeros((capacity, 2), np.float32))
        out[f"{capacity}_u"] = uni.sample(300)["indices"]
np.savez(sys.argv[1], **out)
"""


def _has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return " avx2" in f.read()
    except OSError:
        return False


@pytest.mark.skipif(not _has_avx2(), reason="the CPU has no AVX2: only the one-draw descent exists")
def test_vector_descent_matches_the_scalar_descent(tmp_path):
    import os
    import subprocess
    import sys

    files = {}
    for name, env in (("vector", {}), ("scalar", {"HRLKIT_SCALAR_TREE": "1"})):
        files[name] = tmp_path / f"{name}.npz"
        subprocess.run([sys.executable, "-c", _DESCENT_SCRIPT, str(files[name])], check=True,
                       env={**os.environ, **env}, timeout=300)
    a, b = np.load(files["vector"]), np.load(files["scalar"])
    assert sorted(a.files) == sorted(b.files) and len(a.files) > 100
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
