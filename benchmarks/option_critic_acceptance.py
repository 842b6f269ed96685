"""Acceptance runs of the option agents.

Option-Critic (issue 3): CartPole-v1 (discrete) and Pendulum-v1 (continuous); Soft Option-Critic
(issue 4): Pendulum-v1 and HalfCheetah-v5 (2 options; needs ``pip install "gymnasium[mujoco]"``).

    python benchmarks/option_critic_acceptance.py cartpole                # seeds 0 1 2, 200k steps each
    python benchmarks/option_critic_acceptance.py pendulum                # seeds 0 1 2, 100k steps each
    python benchmarks/option_critic_acceptance.py soc-pendulum            # seeds 0 1 2, 20k steps each
    python benchmarks/option_critic_acceptance.py soc-halfcheetah --seeds 0   # 200k steps
    python benchmarks/option_critic_acceptance.py cartpole --jobs 2 --out /tmp/oc_cartpole

Each seed trains with the library defaults, updated by the task's config file
(benchmarks/configs/oc_pendulum.yaml for Pendulum) and any --set overrides, evaluating the greedy
policy on 10 episodes every --eval-every steps. The script writes, under --out: the run
directories, curves.png (mean ± std of the evaluation return over seeds), results.json and
table.md (per seed: the first evaluation at or above the target and its step, the best and the
final evaluation, and the option usage: share of steps per option, mean duration, termination
rate, averaged over the run's log windows and over its last window).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys

from _pool import worker_pool
from _report import write_table

HERE = os.path.dirname(os.path.abspath(__file__))
TASKS = {
    "cartpole": {"algo": "option-critic", "env": "CartPole-v1", "steps": 200_000, "target": 475.0,
                 "eval_every": 10_000, "config": None, "out": "oc_cartpole"},
    "pendulum": {"algo": "option-critic", "env": "Pendulum-v1", "steps": 100_000, "target": -250.0,
                 "eval_every": 10_000, "config": os.path.join(HERE, "configs", "oc_pendulum.yaml"), "out": "oc_pendulum"},
    "soc-pendulum": {"algo": "soft-option-critic", "env": "Pendulum-v1", "steps": 20_000, "target": -200.0,
                     "eval_every": 2_000, "config": None, "out": "soc_pendulum"},
    "soc-halfcheetah": {"algo": "soft-option-critic", "env": "HalfCheetah-v5", "steps": 200_000, "target": 3000.0,
                        "eval_every": 10_000, "config": os.path.join(HERE, "configs", "soc_halfcheetah.yaml"),
                        "out": "soc_halfcheetah"},
}


def run_seed(algo: str, env: str, seed: int, steps: int, eval_every: int, run_dir: str, overrides: dict) -> str:
    import torch

    torch.set_num_threads(1)
    from hrlkit.agents import ALGORITHMS

    agent = ALGORITHMS[algo](env, seed=seed, config=overrides)
    agent.learn(steps, run_dir=run_dir, progress=False, log_every=eval_every, eval_every=eval_every,
                eval_episodes=10, checkpoint_every=None)
    return run_dir


def summarize(run_dir: str, target: float) -> dict:
    rows = list(csv.DictReader(open(os.path.join(run_dir, "progress.csv"))))
    evals = [(int(float(r["global_step"])), float(r["eval/mean_return"])) for r in rows if r.get("eval/mean_return")]
    logs = [r for r in rows if r.get("options/termination_rate")]
    shares = sorted(k for k in rows[0].keys() if k.startswith("options/share_")) if rows else []
    first = next(((s, v) for s, v in evals if v >= target), None)

    def usage(window):
        if not window:
            return {}
        mean = lambda key: sum(float(r[key]) for r in window if r.get(key)) / max(1, sum(1 for r in window if r.get(key)))
        return {
            "share": [round(mean(k), 3) for k in shares],
            "mean_duration": round(mean("options/mean_duration"), 1),
            "termination_rate": round(mean("options/termination_rate"), 4),
        }

    return {
        "first_at_target": None if first is None else {"step": first[0], "eval": first[1]},
        "best": max(evals, key=lambda e: e[1]) if evals else None,
        "final": evals[-1] if evals else None,
        "usage_run": usage(logs),
        "usage_last": usage(logs[-1:]),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("task", choices=sorted(TASKS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--eval-every", type=int, default=None)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    task = TASKS[args.task]
    steps = args.steps or task["steps"]
    eval_every = args.eval_every or task["eval_every"]
    out = args.out or os.path.join("benchmarks", "results", task["out"])
    from hrlkit.plotting import plot_runs
    from hrlkit.runtime.config import parse_overrides

    from hrlkit.runtime.config import load_config_file

    overrides = {**(load_config_file(task["config"]) if task["config"] else {}), **parse_overrides(args.set)}
    run_dirs = [os.path.join(out, "runs", f"seed{s}") for s in args.seeds]
    for rd in run_dirs:
        if os.path.exists(os.path.join(rd, "config.json")):
            sys.exit(f"{rd} already holds a run; choose another --out")
    with worker_pool(args.jobs) as pool:
        list(pool.map(run_seed, [task["algo"]] * len(args.seeds), [task["env"]] * len(args.seeds), args.seeds, [steps] * len(args.seeds),
                      [eval_every] * len(args.seeds), run_dirs, [overrides] * len(args.seeds)))
    results = {f"seed{s}": summarize(rd, task["target"]) for s, rd in zip(args.seeds, run_dirs)}
    plot_runs(run_dirs, os.path.join(out, "curves.png"), title=f"{task['algo']} on {task['env']} ({len(args.seeds)} seeds)")
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"task": args.task, "algo": task["algo"], "env": task["env"], "steps": steps, "target": task["target"],
                   "overrides": overrides, "results": results}, f, indent=2)
    lines = [
        f"{task['algo']} on {task['env']}, {steps:,} steps, target {task['target']} (greedy, 10 episodes).",
        "",
        "| seed | first eval >= target (step) | best eval (step) | final eval | options used (share of steps, whole run) | mean duration | termination rate |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        first = "not reached" if r["first_at_target"] is None else f"{r['first_at_target']['eval']:.0f} ({r['first_at_target']['step']:,})"
        best = f"{r['best'][1]:.0f} ({r['best'][0]:,})" if r["best"] else "-"
        final = f"{r['final'][1]:.0f}" if r["final"] else "-"
        u = r["usage_run"]
        lines.append(f"| {name} | {first} | {best} | {final} | {u.get('share')} | {u.get('mean_duration')} | {u.get('termination_rate')} |")
    write_table(out, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
