"""DIAYN on HalfCheetah-v5 (issue 6; not in CI): 10 skills, trained for a wall-clock budget, then
each skill's behaviour.

    python benchmarks/diayn_halfcheetah.py                     # 60 minutes, seed 0
    python benchmarks/diayn_halfcheetah.py --minutes 5 --out /tmp/diayn_hc

Library defaults with 10 skills (SAC [256, 256], alpha 0.1 fixed, the discriminator on the whole
observation, which for HalfCheetah excludes the x-position), one torch thread, stopped at the first
log row past the budget. Then, per skill, 2 deterministic 1000-step episodes: mean x-velocity,
final x-position, the env's own return, and the discriminator's accuracy on the visited states.
Writes under --out: the run directory, skills.png (x-position and x-velocity over time per skill),
results.json and table.md.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from _report import write_table

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-steps", type=int, default=2_000_000)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "diayn_halfcheetah"))
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    import hrlkit
    from hrlkit.skills import discriminator_accuracy, plot_skills, rollout_skills

    os.makedirs(args.out, exist_ok=True)
    agent = hrlkit.DIAYN("HalfCheetah-v5", seed=args.seed, num_skills=10,  # as its figures were measured: the
                          utd_ratio=1.0,  # defaults before session 22
                          discriminator_hidden_sizes=[256, 256])  # and before session 23
    start = time.perf_counter()

    def within_budget(agent, scalars) -> bool:
        print(f"step {agent.global_step:,}: discriminator accuracy {scalars.get('charts/discriminator_accuracy', float('nan')):.3f}, "
              f"{(time.perf_counter() - start) / 60:.1f} min", flush=True)
        return time.perf_counter() - start < args.minutes * 60

    agent.learn(args.max_steps, run_dir=os.path.join(args.out, "runs", f"seed{args.seed}"), progress=False,
                log_every=5_000, eval_every=None, checkpoint_every=50_000, callback=within_budget)
    minutes = (time.perf_counter() - start) / 60
    rollouts = rollout_skills(agent, 2, deterministic=True)
    acc = discriminator_accuracy(agent, rollouts)
    per_skill = []
    for k, eps in sorted(rollouts.items()):
        per_skill.append({"skill": k, "mean_x_velocity": float(np.mean([ep["xvel"][1:].mean() for ep in eps])),
                          "final_x": float(np.mean([ep["x"][-1] for ep in eps])),
                          "return": float(np.mean([ep["return"] for ep in eps]))})
    plot_skills(rollouts, os.path.join(args.out, "skills.png"),
                title=f"DIAYN, HalfCheetah-v5, 10 skills, {agent.global_step:,} steps ({minutes:.0f} min): "
                      f"discriminator accuracy {acc:.3f}")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"steps": agent.global_step, "minutes": minutes, "discriminator_accuracy": acc, "skills": per_skill},
                  f, indent=2)
    lines = [f"DIAYN on HalfCheetah-v5, seed {args.seed}, {agent.global_step:,} steps in {minutes:.0f} min; "
             f"discriminator accuracy on 2 deterministic episodes per skill: {acc:.3f}",
             "| skill | mean x-velocity | final x-position | env return |", "|---|---|---|---|"]
    lines += [f"| {s['skill']} | {s['mean_x_velocity']:.2f} | {s['final_x']:.1f} | {s['return']:.0f} |" for s in per_skill]
    write_table(args.out, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
