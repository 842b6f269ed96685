"""benchmarks/_pool.py: the --jobs workers of the benchmark scripts exit when the script is killed
(a plain ProcessPoolExecutor's keep running and slow every run measured beside them)."""
from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time

import pytest

BENCH_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads process states from /proc")

SCRIPT = """
import concurrent.futures as cf, os, sys, time
sys.path.insert(0, {bench!r})
import _pool
pool = {pool}
futures = [pool.submit(time.sleep, 120) for _ in range(2)]
time.sleep(120)
"""
# each worker's initializer prints its pid (a shell's parent) once it is up
INIT = 'initializer=os.system, initargs=("echo worker $PPID",)'


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except OSError:
        return False


def _kill_parent_and_watch_workers(pool_expr: str, wait_s: float) -> list[int]:
    """Start a script with two busy workers, SIGKILL it once both are up; the worker pids still
    alive after wait_s."""
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT.format(bench=BENCH_DIR, pool=pool_expr)],
                            stdout=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:  # a worker that never comes up fails the test instead of hanging it
        workers = [int(lines.get(timeout=60).split()[1]) for _ in range(2)]
    finally:
        proc.kill()
        proc.wait()
    deadline = time.time() + wait_s
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.1)
    left = [w for w in workers if _alive(w)]
    for w in left:  # leave nothing behind, whatever the verdict
        os.kill(w, 9)
    return left


@pytest.mark.parametrize("spawn", [False, True], ids=["default", "spawn"])
def test_workers_exit_when_the_script_is_killed(spawn):
    assert _kill_parent_and_watch_workers(f"_pool.worker_pool(2, spawn={spawn}, {INIT})", wait_s=15) == []


def test_a_plain_executor_leaves_workers_running():
    # the failure the pool exists for: without it the killed script's workers are still alive
    assert len(_kill_parent_and_watch_workers(f"cf.ProcessPoolExecutor(2, {INIT})", wait_s=3)) == 2


def test_initializer_still_runs():
    sys.path.insert(0, BENCH_DIR)
    import _pool

    for spawn in (False, True):
        with _pool.worker_pool(1, spawn=spawn, initializer=os.chdir, initargs=(BENCH_DIR,)) as pool:
            assert pool.submit(os.getcwd).result() == BENCH_DIR
