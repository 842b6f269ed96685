"""FuN on a sparse, long-horizon maze (issue 5): hrlkit/FourRoomsMaze-v0 (start in the upper-left
room's far corner, goal in the lower-right room's far corner, three rooms away; slippery moves;
+1 at the goal; 100 steps, in which uniform random actions succeed 0.7% of the time: --random-only 2000), FuN
against a flat actor-critic with the same budget, 3 seeds each.

    python benchmarks/feudal_maze.py                      # 200k steps per run, 2 jobs
    python benchmarks/feudal_maze.py --steps 50000 --seeds 0 --out /tmp/maze

FuN: hrlkit's feudal agent with its defaults (8 envs, 40-step rollouts, c = 10). Flat baseline:
hrlkit's Option-Critic with one option (an n-step actor-critic; its body [128] as FuN's
perception MLP), 8 envs. Both are evaluated greedily on 10 episodes every --eval-every steps;
with +1 only at the goal the mean evaluation return is the success rate. With ``--ablate``, each
FuN run is also evaluated with the manager's goals hidden from the worker (zero_goals) at the
end. Writes under --out: the run directories, success.png, results.json and table.md.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
from concurrent.futures import ProcessPoolExecutor

from _report import write_table

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = "hrlkit/FourRoomsMaze-v0"


def run(kind: str, seed: int, steps: int, eval_every: int, out: str, ablate: bool) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    import hrlkit
    from hrlkit.runtime.evaluation import evaluate

    run_dir = os.path.join(out, "runs", f"{kind}_seed{seed}")
    if kind == "feudal":
        agent = hrlkit.FeudalNetwork(ENV, seed=seed)
    else:
        agent = hrlkit.OptionCritic(ENV, seed=seed, num_options=1, hidden_sizes=[128])
    agent.learn(steps, run_dir=run_dir, progress=False, log_every=eval_every, eval_every=eval_every,
                eval_episodes=10, checkpoint_every=None)
    rows = csv.DictReader(open(os.path.join(run_dir, "progress.csv")))
    res = {"run_dir": run_dir,
           "curve": [(int(float(r["global_step"])), float(r["eval/mean_return"])) for r in rows if r.get("eval/mean_return")]}
    if ablate and kind == "feudal":
        res["final_100"] = float(np.mean(evaluate(agent, 100)))
        agent.zero_goals = True
        res["zero_goals_100"] = float(np.mean(evaluate(agent, 100)))
    return res


def random_success(episodes: int) -> float:
    """Success rate of uniform random actions (episode i seeded i, actions from a stream seeded i)."""
    import gymnasium as gym

    import hrlkit  # noqa: F401 - registers the maze

    env = gym.make(ENV)
    wins = 0
    for i in range(episodes):
        env.reset(seed=i)
        env.action_space.seed(i)
        done = False
        while not done:
            _, r, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated or truncated
        wins += r > 0
    return wins / episodes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=200_000)
    ap.add_argument("--eval-every", type=int, default=20_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--ablate", action="store_true", help="also evaluate FuN with zero goals (100 episodes)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "feudal_maze"))
    ap.add_argument("--random-only", type=int, metavar="EPISODES",
                    help="only print the success rate of uniform random actions over EPISODES episodes")
    args = ap.parse_args(argv)
    if args.random_only:
        print(f"{ENV}: uniform random actions succeed in {random_success(args.random_only):.1%} "
              f"of {args.random_only} episodes")
        return 0
    os.makedirs(args.out, exist_ok=True)
    jobs = [(kind, seed) for seed in args.seeds for kind in ("feudal", "flat")]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(run, [k for k, _ in jobs], [s for _, s in jobs], [args.steps] * len(jobs),
                                [args.eval_every] * len(jobs), [args.out] * len(jobs), [args.ablate] * len(jobs)))
    from hrlkit.plotting import plot_runs

    plot_runs([r["run_dir"] for r in results], os.path.join(args.out, "success.png"),
              title=f"{ENV}: success rate (10 greedy episodes)")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({f"{k}_seed{s}": r for (k, s), r in zip(jobs, results)}, f, indent=2)
    lines = [f"{ENV}, {args.steps:,} env steps per run, success rate of 10 greedy episodes",
             "| agent | seed | final | best | zero goals (100 episodes) |", "|---|---|---|---|---|"]
    for (kind, seed), r in zip(jobs, results):
        c = r["curve"]
        name = "FuN" if kind == "feudal" else "flat actor-critic"
        abl = f"{r['zero_goals_100']:.2f} (with goals {r['final_100']:.2f})" if "zero_goals_100" in r else "-"
        lines.append(f"| {name} | {seed} | {c[-1][1]:.2f} | {max(v for _, v in c):.2f} | {abl} |")
    write_table(args.out, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
