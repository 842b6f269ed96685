"""Distributed collection on Ray, measured on this machine (issue 18).

    python benchmarks/ray_scaling.py sps                 # collection SPS: 0 (in-process), 1, 2 collectors
    python benchmarks/ray_scaling.py learner             # the learner's update rate (SOC, HalfCheetah sizes)
    python benchmarks/ray_scaling.py curve --collectors 0 --total-steps 20000 --seed 0
    python benchmarks/ray_scaling.py curve --collectors 2 --total-steps 20000 --seed 0
    python benchmarks/ray_scaling.py report              # table.md, sps.png, curves.png from what was measured

Collection SPS: env steps per second that reach the learner, with the agent's acting networks
running (past learning_starts) and no gradient steps, so it is the collection side alone.
In-process: the trainer's own collect step (act, env step, observe into the replay) in a loop.
N collectors: N Ray actors, each with its own vector env and a CPU copy of the acting networks,
their batches added to the learner's replay vector step by vector step, as in a run.
CarRacing-v3 (96x96x3 pixels, Box2D) runs DIAYN's pixel agent; HalfCheetah-v5 (MuJoCo) runs
Soft Option-Critic. Each part writes its own JSON to benchmarks/results/ray_scaling/, so the parts
can run one after another in the background: the machine has 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import write_table  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "ray_scaling")
SOC_HALFCHEETAH = {"num_options": 2, "learning_starts": 5000, "batch_size": 256}  # benchmarks/configs/soc_halfcheetah.yaml
ENVS = {  # env -> (agent class name, hyperparameters)
    "CarRacing-v3": ("DIAYN", {"buffer_size": 20_000, "learning_starts": 0, "num_skills": 10}),
    "HalfCheetah-v5": ("SoftOptionCritic", {**SOC_HALFCHEETAH, "learning_starts": 0, "buffer_size": 200_000}),
}


def _agent(env: str, seed: int = 0):
    import hrlkit

    cls, hp = ENVS[env]
    return getattr(hrlkit, cls)(env, seed=seed, **hp)


def collection_sps(env: str, collectors: int, seconds: float) -> dict:
    """Env steps per second reaching the learner's replay over ``seconds`` (after a warm-up)."""
    from hrlkit.runtime.threads import torch_threads
    from hrlkit.runtime.trainer import _collect

    agent = _agent(env)
    with torch_threads(agent.threads):  # as learn() runs it (collectors: one thread each)
        return _collection_sps(agent, env, collectors, seconds, _collect)


def _collection_sps(agent, env: str, collectors: int, seconds: float, _collect) -> dict:
    agent.update_credit = 0.0
    if collectors == 0:
        class Stats:
            episodes: list = []
            stop = False

        def step_once() -> int:
            _collect(agent, Stats, None)
            agent.update_credit = 0.0  # owed gradient steps are not run: collection alone
            return agent.config.num_envs
        for _ in range(20):
            step_once()
        t0, steps = time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds:
            steps += step_once()
        return {"env": env, "collectors": 0, "steps": steps, "seconds": time.perf_counter() - t0,
                "sps": steps / (time.perf_counter() - t0)}
    from hrlkit.distributed.loop import CollectorPool

    pool = CollectorPool(agent, collectors, sync_every=1, max_restarts=0, total_steps=10**9)
    try:
        def ingest() -> tuple[int, float]:
            batch = pool.next_batch()
            cols, start = batch["columns"], 0
            for rows in batch["rows_per_step"]:  # as the learner does: one vector step at a time
                agent.buffer.add(**{k: v[start:start + rows] for k, v in cols.items()})
                start += rows
            agent.global_step += batch["steps"]
            return batch["steps"], batch["busy_s"]
        for _ in range(2 * collectors):  # warm-up: actors built, first weights loaded
            ingest()
        t0, steps, busy = time.perf_counter(), 0, 0.0
        while time.perf_counter() - t0 < seconds:
            s, b = ingest()
            steps, busy = steps + s, busy + b
        wall = time.perf_counter() - t0
        return {"env": env, "collectors": collectors, "steps": steps, "seconds": wall, "sps": steps / wall,
                "per_collector_sps_while_busy": steps / busy}
    finally:
        pool.close()


def cmd_sps(args) -> None:
    import ray

    rows = []
    for env in args.envs:
        for n in args.collectors:
            if n and not ray.is_initialized():
                ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            r = collection_sps(env, n, args.seconds)
            print(json.dumps(r))
            rows.append(r)
    _save("sps.json", {"command": " ".join(["python benchmarks/ray_scaling.py", *sys.argv[1:]]), "rows": rows})


def cmd_learner(args) -> None:
    """Gradient steps per second of SOC's learner at the HalfCheetah settings (one torch thread),
    on a replay filled with random transitions; and the ingestion cost per transition."""
    import torch

    torch.set_num_threads(1)
    agent = _agent("HalfCheetah-v5")
    n = 20_000
    obs = np.random.default_rng(0).normal(size=(n, agent.obs_dim)).astype(np.float32)
    t0 = time.perf_counter()
    for i in range(0, n, 64):  # the learner's ingestion, a vector step (1 row) at a time
        for j in range(i, min(i + 64, n)):
            agent.buffer.add(obs=obs[j:j + 1], action=np.zeros((1, agent.action_dim), np.float32),
                             reward=np.zeros(1, np.float32), next_obs=obs[j:j + 1], terminated=np.zeros(1, bool),
                             option=np.zeros(1, np.int64))
    add_s = (time.perf_counter() - t0) / n
    agent.global_step = 10**6
    agent.update_credit = 20
    agent.update()  # warm-up
    agent.update_credit = args.updates
    t0 = time.perf_counter()
    agent.update()
    ups = args.updates / (time.perf_counter() - t0)
    out = {"command": " ".join(["python benchmarks/ray_scaling.py", *sys.argv[1:]]),
           "updates_per_s": ups, "add_us_per_row": add_s * 1e6, "batch_size": agent.config.batch_size,
           "hidden_sizes": agent.config.hidden_sizes, "num_options": agent.config.num_options}
    print(json.dumps(out))
    _save("learner.json", out)


def cmd_curve(args) -> None:
    import hrlkit

    name = f"collectors{args.collectors}_seed{args.seed}"
    run_dir = os.path.join(OUT, "runs", name)
    agent = hrlkit.SoftOptionCritic("HalfCheetah-v5", seed=args.seed, **SOC_HALFCHEETAH)
    kw = {"collectors": args.collectors, "sync_every": args.sync_every} if args.collectors else {}
    t0 = time.perf_counter()
    agent.learn(args.total_steps, run_dir=run_dir, log_every=1000, eval_every=args.eval_every, eval_episodes=5,
                checkpoint_every=None, progress=False, **kw)
    out = {"command": " ".join(["python benchmarks/ray_scaling.py", *sys.argv[1:]]), "run_dir": os.path.relpath(run_dir, OUT),
           "collectors": args.collectors, "seed": args.seed, "total_steps": args.total_steps,
           "wall_s": time.perf_counter() - t0}
    print(json.dumps(out))
    _save(f"curve_{name}.json", out)


def cmd_report(args) -> None:
    import glob

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hrlkit.plotting import read_run

    lines: list[str] = []
    sps = _load("sps.json")
    if sps:
        lines += ["Collection SPS (env steps/s reaching the learner; acting networks on, no gradient steps), "
                  "2 shared cores:", "", f"`{sps['command']}`", "",
                  "| env (agent) | in-process | 1 collector | 2 collectors | per collector while stepping |",
                  "|---|---|---|---|---|"]
        fig, ax = plt.subplots(figsize=(6, 4))
        for env in dict.fromkeys(r["env"] for r in sps["rows"]):
            rs = {r["collectors"]: r for r in sps["rows"] if r["env"] == env}
            cells = [f"{rs[n]['sps']:,.0f}" if n in rs else "-" for n in (0, 1, 2)]
            busy = ", ".join(f"{rs[n]['per_collector_sps_while_busy']:,.0f}" for n in (1, 2) if n in rs)
            lines.append(f"| {env} ({ENVS[env][0]}) | " + " | ".join(cells) + f" | {busy} |")
            ns = sorted(rs)
            ax.plot(ns, [rs[n]["sps"] / rs[0]["sps"] if 0 in rs else rs[n]["sps"] for n in ns], "o-", label=env)
        ax.set_xticks([0, 1, 2])
        _save_figure(plt, fig, ax, "collectors (0: in-process)", "collection SPS / in-process SPS",
                     "collection SPS on 2 shared cores", "sps.png")
    learner = _load("learner.json")
    if learner:
        lines += ["", f"Learner: {learner['updates_per_s']:,.0f} gradient steps/s (SOC, {learner['num_options']} options, "
                  f"{learner['hidden_sizes']}, batch {learner['batch_size']}, 1 thread); replay ingestion "
                  f"{learner['add_us_per_row']:.1f} µs per row. `{learner['command']}`"]
    curves = [c for c in (_load(os.path.basename(p)) for p in sorted(glob.glob(os.path.join(OUT, "curve_*.json")))) if c]
    if curves:
        lines += ["", "Soft Option-Critic on HalfCheetah-v5 (2 options, benchmarks/configs/soc_halfcheetah.yaml), "
                  "greedy evaluation (5 episodes):", "",
                  "| run | command | wall (s) | evaluations (step: mean return) | final |", "|---|---|---|---|---|"]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for c in curves:
            _, steps, values = read_run(os.path.join(OUT, c["run_dir"]), "eval/mean_return")
            label = "in-process" if c["collectors"] == 0 else f"{c['collectors']} collectors"
            evals = ", ".join(f"{int(s):,}: {v:.0f}" for s, v in zip(steps, values))
            lines.append(f"| {label}, seed {c['seed']} | `{c['command']}` | {c['wall_s']:.0f} | {evals} | "
                         f"{values[-1]:.0f} |")
            ax.plot(steps, values, "o-", label=f"{label} (seed {c['seed']})")
        _save_figure(plt, fig, ax, "environment steps", "eval/mean_return",
                     "SOC on HalfCheetah-v5: Ray collectors vs in-process", "curves.png")
    write_table(OUT, lines)


def _save_figure(plt, fig, ax, xlabel: str, ylabel: str, title: str, name: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, name), dpi=120)
    plt.close(fig)


def _save(name: str, data: dict) -> None:
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(data, f, indent=2)


def _load(name: str) -> dict | None:
    path = os.path.join(OUT, name)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sps")
    s.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    s.add_argument("--collectors", nargs="+", type=int, default=[0, 1, 2])
    s.add_argument("--seconds", type=float, default=40.0)
    s.set_defaults(fn=cmd_sps)
    lr = sub.add_parser("learner")
    lr.add_argument("--updates", type=int, default=300)
    lr.set_defaults(fn=cmd_learner)
    c = sub.add_parser("curve")
    c.add_argument("--collectors", type=int, default=0)
    c.add_argument("--sync-every", type=int, default=20)
    c.add_argument("--total-steps", type=int, default=20_000)
    c.add_argument("--eval-every", type=int, default=5_000)
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(fn=cmd_curve)
    r = sub.add_parser("report")
    r.set_defaults(fn=cmd_report)
    args = p.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
