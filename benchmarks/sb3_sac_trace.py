"""hrlkit's SAC (a one-option Soft Option-Critic with SB3's settings) traced against Stable-Baselines3's
SAC.learn, step by step, from the same weights, env seed and random draws.

hrlkit's run records what it drew (the warmup actions, the replay indices, every Gaussian draw by
its use: acting, a' at s', a at s); SB3's run takes the same draws in its own order. Both store the
transitions they see, which are compared step by step. The same two runs are the unit test
tests/test_sb3_sac_parity.py (Pendulum, 160 steps). Here, on any env, with a control: SB3 against
itself, its first env action moved by ``--perturb`` (a float32 rounding), which shows how fast two
runs of one algorithm part from a rounding difference (when hrlkit and SB3 part about as fast, the
difference between them is rounding, not the algorithm).

    python benchmarks/sb3_sac_trace.py --env Walker2d-v5 --steps 600 [--eval-every 50]

writes benchmarks/results/sb3_sac_trace_<env>[_eval<N>].json (each run pair's largest difference
per stored transition, and the first step where it exceeds 1e-3).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from unittest import mock

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
SB3_SETTINGS = dict(num_options=1, target_option_values="critics", prioritized=False, update_order="critic_first",
                    log_prob_epsilon=1e-6)  # with SB3's own: batch 256, learning_starts 100, [256, 256]


def _linears(seq) -> list[torch.nn.Linear]:
    return [m for m in seq if isinstance(m, torch.nn.Linear)]


def copy_weights(sb, agent) -> None:
    """SB3 SAC's actor, critics and target critics into the one-option agent's ensembles."""
    with torch.no_grad():
        for j, layer in enumerate(_linears(sb.actor.latent_pi)):
            agent.actor.weights[j][0].copy_(layer.weight.T)
            agent.actor.biases[j][0, 0].copy_(layer.bias)
        last = len(agent.actor.weights) - 1
        agent.actor.weights[last][0].copy_(torch.cat([sb.actor.mu.weight, sb.actor.log_std.weight]).T)
        agent.actor.biases[last][0, 0].copy_(torch.cat([sb.actor.mu.bias, sb.actor.log_std.bias]))
        for src, dst in ((sb.critic, agent.critic), (sb.critic_target, agent.targets_copy["critic"])):
            for e, q in enumerate(src.q_networks):
                for j, layer in enumerate(_linears(q)):
                    dst.weights[j][e].copy_(layer.weight.T)
                    dst.biases[j][e, 0].copy_(layer.bias)


def weight_gaps(sb, agent) -> dict[str, float]:
    """The largest difference of each network's weights (and log alpha) between SB3 and hrlkit."""
    actor = [layer.weight.T for layer in _linears(sb.actor.latent_pi)]
    actor.append(torch.cat([sb.actor.mu.weight, sb.actor.log_std.weight]).T)
    gaps = {"actor": max(float((w - agent.actor.weights[j][0]).detach().abs().max()) for j, w in enumerate(actor))}
    pairs = (("critic", sb.critic, agent.critic), ("target", sb.critic_target, agent.targets_copy["critic"]))
    for name, src, dst in pairs:
        gaps[name] = max(float((layer.weight.T - dst.weights[j][e]).detach().abs().max())
                         for e, q in enumerate(src.q_networks) for j, layer in enumerate(_linears(q)))
    gaps["log_alpha"] = abs(float(sb.log_ent_coef.detach()) - float(agent.log_alpha.detach()[0]))
    return gaps


def make_sb3(env_id: str, env_kwargs: dict, *, seed: int = 0, hidden: list[int] | None = None,
             batch_size: int = 256, learning_starts: int = 100):
    """SB3's SAC on the env, silent (a seed gives the same weights every time)."""
    import gymnasium as gym
    import stable_baselines3 as sb3
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.monitor import Monitor

    sb = sb3.SAC("MlpPolicy", Monitor(gym.make(env_id, **env_kwargs)), seed=seed, device="cpu", batch_size=batch_size,
                 learning_starts=learning_starts, policy_kwargs={"net_arch": list(hidden or [256, 256])})
    sb._logger = configure(None, [])
    return sb


def make_pair(env_id: str, env_kwargs: dict, *, seed: int = 0, hidden: list[int] | None = None,
              batch_size: int = 256, learning_starts: int = 100, **overrides):
    """SB3's SAC (:func:`make_sb3`) and hrlkit's one-option agent with SB3's settings
    (``overrides``: other hrlkit settings), holding the same weights."""
    import hrlkit

    hidden = list(hidden or [256, 256])
    sb = make_sb3(env_id, env_kwargs, seed=seed, hidden=hidden, batch_size=batch_size, learning_starts=learning_starts)
    agent = hrlkit.SoftOptionCritic(env_id, env_kwargs=env_kwargs, seed=seed, hidden_sizes=hidden,
                                    batch_size=batch_size, learning_starts=learning_starts,
                                    **{**SB3_SETTINGS, **overrides})
    copy_weights(sb, agent)
    return sb, agent


def _tagger(first: str, second: str):
    """The tag of each Gaussian draw: 'act' outside a gradient step, else first, second, first, ..."""
    where = {"in": "act", "k": 0}

    def tag() -> str:
        if where["in"] == "act":
            return "act"
        where["k"] += 1
        return (first, second)[(where["k"] - 1) % 2]

    def around(fn):
        def wrapped(*args, **kwargs):
            where.update({"in": "train", "k": 0})
            try:
                return fn(*args, **kwargs)
            finally:
                where["in"] = "act"
        return wrapped

    return tag, around


def learn_hrlkit(agent, steps: int, every: int | None = None) -> tuple[list[tuple], dict[str, list]]:
    """``agent.learn(steps)`` recording its draws and its stored transitions (obs, action in
    [-1, 1], reward, next obs, terminated, truncated); ``every``: also evaluate and checkpoint
    (with the replay, as the suite does) every that many steps, into a temporary run directory."""
    draws: dict[str, list] = {"act": [], "next": [], "s": [], "indices": [], "warmup": []}
    rows: list[tuple] = []
    tag, around = _tagger("next", "s")  # hrlkit draws a' at s' first
    randn_like, sample, act, observe = torch.randn_like, agent.buffer.sample, agent.act, agent.observe
    starts = agent.config.learning_starts

    def drawn(x, *args, **kwargs):
        e = randn_like(x, *args, **kwargs)
        draws[tag()].append(e.clone())
        return e

    def sampled(n, *args, **kwargs):
        batch = sample(n, *args, **kwargs)
        draws["indices"].append(np.asarray(batch["indices"]).copy())
        return batch

    def acted(obs):
        actions = act(obs)
        if agent.global_step < starts:
            draws["warmup"].append(actions[0].copy())
        return actions

    def observed(obs, actions, rewards, next_obs, terminated, truncated):
        rows.append((np.array(obs[0]), agent._actions[0].copy(), float(rewards[0]), np.array(next_obs[0]),
                     bool(terminated[0]), bool(truncated[0])))
        return observe(obs, actions, rewards, next_obs, terminated, truncated)

    with contextlib.ExitStack() as stack:
        for obj, name, new in ((torch, "randn_like", drawn), (agent, "_gradient_step", around(agent._gradient_step)),
                               (agent.buffer, "sample", sampled), (agent, "act", acted), (agent, "observe", observed)):
            stack.enter_context(mock.patch.object(obj, name, new))
        run_dir = None
        if every is not None:
            agent.config.save_replay = True
            run_dir = stack.enter_context(tempfile.TemporaryDirectory())
        agent.learn(steps, progress=False, eval_every=every, checkpoint_every=every, tensorboard=False, run_dir=run_dir)
    return rows, draws


def learn_sb3(sb, steps: int, draws: dict[str, list], perturb: float = 0.0) -> list[tuple]:
    """``sb.learn(steps)`` taking its warmup actions, replay indices and Gaussian draws from
    ``draws`` (SB3 draws a at s first, then a' at s'); its stored transitions as learn_hrlkit's.
    ``perturb`` is added to its first env action."""
    queues = {k: iter(v) for k, v in draws.items()}
    rows: list[tuple] = []
    tag, around = _tagger("s", "next")
    rb, env = sb.replay_buffer, sb.env.envs[0]
    add, step = rb.add, env.step
    first = [True]

    def rsample(self, shape=torch.Size()):
        return self.loc + self.scale * next(queues[tag()]).view_as(self.loc)

    def added(obs, next_obs, action, reward, done, infos):
        timeout = bool(infos[0].get("TimeLimit.truncated", False))
        rows.append((np.array(obs[0]), np.array(action[0]), float(reward[0]), np.array(next_obs[0]),
                     bool(done[0]) and not timeout, timeout))
        return add(obs, next_obs, action, reward, done, infos)

    def sampled(batch_size, env=None):
        return rb._get_samples(next(queues["indices"]), env)

    def stepped(action):
        if first[0]:
            first[0], action = False, action + perturb
        return step(action)

    with contextlib.ExitStack() as stack:
        for obj, name, new in ((torch.distributions.Normal, "rsample", rsample), (sb, "train", around(sb.train)),
                               (rb, "sample", sampled),
                               (rb, "add", added), (sb.action_space, "sample", lambda: next(queues["warmup"])),
                               (env, "step", stepped)):
            stack.enter_context(mock.patch.object(obj, name, new))
        sb.learn(steps)
    return rows


def row_gaps(a: list[tuple], b: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
    """Each step's largest difference over (obs, action, reward, next obs), and whether its
    terminal and truncation flags agree."""
    gaps = np.array([max(float(np.abs(np.asarray(x[j], np.float64) - np.asarray(y[j], np.float64)).max())
                         for j in range(4)) for x, y in zip(a, b)])
    return gaps, np.array([x[4:] == y[4:] for x, y in zip(a, b)])


def _first_above(gaps: np.ndarray, level: float) -> int | None:
    above = np.flatnonzero(gaps > level)
    return int(above[0]) if len(above) else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="Walker2d-v5")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--perturb", type=float, default=6e-8, help="added to the control run's first env action")
    ap.add_argument("--eval-every", type=int, default=None,
                    help="hrlkit's run also evaluates and checkpoints every N steps (they must not change training)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    args = ap.parse_args(argv)
    if args.steps <= 100:
        ap.error(f"--steps: expected more than SB3's 100 warmup steps, got {args.steps}")
    if args.eval_every is not None and args.eval_every < 1:
        ap.error(f"--eval-every: expected an int >= 1, got {args.eval_every}")
    import gymnasium as gym

    from hrlkit.runtime.config import ConfigError

    try:
        sb, agent = make_pair(args.env, {}, seed=args.seed)
    except (gym.error.Error, ConfigError, AssertionError) as e:  # SB3 asserts its supported action spaces
        ap.error(f"--env: expected a registered env with continuous (Box) actions, got {args.env!r} ({e})")
    hk_rows, draws = learn_hrlkit(agent, args.steps, args.eval_every)
    sb_rows = learn_sb3(sb, args.steps, draws)
    control = make_sb3(args.env, {}, seed=args.seed)  # SB3 again: the same weights from the same seed
    control_rows = learn_sb3(control, args.steps, draws, perturb=args.perturb)
    out = {"env": args.env, "steps": args.steps, "seed": args.seed, "perturb": args.perturb,
           "eval_every": args.eval_every}
    for name, rows in (("hrlkit_vs_sb3", hk_rows), ("sb3_vs_perturbed_sb3", control_rows)):
        gaps, flags = row_gaps(rows, sb_rows)
        first = _first_above(gaps, 1e-3)
        out[name] = {"first_step_above_1e-3": first, "flags_agree_until_then": bool(flags[:first].all()),
                     "max_gap_by_step": gaps.tolist()}
        print(f"{name}: first stored transition differing by > 1e-3: step {out[name]['first_step_above_1e-3']}; "
              f"largest difference at steps 1, 100, 200, 300: "
              f"{', '.join(f'{gaps[i]:.1e}' for i in (1, 100, 200, 300) if i < len(gaps))}", flush=True)
    out["weights_hrlkit_vs_sb3"] = weight_gaps(sb, agent)
    os.makedirs(args.out, exist_ok=True)
    suffix = "" if args.eval_every is None else f"_eval{args.eval_every}"
    path = os.path.join(args.out, f"sb3_sac_trace_{args.env}{suffix}.json")
    with open(path, "w") as f:
        json.dump(out, f)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
