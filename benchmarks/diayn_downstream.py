"""Reusing DIAYN skills downstream (issue 6): on hrlkit/PointNavGoal-v0 (+1 and the end within
0.15 of (0.7, 0.7), 100 steps, start at the centre) a manager over 8 frozen PointNav skills
against flat SAC from scratch, same env-step budget, 3 seeds each.

    python benchmarks/diayn_downstream.py                            # trains the skills first (30k steps)
    python benchmarks/diayn_downstream.py --skills benchmarks/results/diayn_pointnav/runs/seed0

Skills: a DIAYN run on hrlkit/PointNav-v0 (no goal, no reward) with
benchmarks/configs/diayn_pointnav.yaml, seed 0, unless --skills names one. Manager: hrlkit's
diayn-manager with its defaults (a skill every 10 steps, double DQN over the skills). Flat SAC:
hrlkit's soft-option-critic with one option (plain SAC: [256, 256], batch 256, auto-tuned alpha,
1000 random steps first). Every 1,000 steps both are evaluated greedily on 20 episodes; with a
reward of 1 only at the goal the mean evaluation return is the success rate. Writes under --out:
the run directories, success.png (mean ± std over seeds), results.json and table.md.
``--goal X Y`` moves the goal (same radius).
"""
from __future__ import annotations

import argparse
import csv
import json
import os

from _pool import worker_pool
from _report import write_table

HERE = os.path.dirname(os.path.abspath(__file__))
GOAL_ENV = "hrlkit/PointNavGoal-v0"


def train_skills(out: str, steps: int) -> str:
    import torch

    torch.set_num_threads(1)
    import hrlkit
    from hrlkit.runtime.config import load_config_file

    run_dir = os.path.join(out, "runs", "skills")
    agent = hrlkit.DIAYN("hrlkit/PointNav-v0", seed=0,
                         config=load_config_file(os.path.join(HERE, "configs", "diayn_pointnav.yaml")))
    agent.learn(steps, run_dir=run_dir, progress=False, log_every=5_000, eval_every=None, checkpoint_every=None)
    return run_dir


def run(kind: str, seed: int, steps: int, out: str, skills: str, env_kwargs: dict) -> str:
    import torch

    torch.set_num_threads(1)
    import hrlkit

    run_dir = os.path.join(out, "runs", f"{kind}_seed{seed}")
    if kind == "manager":
        agent = hrlkit.DIAYNManager(GOAL_ENV, seed=seed, skills=skills, env_kwargs=env_kwargs)
    else:
        agent = hrlkit.SoftOptionCritic(GOAL_ENV, seed=seed, num_options=1, env_kwargs=env_kwargs)
    agent.learn(steps, run_dir=run_dir, progress=False, log_every=1_000, eval_every=1_000, eval_episodes=20,
                checkpoint_every=None)
    return run_dir


def success_curve(run_dir: str) -> list[tuple[int, float]]:
    rows = csv.DictReader(open(os.path.join(run_dir, "progress.csv")))
    return [(int(float(r["global_step"])), float(r["eval/mean_return"])) for r in rows if r.get("eval/mean_return")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skills", help="a DIAYN run directory (default: train one)")
    ap.add_argument("--skill-steps", type=int, default=30_000, help="DIAYN training steps when --skills is not given")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "diayn_downstream"))
    ap.add_argument("--goal", type=float, nargs=2, metavar=("X", "Y"), help="another goal than (0.7, 0.7)")
    args = ap.parse_args(argv)
    env_kwargs = {} if args.goal is None else {"goal": tuple(args.goal)}
    goal = tuple(args.goal) if args.goal else (0.7, 0.7)
    os.makedirs(args.out, exist_ok=True)
    skills = args.skills or train_skills(args.out, args.skill_steps)
    jobs = [(kind, seed) for seed in args.seeds for kind in ("manager", "sac")]
    with worker_pool(args.jobs) as pool:
        dirs = list(pool.map(run, [k for k, _ in jobs], [s for _, s in jobs], [args.steps] * len(jobs),
                             [args.out] * len(jobs), [skills] * len(jobs), [env_kwargs] * len(jobs)))
    from hrlkit.plotting import plot_runs

    plot_runs(dirs, os.path.join(args.out, "success.png"),
              title=f"{GOAL_ENV}, goal {goal}: success rate (20 greedy episodes)")
    results = {f"{k}_seed{s}": success_curve(d) for (k, s), d in zip(jobs, dirs)}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"skills": skills, "steps": args.steps, "goal": goal, "curves": results}, f, indent=2)
    lines = [f"{GOAL_ENV}, goal {goal}, {args.steps:,} env steps, success rate of 20 greedy episodes",
             "| agent | seed | final | best | mean over evaluations | first >= 0.9 at |", "|---|---|---|---|---|---|"]
    for (kind, seed), d in zip(jobs, dirs):
        c = results[f"{kind}_seed{seed}"]
        first = next((s for s, v in c if v >= 0.9), None)
        name = "manager over 8 DIAYN skills" if kind == "manager" else "flat SAC (from scratch)"
        lines.append(f"| {name} | {seed} | {c[-1][1]:.2f} | {max(v for _, v in c):.2f} | "
                     f"{sum(v for _, v in c) / len(c):.2f} | {first if first is not None else '-'} |")
    write_table(args.out, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
