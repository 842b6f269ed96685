"""Where the time of FuN's learner goes on CarRacing pixels (the ``carracing`` preset, CPU).

    python benchmarks/profile_feudal_update.py                 # 1 torch thread
    python benchmarks/profile_feudal_update.py --threads 2     # the update on 2 threads
    python benchmarks/profile_feudal_update.py --top 20        # and the torch profiler's operators

Trains the preset's FuN (8 envs, 40-step rollouts, 4 passes per rollout) for two rollouts so that
the frames are real, then times acting (one vector step of 8 frames: perception, both LSTMs,
sampling) and one whole update (the 4 passes over the 40 x 8 rollout with BPTT) on the same
rollout again and again, the envs idle. Prints the best of --repeats (the machine's other load
only adds time).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads while acting and updating")
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--top", type=int, default=0, help="print the profiler's N costliest operators of one update")
    args = ap.parse_args(argv)
    if args.threads < 1 or args.repeats < 1 or args.top < 0:
        ap.error(f"--threads and --repeats: expected ints >= 1, --top >= 0; got {args.threads}, {args.repeats}, {args.top}")
    import torch

    import carracing as cr

    agent = cr.hrlkit_agent("feudal", 0, None, args.threads)
    torch.set_num_threads(args.threads)
    n, T = agent.config.num_envs, agent.config.rollout_steps
    agent.learn(2 * T * n, eval_every=None, checkpoint_every=None, progress=False, tensorboard=False, log_every=10**9)
    agent.envs.close()
    obs, zeros, no = agent.obs, np.zeros(n, np.float32), np.zeros(n, bool)
    state, rollout_state = agent.state, agent.rollout_state  # each timing starts from these

    def act_rollout() -> float:
        agent.state, agent.rollout = state, []
        t = time.perf_counter()
        for _ in range(T):
            agent.act(obs)
            agent.observe(obs, None, zeros, obs, no, no)
        return (time.perf_counter() - t) / T

    act_s = min(act_rollout() for _ in range(args.repeats))
    rollout, update_s = agent.rollout, []
    for _ in range(args.repeats):
        agent.rollout, agent.state, agent.rollout_state = list(rollout), state, rollout_state
        t = time.perf_counter()
        agent.update()
        update_s.append(time.perf_counter() - t)
    best = min(update_s)
    print(f"threads {args.threads}: act {act_s * 1e3:.2f} ms per vector step of {n} frames; update {best * 1e3:.1f} ms "
          f"per {T}-step rollout ({agent.config.update_epochs} passes) = {best / T * 1e3:.2f} ms per vector step "
          f"(best of {args.repeats})")
    if args.top:
        from torch.profiler import ProfilerActivity, profile

        agent.rollout, agent.state, agent.rollout_state = list(rollout), state, rollout_state
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            agent.update()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
