"""Training speed on Pendulum-v1: hrlkit's Soft Option-Critic (4 options) against
Stable-Baselines3's SAC (1 policy), measured in the same run (same process, same torch settings).

    python benchmarks/sps_pendulum_soc.py                      # 3000 training steps each, 3 repeats
    python benchmarks/sps_pendulum_soc.py --steps 1000 --repeats 1 --threads 2

Both: one env, batch 256, one gradient step per env step, [256, 256] actors and critics, Adam
3e-4, automatic entropy tuning, 1000 steps of random actions first (not timed). SPS = training
env steps / wall-clock seconds of ``learn`` after the warm-up (logging included, evaluation and
checkpoints off). ``--flush-denormal`` (default on) sets torch.set_flush_denormal(True) for
both: Adam's second moments decay into subnormal floats, which x86 CPUs compute on very slowly.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time

from _report import compare_sps, sps_table

WARMUP = 1000


def hrlkit_sps(steps: int, seed: int) -> float:
    import torch

    import hrlkit

    agent = hrlkit.SoftOptionCritic("Pendulum-v1", seed=seed, num_options=4, batch_size=256, utd_ratio=1.0,
                                    learning_starts=WARMUP, threads=torch.get_num_threads())  # as SB3 gets
    with tempfile.TemporaryDirectory() as d:
        kw = dict(run_dir=f"{d}/run", progress=False, eval_every=None, checkpoint_every=None, tensorboard=False,
                  log_every=1000)
        agent.learn(WARMUP, **kw)
        t = time.perf_counter()
        agent.learn(WARMUP + steps, **kw)
        return steps / (time.perf_counter() - t)


def sb3_sac_sps(steps: int, seed: int) -> float:
    from stable_baselines3 import SAC

    model = SAC("MlpPolicy", "Pendulum-v1", seed=seed, batch_size=256, train_freq=1, gradient_steps=1,
                learning_starts=WARMUP, device="cpu", verbose=0)
    model.learn(WARMUP)
    t = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - t)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--flush-denormal", type=int, default=1, choices=[0, 1])
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(bool(args.flush_denormal))
    try:
        res, med = compare_sps({"hrlkit soft-option-critic (4 options)": hrlkit_sps, "SB3 SAC": sb3_sac_sps},
                               args.steps, args.repeats)
    finally:
        torch.set_flush_denormal(False)  # process-wide CPU state: back to torch's default
    names = list(res)
    ratio = med[names[0]] / med[names[1]]
    print(f"Pendulum-v1, 1 env, batch 256, 1 update/step, {args.steps:,} training steps x {args.repeats}, "
          f"torch {torch.__version__} ({args.threads} thread(s), flush_denormal={bool(args.flush_denormal)}), "
          f"{platform.machine()}, Python {platform.python_version()}")
    print("\n".join(sps_table(res, med)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"steps": args.steps, "threads": args.threads, "flush_denormal": bool(args.flush_denormal),
                       "repeats": res, "median": med, "ratio": ratio}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
