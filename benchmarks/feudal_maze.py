"""FuN on a sparse, long-horizon maze (issue 5), against a flat actor-critic with the same budget,
3 seeds each. Two mazes (slippery moves, +1 at the goal only):

- hrlkit/NineRoomsMaze-v0 (default): 3 x 3 rooms, from the upper-left corner to the lower-right
  one (32 moves at best), 200 steps, in which uniform random actions succeed 0.05% of the time
  (--random-only 2000); the agent sees its (row, column).
- hrlkit/FourRoomsMaze-v0: the four-rooms grid, corner to corner (three rooms away), 100 steps,
  random actions succeed 0.7% of the time; the agent sees its cell index.

    python benchmarks/feudal_maze.py                      # nine rooms, 300k steps per run, 2 jobs
    python benchmarks/feudal_maze.py --env hrlkit/FourRoomsMaze-v0 --steps 200000
    python benchmarks/feudal_maze.py --steps 50000 --seeds 0 --out /tmp/maze

FuN: hrlkit's feudal agent with its defaults (8 envs, 40-step rollouts, c = 10; since session 19,
on the nine-rooms maze's coordinates, 4 PPO-style passes of 4 minibatches over each rollout with
standardized advantages, the worker's divided by max(std, 1), where the tables before it ran one
A2C pass; the four-rooms maze's cell indices keep the one pass). Flat baseline:
hrlkit's Option-Critic with one option (an n-step actor-critic, 8 envs) whose body has FuN's
perception widths ([128, 256] on the nine-rooms maze; [128] on the four-rooms one);
``--flat-set KEY=VALUE`` changes its hyperparameters (a sensitivity check), ``--feudal-set KEY=VALUE``
FuN's. Both are evaluated
greedily on 10 episodes every --eval-every steps; with +1 only at the goal the mean evaluation
return is the success rate; the training episodes' success rate is logged as the episodic
return. With ``--ablate``, each FuN run is also evaluated with the manager's goals hidden from
the worker (zero_goals) at the end. Writes under --out: the run directories, success.png,
results.json and table.md.
"""
from __future__ import annotations

import argparse
import csv
import json
import os

import numpy as np

from _pool import worker_pool
from _report import write_table

HERE = os.path.dirname(os.path.abspath(__file__))
MAZES = {  # env id -> (default results folder, the flat body)
    "hrlkit/NineRoomsMaze-v0": ("feudal_nine_rooms", [128, 256]),
    "hrlkit/FourRoomsMaze-v0": ("feudal_maze", [128]),
}


def run(env: str, kind: str, seed: int, steps: int, eval_every: int, out: str, ablate: bool, flat_set: dict,
        eval_only: bool = False, env_kwargs: dict | None = None, feudal_set: dict | None = None) -> dict:
    """Train one agent (or, with ``eval_only``, load its last checkpoint) and evaluate it greedily
    on 100 episodes at the end (FuN with ``ablate``: also with zero goals)."""
    import torch

    torch.set_num_threads(1)
    import hrlkit
    from hrlkit.runtime.config import to_dict
    from hrlkit.runtime.evaluation import evaluate

    run_dir = os.path.join(out, "runs", f"{kind}_seed{seed}")
    cls = hrlkit.FeudalNetwork if kind == "feudal" else hrlkit.OptionCritic
    if eval_only:
        path = os.path.join(run_dir, "checkpoints", "latest.pt")
        if not os.path.exists(path):
            raise SystemExit(f"--eval-only: no saved run at {path} (train it first, without --eval-only)")
        agent = cls.load(path)
    else:
        if kind == "feudal":
            agent = cls(env, seed=seed, env_kwargs=env_kwargs, config=dict(feudal_set or {}))
        else:
            agent = cls(env, seed=seed, env_kwargs=env_kwargs,
                        config={"num_options": 1, "hidden_sizes": MAZES[env][1], **flat_set})
        agent.learn(steps, run_dir=run_dir, progress=False, log_every=eval_every, eval_every=eval_every,
                    eval_episodes=10, checkpoint_every=None)
    rows = list(csv.DictReader(open(os.path.join(run_dir, "progress.csv"))))
    res = {"run_dir": run_dir, "steps": agent.global_step,
           "curve": [(int(float(r["global_step"])), float(r["eval/mean_return"])) for r in rows if r.get("eval/mean_return")],
           "train_success": [(int(float(r["global_step"])), float(r["charts/episodic_return"])) for r in rows
                             if r.get("charts/episodic_return")]}
    # the configuration the run trained with (the run directories are not committed; this is)
    res["config"] = to_dict(agent.config)
    res["final_100"] = float(np.mean(evaluate(agent, 100)))
    if ablate and kind == "feudal":
        agent.zero_goals = True
        res["zero_goals_100"] = float(np.mean(evaluate(agent, 100)))
    return res


def random_success(env_id: str, episodes: int) -> float:
    """Success rate of uniform random actions (episode i seeded i, actions from a stream seeded i)."""
    import gymnasium as gym

    import hrlkit  # noqa: F401 - registers the maze

    env = gym.make(env_id)
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
    ap.add_argument("--env", choices=sorted(MAZES), default="hrlkit/NineRoomsMaze-v0")
    ap.add_argument("--steps", type=int, default=300_000)
    ap.add_argument("--eval-every", type=int, default=20_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--ablate", action="store_true", help="also evaluate FuN with zero goals (100 episodes)")
    ap.add_argument("--out", help="results folder (default: benchmarks/results/feudal_nine_rooms or feudal_maze)")
    ap.add_argument("--agents", nargs="+", choices=["feudal", "flat"], default=["feudal", "flat"])
    ap.add_argument("--flat-set", nargs="*", default=[], metavar="KEY=VALUE", help="flat baseline overrides")
    ap.add_argument("--feudal-set", nargs="*", default=[], metavar="KEY=VALUE", help="FuN overrides of its defaults")
    ap.add_argument("--observation", choices=["index", "coords"],
                    help="what the agents see (default: the registered env's; nine rooms: coords, four rooms: index)")
    ap.add_argument("--eval-only", action="store_true",
                    help="re-evaluate the runs saved under --out (checkpoints/latest.pt) instead of training; "
                         "the saved runs' own settings apply (--steps, --observation, --flat-set and --feudal-set are not used)")
    ap.add_argument("--random-only", type=int, metavar="EPISODES",
                    help="only print the success rate of uniform random actions over EPISODES episodes")
    args = ap.parse_args(argv)
    env = args.env
    if args.random_only:
        print(f"{env}: uniform random actions succeed in {random_success(env, args.random_only):.2%} "
              f"of {args.random_only} episodes")
        return 0
    from hrlkit.runtime.config import parse_overrides

    flat_set, feudal_set = parse_overrides(args.flat_set), parse_overrides(args.feudal_set)
    env_kwargs = {"observation": args.observation} if args.observation else None
    args.out = args.out or os.path.join(HERE, "results", MAZES[env][0])
    os.makedirs(args.out, exist_ok=True)
    jobs = [(kind, seed) for seed in args.seeds for kind in args.agents]
    n = len(jobs)
    with worker_pool(args.jobs) as pool:
        results = list(pool.map(run, [env] * n, [k for k, _ in jobs], [s for _, s in jobs], [args.steps] * n,
                                [args.eval_every] * n, [args.out] * n, [args.ablate] * n, [flat_set] * n,
                                [args.eval_only] * n, [env_kwargs] * n, [feudal_set] * n))
    from hrlkit.plotting import plot_runs

    plot_runs([r["run_dir"] for r in results], os.path.join(args.out, "success.png"),
              title=f"{env}: success rate (10 greedy episodes)")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"args": vars(args), "runs": {f"{k}_seed{s}": r for (k, s), r in zip(jobs, results)}}, f, indent=2)
    steps = ", ".join(f"{s:,}" for s in sorted({r["steps"] for r in results}))
    lines = [f"{env}, {steps} env steps per run: success rate of 100 greedy episodes at the end (final), "
             "of the 10 greedy episodes of each evaluation (best), of the training episodes of the last log "
             "interval (train) and averaged over the run's log intervals (train, whole run)",
             "| agent | seed | final (100 episodes) | best (10 episodes) | train | train, whole run | zero goals (100 episodes) |",
             "|---|---|---|---|---|---|---|"]
    for (kind, seed), r in zip(jobs, results):
        c = r["curve"]
        name = "FuN" if kind == "feudal" else "flat actor-critic"
        abl = f"{r['zero_goals_100']:.2f}" if "zero_goals_100" in r else "-"
        tr = [v for _, v in r["train_success"]]
        train = f"{tr[-1]:.2f} | {np.mean(tr):.3f}" if tr else "- | -"
        lines.append(f"| {name} | {seed} | {r['final_100']:.2f} | {max(v for _, v in c):.2f} | {train} | {abl} |")
    write_table(args.out, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
