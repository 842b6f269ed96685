"""Replay buffers against sizes that overflow and files that lie.

1. A capacity whose bytes do not fit in 64 bits (or in memory) is a ValueError / MemoryError
   naming capacity, raised before anything is allocated; the repros run in a subprocess, so a
   regression crashes that process, not pytest.
2. A replay file is checksummed end to end (SHA-256 over everything before the digest) and its
   header goes through the constructor's checks: a changed file loads identical contents or
   raises ValueError naming the file, and nothing is allocated before the checks pass.
"""
from __future__ import annotations

import hashlib
import io
import json
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from hrlkit import PrioritizedReplayBuffer, ReplayBuffer
from hrlkit.replay import from_bytes_like, to_bytes
from hrlkit import _cuda_ops
from test_replay import SPEC, assert_same_state, assert_streams_equal, build, rows_for, sample_stream, snapshot

PREFIX = struct.Struct("<8sIQQ")  # magic, format version, header length, file length
DIGEST = 32


# ---- 1. sizes that overflow ------------------------------------------------------------------------
def run_isolated(code: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter: a segfault or an abort ends that process only."""
    prelude = "import numpy as np\nfrom hrlkit import ReplayBuffer, PrioritizedReplayBuffer\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)


OVERFLOWS = [
    # the two repros: the padded byte size wrapped to 0, and to 256 bytes
    ("2**60 rows, one add", """
        buf = ReplayBuffer(2**60, {"x": ((4,), "float32")})
        buf.add(x=np.zeros(4, np.float32))
     """, "ValueError", "capacity: expected at most 576460752303423472 rows", "got 1152921504606846976"),
    ("2**60 + 16 rows, 5000-row add", """
        buf = ReplayBuffer(2**60 + 16, {"x": ((4,), "float32")})
        buf.add(x=np.zeros((5000, 4), np.float32))
     """, "ValueError", "capacity: expected at most", "got 1152921504606846992"),
    ("prioritized, tagged", """
        buf = PrioritizedReplayBuffer(2**59, {"x": ((4,), "float32")}, num_options=3)
        buf.add(x=np.zeros(4, np.float32), option=0)
     """, "ValueError", "capacity: expected at most", "and num_options=3"),
    ("fits in 64 bits, not in any address space", """
        buf = ReplayBuffer(2**58, {"x": ((4,), "float32")})
        buf.add(x=np.zeros(4, np.float32))
     """, "MemoryError", "capacity: 288230376151711744 rows", "more than could be allocated"),
    ("beyond int64", """
        ReplayBuffer(2**64, {"x": ((4,), "float32")})
     """, "ValueError", "capacity: expected an integer <= 9223372036854775807", "got 18446744073709551616"),
    ("row shape overflows", """
        ReplayBuffer(8, {"x": ((2**40, 2**40), "float32")})
     """, "ValueError", "spec['x']: expected a row shape whose size in bytes fits in 64 bits", "(1099511627776, 1099511627776)"),
    ("num_options overflows the tree", """
        PrioritizedReplayBuffer(8, {"x": ((4,), "float32")}, num_options=2**62)
     """, "ValueError", "num_options: expected", "got 4611686018427387904"),
]


@pytest.mark.parametrize("code, exc, expected, got", [c[1:] for c in OVERFLOWS], ids=[c[0] for c in OVERFLOWS])
def test_capacity_whose_bytes_overflow_is_a_clear_error_naming_capacity(code, exc, expected, got):
    script = f"""
        try:
{textwrap.indent(textwrap.dedent(code), " " * 12)}
        except (ValueError, MemoryError) as e:
            print(type(e).__name__ + ": " + str(e))
        else:
            print("no error")
    """
    done = run_isolated(script)
    assert done.returncode == 0, f"crashed (returncode {done.returncode}): {done.stderr[-2000:]}"
    out = done.stdout.strip()
    assert out.startswith(exc + ": "), out
    assert expected in out and got in out, out


def test_required_bytes_is_the_constructors_size_check():
    """What the device twin calls before it allocates: the host's checks, allocating nothing."""
    from hrlkit import _core

    spec = [("x", (4,), "float32")]
    assert _core.required_bytes(100, spec) == 112 * 16  # 100 rows padded to 112, 16 bytes each
    with pytest.raises(ValueError, match="capacity: expected at most"):
        _core.required_bytes(2**60, spec)
    small = ReplayBuffer(4, {"x": ((4,), "float32")}, seed=0)
    small.add(x=np.ones((5, 4), np.float32))
    assert len(small) == 4 and small.nbytes == 64


@pytest.mark.skipif(not _cuda_ops.available(), reason="needs a GPU and hrlkit._cuda")
def test_device_buffer_capacity_overflow_names_capacity():
    with pytest.raises(ValueError, match="capacity: expected at most 576460752303423472 rows"):
        ReplayBuffer(2**60, {"x": ((4,), "float32")}, device="cuda")
    with pytest.raises(MemoryError, match="capacity: 288230376151711744 rows"):
        PrioritizedReplayBuffer(2**58, {"x": ((4,), "float32")}, device="cuda")


# ---- 2. files that lie -----------------------------------------------------------------------------
def split(blob: bytes) -> tuple[dict, bytes]:
    """A replay file's header (parsed) and its body (the column blocks)."""
    _, _, header_len, _ = PREFIX.unpack_from(blob)
    return json.loads(blob[PREFIX.size:PREFIX.size + header_len]), blob[PREFIX.size + header_len:-DIGEST]


def seal(header: dict | bytes, body: bytes, version: int = 2) -> bytes:
    """A file with this header and body, lengths and SHA-256 made consistent: what someone who
    edits a file on purpose (rather than damaging it) would write."""
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    length = PREFIX.size + len(head) + len(body) + DIGEST
    content = PREFIX.pack(b"HRLKITRB", version, len(head), length) + head + body
    return content + hashlib.sha256(content).digest()


def hand_edit(blob: bytes, edit) -> bytes:
    """The file with its JSON header text edited in place, nothing else recomputed (a text
    editor's edit); the header keeps its length field, so a longer header shifts the body."""
    header, body = split(blob)
    edit(header)
    head = json.dumps(header).encode()
    _, version, _, _ = PREFIX.unpack_from(blob)
    length = PREFIX.size + len(head) + len(body) + DIGEST
    return PREFIX.pack(b"HRLKITRB", version, len(head), length) + head + body + blob[-DIGEST:]


def set_dtype(h, name, dtype):
    h["spec"][name][1] = dtype


def rename(h, old, new):
    h["spec"] = {(new if k == old else k): v for k, v in h["spec"].items()}


# The hand edits: each loaded silently with the previous format.
HEADER_EDITS = {
    "float32 declared int32": lambda h: set_dtype(h, "obs", "int32"),
    "max_priority NaN": lambda h: h.update(max_priority=float("nan")),
    "max_priority -1e30": lambda h: h.update(max_priority=-1e30),
    "beta -3": lambda h: h.update(beta=-3.0),
    "alpha 5": lambda h: h.update(alpha=5.0),
    "alpha -1": lambda h: h.update(alpha=-1.0),
    "capacity changed": lambda h: h.update(capacity=h["capacity"] + 4),
    "field named indices": lambda h: rename(h, "action", "indices"),
    "field named weights": lambda h: rename(h, "reward", "weights"),
    "field name not an identifier": lambda h: rename(h, "reward", "re ward"),
    "field renamed": lambda h: rename(h, "obs", "obt"),
    "size 10**12": lambda h: h.update(size=10**12),
    "size one less": lambda h: h.update(size=h["size"] - 1),
    "position moved": lambda h: h.update(position=(h["position"] + 1) % h["capacity"]),
    "num_options changed": lambda h: h.update(num_options=2),
    "rng digit changed": lambda h: h["rng_state"].__setitem__(1, h["rng_state"][1] ^ 1),
    "rng all zero": lambda h: h.update(rng_state=[0, 0, 0, 0]),
    "capacity 2**60": lambda h: h.update(capacity=2**60),
}

# Edited on purpose, with lengths and digest recomputed: the constructor's checks (and the
# state's own invariants) still refuse these, with the message the constructor gives.
SEALED_REFUSALS = {
    "max_priority NaN": "max_priority: expected a finite number, got nan",
    "max_priority -1e30": "max_priority: expected a finite number >= 1",
    "beta -3": "beta: expected a number >= 0.0, got -3.0",
    "alpha -1": "alpha: expected a number >= 0.0, got -1.0",
    "capacity changed": "inconsistent size 12 / position 5 for capacity 16",
    "field named indices": "field name 'indices' is reserved",
    "field named weights": "field name 'weights' is reserved",
    "field name not an identifier": "field names must be identifiers",
    "size 10**12": "size: expected an integer <= 12, got 1000000000000",
    "size one less": "its header declares",
    "num_options changed": "option id 2 out of range",
    "rng all zero": "rng_state: expected four 64-bit words, not all zero",
    "capacity 2**60": "capacity: expected at most",
}
# ... and these are values the constructor accepts: only the digest tells them from the original.
SEALED_ACCEPTED = {"float32 declared int32", "alpha 5", "field renamed", "rng digit changed", "position moved"}


@pytest.fixture(scope="module")
def original() -> bytes:
    buf = build("tagged-prioritized")
    buf.sample(8)  # the RNG state is part of what must come back
    return to_bytes(buf)


def test_every_header_edit_is_classified():
    assert set(HEADER_EDITS) == set(SEALED_REFUSALS) | SEALED_ACCEPTED


@pytest.mark.parametrize("edit", list(HEADER_EDITS))
def test_a_hand_edited_header_fails_the_checksum(edit, original, tmp_path):
    path = tmp_path / "edited.hrl"
    path.write_bytes(hand_edit(original, HEADER_EDITS[edit]))
    with pytest.raises(ValueError, match="checksum does not match") as info:
        PrioritizedReplayBuffer.load(path)
    assert repr(str(path)) in str(info.value)


@pytest.mark.parametrize("edit", list(SEALED_REFUSALS))
def test_a_sealed_edit_goes_through_the_constructors_checks(edit, original, tmp_path):
    header, body = split(original)
    HEADER_EDITS[edit](header)
    path = tmp_path / "sealed.hrl"
    path.write_bytes(seal(header, body))
    with pytest.raises(ValueError) as info:
        PrioritizedReplayBuffer.load(path)
    message = str(info.value)
    assert message.startswith(f"path: {str(path)!r} "), message
    assert SEALED_REFUSALS[edit] in message, message


@pytest.mark.parametrize("edit", sorted(SEALED_ACCEPTED))
def test_a_sealed_edit_the_constructor_accepts_loads_as_written(edit, original):
    """The digest is not a signature: a file edited on purpose and resealed loads what it says
    (within what the constructor allows). These are the edits only the digest could catch."""
    header, body = split(original)
    HEADER_EDITS[edit](header)
    loaded = PrioritizedReplayBuffer.load(io.BytesIO(seal(header, body)))
    assert loaded.capacity == header["capacity"]
    assert list(loaded.spec)[: len(header["spec"])] == list(header["spec"])


def test_declared_sizes_are_checked_against_the_file_before_any_allocation(original, monkeypatch):
    built = []
    real = PrioritizedReplayBuffer._new_storage
    monkeypatch.setattr(PrioritizedReplayBuffer, "_new_storage", lambda args, device: (built.append(args), real(args, device))[1])
    header, body = split(original)
    for size, cut in [(10**12, 0), (12, 1), (11, 0)]:
        h = dict(header, size=size)
        with pytest.raises(ValueError, match="size: expected an integer <= 12|its header declares"):
            PrioritizedReplayBuffer.load(io.BytesIO(seal(h, body[: len(body) - cut])))
    # a huge header length, or a huge file length, in a file of a few hundred bytes
    for field, value in [(2, 10**12), (3, 10**12), (2, 2**64 - 1)]:
        blob = bytearray(original)
        parts = list(PREFIX.unpack_from(blob))
        parts[field] = value
        blob[: PREFIX.size] = PREFIX.pack(*parts)
        with pytest.raises(ValueError, match="truncated|runs past the end"):
            PrioritizedReplayBuffer.load(io.BytesIO(bytes(blob)))
    assert built == []


def test_format_1_files_are_refused_naming_the_version(tmp_path):
    path = tmp_path / "v1.hrl"
    header = json.dumps({"class": "ReplayBuffer"}).encode()
    path.write_bytes(struct.pack("<8sIQ", b"HRLKITRB", 1, len(header)) + header)
    with pytest.raises(ValueError, match=r"has format version 1, expected 2; format 1 files carry no checksum") as info:
        ReplayBuffer.load(path)
    assert repr(str(path)) in str(info.value)
    with pytest.raises(ValueError, match="has format version 7, expected 2"):
        ReplayBuffer.load(io.BytesIO(struct.pack("<8sIQQ", b"HRLKITRB", 7, 0, 0)))


def test_errors_name_the_file_object_or_bytes(original, tmp_path):
    bad = original[:-1] + bytes([original[-1] ^ 1])
    with pytest.raises(ValueError, match=r"^path: <BytesIO> is corrupt"):
        PrioritizedReplayBuffer.load(io.BytesIO(bad))
    path = tmp_path / "named.hrl"
    path.write_bytes(bad)
    with open(path, "rb") as f, pytest.raises(ValueError, match="is corrupt") as info:
        PrioritizedReplayBuffer.load(f)
    assert repr(str(path)) in str(info.value)
    with pytest.raises(ValueError, match=r"^path: <bytes> is corrupt"):
        from_bytes_like(build("tagged-prioritized"), bad)


def test_a_failed_load_changes_no_existing_buffer(original):
    buf = build("tagged-prioritized", seed=5)
    before = snapshot(buf)
    with pytest.raises(ValueError):
        from_bytes_like(buf, original[:-10])
    assert_same_state(before, snapshot(buf))
    buf.add(**rows_for([70], options=[1]))
    buf.sample(4)


def test_loading_checks_the_bytes_it_reads_are_the_bytes_it_checked(original):
    """A file that changes between the digest pass and the read pass is refused."""

    class Changing(io.BytesIO):
        def readinto(self, b):
            n = super().readinto(b)
            if len(b) == 12 * 4:  # the priorities block: change it as it is read the second time
                b[0] ^= 1
            return n

    with pytest.raises(ValueError, match="changed while being read"):
        PrioritizedReplayBuffer.load(Changing(original))


# ---- the mutation test -----------------------------------------------------------------------------
def mutate(blob: bytes, rng: np.random.Generator, kind: int) -> bytes:
    b = bytearray(blob)
    if kind == 0:  # one bit flip anywhere
        pos = int(rng.integers(len(b)))
        b[pos] ^= 1 << int(rng.integers(8))
    elif kind == 1:  # one byte overwritten
        b[int(rng.integers(len(b)))] = int(rng.integers(256))
    elif kind == 2:  # a run of random bytes
        n = int(rng.integers(2, 16))
        pos = int(rng.integers(len(b) - n))
        b[pos:pos + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    elif kind == 3:  # truncated
        b = b[: int(rng.integers(len(b)))]
    elif kind == 4:  # bytes appended
        b += rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    elif kind == 5:  # a bit flip in the prefix or the header, where every size and name lives
        _, _, header_len, _ = PREFIX.unpack_from(blob)
        pos = int(rng.integers(PREFIX.size + header_len))
        b[pos] ^= 1 << int(rng.integers(8))
    elif kind == 6:  # a digit of the header changed (RNG state, sizes, priorities, exponents)
        _, _, header_len, _ = PREFIX.unpack_from(blob)
        digits = [i for i in range(PREFIX.size, PREFIX.size + header_len) if chr(b[i]).isdigit()]
        pos = digits[int(rng.integers(len(digits)))]
        b[pos] = ord("0") + (b[pos] - ord("0") + int(rng.integers(1, 10))) % 10
    else:  # one of the header edits, by hand
        edits = list(HEADER_EDITS)
        b = bytearray(hand_edit(blob, HEADER_EDITS[edits[int(rng.integers(len(edits)))]]))
    return bytes(b)


@pytest.mark.parametrize("kind", ["tagged-prioritized", "uniform"])
def test_mutated_files_load_identical_or_raise_naming_the_file(kind, tmp_path, monkeypatch):
    cls = PrioritizedReplayBuffer if kind == "tagged-prioritized" else ReplayBuffer
    buf = build(kind)
    buf.sample(8)
    original = to_bytes(buf)
    reference = snapshot(cls.load(io.BytesIO(original)))
    built = []
    real = cls._new_storage
    monkeypatch.setattr(cls, "_new_storage", lambda args, device: (built.append(1), real(args, device))[1])
    rng = np.random.default_rng(20261129)
    trials = 400 if kind == "tagged-prioritized" else 200
    outcomes = {"identical": 0, "raised": 0}
    path = tmp_path / "mutated.hrl"
    for trial in range(trials):
        kind_of_change = trial % 8
        blob = mutate(original, rng, kind_of_change)
        path.write_bytes(blob)
        built.clear()
        try:
            loaded = cls.load(path)
        except ValueError as exc:
            assert str(exc).startswith(f"path: {str(path)!r} "), f"mutation {trial}: {exc}"
            assert built == [], f"mutation {trial} ({kind_of_change}) built a buffer before failing: {exc}"
            outcomes["raised"] += 1
        else:
            assert_same_state(reference, snapshot(loaded))
            assert_streams_equal(sample_stream(cls.load(io.BytesIO(original))), sample_stream(loaded))
            outcomes["identical"] += 1
    print(f"\n{kind}: {trials} mutations, {outcomes['identical']} loaded identical, {outcomes['raised']} raised")
    assert outcomes["identical"] + outcomes["raised"] == trials
    assert outcomes["raised"] >= trials - 10  # only a mutation that changes nothing loads


RESEAL_VALUES = [None, True, False, 0, -1, 1, 12, 2**63, 2**64, -(2**63) - 1, 1e308, float("nan"), float("inf"), -0.0,
                 0.5, "", "x", "float32", "int64", [], [1], [[3], "float32"], {}, {"a": 1}, [[[[[[]]]]]],
                 "indices", "option"]


def test_sealed_headers_with_odd_values_raise_value_error_naming_the_file(original):
    """Any JSON value in any header slot, resealed: a ValueError naming the file or a buffer,
    never another exception from deep inside."""
    header, body = split(original)
    slots = [(k,) for k in header] + [("spec", k) for k in header["spec"]] + [("rng_state", 2)]
    rng = np.random.default_rng(7)
    raised = loaded = 0
    for trial in range(300):
        h = json.loads(json.dumps(header))
        slot = slots[int(rng.integers(len(slots)))]
        value = RESEAL_VALUES[int(rng.integers(len(RESEAL_VALUES)))]
        target = h
        for key in slot[:-1]:
            target = target[key]
        target[slot[-1]] = value
        try:
            PrioritizedReplayBuffer.load(io.BytesIO(seal(h, body)))
        except ValueError as exc:
            assert str(exc).startswith("path: <BytesIO> "), str(exc)
            raised += 1
        else:
            loaded += 1
    assert raised + loaded == 300 and raised > 200
    # a header that is not a JSON object, or repeats a key
    for head in [b"[1, 2]", b"\xff\xfe", b'{"class": "PrioritizedReplayBuffer", "class": "ReplayBuffer"}', b"[" * 100000]:
        with pytest.raises(ValueError, match="^path: <BytesIO> has a corrupt header"):
            PrioritizedReplayBuffer.load(io.BytesIO(seal(head, body)))


def test_round_trips_still_exact_for_every_kind(tmp_path):
    for kind in ["uniform", "prioritized", "tagged-uniform", "tagged-prioritized"]:
        buf = build(kind)
        buf.sample(3)
        buf.save(tmp_path / f"{kind}.hrl")
        loaded = type(buf).load(tmp_path / f"{kind}.hrl")
        assert_same_state(snapshot(buf), snapshot(loaded))
        assert_streams_equal(sample_stream(buf), sample_stream(loaded))
    # an untagged buffer may have its own field named option
    own = ReplayBuffer(4, {"option": ((), "int64"), **SPEC}, seed=1)
    own.add(option=np.arange(3), **rows_for([1, 2, 3]))
    again = ReplayBuffer.load(io.BytesIO(to_bytes(own)))
    assert again.spec == own.spec and again.num_options == 0
