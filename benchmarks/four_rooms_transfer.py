"""The Option-Critic paper's transfer experiment in Four Rooms (Bacon et al., 2017, Fig. 3).

    python benchmarks/four_rooms_transfer.py                   # tabular, 20 runs each, ~5 min on 2 cores
    python benchmarks/four_rooms_transfer.py --agent neural    # hrlkit.OptionCritic with a [64] body, ~20 min
    python benchmarks/four_rooms_transfer.py --runs 4 --episodes 400 --switch 200   # a quick look

The goal starts in the east doorway; after --switch episodes it moves to a random cell of the
lower-right room (the same cell for both agents in a given run). Option-Critic with 4 options
is compared with a flat actor-critic, which is the same code with one option (its termination
is then irrelevant: U = Q), so both have the same tables or networks, step sizes and budget.

--agent tabular (default): the paper's setting, hrlkit.TabularOptionCritic (Algorithm 1: tables,
an action critic Q_U, one-step updates; step sizes 0.5 critic, 0.25 terminations, logits 25 =
0.25 / temperature 0.01; epsilon 0.01; no deliberation cost), all runs of one agent stepped
together. --agent neural: hrlkit.OptionCritic on one-hot states with a [64] tanh body, Adam,
8-step rollouts.

Writes, under --out: steps_per_episode.png (mean over runs, smoothed), terminations.png (each
option's termination probability over the grid just before the goal moves, run 0) and
terminations_mean.png (averaged over the runs), results.json and table.md (mean steps per episode
over the episodes right after the move).
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np
from _pool import worker_pool
from _report import write_table

from hrlkit.agents._options import effective_options

HPARAMS = {
    # one pass over each rollout (the library default until issue 16), as the README's figures were measured
    "neural": dict(update_epochs=1, num_minibatches=1, normalize_advantage=False,
                   num_envs=1, rollout_steps=8, hidden_sizes=[64], learning_rate=1e-3, epsilon_start=0.05,
                   epsilon_end=0.05, entropy_coef=0.01, gamma=0.99, deliberation_cost=0.02, termination_coef=0.1,
                   gae_lambda=1.0,  # n-step returns, as measured (lambda-returns are the default since session 13)
                   target_update_every=50, separate_critic=False),  # discrete actions' defaults before session 14
    "tabular": dict(gamma=0.99, critic_learning_rate=0.5, policy_learning_rate=25.0, termination_learning_rate=0.25,
                    epsilon=0.01, baseline=True, deliberation_cost=0.0),
}


def new_goal(env, run: int) -> int:
    """Where the goal moves in run ``run`` (the same cell for both agents)."""
    return int(np.random.default_rng(1000 + run).choice(env.room_cells("lower-right")))


def tabular_runs(runs: int, num_options: int, episodes: int, switch: int, overrides: dict) -> list[dict]:
    """All runs of one agent, stepped together by one TabularOptionCritic."""
    import gymnasium as gym

    import hrlkit

    envs = [gym.make("hrlkit/FourRooms-v0") for _ in range(runs)]
    goals = [new_goal(e.unwrapped, r) for r, e in enumerate(envs)]
    tab = hrlkit.TabularOptionCritic(104, 4, runs, seed=num_options, **{**HPARAMS["tabular"], **overrides},
                                     num_options=num_options)
    betas: dict[int, list] = {}
    greedy: dict[int, list] = {}

    def on_episode_end(run, episode, length):
        if episode + 1 == switch:
            betas[run] = (1.0 / (1.0 + np.exp(-tab.term[run]))).tolist()
            greedy[run] = tab.q_omega[run].argmax(axis=1).tolist()
            envs[run].unwrapped.set_goal(goals[run])

    lengths = tab.run_episodes(envs, episodes, on_episode_end, seed=0)
    return [{"run": r, "num_options": num_options, "lengths": lengths[r].tolist(), "beta": betas.get(r),
             "greedy_option": greedy.get(r),
             "new_goal": goals[r], "steps": int(lengths[r].sum())} for r in range(runs)]


def one_run(run: int, num_options: int, episodes: int, switch: int, overrides: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    import hrlkit

    agent = hrlkit.OptionCritic("hrlkit/FourRooms-v0", seed=run, config={**HPARAMS["neural"], **overrides},
                                num_options=num_options)
    env = agent.envs.envs[0].unwrapped
    goal = new_goal(env, run)
    lengths: list[int] = []
    snapshot = {}

    def on_episode_end(agent, i, ret, length):
        lengths.append(length)
        # steps per option so far (the tracker's counters are only reset by a log row, and this
        # run logs once, at its end)
        snapshot["option_steps"] = agent.tracker.stat_steps.tolist()
        if len(lengths) == switch:
            snapshot["option_steps_before_move"] = agent.tracker.stat_steps.tolist()
            with torch.no_grad():
                feats = agent.net.body(agent.obs_tensor(np.arange(env.num_cells)))
                snapshot["beta"] = torch.sigmoid(agent.net.beta(feats)).numpy().tolist()
                snapshot["greedy_option"] = agent.net.q(feats).argmax(dim=1).tolist()
            env.set_goal(goal)
        return len(lengths) < episodes

    agent.learn(10**9, run_dir=os.path.join(OUT, "runs", f"k{num_options}_run{run}"), progress=False,
                log_every=10**9, eval_every=None, checkpoint_every=None, tensorboard=False, on_episode_end=on_episode_end)
    before = np.array(snapshot.get("option_steps_before_move", np.zeros(num_options)))
    after = np.array(snapshot.get("option_steps", np.zeros(num_options))) - before
    return {"run": run, "num_options": num_options, "lengths": lengths, "beta": snapshot.get("beta"),
            "greedy_option": snapshot.get("greedy_option"),
            "effective_options_before_move": effective_options(before),
            "effective_options_after_move": effective_options(after),
            "new_goal": goal, "steps": agent.global_step}


OUT = "benchmarks/results/four_rooms"


def smooth(x: np.ndarray, k: int) -> np.ndarray:
    return np.convolve(x, np.ones(k) / k, mode="valid") if k > 1 else x


def main(argv=None) -> int:
    global OUT
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agent", choices=["tabular", "neural"], default="tabular")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--episodes", type=int, default=2000)
    ap.add_argument("--switch", type=int, default=1000)
    ap.add_argument("--window", type=int, default=100, help="episodes after the move that are averaged")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", help="results folder (default: benchmarks/results/four_rooms, or four_rooms_neural)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="hyperparameter overrides (both agents)")
    args = ap.parse_args(argv)
    from hrlkit.runtime.config import parse_overrides

    overrides = parse_overrides(args.set)
    if "num_options" in overrides:
        ap.error("--set num_options: the script compares 4 options with 1; it cannot be set")
    if not 0 < args.switch < args.episodes or args.window < 1 or args.switch + args.window > args.episodes \
            or args.window > args.switch:
        ap.error(f"--switch/--window: expected 0 < switch < episodes and window <= switch, switch + window <= episodes, "
                 f"got switch {args.switch}, window {args.window}, episodes {args.episodes}")
    OUT = args.out or ("benchmarks/results/four_rooms" if args.agent == "tabular" else "benchmarks/results/four_rooms_neural")
    os.makedirs(OUT, exist_ok=True)
    with worker_pool(args.jobs, initializer=_set_out, initargs=(OUT,)) as pool:
        if args.agent == "tabular":
            results = [r for rs in pool.map(tabular_runs, [args.runs] * 2, (4, 1), [args.episodes] * 2,
                                            [args.switch] * 2, [overrides] * 2) for r in rs]
        else:
            jobs = [(r, k) for r in range(args.runs) for k in (4, 1)]
            results = list(pool.map(one_run, [r for r, _ in jobs], [k for _, k in jobs], [args.episodes] * len(jobs),
                                    [args.switch] * len(jobs), [overrides] * len(jobs)))
    by_k = {k: np.array([r["lengths"][: args.episodes] for r in results if r["num_options"] == k]) for k in (4, 1)}
    lo, hi = args.switch, args.switch + args.window
    summary = {
        ("option-critic (4 options)" if k == 4 else "flat actor-critic"): {
            "mean_steps_after_move": float(v[:, lo:hi].mean()),
            "std_over_runs": float(v[:, lo:hi].mean(axis=1).std()),
            "mean_steps_before_move": float(v[:, lo - args.window:lo].mean()),
            "mean_steps_first_window": float(v[:, : args.window].mean()),
            "mean_steps_next_window": float(v[:, hi:hi + args.window].mean()) if hi + args.window <= args.episodes else None,
            "mean_steps_last_window": float(v[:, -args.window:].mean()),
        }
        for k, v in by_k.items()
    }
    after = {k: v[:, lo:hi].mean(axis=1) for k, v in by_k.items()}
    paired = {"runs": int(len(after[4])), "option_critic_better": int((after[4] < after[1]).sum())}
    effective = {when: float(np.mean([r[f"effective_options_{when}_move"] for r in results if r["num_options"] == 4]))
                 for when in ("before", "after") if args.agent == "neural"}
    rooms = room_ownership([r["greedy_option"] for r in results if r["num_options"] == 4 and r["greedy_option"]])
    _plot(by_k, args, results)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"args": vars(args), "hparams": {**HPARAMS[args.agent], **overrides}, "summary": summary, "paired": paired, "room_ownership": rooms,
                   "effective_options": effective,
                   "lengths": {k: v.tolist() for k, v in by_k.items()},
                   "beta_before_move": {r["run"]: r["beta"] for r in results if r["num_options"] == 4},
                   "greedy_option_before_move": {r["run"]: r["greedy_option"] for r in results if r["num_options"] == 4},
                   "total_steps": {k: int(sum(r['steps'] for r in results if r['num_options'] == k)) for k in (4, 1)}},
                  f, indent=2)
    lines = [f"Four Rooms transfer ({args.agent}), {args.runs} runs per agent, goal moved after episode {args.switch}.", "",
             f"| agent | steps/episode, episodes {lo}-{hi} (after the move) | std over runs | episodes {lo - args.window}-{lo} (before) | episodes 0-{args.window} "
             f"| episodes {hi}-{hi + args.window} | last {args.window} episodes |",
             "|---|---|---|---|---|---|---|"]
    for name, s in summary.items():
        nxt = "-" if s["mean_steps_next_window"] is None else f"{s['mean_steps_next_window']:.1f}"
        lines.append(f"| {name} | {s['mean_steps_after_move']:.1f} | {s['std_over_runs']:.1f} | {s['mean_steps_before_move']:.1f} "
                     f"| {s['mean_steps_first_window']:.1f} | {nxt} | {s['mean_steps_last_window']:.1f} |")
    lines += ["", f"Option-Critic needs fewer steps per episode than the flat agent over episodes {lo}-{hi} in "
              f"{paired['option_critic_better']} of {paired['runs']} runs (same goal cell per run).", "",
              "Options by room at the move: share of each room's cells where Q_Omega picks the room's most "
              "common option (mean over runs; at least 0.25 with 4 options, 1 when one option owns the room): "
              + ", ".join(f"{room} {v:.2f}" for room, v in rooms.items())]
    if effective:
        lines += ["", "Effective number of options (exp of the entropy of the options' shares of steps; mean over "
                  f"runs): {effective['before']:.2f} before the move, {effective['after']:.2f} after."]
    write_table(OUT, lines)
    return 0


def room_ownership(greedy: list) -> dict[str, float]:
    """Per room, the share of its cells whose greedy option is the room's most common one,
    averaged over runs (``greedy``: per run, the greedy option of each of the 104 cells)."""
    from hrlkit.envs import FourRoomsEnv

    env = FourRoomsEnv()
    out = {}
    for room in ("upper-left", "upper-right", "lower-left", "lower-right"):
        cells = env.room_cells(room)
        out[room] = float(np.mean([np.bincount(np.asarray(g)[cells]).max() / len(cells) for g in greedy])) if greedy else float("nan")
    return out


def _set_out(out: str) -> None:
    global OUT
    OUT = out


def _plot(by_k, args, results) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hrlkit.envs import FourRoomsEnv

    fig, ax = plt.subplots(figsize=(7, 4.5))
    k = 20
    for n, label in ((4, "Option-Critic, 4 options"), (1, "flat actor-critic")):
        m = smooth(by_k[n].mean(axis=0), k)
        ax.plot(np.arange(len(m)) + k - 1, m, label=label)
    ax.axvline(args.switch, color="grey", ls="--", lw=1)
    ax.set_xlabel("episode")
    ax.set_ylabel(f"steps per episode (mean over {args.runs} runs, {k}-episode moving average)")
    ax.set_yscale("log")
    ax.set_title("Four Rooms: goal moves at the dashed line")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "steps_per_episode.png"), dpi=120)
    plt.close(fig)

    env = FourRoomsEnv()
    oc = [r for r in results if r["num_options"] == 4 and r["beta"] is not None]
    betas = np.array([r["beta"] for r in oc])  # [runs, cells, K]
    # Option ids are arbitrary in each run, so the average over runs blurs the structure: draw
    # the first run's maps, and the average beside them for reference.
    _beta_maps(env, betas[0], os.path.join(OUT, "terminations.png"), f"run {oc[0]['run']}", oc[0]["greedy_option"])
    _beta_maps(env, betas.mean(axis=0), os.path.join(OUT, "terminations_mean.png"), f"mean over {len(oc)} runs")


def _beta_maps(env, beta, path: str, label: str, greedy=None) -> None:
    """One map of beta per option; with ``greedy`` (the option Q_Omega picks in each cell), a
    last panel with the cells each option is chosen in."""
    import matplotlib.pyplot as plt

    k = beta.shape[1]
    fig, axes = plt.subplots(1, k + (greedy is not None), figsize=(3.2 * (k + (greedy is not None)), 3.4))
    axes = np.atleast_1d(axes)
    for w in range(k):
        grid = np.full(env.walls.shape, np.nan)
        grid[env.cells[:, 0], env.cells[:, 1]] = beta[:, w]
        im = axes[w].imshow(grid, cmap="viridis", vmin=0, vmax=1)
        axes[w].set_title(f"option {w}: β ({label})", fontsize=9)
    fig.colorbar(im, ax=list(axes[:k]), shrink=0.8)
    if greedy is not None:
        grid = np.full(env.walls.shape, np.nan)
        grid[env.cells[:, 0], env.cells[:, 1]] = greedy
        axes[k].imshow(grid, cmap="tab10", vmin=0, vmax=9)
        for (r, c), w in zip(env.cells, greedy):
            axes[k].text(c, r, str(w), ha="center", va="center", fontsize=6)
        axes[k].set_title(f"greedy option per cell ({label})", fontsize=9)
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
