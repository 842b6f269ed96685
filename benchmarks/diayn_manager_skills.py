"""What the downstream managers do (issue 6, the README's caveats): for a goal on PointNav, how
close each DIAYN skill's deterministic path comes to it, and which skills each trained manager
plays in its greedy episodes.

    python benchmarks/diayn_manager_skills.py benchmarks/results/diayn_downstream_goal2 --goal -0.6 0.4
    python benchmarks/diayn_manager_skills.py benchmarks/results/diayn_downstream --goal 0.7 0.7

OUT is a --out of benchmarks/diayn_downstream.py (its runs/manager_seed*/ and the skills run its
results.json names). Skill paths: 5 deterministic episodes per skill (seeds 0..4), the smallest
distance of any visited position to the goal. Managers: 5 greedy episodes each (seeds 100..104),
the sequence of skills played, the return and the length.
"""
from __future__ import annotations

import argparse
import glob
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--goal", type=float, nargs=2, required=True, metavar=("X", "Y"))
    ap.add_argument("--episodes", type=int, default=5)
    args = ap.parse_args(argv)
    import gymnasium as gym

    import hrlkit
    from hrlkit.skills import rollout_skills

    skills_dir = json.load(open(os.path.join(args.out, "results.json")))["skills"]
    if not os.path.isabs(skills_dir):  # written relative to benchmarks/ by diayn_downstream.py
        skills_dir = os.path.join(HERE, skills_dir)
    skills = hrlkit.DIAYN.load(os.path.join(skills_dir, "checkpoints", "latest.pt"))
    goal = np.array(args.goal)
    paths = rollout_skills(skills, args.episodes)
    for k, eps in sorted(paths.items()):
        print(f"skill {k}: closest approach to {tuple(args.goal)}: "
              f"{min(np.linalg.norm(ep['obs'] - goal, axis=1).min() for ep in eps):.3f}")
    for ckpt in sorted(glob.glob(os.path.join(args.out, "runs", "manager_seed*", "checkpoints", "latest.pt"))):
        manager = hrlkit.DIAYNManager.load(ckpt)
        env = gym.make("hrlkit/PointNavGoal-v0", goal=tuple(args.goal))
        episodes = []
        for ep in range(args.episodes):
            obs, _ = env.reset(seed=100 + ep)
            state, done, played, ret, steps = None, False, [], 0.0, 0
            while not done:
                action, state = manager.predict(obs[None], state)
                if not played or played[-1] != int(state["skill"][0]):
                    played.append(int(state["skill"][0]))
                obs, r, terminated, truncated, _ = env.step(action[0])
                ret, steps, done = ret + r, steps + 1, terminated or truncated
            episodes.append(f"skills {played}, return {ret:.0f}, {steps} steps")
        print(f"{ckpt.split(os.sep)[-3]}: " + "; ".join(episodes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
