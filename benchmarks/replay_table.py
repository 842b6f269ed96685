"""One comparison table of hrlkit's replay against its peers, measured in one run.

    python benchmarks/replay_table.py                 # capacity 1,000,000 (about 2 minutes)
    python benchmarks/replay_table.py --quick         # capacity 100,000, fewer rounds
    python benchmarks/replay_table.py --out table.md  # also write the markdown table

Times are medians over rounds (each round a loop of calls); every buffer is filled to capacity
first, and its creation, that first fill (page faults included) and a second pass over the same
slots are timed separately. Before each buffer is created the process waits (``--settle``) until
the guest kernel has handed the memory freed by the previous buffer back to the hypervisor (free
page reporting, 2 MB blocks, after about 2 s on the benchmark VM), so that every buffer touches
memory in the same state: fresh to the hypervisor, as a new process's buffer does. Ratios are peer time / hrlkit time. Peak memory is measured in a fresh subprocess per
buffer: the rise of peak RSS while a buffer is created and filled, against the raw bytes of its
columns.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402

BATCH = 256
ADD_BATCH = 1024


def timeit(fn, *, rounds: int, min_time: float) -> float:
    """Median seconds per call: `rounds` rounds, each looping long enough to last min_time."""
    fn()
    n = 1
    while True:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t >= min_time or n >= 1 << 20:
            break
        n *= 2
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t) / n)
    return statistics.median(samples)


CREATE = "create (fresh buffer)"
FIRST_FILL = "first fill (1024-row adds, fresh buffer)"
CREATE_FILL = "create + first fill (per 1024 rows)"
SECOND_PASS = "second pass (1024-row adds, pages resident)"
NUMPY_ADD = "single add (numpy scalars / row views)"


class HrlkitPrefault(peers.Hrlkit):
    """hrlkit with ``prefault=True``: the pages are made resident in the constructor, as cpprb does."""

    name = "hrlkit (prefault)"

    def _make(self, capacity: int):
        import hrlkit

        cls = hrlkit.PrioritizedReplayBuffer if self.prioritized else hrlkit.ReplayBuffer
        return cls(capacity, peers.SPEC, seed=0, prefault=True)


class HrlkitPrioritizedPrefault(HrlkitPrefault):
    name = "hrlkit PER (prefault)"
    prioritized = True


FILL_ONLY = [HrlkitPrefault, HrlkitPrioritizedPrefault]  # measured for creation and fills only


def measure_speed(capacity: int, rounds: int, min_time: float, settle: float) -> dict:
    """Each buffer in turn, in this one process: its creation, its first fill of `capacity` rows
    (page faults included), a second pass over the same slots, then the steady-state
    operations."""
    rows = peers.make_rows(ADD_BATCH)
    row = peers.one_row(rows, 3)
    numpy_row = {k: v[3] for k, v in rows.items()}  # row views and numpy scalars, as a numpy pipeline hands them over
    td = np.random.default_rng(1).random(BATCH)
    results: dict = {}
    import cpprb  # noqa: F401  (imported before any creation is timed)
    import hrlkit  # noqa: F401

    for cls in peers.UNIFORM + peers.PRIORITIZED + FILL_ONLY:
        time.sleep(settle)
        t = time.perf_counter()
        buf = cls(capacity)
        create = time.perf_counter() - t
        t = time.perf_counter()
        buf.fill(rows)
        first = time.perf_counter() - t
        print(f"  {cls.name:<21} created in {create:.2f} s, filled {capacity:,} rows in {first:.2f} s", file=sys.stderr)
        slow = cls is peers.SeedListBuffer
        r = {CREATE: create}
        if not slow:
            passes = -(-capacity // ADD_BATCH)
            t = time.perf_counter()
            for _ in range(passes):
                buf.add_batch(rows)
            r[FIRST_FILL] = first / passes
            r[CREATE_FILL] = (create + first) / passes
            r[SECOND_PASS] = (time.perf_counter() - t) / passes
        if cls in FILL_ONLY:
            results[cls.name] = r
            del buf
            continue
        r["single add"] = timeit(lambda: buf.add_one(row), rounds=rounds, min_time=min_time)
        if not slow:
            r[NUMPY_ADD] = timeit(lambda: buf.add_one(numpy_row), rounds=rounds, min_time=min_time)
        r["batched add (1024 rows)"] = timeit(
            lambda: buf.add_batch(rows), rounds=3 if slow else rounds, min_time=0.0 if slow else min_time
        )
        if cls.prioritized:
            r["PER sample + update (256)"] = timeit(lambda: buf.sample_update(BATCH, td), rounds=rounds, min_time=min_time)
        else:
            r["uniform sample (256)"] = timeit(lambda: buf.sample(BATCH), rounds=rounds, min_time=min_time)
        results[cls.name] = r
        del buf
    return results


_MEMORY_CHILD = r"""
import json, sys
sys.path.insert(0, {bench_dir!r})
import numpy as np, peers
cls = getattr(peers, {cls!r})
rows = peers.make_rows(1024)
import hrlkit, cpprb, torch  # imports before the baseline, so only the buffer is counted
def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak-RSS mark to the current RSS
before = status("VmRSS")
buf = cls({capacity})
buf.fill(rows)
print(json.dumps({{"before": before, "peak": status("VmHWM"), "after": status("VmRSS")}}))
"""


def measure_memory(capacity: int) -> dict:
    out = {}
    bench_dir = os.path.dirname(os.path.abspath(__file__))
    for cls in ("NumpyRing", "Cpprb", "CpprbPrioritized", "Hrlkit", "HrlkitPrioritized"):
        code = _MEMORY_CHILD.format(bench_dir=bench_dir, cls=cls, capacity=capacity)
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        m = json.loads(res.stdout.strip().splitlines()[-1])
        out[getattr(peers, cls).name] = {"peak_rise": m["peak"] - m["before"], "raw": capacity * peers.ROW_BYTES}
    return out


def fmt_time(s: float) -> str:
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.2f} µs"


def render(speed: dict, memory: dict | None, capacity: int) -> str:
    lines = [
        f"Capacity {capacity:,}, obs 17 float32, action 6 float32, batch 256; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.",
        "",
        "| operation | seed list | numpy ring | cpprb | hrlkit | hrlkit vs cpprb | hrlkit vs seed list |",
        "|---|---|---|---|---|---|---|",
    ]
    def cell(name: str, op: str) -> str:
        v = speed[name].get(op)
        return "—" if v is None else fmt_time(v)

    def ratio(peer: str, op: str, fmt: str) -> str:
        v, ours = speed[peer].get(op), speed["hrlkit"].get(op)
        return "—" if v is None or ours is None else f"**{v / ours:{fmt}}x**"

    for op in ("single add", NUMPY_ADD, "batched add (1024 rows)", FIRST_FILL, CREATE_FILL, SECOND_PASS, "uniform sample (256)"):
        lines.append(
            f"| {op} | " + " | ".join(cell(n, op) for n in ("seed list", "numpy ring", "cpprb", "hrlkit"))
            + f" | {ratio('cpprb', op, '.1f')} | {ratio('seed list', op, '.0f')} |"
        )
    lines += [
        "",
        "| prioritized operation | cpprb PER | hrlkit PER | hrlkit vs cpprb |",
        "|---|---|---|---|",
    ]
    for op in ("single add", NUMPY_ADD, "batched add (1024 rows)", FIRST_FILL, CREATE_FILL, SECOND_PASS, "PER sample + update (256)"):
        c, h = speed["cpprb PER"][op], speed["hrlkit PER"][op]
        lines.append(f"| {op} | {fmt_time(c)} | {fmt_time(h)} | **{c / h:.1f}x** |")
    lines += ["", "| fill rate | create | first fill | second pass | first / second | create + first fill | vs cpprb (create + first fill) |",
              "|---|---|---|---|---|---|---|"]
    for name in ("numpy ring", "cpprb", "hrlkit", HrlkitPrefault.name, "cpprb PER", "hrlkit PER", HrlkitPrioritizedPrefault.name):
        r = speed[name]
        peer = speed["cpprb PER" if "PER" in name else "cpprb"][CREATE_FILL]
        lines.append(f"| {name} | {fmt_time(r[CREATE])} | {ADD_BATCH / r[FIRST_FILL] / 1e6:.1f} M rows/s | "
                     f"{ADD_BATCH / r[SECOND_PASS] / 1e6:.1f} M rows/s | {r[FIRST_FILL] / r[SECOND_PASS]:.1f}x | "
                     f"{ADD_BATCH / r[CREATE_FILL] / 1e6:.1f} M rows/s | {peer / r[CREATE_FILL]:.2f}x |")
    if memory:
        lines += ["", "| peak memory (filled) | rise of peak RSS | raw column bytes | ratio |", "|---|---|---|---|"]
        for name, m in memory.items():
            lines.append(f"| {name} | {m['peak_rise'] / 2**20:.1f} MiB | {m['raw'] / 2**20:.1f} MiB | {m['peak_rise'] / m['raw']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capacity", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="capacity 100,000 and fewer, shorter rounds")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=0.1, help="seconds each timing round lasts at least")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--settle", type=float, default=None,
                    help="seconds to wait before each buffer is created (default: 6 for buffers of 64 MiB or more, else 0)")
    ap.add_argument("--out", help="also write the markdown table to this file")
    ap.add_argument("--json", help="also write the raw numbers to this JSON file")
    args = ap.parse_args(argv)
    capacity = 100_000 if args.quick else args.capacity
    rounds, min_time = (3, 0.02) if args.quick else (args.rounds, args.min_time)
    settle = args.settle if args.settle is not None else (6.0 if capacity * peers.ROW_BYTES >= 64 << 20 else 0.0)
    speed = measure_speed(capacity, rounds, min_time, settle)
    memory = None if args.no_memory else measure_memory(capacity)
    table = render(speed, memory, capacity)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"capacity": capacity, "speed": speed, "memory": memory}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
