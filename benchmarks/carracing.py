"""The seed's pixel experiments on CarRacing-v3 (issue 17): FuN against a flat actor-critic on the
same pixel pipeline and encoder, SB3's A2C and PPO (``CnnPolicy``) on the same wrappers as the
peers' reference, DIAYN's skills from pixels, and training throughput.

    python benchmarks/carracing.py train --agents feudal flat --seeds 0 --frames 500000
    python benchmarks/carracing.py train --agents a2c ppo --seeds 0 --frames 500000
    python benchmarks/carracing.py skills --frames 250000        # DIAYN from pixels
    python benchmarks/carracing.py sps --steps 2000              # training SPS, one run
    python benchmarks/carracing.py report                        # table.md, curves.png

The pipeline is ``hrlkit.presets`` ``carracing``: each action repeated for 4 frames, grayscale,
64x64, uint8 until the first conv layer, 8 envs in their own processes. FuN (LSTMs) sees one
frame; the flat actor-critic (``OptionCritic`` with one option and its PPO-style updates: a flat
PPO-like actor-critic with a target critic), DIAYN and SB3's peers see 4 stacked frames (SB3
through its ``VecFrameStack``, the same frames in its channel order). FuN, the flat agent and SB3
drive with the 5 discrete actions (``continuous=False``), DIAYN with the continuous ones.

Frames are counted honestly: an agent step is 4 env frames (at most 3 fewer on the last step of an
episode that ends inside a repeat), and every figure names both. Evaluation: 10 greedy episodes on
a separate env every 10% of the budget and at the end (hrlkit's ``learn(eval_every=...)``; for
SB3 the same episodes through ``evaluate_policy``, deterministic); "final" is the last, "best" the
highest. A run's record is ``runs/<agent>_seed<s>.json``; hrlkit's run directories
``runs/<agent>_seed<s>/`` resume from their last checkpoint when interrupted, and each final
policy is saved alone (a few MB) in ``policies/<agent>_seed<s>/``, so that
``hrlkit eval benchmarks/results/carracing/policies/feudal_seed0 --episodes 10`` gives the
table's figure again.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import json
import os
import sys
import time
from typing import Any

import numpy as np
from _pool import worker_pool
from _report import write_table
from suite import _seeds, iqm_ci

from hrlkit._io import atomic_write

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "results", "carracing")
PRESET = "carracing"
EVALS, EVAL_EPISODES = 10, 10
HRLKIT = {"feudal": ("feudal", {}), "flat": ("option-critic", {"num_options": 1})}
PEERS = ("a2c", "ppo")
LABELS = {"feudal": "hrlkit FuN", "flat": "hrlkit flat actor-critic", "a2c": "SB3 A2C CnnPolicy",
          "ppo": "SB3 PPO CnnPolicy", "diayn": "hrlkit DIAYN"}


def frames_per_step() -> int:
    from hrlkit.presets import frames_per_step as fps

    return fps(PRESET)


def hrlkit_agent(agent: str, seed: int, overrides: dict | None = None, threads: int = 1):
    from hrlkit.agents import ALGORITHMS
    from hrlkit.presets import preset

    algo, extra = HRLKIT[agent] if agent in HRLKIT else (agent, {})
    kwargs = preset(PRESET, algo)
    kwargs["config"].update(extra, **(overrides or {}))
    return ALGORITHMS[algo](**kwargs, seed=seed, threads=threads)


def run_dir(out: str, agent: str, seed: int) -> str:
    return os.path.join(out, "runs", f"{agent}_seed{seed}")


def evaluations(path: str) -> tuple[list[int], list[float]]:
    """(agent steps, mean greedy return) of each evaluation in a run directory's progress.csv."""
    steps, returns = [], []
    with open(os.path.join(path, "progress.csv")) as f:
        for row in csv.DictReader(f):
            if row.get("eval/mean_return"):
                steps.append(int(float(row["global_step"])))
                returns.append(float(row["eval/mean_return"]))
    return steps, returns


def save_policy(out: str, agent: str, seed: int, learner) -> str:
    """The final policy alone (no optimizer state, replay or rollout: a few MB), where
    ``hrlkit eval DIR --episodes 10`` (or ``hrlkit skills DIR``) finds it:
    ``policies/<agent>_seed<s>/checkpoints/latest.pt``."""
    path = os.path.join(out, "policies", f"{agent}_seed{seed}", "checkpoints", "latest.pt")
    learner.save(path, policy_only=True)
    return path


def trained(out: str, agent: str, seed: int, steps: int, overrides: dict | None = None, **learn: Any):
    """The agent of run directory ``runs/<agent>_seed<s>``, trained to ``steps``: resumed from its
    last checkpoint, or started from the preset; a finished run directory (e.g. from `hrlkit
    train`) is only read."""
    from hrlkit.agents.base import load_agent

    d = run_dir(out, agent, seed)
    latest = os.path.join(d, "checkpoints", "latest.pt")
    learner = load_agent(latest) if os.path.isfile(latest) else hrlkit_agent(agent, seed, overrides)
    if learner.global_step < steps:
        learner.learn(steps, run_dir=d, log_every=max(1, steps // 25), checkpoint_every=max(1, steps // 5),
                      progress=False, tensorboard=False, **learn)
    return learner


def train_hrlkit(out: str, agent: str, seed: int, steps: int) -> dict[str, Any]:
    from hrlkit.runtime.config import to_dict

    d = run_dir(out, agent, seed)
    learner = trained(out, agent, seed, steps, eval_every=max(1, steps // EVALS), eval_episodes=EVAL_EPISODES)
    save_policy(out, agent, seed, learner)
    extra = {}
    if agent == "feudal":  # the ablation: the same final policy with the manager's goals hidden from the worker
        from hrlkit.runtime.evaluation import evaluate

        learner.zero_goals = True
        extra["zero_goals_final"] = float(np.mean(evaluate(learner, EVAL_EPISODES)))
        learner.zero_goals = False
    s, r = evaluations(d)
    return {"steps": s, "returns": r, "config": to_dict(learner.config), "wall_s": _wall(d), **extra}


def _wall(d: str) -> float:
    """A run directory's own wall time, also for a run trained earlier (config.json is written at
    its start, progress.csv at its end; a resumed run's includes the pause)."""
    return round(os.path.getmtime(os.path.join(d, "progress.csv")) - os.path.getmtime(os.path.join(d, "config.json")), 1)


def pipeline(*, drawn: bool = False):
    """An EnvMaker of the preset's one-frame chain (FuN's: discrete actions, no stacking);
    ``drawn``: ActionRepeat draws every frame (``skip_render=False``)."""
    from hrlkit.presets import preset
    from hrlkit.runtime.envs import EnvMaker

    p = preset(PRESET, "feudal")
    wrappers = [dict(w, kwargs={**w["kwargs"], "skip_render": False}) if drawn and w["name"].endswith("ActionRepeat")
                else w for w in p["wrappers"]]
    return EnvMaker(p["env"], env_kwargs=p["env_kwargs"], wrappers=wrappers)


def sb3_envs(n: int, seed: int, subproc: bool):
    """SB3's vector env over the preset's pipeline (discrete actions, no stacking: SB3 stacks
    with VecFrameStack, 4 frames, channels last; its CnnPolicy transposes them)."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecFrameStack

    venv = make_vec_env(pipeline().make, n_envs=n, seed=seed, vec_env_cls=SubprocVecEnv if subproc else DummyVecEnv)
    return VecFrameStack(venv, 4)


def sb3_model(peer: str, seed: int, envs):
    import stable_baselines3 as sb3

    return getattr(sb3, peer.upper())("CnnPolicy", envs, seed=seed, verbose=0)


def train_sb3(peer: str, seed: int, steps: int) -> dict[str, Any]:
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy

    envs, eval_env = sb3_envs(8, seed, subproc=True), sb3_envs(1, 10_000 + seed, subproc=False)
    every, evals = max(1, steps // EVALS), {"steps": [], "returns": []}

    def evaluate(model) -> None:
        mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=EVAL_EPISODES, deterministic=True, warn=False)
        evals["steps"].append(int(model.num_timesteps))
        evals["returns"].append(float(mean))

    class Every(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps // every > len(evals["steps"]):
                evaluate(self.model)
            return True

    model = sb3_model(peer, seed, envs)
    model.learn(steps, callback=Every())
    if not evals["steps"] or evals["steps"][-1] != model.num_timesteps:
        evaluate(model)
    envs.close()
    return evals


def train_one(out: str, agent: str, seed: int, frames: int) -> str:
    import torch

    torch.set_num_threads(1)
    path = os.path.join(out, "runs", f"{agent}_seed{seed}.json")
    steps = frames // frames_per_step()
    t0 = time.time()
    res = train_sb3(agent, seed, steps) if agent in PEERS else train_hrlkit(out, agent, seed, steps)
    res.update(finals(res["steps"], res["returns"], steps))
    res.setdefault("wall_s", round(time.time() - t0, 1))
    res.update(agent=agent, seed=seed, agent_steps=steps, frames=steps * frames_per_step(),
               frames_per_step=frames_per_step(), eval_episodes=EVAL_EPISODES)
    with atomic_write(path) as f:
        f.write(json.dumps(res, indent=1, default=str).encode())
    return path


def finals(at: list[int], returns: list[float], budget: int) -> dict[str, Any]:
    """``final``: the last evaluation within the budget of agent steps, ``best`` the highest there;
    SB3's PPO only stops at the end of a rollout (8 x 2048 steps), past the budget: its last
    evaluation there and the steps it trained are kept apart (``trained_steps``, ``final_trained``)."""
    inside = [i for i, s in enumerate(at) if s <= budget] or [0]
    out = {"final": returns[inside[-1]], "best": max(returns[i] for i in inside), "trained_steps": at[-1]}
    if at[-1] > budget:
        out["final_trained"] = returns[-1]
    return out


# ---- DIAYN: skills from pixels ----------------------------------------------------------------------
def skills(out: str, seed: int, frames: int, overrides: dict | None = None) -> dict[str, Any]:
    """DIAYN on the preset's pixels; then every skill rolled out deterministically on a fresh env
    (seed 1000 + seed): the discriminator's accuracy on those rollouts, the car's path (its
    position from the env's state) and the spread of the skills' end points against that of as
    many uniform-random-action policies over the same frames."""
    import torch

    from hrlkit.presets import preset
    from hrlkit.runtime.config import to_dict
    from hrlkit.skills import endpoint_spread, plot_skills, random_endpoints, rollout_skills, skill_accuracies

    torch.set_num_threads(1)
    steps = frames // frames_per_step()
    agent = trained(out, "diayn", seed, steps, overrides, eval_every=None)
    save_policy(out, "diayn", seed, agent)
    rollouts = rollout_skills(agent, episodes=1, deterministic=True, seed=1000 + seed)
    acc, per_skill = skill_accuracies(agent, rollouts)
    spec = agent.env_maker.spec()
    p = preset(PRESET, "diayn")  # the random policies act in the raw env, frame by frame, for as many frames
    rand = random_endpoints(p["env"], p["env_kwargs"], agent.config.num_skills, seed=1000 + seed)
    spread, rand_spread = endpoint_spread(rollouts, key="xy"), endpoint_spread(rand, key="xy")
    plot_skills(rollouts, os.path.join(out, "diayn_paths.png"), baseline=rand,
                title=f"DIAYN skills on CarRacing-v3 pixels, {steps * frames_per_step():,} frames (seed {seed})")
    res = {"agent": "diayn", "seed": seed, "agent_steps": steps, "frames": steps * frames_per_step(),
           "skills": agent.config.num_skills, "discriminator_accuracy": acc, "per_skill_accuracy": per_skill,
           "endpoint_spread": spread, "random_spread": rand_spread,
           "spread_ratio": spread / rand_spread if rand_spread > 0 else float("inf"),
           "returns": [r[0]["return"] for _, r in sorted(rollouts.items())],
           "end_points": {k: r[0]["xy"][-1].tolist() for k, r in rollouts.items()}, "env": spec,
           "config": to_dict(agent.config), "wall_s": _wall(run_dir(out, "diayn", seed))}
    with atomic_write(os.path.join(out, "runs", f"diayn_seed{seed}.json")) as f:
        f.write(json.dumps(res, indent=1, default=str).encode())
    return res


# ---- throughput -----------------------------------------------------------------------------------
def sps(steps: int, num_envs: int = 8, threads: int = 1, only: set[str] | None = None,
        update_threads: int | None = None) -> dict[str, dict[str, float]]:
    """Training SPS (agent steps/s, env frames/s) of hrlkit FuN, the flat agent and DIAYN and of
    SB3 A2C/PPO CnnPolicy, each with ``num_envs`` envs in their own processes, measured in this one
    run after a warm-up of steps/10; plus the pipeline alone (random actions) and, for FuN, where
    the time of a step goes (a cProfile of the training loop: the vector env's step, which waits
    for the env processes, acting, and updating)."""
    import cProfile
    import pstats

    import torch

    torch.set_num_threads(threads)  # SB3's; hrlkit's agents apply their own `threads` setting, given the same
    out: dict[str, dict[str, float]] = {}
    warm = max(1, steps // 10)
    wanted = (lambda name: True) if not only else (lambda name: name in only)
    fps = frames_per_step()

    def record(name: str, n: int, seconds: float, **extra: float) -> None:
        out[name] = {"steps_per_s": n / seconds, "frames_per_s": n * fps / seconds, **extra}
        print(f"{name}: {n / seconds:.1f} agent steps/s ({n * fps / seconds:.0f} frames/s)", flush=True)

    # the pipeline alone: the preset's vector env under random actions, with and without drawing every frame
    for label, drawn in (("pipeline (random actions)", False), ("pipeline, every frame drawn (skip_render=False)", True)):
        if not wanted("pipeline"):
            continue
        envs = pipeline(drawn=drawn).vector_env(num_envs, async_envs=True)
        envs.reset(seed=0)
        rng = np.random.default_rng(0)
        for i in range(warm + steps):
            if i == warm:
                t0 = time.perf_counter()
            envs.step(rng.integers(5, size=num_envs))
        record(label, steps * num_envs, time.perf_counter() - t0)
        envs.close()

    from hrlkit.presets import preset

    runs = [("feudal", "feudal", {}, None), ("flat", "flat", {}, None), ("diayn", "diayn", {"learning_starts": 0}, None)]
    if preset(PRESET, "feudal")["config"].get("update_epochs", 1) > 1:  # and FuN with A2C's one pass, for the peers' rate
        runs.insert(1, ("feudal, one pass (update_epochs=1)", "feudal", {"update_epochs": 1}, None))
    if update_threads is not None and update_threads != threads:  # FuN again, its updates on their own threads
        runs[2:2] = [(f"{label}, updates on {update_threads} threads", name, o, update_threads)
                     for label, name, o, _ in runs[:2]]
    for label, name, algo_overrides, upd in runs:
        if not wanted(name):
            continue
        agent = hrlkit_agent(name, 0, {"num_envs": num_envs, **algo_overrides}, threads)
        if upd is not None:
            _update_on_threads(agent, upd)
        # DIAYN's updates are the slow part: a quarter of the steps measure them
        n, w = (max(1, steps // 4), max(1, warm // 4)) if name == "diayn" else (steps, warm)
        agent.learn(w * num_envs, eval_every=None, checkpoint_every=None, progress=False, tensorboard=False,
                    log_every=10**9)
        t0 = time.perf_counter()
        agent.learn((w + n) * num_envs, eval_every=None, checkpoint_every=None, progress=False,
                    tensorboard=False, log_every=10**9)
        seconds, extra = time.perf_counter() - t0, {}
        if label == "feudal":  # where the time goes: a profiled stretch after the timed one
            prof = cProfile.Profile()
            t1 = time.perf_counter()
            prof.enable()
            agent.learn((w + 2 * n) * num_envs, eval_every=None, checkpoint_every=None, progress=False,
                        tensorboard=False, log_every=10**9)
            prof.disable()
            extra = _breakdown(pstats.Stats(prof), time.perf_counter() - t1)
        record(f"hrlkit {label}", n * num_envs, seconds, **extra)
        agent.envs.close()

    for peer in PEERS:
        if not wanted(peer):
            continue
        envs = sb3_envs(num_envs, 0, subproc=True)
        model = sb3_model(peer, 0, envs)
        model.learn(warm * num_envs)
        start, t0 = model.num_timesteps, time.perf_counter()
        # at least one whole rollout and its update (PPO's default collects 2048 steps per env)
        model.learn(max(steps, model.n_steps) * num_envs, reset_num_timesteps=False)
        record(f"SB3 {peer.upper()}", model.num_timesteps - start, time.perf_counter() - t0)
        envs.close()
    return out


def _update_on_threads(agent, threads: int) -> None:
    """The agent's updates on ``threads`` torch threads, its acting on its own (an ablation: the envs
    wait while the agent updates, so their cores are free then)."""
    from hrlkit.runtime.threads import torch_threads

    update = agent.update

    def on_threads():
        with torch_threads(threads):
            return update()

    agent.update = on_threads


def _breakdown(stats, seconds: float) -> dict[str, float]:
    """Shares of the training loop's time in the vector env's step, act and update (cumulative)."""
    shares = {"env_step": 0.0, "act": 0.0, "update": 0.0}
    for (filename, _, func), (_, _, _, cum, _) in stats.stats.items():
        if func == "step" and "vector" in filename and "async" in filename:
            shares["env_step"] = max(shares["env_step"], cum)
        elif func == "act" and "feudal" in filename:
            shares["act"] = max(shares["act"], cum)
        elif func == "update" and "feudal" in filename:
            shares["update"] = max(shares["update"], cum)
    total = sum(shares.values())
    return {f"share_{k}": v / seconds for k, v in shares.items()} | {"share_other": max(0.0, 1 - total / seconds)}


# ---- report ---------------------------------------------------------------------------------------
def load(out: str, sub: str = "runs") -> list[dict]:
    runs = []
    folder = os.path.join(out, sub)
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name.endswith(".json"):
            with open(os.path.join(folder, name)) as f:
                runs.append(json.load(f))
    return runs


def report(out: str) -> list[str]:
    runs = load(out)
    lines = ["| agent | env frames (agent steps) | seeds | mean final (IQM, 95% CI) | per-seed final | per-seed best | "
             "wall per run |", "|---|---|---|---|---|---|---|"]
    by_agent: dict[str, list[dict]] = {}
    for r in runs:
        if r["agent"] != "diayn":
            by_agent.setdefault(r["agent"], []).append(r)
    for agent in [a for a in ("feudal", "flat", *PEERS) if a in by_agent]:
        lines.append(_row(LABELS[agent], by_agent[agent]))
    # earlier FuN configurations, kept for comparison: earlier/feudal_<what>/feudal_seed<s>.json
    earlier = os.path.join(out, "earlier")
    for sub in sorted(os.listdir(earlier)) if os.path.isdir(earlier) else []:
        rs = load(earlier, sub) if sub.startswith("feudal_") else []
        if rs:
            lines.append(_row(f"{LABELS['feudal']}, earlier: {sub.removeprefix('feudal_').replace('_', ' ')}", rs))
    text = ["# CarRacing-v3 from pixels", "", "`python benchmarks/carracing.py train ...` (see the module's docstring)",
            "", *lines, ""]
    ablated = [(r["seed"], r["final"], r["zero_goals_final"]) for r in by_agent.get("feudal", []) if "zero_goals_final" in r]
    if ablated:
        text += ["FuN's final policy with the manager's goals hidden from the worker (`zero_goals`, the same 10 "
                 "evaluation episodes): " + "; ".join(f"seed {s}: {f:.1f} -> {z:.1f}" for s, f, z in ablated), ""]
    dia = [r for r in runs if r["agent"] == "diayn"]
    if dia:
        text += ["## DIAYN from pixels", "", "| seed | env frames | skills | discriminator accuracy (goal >= 0.9; the lowest skill's) | "
                 "end-point spread / random (goal >= 1.5) |", "|---|---|---|---|---|"]
        text += [f"| {r['seed']} | {r['frames']:,} | {r['skills']} | {r['discriminator_accuracy']:.3f} "
                 f"({_lowest(r)}) | "
                 f"{r['spread_ratio']:.2f} ({r['endpoint_spread']:.1f} / {r['random_spread']:.1f}) |" for r in dia]
        text.append("")
    sps_path = os.path.join(out, "sps.json")
    if os.path.isfile(sps_path):
        with open(sps_path) as f:
            res = json.load(f)
        text += ["## Training throughput (8 envs in their own processes)", "",
                 "| run | agent steps/s | env frames/s | where FuN's time goes |", "|---|---|---|---|"]
        for name, r in res["results"].items():
            where = ""
            if "share_env_step" in r:
                where = (f"env step {r['share_env_step']:.0%}, act {r['share_act']:.0%}, update {r['share_update']:.0%}, "
                         f"other {r['share_other']:.0%}")
            text.append(f"| {name} | {r['steps_per_s']:.1f} | {r['frames_per_s']:.0f} | {where} |")
        text += ["", f"`{res['command']}`", ""]
    write_table(out, text)
    if by_agent:
        _curves(out, by_agent)
    return text


def _lowest(r: dict) -> str:
    """The lowest per-skill accuracy of a DIAYN record, when it has them."""
    per = r.get("per_skill_accuracy")
    if not per:
        return "per skill: not recorded"
    k = min(per, key=per.get)
    return f"lowest skill {k}: {per[k]:.3f}"


def _row(label: str, rs: list[dict]) -> str:
    finals, bests = [r["final"] for r in rs], [r["best"] for r in rs]
    iqm, lo, hi = iqm_ci(finals)
    past = max(r.get("trained_steps", r["agent_steps"]) for r in rs) - rs[0]["agent_steps"]
    over = f"; trained {past:,} steps past it, final there: " + ", ".join(
        f"{r['final_trained']:.1f}" for r in rs if "final_trained" in r) if past > 0 else ""
    return (f"| {label} | {rs[0]['frames']:,} ({rs[0]['agent_steps']:,}{over}) | {len(rs)} | "
            f"{np.mean(finals):.1f} ({iqm:.1f}, {lo:.1f}..{hi:.1f}) | "
            f"{', '.join(f'{v:.1f}' for v in finals)} | {', '.join(f'{b:.1f}' for b in bests)} | "
            f"{np.mean([r['wall_s'] for r in rs]) / 60:.0f} min |")


def _curves(out: str, by_agent: dict[str, list[dict]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for agent, rs in by_agent.items():
        n = min(len(r["returns"]) for r in rs)
        frames = np.array(rs[0]["steps"][:n]) * rs[0]["frames_per_step"]
        ys = np.array([r["returns"][:n] for r in rs])
        (line,) = ax.plot(frames, ys.mean(0), marker="o", ms=3,
                          label=f"{LABELS[agent]} ({len(rs)} seed{'s' * (len(rs) > 1)}: mean, min..max)")
        if len(rs) > 1:
            ax.fill_between(frames, ys.min(0), ys.max(0), color=line.get_color(), alpha=0.15)
    ax.set(xlabel="env frames (4 per agent step)", ylabel="greedy return (10 episodes)", title="CarRacing-v3 from pixels")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "curves.png"), dpi=110)
    plt.close(fig)


# ---- command line -------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    from hrlkit.cli import parse_overrides

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="FuN, the flat actor-critic and SB3's peers")
    t.add_argument("--agents", nargs="+", choices=[*HRLKIT, *PEERS], default=[*HRLKIT, *PEERS])
    t.add_argument("--seeds", type=_seeds, default=[0, 1, 2], help="e.g. 0-2 or 0,3")
    t.add_argument("--frames", type=int, default=500_000, help="env frames per run (agent steps x 4)")
    t.add_argument("--jobs", type=int, default=1, help="runs at once (each runs its own 8 env processes)")
    s = sub.add_parser("skills", help="DIAYN from pixels: accuracy, car paths, end-point spread")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--frames", type=int, default=250_000)
    s.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="DIAYN hyperparameters over the preset's")
    p = sub.add_parser("sps", help="training throughput of every agent, in one run")
    p.add_argument("--steps", type=int, default=1_000, help="vector steps measured per agent (after steps/10 warm-up)")
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads of every learner (hrlkit's and SB3's)")
    p.add_argument("--update-threads", type=int, default=None,
                   help="also FuN (preset and one pass) with its updates on this many torch threads (the envs wait then)")
    p.add_argument("--only", nargs="+", choices=["pipeline", *HRLKIT, "diayn", *PEERS], help="measure only these")
    p.add_argument("--save", default="sps.json", help="file under --out (the report reads sps.json)")
    sub.add_parser("report", help="table.md and curves.png from the finished runs")
    args = ap.parse_args(argv)
    for v, name in ((getattr(args, "frames", 1), "--frames"), (getattr(args, "jobs", 1), "--jobs"),
                    (getattr(args, "steps", 1), "--steps"), (getattr(args, "num_envs", 1), "--num-envs"),
                    (getattr(args, "threads", 1), "--threads"), (getattr(args, "update_threads", None), "--update-threads")):
        if v is not None and v < 1:
            ap.error(f"{name}: expected an int >= 1, got {v}")
    os.makedirs(os.path.join(args.out, "runs"), exist_ok=True)
    if args.cmd == "train":
        todo = [(a, s) for a in args.agents for s in args.seeds
                if not os.path.isfile(os.path.join(args.out, "runs", f"{a}_seed{s}.json"))]
        with worker_pool(args.jobs) as pool:
            futures = {pool.submit(train_one, args.out, a, s, args.frames): (a, s) for a, s in todo}
            for fut in cf.as_completed(futures):
                print(f"{futures[fut]}: {fut.result()}", flush=True)
    elif args.cmd == "skills":
        res = skills(args.out, args.seed, args.frames, parse_overrides(args.set))
        print(json.dumps({k: res[k] for k in ("discriminator_accuracy", "spread_ratio", "frames")}))
    elif args.cmd == "sps":
        res = sps(args.steps, args.num_envs, args.threads, set(args.only or ()), args.update_threads)
        with atomic_write(os.path.join(args.out, args.save)) as f:
            f.write(json.dumps({"command": "python benchmarks/carracing.py " + " ".join(sys.argv[1:] if argv is None else argv),
                                "results": res}, indent=1).encode())
    print("\n".join(report(args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
