"""The host buffer keeps a row's fields side by side (one packed block, aligned per field; a tagged
buffer's `option` in a column of its own). The layout is invisible: these pin what users see
through it, for spec shapes and dtypes the other replay tests do not mix."""
import io

import numpy as np
import pytest

from hrlkit import PrioritizedReplayBuffer, ReplayBuffer
from hrlkit import _replay_file

SPEC = {
    "flag": ((), np.bool_),
    "obs": ((3, 5), np.float32),
    "count": ((), np.int32),
    "small": ((2,), np.uint8),
    "value": ((), np.float64),
    "frame": ((2, 24, 24), np.uint8),  # 1,152 bytes: longer than the rows the gather prefetches
    "id": ((4,), np.int64),
}


def rows(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "flag": rng.random(n) < 0.5,
        "obs": rng.standard_normal((n, 3, 5)).astype(np.float32),
        "count": rng.integers(-2**31, 2**31 - 1, n, dtype=np.int32),
        "small": rng.integers(0, 256, (n, 2), dtype=np.uint8),
        "value": rng.standard_normal(n),
        "frame": rng.integers(0, 256, (n, 2, 24, 24), dtype=np.uint8),
        "id": rng.integers(-2**62, 2**62, (n, 4), dtype=np.int64),
    }


def filled(cls, capacity: int, n: int, **kwargs):
    buf = cls(capacity, SPEC, seed=3, **kwargs)
    data = rows(n, 0)
    for lo in range(0, n, 37):  # odd chunks: ring wrap inside a chunk
        buf.add(**{k: v[lo:lo + 37] for k, v in data.items()})
    return buf, data


def newest(data: dict, n: int, capacity: int) -> dict:
    """Slot i's row after n adds into a ring of `capacity`."""
    order = np.arange(n)[-capacity:]
    slots = order % capacity
    return {k: v[order[np.argsort(slots)]] for k, v in data.items()}


@pytest.mark.parametrize("cls", [ReplayBuffer, PrioritizedReplayBuffer])
def test_fields_read_back_exactly_through_columns_and_samples(cls):
    buf, data = filled(cls, 100, 250)
    want = newest(data, 250, 100)
    for i, name in enumerate(buf.spec):
        col = buf.column(i)
        assert col.shape == (100, *SPEC[name][0]) and col.dtype == SPEC[name][1], name
        assert col.flags.aligned, name  # every element on its own size: views and casts stay cheap
        np.testing.assert_array_equal(col, want[name], err_msg=name)
    batch = buf.sample(64)
    idx = batch["indices"]
    for name in SPEC:
        assert batch[name].flags.c_contiguous, name
        np.testing.assert_array_equal(batch[name], want[name][idx], err_msg=name)


def test_tagged_buffer_keeps_the_option_column_contiguous():
    buf = ReplayBuffer(64, SPEC, num_options=3, seed=0)  # adds the int64 field `option`
    data = rows(50, 1)
    data["option"] = np.arange(50) % 3
    buf.add(**data)
    cols = {name: buf.column(i) for i, name in enumerate(buf.spec)}
    assert cols["option"].flags.c_contiguous
    np.testing.assert_array_equal(cols["option"][:50], data["option"])
    for k in range(3):
        batch = buf.sample(40, option=k)
        assert np.all(batch["option"] == k)
        np.testing.assert_array_equal(batch["frame"], data["frame"][batch["indices"]])


@pytest.mark.parametrize("cls", [ReplayBuffer, PrioritizedReplayBuffer])
def test_save_load_in_chunks_gives_the_same_buffer(cls, monkeypatch):
    # 8 MB chunks in normal use; 1 KB here, so every field is written and read in many pieces
    monkeypatch.setattr(_replay_file, "_CHUNK_BYTES", 1024)
    buf, _ = filled(cls, 300, 700)
    if cls is PrioritizedReplayBuffer:
        buf.update_priorities(np.arange(0, 300, 7), np.linspace(0.1, 3.0, len(range(0, 300, 7))))
    stream = io.BytesIO()
    buf.save(stream)
    monkeypatch.setattr(_replay_file, "_CHUNK_BYTES", 8 << 20)  # read with other chunk sizes than written
    stream.seek(0)
    loaded = cls.load(stream)
    for i in range(len(SPEC)):
        np.testing.assert_array_equal(loaded.column(i), buf.column(i))
    if cls is PrioritizedReplayBuffer:
        np.testing.assert_array_equal(loaded.priorities(), buf.priorities())
    monkeypatch.setattr(_replay_file, "_CHUNK_BYTES", 512)
    stream2 = io.BytesIO()
    loaded.save(stream2)
    assert stream2.getvalue() == stream.getvalue()  # the file's bytes do not depend on the chunking
    a, b = buf.sample(32), loaded.sample(32)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_a_truncated_file_is_refused_in_any_chunk():
    buf, _ = filled(ReplayBuffer, 300, 300)
    stream = io.BytesIO()
    buf.save(stream)
    blob = stream.getvalue()
    for cut in (len(blob) // 3, len(blob) - 40):
        with pytest.raises(ValueError, match="truncated|corrupt"):
            ReplayBuffer.load(io.BytesIO(blob[:cut]))
