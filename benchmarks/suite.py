"""The defaults suite: every hrlkit algorithm with its library defaults on standard environments
nobody tuned it for, side by side with its flat counterpart from Stable-Baselines3 (SB3's
defaults), same step budget, same evaluation protocol.

    python benchmarks/suite.py                     # everything, 3 seeds (hours on 2 cores)
    python benchmarks/suite.py --jobs 2 --algos option-critic --envs CartPole-v1
    python benchmarks/suite.py --quick             # 1 seed, 10% budgets: a smoke test
    python benchmarks/suite.py --report-only       # tables and figures from what is finished

Protocol (hrlkit and SB3 alike): one process per run, 1 torch thread; a greedy evaluation of
10 episodes on a separate env every budget/10 env steps and at the end; "final" is the last
evaluation, "best" the highest. hrlkit runs use ``hrlkit.<Agent>(env, seed=s)`` with nothing
else set (the library defaults for that action-space kind); SB3 runs use
``<PPO|A2C|SAC>("MlpPolicy", env, seed=s)``, SB3's defaults, with SB3's ``EvalCallback``.

DIAYN rows have no SB3 peer: after the budget, every skill is rolled out deterministically on
fresh envs; the figures are the discriminator's accuracy on those rollouts (chance 1/skills)
and the mean pairwise distance of the skills' end points against that of as many
uniform-random-action policies (the same horizon and start). The accuracies are reported per seed
and as their IQM with the same bootstrap interval as the returns; ``results.json`` records both
readings of the 0.8 goal (``goal_met``: every run; ``iqm_goal_met``: the IQM).

Aggregation: per (env, implementation), the interquartile mean of the per-seed finals with a
95% stratified-bootstrap confidence interval (rliable's ``get_interval_estimates``; with 3 seeds
the IQM is the mean of all three, as rliable's trimming keeps every run), and the per-seed
finals. The run files are resumable: a finished run (its JSON) is skipped, and an hrlkit run
killed before its end (a closed session) continues from its last checkpoint, taken every
budget / 10 steps under ``OUT/partial/`` and removed once the run is finished. The resume
rebuilds the envs (the checkpoint's pickled env state is never loaded), so new episodes start
there; the run's JSON lists those steps in ``resumed_at`` and its ``wall_s`` adds up every
segment. A run never stopped is exactly the protocol's (checkpoints change nothing; tested).
SB3 runs start again from scratch.

Output: ``benchmarks/results/suite/`` (``runs/<algo>/<env>/<impl>_seed<s>.json``,
``results.json``, ``table.md``, ``curves_<env>.png``).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import functools
import json
import os
import shutil
import sys
import time
from typing import Any

import numpy as np
from _pool import worker_pool
from _report import write_table

from hrlkit._io import atomic_write
from hrlkit.runtime.config import typed_values

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "results", "suite")


@dataclasses.dataclass(frozen=True)
class Row:
    algo: str  # hrlkit's CLI name
    label: str  # the env's name in tables and files
    env_id: str
    env_kwargs: tuple  # sorted (key, value) pairs
    budget: int
    peers: tuple[str, ...]  # SB3 algorithm names

    @property
    def kwargs(self) -> dict:
        return dict(self.env_kwargs)


def _row(algo, env_id, budget, peers=(), label=None, **env_kwargs) -> Row:
    return Row(algo, label or env_id, env_id, tuple(sorted(env_kwargs.items())), budget, tuple(peers))


ROWS: list[Row] = [
    _row("option-critic", "CartPole-v1", 100_000, ("PPO", "A2C")),
    _row("option-critic", "LunarLander-v3", 500_000, ("PPO", "A2C")),
    _row("option-critic", "Pendulum-v1", 100_000, ("PPO",)),
    _row("option-critic", "LunarLander-v3", 500_000, ("PPO",), label="LunarLanderContinuous", continuous=True),
    _row("soft-option-critic", "Pendulum-v1", 20_000, ("SAC",)),
    _row("soft-option-critic", "Hopper-v5", 100_000, ("SAC",)),
    _row("soft-option-critic", "Walker2d-v5", 100_000, ("SAC",)),
    _row("diayn", "Pendulum-v1", 30_000),
    _row("diayn", "LunarLander-v3", 100_000, label="LunarLanderContinuous", continuous=True),
    _row("diayn", "Hopper-v5", 100_000),
    _row("feudal", "CartPole-v1", 100_000, ("A2C",)),
    _row("feudal", "LunarLander-v3", 500_000, ("A2C",)),
]
EVALS = 10  # evaluations per run (every budget / EVALS steps)
EVAL_EPISODES = 10
DIAYN_GOAL_ACCURACY = 0.8


# ---- one run --------------------------------------------------------------------------------------
def is_hrlkit(impl: str) -> bool:
    """'hrlkit' (the defaults) or 'hrlkit-NAME' (a variant: --variant NAME --set ...)."""
    return impl == "hrlkit" or impl.startswith("hrlkit-")


def run_path(out: str, row: Row, impl: str, seed: int) -> str:
    """hrlkit runs by algorithm and env; SB3 runs by env only (one PPO run serves every row of its env)."""
    owner = row.algo if is_hrlkit(impl) else "sb3"
    return os.path.join(out, "runs", owner, row.label, f"{impl}_seed{seed}.json")


def _hrlkit_agent(row: Row, seed: int, overrides: dict | None = None, wrappers: list | None = None):
    from hrlkit.agents import ALGORITHMS

    return ALGORITHMS[row.algo](row.env_id, seed=seed, env_kwargs=row.kwargs, config=overrides or {},
                                wrappers=wrappers or None)


def partial_dir(out: str, row: Row, impl: str, seed: int) -> str:
    """Where an unfinished hrlkit run keeps its run directory (checkpoints, progress.csv)."""
    return os.path.join(out, "partial", row.algo, row.label, f"{impl}_seed{seed}")


def _train_resumable(row: Row, budget: int, seed: int, run_dir: str, overrides: dict | None, wrappers: list | None,
                     eval_every: int | None, episodes: int):
    """Train one hrlkit run in ``run_dir``, checkpointing every budget / EVALS steps; a run killed
    before its end (a closed session, a reboot) continues from its last checkpoint when started
    again. The resume rebuilds the envs (the checkpoint's pickled env state is never loaded), so a
    resumed run starts new episodes there; ``resumed_at`` records where. Returns the agent, the
    steps it resumed at, and the wall time of the earlier segments (each up to its last checkpoint)."""
    from hrlkit.agents import ALGORITHMS
    from hrlkit.runtime.checkpoint import CheckpointError

    state_path, latest = os.path.join(run_dir, "suite_state.json"), os.path.join(run_dir, "checkpoints", "latest.pt")
    settings = json.loads(json.dumps({"budget": budget, "eval_episodes": episodes, "overrides": overrides or {},
                                      "wrappers": wrappers or []}))
    agent, state = None, {"elapsed_s": 0.0, "resumed_at": [], "settings": settings}
    if os.path.isfile(latest) and os.path.isfile(state_path):
        with open(state_path) as f:
            saved = json.load(f)
        if saved.get("settings") != settings:  # never finish a run with other settings than it started with
            raise ValueError(f"{run_dir}: holds an unfinished run of {saved.get('settings')}, this call asks for "
                             f"{settings}; delete that folder to start the run again, or name another --variant")
        try:
            agent = ALGORITHMS[row.algo].load(latest, threads=1)
        except CheckpointError as e:  # start over; the reason is printed
            print(f"{run_dir}: not resumable ({e}); starting the run again", flush=True)
        else:
            state = saved
            state["elapsed_s"] += max(0.0, os.path.getmtime(latest) - state["segment_start"])
            state["resumed_at"].append(agent.global_step)
            print(f"{run_dir}: resuming at step {agent.global_step:,} of {budget:,}", flush=True)
    if agent is None:
        shutil.rmtree(run_dir, ignore_errors=True)
        agent = _hrlkit_agent(row, seed, overrides, wrappers)
    if hasattr(agent.config, "save_replay"):  # what a checkpoint holds; training is the same either way
        agent.config.save_replay = True
    os.makedirs(run_dir, exist_ok=True)
    state["segment_start"] = time.time()
    with atomic_write(state_path) as f:
        f.write(json.dumps(state).encode())
    agent.learn(budget, run_dir=run_dir, eval_every=eval_every, eval_episodes=episodes, log_every=max(1, budget // 20),
                checkpoint_every=max(1, budget // EVALS), progress=False, tensorboard=False)
    return agent, state["resumed_at"], state["elapsed_s"]


def _column(run_dir: str, name: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one column of the run's progress.csv (empty where it was never logged)."""
    from hrlkit.plotting import read_run

    try:
        _, steps, values = read_run(run_dir, name)
    except ValueError:
        return [], []
    return [int(s) for s in steps], [float(v) for v in values]


def run_hrlkit(row: Row, budget: int, seed: int, run_dir: str, episodes: int = EVAL_EPISODES,
               overrides: dict | None = None, wrappers: list | None = None) -> dict:
    agent, resumed_at, earlier = _train_resumable(row, budget, seed, run_dir, overrides, wrappers,
                                                  max(1, budget // EVALS), episodes)
    steps, returns = _column(run_dir, "eval/mean_return")
    out = {"steps": steps, "returns": returns, "overrides": typed_values(agent.config, overrides),
           "resumed_at": resumed_at, "earlier_wall_s": earlier}
    eff_steps, eff = _column(run_dir, "options/effective")
    if eff:  # the option agents: how many options carry the steps, over the second half of training
        half = [v for s, v in zip(eff_steps, eff) if s > budget // 2] or [eff[-1]]
        out["effective_options"] = float(np.mean(half))
    return out


def run_diayn(row: Row, budget: int, seed: int, run_dir: str, overrides: dict | None = None,
              wrappers: list | None = None) -> dict:
    from hrlkit.skills import endpoint_spread, random_endpoints, rollout_skills, skill_accuracies, skill_confusion

    agent, resumed_at, earlier = _train_resumable(row, budget, seed, run_dir, overrides, wrappers, None, EVAL_EPISODES)
    rollouts = rollout_skills(agent, episodes=1, deterministic=True, seed=1000 + seed)
    skills = agent.config.num_skills
    rand = random_endpoints(row.env_id, row.kwargs, skills, seed=1000 + seed)
    spread, rand_spread = endpoint_spread(rollouts), endpoint_spread(rand)
    confusion = skill_confusion(agent, rollouts)
    accuracy, per_skill = skill_accuracies(agent, rollouts, counts=confusion)  # every step of every skill; per skill
    # diagnostics beside the protocol's figure: which skills are taken for which (rows: the skill
    # that acted), and the accuracy on the policies' own stochastic actions, as they trained
    stochastic, _ = skill_accuracies(agent, rollout_skills(agent, episodes=1, deterministic=False, seed=1000 + seed))
    return {"discriminator_accuracy": accuracy, "skill_accuracies": [per_skill[k] for k in sorted(per_skill)],
            "confusion": confusion.tolist(), "stochastic_accuracy": stochastic,
            "skills": skills,
            "overrides": typed_values(agent.config, overrides),
            "endpoint_spread": spread, "random_spread": rand_spread,
            "spread_ratio": spread / rand_spread if rand_spread > 0 else float("inf"),
            "episode_lengths": [len(r[0]["obs"]) - 1 for r in rollouts.values()],
            "resumed_at": resumed_at, "earlier_wall_s": earlier}


def run_sb3(row: Row, peer: str, budget: int, seed: int, episodes: int = EVAL_EPISODES) -> dict:
    import gymnasium as gym
    import stable_baselines3 as sb3
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    env = Monitor(gym.make(row.env_id, **row.kwargs))
    eval_env = Monitor(gym.make(row.env_id, **row.kwargs))
    every = max(1, budget // EVALS)
    steps: list[int] = []
    returns: list[float] = []

    def evaluate(model) -> None:
        mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=episodes, deterministic=True)
        steps.append(int(model.num_timesteps))
        returns.append(float(mean))

    class Every(BaseCallback):  # SB3's EvalCallback keeps its history only with a log_path
        def _on_step(self) -> bool:
            if self.num_timesteps // every > len(steps):
                evaluate(self.model)
            return True

    model = getattr(sb3, peer)("MlpPolicy", env, seed=seed, verbose=0)
    model.learn(budget, callback=Every())
    if not steps or steps[-1] != model.num_timesteps:  # the last evaluation, at the end, as hrlkit's
        evaluate(model)
    return {"steps": steps, "returns": returns}


def run_one(out: str, row: Row, impl: str, seed: int, budget: int, episodes: int = EVAL_EPISODES,
            overrides: dict | None = None, wrappers: list | None = None) -> str:
    """Train one (row, impl, seed) in this process and write its JSON; returns the path."""
    import torch

    torch.set_num_threads(1)
    path = run_path(out, row, impl, seed)
    t0 = time.time()
    if is_hrlkit(impl):
        run_dir = partial_dir(out, row, impl, seed)
        res = (run_diayn(row, budget, seed, run_dir, overrides, wrappers) if row.algo == "diayn"
               else run_hrlkit(row, budget, seed, run_dir, episodes, overrides, wrappers))
        if wrappers:
            res["wrappers"] = list(wrappers)
    else:
        res = run_sb3(row, impl, budget, seed, episodes)
    if "returns" in res:
        res["final"], res["best"] = res["returns"][-1], max(res["returns"])
    res.update(algo=row.algo, env=row.label, env_id=row.env_id, env_kwargs=row.kwargs, impl=impl, seed=seed,
               budget=budget, eval_episodes=episodes,
               wall_s=round(time.time() - t0 + res.pop("earlier_wall_s", 0.0), 1))  # a resumed run: all segments
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_write(path) as f:  # a run killed mid-write leaves no JSON, so a rerun redoes it
        f.write(json.dumps(res, indent=1).encode())
    if is_hrlkit(impl):  # finished: its checkpoints are no longer needed
        shutil.rmtree(partial_dir(out, row, impl, seed), ignore_errors=True)
    return path


# ---- aggregation ------------------------------------------------------------------------------------
@functools.cache
def _rliable():
    """rliable's library and metrics modules, or None where it cannot be imported (rliable 1.2
    imports ``arch``, which fails under pandas >= 3; ``pip install "pandas<3"`` mends it); tried
    and reported once per process."""
    try:
        from rliable import library, metrics
    except Exception as e:  # noqa: BLE001 - any import failure means: use the same method below
        print(f"rliable unavailable ({e!r}); the same stratified bootstrap is computed here", file=sys.stderr)
        return None
    return library, metrics


def iqm_ci(values: list[float], reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """The IQM of the per-seed finals and its 95% percentile-bootstrap CI, seeded (rliable's
    ``get_interval_estimates`` with ``aggregate_iqm``, one task, so the stratified bootstrap is a
    plain one over seeds; without rliable the same estimators of ``hrlkit.distributed.report``)."""
    x = np.asarray(values, dtype=np.float64)
    lib = _rliable()
    if lib is not None:
        rly, metrics = lib
        point, ci = rly.get_interval_estimates({"x": x[:, None]}, lambda s: np.array([metrics.aggregate_iqm(s)]),
                                               reps=reps, random_state=np.random.RandomState(seed))
        return float(point["x"][0]), float(ci["x"][0][0]), float(ci["x"][1][0])
    from hrlkit.distributed.report import bootstrap_ci, iqm

    lo, hi = bootstrap_ci(x, reps=reps, seed=seed)
    return iqm(x), lo, hi


def poi_ci(mine: list[float], peer: list[float], reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """P(a run of mine ends above a run of the peer's), ties half (rliable's probability of
    improvement, one task), and its 95% bootstrap CI (each side's seeds resampled on their own):
    an interval holding 0.5 leaves the two rows apart by no more than their seeds' spread."""
    from hrlkit.distributed.report import bootstrap_ci_of, probability_of_improvement

    lo, hi = bootstrap_ci_of([mine, peer], probability_of_improvement, reps=reps, seed=seed)
    return probability_of_improvement(mine, peer), lo, hi


def load_runs(out: str) -> list[dict]:
    runs = []
    for root, _, files in os.walk(os.path.join(out, "runs")):
        for name in files:
            if name.endswith(".json"):
                with open(os.path.join(root, name)) as f:
                    runs.append(json.load(f))
    return runs


def random_level(env_id: str, env_kwargs: dict, episodes: int = 20) -> float:
    """Mean return of uniform-random actions (the level no seed may stay at)."""
    import gymnasium as gym

    env = gym.make(env_id, **env_kwargs)
    env.action_space.seed(0)
    total = []
    for ep in range(episodes):
        env.reset(seed=ep)
        done, ret = False, 0.0
        while not done:
            _, r, te, tr, _ = env.step(env.action_space.sample())
            ret += float(r)
            done = te or tr
        total.append(ret)
    return float(np.mean(total))


def report(out: str, rows: list[Row], budget_scale: float) -> dict:
    runs = load_runs(out)
    summary: dict[str, Any] = {"rows": []}
    lines = ["| algorithm | env | steps | implementation | IQM final (95% CI) | per-seed finals | per-seed best | "
             "effective options | random level | vs SB3: IQM, P(run above SB3's) (95% CI) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    dlines = ["| env | steps | implementation | seeds | discriminator accuracy (goal >= 0.8, chance 1/skills) "
              "| accuracy IQM (95% CI) | end-point spread / random |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        budget = max(1, int(row.budget * budget_scale))
        mine = sorted((r for r in runs if r["env"] == row.label and r["budget"] == budget
                       and ((is_hrlkit(r["impl"]) and r["algo"] == row.algo) or r["impl"] in row.peers)),
                      key=lambda r: (not is_hrlkit(r["impl"]), r["impl"], r["seed"]))
        if not mine:
            continue
        if row.algo == "diayn":  # the defaults, then each variant
            for impl in sorted({r["impl"] for r in mine}, key=lambda i: (i != "hrlkit", i)):
                h = [r for r in mine if r["impl"] == impl]
                acc, ratio = [r["discriminator_accuracy"] for r in h], [r["spread_ratio"] for r in h]
                iqm, lo, hi = iqm_ci(acc)  # the same aggregate as the return rows'
                dlines.append(f"| {row.label} | {budget:,} | {impl} | {', '.join(str(r['seed']) for r in h)} | "
                              f"{', '.join(f'{a:.2f}' for a in acc)} | {iqm:.2f} ({lo:.2f}, {hi:.2f}) | "
                              f"{', '.join(f'{q:.2f}' for q in ratio)} |")
                summary["rows"].append({"algo": row.algo, "env": row.label, "budget": budget, "impl": impl,
                                        "seeds": [r["seed"] for r in h], "accuracy": acc, "spread_ratio": ratio,
                                        "iqm": iqm, "ci": [lo, hi],
                                        # the strict reading: every run at the goal; and the aggregate's
                                        "goal_met": bool(acc) and min(acc) >= DIAYN_GOAL_ACCURACY,
                                        "iqm_goal_met": iqm >= DIAYN_GOAL_ACCURACY})
            continue
        rand = random_level(row.env_id, row.kwargs)
        by_impl: dict[str, list[dict]] = {}
        for r in mine:
            by_impl.setdefault(r["impl"], []).append(r)
        entries = {}
        for impl, rs in by_impl.items():
            finals = [r["final"] for r in rs]
            iqm, lo, hi = iqm_ci(finals)
            eff = [r["effective_options"] for r in rs if "effective_options" in r]
            entries[impl] = {"algo": row.algo, "env": row.label, "budget": budget, "impl": impl, "iqm": iqm,
                             "ci": [lo, hi], "finals": finals, "best": [r["best"] for r in rs],
                             "seeds": [r["seed"] for r in rs], "effective_options": eff, "random_level": rand,
                             "all_seeds_at_random": all(f <= rand + 0.05 * abs(rand) + 1e-9 for f in finals)}
        summary["rows"].extend(entries.values())
        for impl, e in entries.items():
            vs = ""
            if is_hrlkit(impl):
                above = {p: e["iqm"] >= entries[p]["iqm"] for p in row.peers if p in entries}
                poi = {p: poi_ci(e["finals"], entries[p]["finals"]) for p in above}
                vs = ", ".join(f"{'>=' if ok else '<'} {p}, P {poi[p][0]:.2f} ({poi[p][1]:.2f}, {poi[p][2]:.2f})"
                               for p, ok in above.items())
                e["at_or_above"] = above
                e["probability_of_improvement"] = {p: {"p": v[0], "ci": [v[1], v[2]]} for p, v in poi.items()}
            eff = f"{np.mean(e['effective_options']):.2f}" if e["effective_options"] else ""
            lines.append(f"| {row.algo if is_hrlkit(impl) else ''} | {row.label} | {budget:,} | "
                         f"{impl if is_hrlkit(impl) else 'SB3 ' + impl} | {e['iqm']:.1f} ({e['ci'][0]:.1f}, "
                         f"{e['ci'][1]:.1f}) | {', '.join(f'{v:.1f}' for v in e['finals'])} | "
                         f"{', '.join(f'{v:.1f}' for v in e['best'])} | {eff} | {rand:.1f} | {vs} |")
        _curves(out, row, budget, by_impl)
    text = ["# Defaults suite", "", f"`python benchmarks/suite.py` (budget scale {budget_scale})", "", *lines, ""]
    if len(dlines) > 2:
        text += ["## DIAYN (10 skills by default)", "", *dlines, ""]
    write_table(out, text)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary


def _curves(out: str, row: Row, budget: int, by_impl: dict[str, list[dict]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = os.path.join(out, f"curves_{row.algo}_{row.label}.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    for impl, rs in by_impl.items():
        n = min(len(r["returns"]) for r in rs)
        steps = np.array(rs[0]["steps"][:n])
        ys = np.array([r["returns"][:n] for r in rs])
        name = f"{impl} {row.algo}" if is_hrlkit(impl) else f"SB3 {impl}"
        ax.plot(steps, ys.mean(0), label=f"{name} ({len(rs)} seeds)")
        ax.fill_between(steps, ys.min(0), ys.max(0), alpha=0.2)
    ax.set(xlabel="env steps", ylabel="greedy return (mean of an evaluation's episodes)", title=f"{row.label}, {budget:,} steps")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- command line -------------------------------------------------------------------------------------
def _seeds(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b) + 1) if b else [int(a)])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--algos", nargs="*", default=None, help="hrlkit algorithms (default: all)")
    ap.add_argument("--envs", nargs="*", default=None, help="env labels (default: all)")
    ap.add_argument("--impls", nargs="*", default=None, help="'hrlkit' and/or SB3 names (default: all)")
    ap.add_argument("--seeds", default="0-2", help="e.g. 0-2 or 0,3")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel (one process each)")
    ap.add_argument("--quick", action="store_true", help="one seed and 10%% budgets (a smoke test)")
    ap.add_argument("--budget-scale", type=float, default=None, help="multiply every budget (default 1, 0.1 with --quick)")
    ap.add_argument("--out", default=None, help="default benchmarks/results/suite (suite_quick with --quick)")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--variant", default=None, help="name of an hrlkit variant: its runs are 'hrlkit-NAME', trained "
                    "with the --set overrides (an ablation beside the defaults)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides of the variant (with --variant)")
    ap.add_argument("--wrappers", nargs="*", default=[], metavar="NAME[:key=value,...]",
                    help="gymnasium wrappers of the variant's envs, as `hrlkit train --wrap` takes them (with --variant)")
    ap.add_argument("--eval-episodes", type=int, default=EVAL_EPISODES, help="episodes per greedy evaluation (the "
                    "protocol is 10; fewer only for smoke tests)")
    args = ap.parse_args(argv)
    args.out = args.out or (DEFAULT_OUT + "_quick" if args.quick else DEFAULT_OUT)
    scale = args.budget_scale if args.budget_scale is not None else (0.1 if args.quick else 1.0)
    seeds = [0] if args.quick and args.seeds == "0-2" else _seeds(args.seeds)
    known_algos, known_envs = {r.algo for r in ROWS}, {r.label for r in ROWS}
    known_impls = {"hrlkit", *([f"hrlkit-{args.variant}"] if args.variant else []), *(p for r in ROWS for p in r.peers)}
    for name, given, known in (("--algos", args.algos, known_algos), ("--envs", args.envs, known_envs),
                               ("--impls", args.impls, known_impls)):
        bad = sorted(set(given or ()) - known)
        if bad:
            ap.error(f"{name}: unknown {bad}; expected some of {sorted(known)}")
    if args.eval_episodes < 1:
        ap.error(f"--eval-episodes: expected an int >= 1, got {args.eval_episodes}")
    if args.jobs < 1:
        ap.error(f"--jobs: expected an int >= 1, got {args.jobs}")
    if not 0 < scale <= 1:
        ap.error(f"--budget-scale: expected a number in (0, 1], got {scale}")
    if bool(args.variant) != bool(args.set or args.wrappers):
        ap.error(f"--variant/--set/--wrappers: expected a variant with overrides or wrappers, or none of them, got "
                 f"variant {args.variant!r}, set {args.set}, wrappers {args.wrappers}")
    from hrlkit.runtime.config import ConfigError, parse_overrides
    from hrlkit.runtime.envs import parse_wrapper

    overrides = parse_overrides(args.set)
    for item in args.wrappers:
        try:
            parse_wrapper(item)
        except ConfigError as e:
            ap.error(f"--wrappers: {e}")
    hrlkit_impl = f"hrlkit-{args.variant}" if args.variant else "hrlkit"
    rows = [r for r in ROWS if (args.algos is None or r.algo in args.algos) and (args.envs is None or r.label in args.envs)]
    tasks = []
    for row in rows:
        budget = max(1, int(row.budget * scale))
        for impl in (hrlkit_impl, *row.peers):
            if args.impls is not None and impl not in args.impls and not (is_hrlkit(impl) and "hrlkit" in args.impls):
                continue
            for seed in seeds:
                if not os.path.exists(run_path(args.out, row, impl, seed)):
                    mine = is_hrlkit(impl)
                    tasks.append((row, impl, seed, budget, args.eval_episodes, overrides if mine else None,
                                  args.wrappers if mine else None))
    if not args.report_only and tasks:
        print(f"{len(tasks)} runs to do ({len(seeds)} seeds; finished runs skipped)", flush=True)
        t0 = time.time()
        if args.jobs == 1:
            for t in tasks:
                print("done", run_one(args.out, *t), f"{time.time() - t0:.0f}s", flush=True)
        else:
            with worker_pool(args.jobs, spawn=True) as pool:
                futures = {pool.submit(run_one, args.out, *t): t for t in tasks}
                for fut in cf.as_completed(futures):
                    row, impl, seed, *_ = futures[fut]
                    try:
                        print("done", fut.result(), f"{time.time() - t0:.0f}s", flush=True)
                    except Exception as e:  # one failed run is reported; the rest go on
                        print(f"FAILED {row.algo} {row.label} {impl} seed {seed}: {e!r}", flush=True)
        print(f"wall time {time.time() - t0:.0f}s", flush=True)
    report(args.out, list(ROWS), scale)  # every row with finished runs, not only the ones selected to run
    return 0


if __name__ == "__main__":
    sys.exit(main())
