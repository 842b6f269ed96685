"""Where the time of one Soft Option-Critic gradient step goes (Pendulum-v1, CPU).

    python benchmarks/profile_soc_update.py                # 1 torch thread, flush-to-zero on
    python benchmarks/profile_soc_update.py --flush-denormal 0

Trains an agent with the library defaults (4 options, batch 256, [256, 256] networks) for
--warm steps, then times --steps gradient steps and prints the torch profiler's operators by
self CPU time (per gradient step). Does the same with [8, 8] networks, where the matmuls cost
next to nothing: the per-step overhead floor of the update.
"""
from __future__ import annotations

import argparse
import tempfile
import time


def measure(hidden: list[int], warm: int, steps: int, top: int) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    import hrlkit

    agent = hrlkit.SoftOptionCritic("Pendulum-v1", seed=0, learning_starts=300, hidden_sizes=hidden)
    with tempfile.TemporaryDirectory() as d:
        agent.learn(warm, run_dir=f"{d}/run", progress=False, eval_every=None, checkpoint_every=None,
                    tensorboard=False, log_every=warm)
    t = time.perf_counter()
    for _ in range(steps):
        agent._gradient_step()
    step_ms = (time.perf_counter() - t) / steps * 1e3
    t = time.perf_counter()
    for _ in range(steps):
        agent.act(agent.obs)
    act_ms = (time.perf_counter() - t) / steps * 1e3
    print(f"\nhidden_sizes={hidden}: gradient step {step_ms:.2f} ms, act {act_ms:.2f} ms (mean of {steps})")
    if top:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                agent._gradient_step()
        rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
        print("| operator | self CPU ms per step | calls per step |\n|---|---|---|")
        for e in rows:
            print(f"| {e.key} | {e.self_cpu_time_total / 1e3 / steps:.3f} | {e.count / steps:.0f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warm", type=int, default=1500, help="env steps trained before timing")
    ap.add_argument("--steps", type=int, default=100, help="gradient steps timed")
    ap.add_argument("--top", type=int, default=10, help="profiler rows (0: none)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--flush-denormal", type=int, default=1, choices=[0, 1])
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(bool(args.flush_denormal))
    try:
        print(f"torch {torch.__version__}, {args.threads} thread(s), flush_denormal={bool(args.flush_denormal)}")
        measure([256, 256], args.warm, args.steps, args.top)
        measure([8, 8], args.warm, args.steps, 0)
    finally:
        torch.set_flush_denormal(False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
