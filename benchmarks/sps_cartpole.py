"""Training speed on CartPole-v1 with 8 environments: hrlkit's Option-Critic against
Stable-Baselines3's A2C, measured in the same run (same process, same thread settings).

    python benchmarks/sps_cartpole.py                    # 50k steps each, 3 repeats
    python benchmarks/sps_cartpole.py --steps 20000 --repeats 1

SPS = environment steps / wall-clock seconds of ``learn`` (logging included, evaluation and
checkpoints off). Both use torch on the CPU with --threads threads (default 1: these networks
are too small for more to help). SB3's A2C runs with its defaults except n_envs=8 and
n_steps=8 (hrlkit's rollout length), so both update every 64 env steps.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time

from _report import compare_sps, sps_table


def hrlkit_sps(steps: int, seed: int) -> float:
    import torch

    import hrlkit

    # the discrete defaults before session 14 (short rollouts, 4 passes of 2 minibatches), as the
    # README's figures were measured; session 14's (SB3 PPO's ten passes of 32) update far more per step
    agent = hrlkit.OptionCritic("CartPole-v1", seed=seed, num_envs=8, rollout_steps=8, update_epochs=4,
                                num_minibatches=2, target_update_every=50, learning_rate=1e-3, separate_critic=False,
                                threads=torch.get_num_threads())  # the --threads SB3 gets too
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        agent.learn(steps, run_dir=f"{d}/run", progress=False, eval_every=None, checkpoint_every=None,
                    tensorboard=False, log_every=10_000)
        return steps / (time.perf_counter() - t)


def sb3_a2c_sps(steps: int, seed: int) -> float:
    from stable_baselines3 import A2C
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    model = A2C("MlpPolicy", env, n_steps=8, seed=seed, device="cpu", verbose=0)
    t = time.perf_counter()
    model.learn(steps)
    return steps / (time.perf_counter() - t)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    res, med = compare_sps({"hrlkit option-critic": hrlkit_sps, "SB3 A2C": sb3_a2c_sps}, args.steps, args.repeats)
    print(f"CartPole-v1, 8 envs, {args.steps:,} steps x {args.repeats}, torch {torch.__version__} "
          f"({args.threads} thread), {platform.machine()}, Python {platform.python_version()}")
    print("\n".join(sps_table(res, med)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"steps": args.steps, "repeats": res, "median": med}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
