"""Where the time of one Soft Option-Critic gradient step goes (Pendulum-v1, CPU).

    python benchmarks/profile_soc_update.py                # 1 torch thread, flush-to-zero on
    python benchmarks/profile_soc_update.py --flush-denormal 0
    python benchmarks/profile_soc_update.py --env Walker2d-v5 --top 0 --small 0 \
        --set intra_option_learning=true --set target_option_values=critics prioritized=false

Trains an agent with the library defaults (4 options, batch 256, [256, 256] networks) for
--warm steps, then times --steps gradient steps and prints the torch profiler's operators by
self CPU time (per gradient step). Does the same with [8, 8] networks, where the matmuls cost
next to nothing: the per-step overhead floor of the update (``--small 0``: not). ``--set``
times a configuration with those overrides, and the defaults' step beside it (same run).
"""
from __future__ import annotations

import argparse
import tempfile
import time


def measure(hidden: list[int], warm: int, steps: int, top: int, env: str = "Pendulum-v1",
            overrides: dict | None = None) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    import hrlkit
    from hrlkit.runtime.config import typed_values

    agent = hrlkit.SoftOptionCritic(env, seed=0, learning_starts=300, hidden_sizes=hidden, config=overrides or {})
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
    typed = typed_values(agent.config, overrides)
    print(f"\n{env} hidden_sizes={hidden} {typed or 'defaults'}: gradient step {step_ms:.2f} ms, "
          f"act {act_ms:.2f} ms (mean of {steps})")
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
    ap.add_argument("--env", default="Pendulum-v1")
    ap.add_argument("--small", type=int, default=1, choices=[0, 1], help="also time [8, 8] networks")
    ap.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                    help="config overrides to time beside the defaults")
    args = ap.parse_args(argv)
    import torch

    from hrlkit.runtime.config import parse_overrides

    overrides = parse_overrides(args.set)

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(bool(args.flush_denormal))
    try:
        print(f"torch {torch.__version__}, {args.threads} thread(s), flush_denormal={bool(args.flush_denormal)}")
        measure([256, 256], args.warm, args.steps, args.top, args.env)
        if overrides:
            measure([256, 256], args.warm, args.steps, args.top, args.env, overrides)
        if args.small:
            measure([8, 8], args.warm, args.steps, 0, args.env)
    finally:
        torch.set_flush_denormal(False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
