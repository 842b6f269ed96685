"""How a trained Soft Option-Critic splits the behaviour between its options.

    python benchmarks/soc_option_behaviour.py benchmarks/results/soc_halfcheetah/runs/seed0 --episodes 3

Loads RUN_DIR/checkpoints/latest.pt, runs greedy episodes (predict with the running-option
state), and writes RUN_DIR/../../option_behaviour.png (top: the running option over the first
episode's steps; bottom: the env's x-velocity, coloured by option, when the env reports
``x_velocity``, else the reward) and option_behaviour.md: per option, the share of steps, the
mean length of its runs, the mean reward and the mean x-velocity while it runs.
"""
from __future__ import annotations

import argparse
import os

import numpy as np
from _report import write_table


def rollout(agent, episodes: int, seed: int = 10_000):
    import gymnasium as gym

    env = gym.make(agent.env_id, **agent.env_kwargs)
    traces = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        state, done = None, False
        opts, rews, vels = [], [], []
        while not done:
            action, state = agent.predict(obs, state, deterministic=True)
            obs, r, term, trunc, info = env.step(action)
            opts.append(int(state["option"][0]))
            rews.append(float(r))
            vels.append(float(info.get("x_velocity", np.nan)))
            done = term or trunc
        traces.append((np.array(opts), np.array(rews), np.array(vels)))
    env.close()
    return traces


def run_lengths(opts: np.ndarray) -> list[tuple[int, int]]:
    """(option, length) of each maximal run of one option."""
    out, start = [], 0
    for t in range(1, len(opts) + 1):
        if t == len(opts) or opts[t] != opts[start]:
            out.append((int(opts[start]), t - start))
            start = t
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--out", default=None, help="output directory (default: two levels above RUN_DIR)")
    args = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import hrlkit

    agent = hrlkit.SoftOptionCritic.load(os.path.join(args.run_dir, "checkpoints", "latest.pt"))
    K = agent.config.num_options
    traces = rollout(agent, args.episodes)
    opts = np.concatenate([t[0] for t in traces])
    rews = np.concatenate([t[1] for t in traces])
    vels = np.concatenate([t[2] for t in traces])
    runs = [r for t in traces for r in run_lengths(t[0])]
    out = args.out or os.path.dirname(os.path.dirname(os.path.abspath(args.run_dir)))
    returns = [float(t[1].sum()) for t in traces]
    lines = [f"{agent.env_id}: {args.episodes} greedy episodes of {args.run_dir} (returns {', '.join(f'{r:.0f}' for r in returns)}).",
             "", "| option | share of steps | mean run length | mean reward | mean x-velocity |", "|---|---|---|---|---|"]
    def mean(x: np.ndarray) -> str:
        x = x[~np.isnan(x)]
        return f"{x.mean():.2f}" if x.size else "-"  # "-": the option never ran, or no x-velocity

    for k in range(K):
        m = opts == k
        lens = [n for o, n in runs if o == k]
        lines.append(f"| {k} | {m.mean():.3f} | {np.mean(lens) if lens else 0:.1f} | {mean(rews[m])} | {mean(vels[m])} |")
    write_table(out, lines, "option_behaviour.md")
    o, r, v = traces[0]
    y = v if not np.all(np.isnan(v)) else r
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 4.5), sharex=True)
    a1.step(np.arange(len(o)), o, where="post", lw=0.8)
    a1.set_ylabel("option")
    a1.set_yticks(range(K))
    for k in range(K):
        m = o == k
        a2.scatter(np.flatnonzero(m), y[m], s=2, label=f"option {k}")
    a2.set_ylabel("x-velocity" if y is v else "reward")
    a2.set_xlabel("step of the first episode")
    a2.legend(markerscale=4, fontsize=8)
    fig.suptitle(f"Soft Option-Critic on {agent.env_id}: which option runs")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "option_behaviour.png"), dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
