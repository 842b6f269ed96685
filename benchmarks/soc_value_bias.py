"""How far Soft Option-Critic's value estimates sit above the returns its policy gets.

For each checkpoint: episodes of the training (stochastic) policy from the checkpoint, and at
every step t of them the soft Monte Carlo return

    G_t = r_t + sum_{k >= 1} gamma^k (r_{t+k} - alpha_{w_{t+k}} log pi_{w_{t+k}}(a_{t+k} | s_{t+k}))

(what SAC's soft Q estimates: rewards plus the entropy bonus from the next step on), set against
the twin-min critic of the option that acted, min_j Q_j(s_t, a_t, w_t), and the option
network's Q_Omega(s_t, w_t) and max_w Q_Omega(s_t, w). Steps closer than ``--horizon`` to a
time-limit truncation are left out (their return's tail is missing; gamma^300 = 0.05). Prints one
JSON line per checkpoint: the mean estimate minus the mean return, and the return's mean; then
the greedy return (``--episodes`` episodes) of the option policy and of each option's actor alone
(its tanh-mean action at every step, never terminating). And, over every visited state, how far
apart the options' values are and what the termination gradient sees there: for the option
network's Q_Omega(s, .) and for the target critics' soft values of every option (one draw a_v ~
pi_v(s) each, as ``target_option_values="critics"`` bootstraps), the mean spread max - min over
options and the mean advantage Q(s, v) - V(s) over options v (V the option policy's value:
negative pushes the betas of an option the loss was dealt towards terminating, unless the
deliberation cost outweighs it); the mean beta of the acting option; the mean option duration.

    python benchmarks/soc_value_bias.py RUN_A/checkpoints/step_30000.pt RUN_B/checkpoints/step_30000.pt
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch


def episode_records(agent, episodes: int, seed: int):
    """Per episode: rewards, log pi of each action under its option, the options' alphas, the
    critic's twin-min, Q_Omega of the acting option and the max over options; and whether it was
    truncated (rather than terminated)."""
    from hrlkit.agents.soft_option_critic import option_heads, own_heads
    from hrlkit.agents._sac import squashed_gaussian, LOG_STD_MIN, LOG_STD_MAX

    env, owned = agent.make_eval_env()
    A, alphas = agent.action_dim, agent.alphas()
    out = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        state, rec, truncated = None, {k: [] for k in ("r", "logp", "alpha", "q", "q_omega", "q_omega_max", "obs",
                                                       "beta", "option")}, False
        while True:
            action, state = agent.predict(obs, state, deterministic=False)
            w = int(state["option"][0]) if np.ndim(state["option"]) else int(state["option"])
            with torch.no_grad():
                x = agent.obs_tensor(np.asarray(obs, np.float32)[None])
                mean, log_std = agent.actor(x)[w].split(A, dim=-1)
                squashed = torch.as_tensor((action - agent.action_center) / agent.action_scale, dtype=torch.float32)
                squashed = squashed.clamp(-1 + 1e-6, 1 - 1e-6)[None]
                u = torch.atanh(squashed)
                eps = (u - mean) / log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp()
                _, logp = squashed_gaussian(mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX), eps)
                q = own_heads(agent.critic(torch.cat([x, squashed], dim=-1)), torch.tensor([w])).min(dim=0).values
                q_omega, beta = option_heads(agent.option_net, x)
            rec["obs"].append(np.asarray(obs, np.float32))
            obs, r, term, trunc, _ = env.step(action)
            for k, v in (("r", r), ("logp", logp.item()), ("alpha", float(alphas[w])), ("q", q.item()),
                         ("q_omega", q_omega[0, w].item()), ("q_omega_max", q_omega[0].max().item()),
                         ("beta", beta[0, w].item()), ("option", w)):
                rec[k].append(float(v))
            if term or trunc:
                truncated = bool(trunc and not term)
                break
        out.append(({k: np.asarray(v) for k, v in rec.items()}, truncated))
    if owned:
        env.close()
    return out


def greedy_returns(agent, episodes: int, seed: int, option: int | None) -> float:
    """Mean greedy return of the option policy (option None: the library's own greedy
    evaluation) or of one option's actor alone (the tanh of its Gaussian mean at every step, no
    termination). Episode i is seeded ``seed + i`` either way."""
    if option is None:
        from hrlkit.runtime.evaluation import evaluate

        return float(evaluate(agent, episodes, seed=seed).mean())
    env, owned = agent.make_eval_env()
    total = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        ret = 0.0
        while True:
            with torch.no_grad():
                out = agent.actor(agent.obs_tensor(np.asarray(obs, np.float32)[None]))[option, 0]
            action = agent._env_actions(torch.tanh(out[:agent.action_dim]).numpy())
            obs, r, term, trunc, _ = env.step(action)
            ret += float(r)
            if term or trunc:
                break
        total.append(ret)
    if owned:
        env.close()
    return float(np.mean(total))


def option_value_gaps(agent, obs: np.ndarray) -> dict:
    """At the states obs [N, obs]: the mean spread (max - min over options) and the mean
    advantage Q(s, v) - V(s) over options v, of the option network's Q_Omega and of the target
    critics' soft values of every option; V as the option policy's value (``option_value``)."""
    from hrlkit import soft_option_targets
    from hrlkit.agents.soft_option_critic import critic_option_values, option_heads

    cfg = agent.config
    with torch.no_grad():
        x = agent.obs_tensor(obs)
        n, zeros = x.shape[0], torch.zeros(x.shape[0], dtype=torch.long)
        _, _, critic_values = critic_option_values(agent.actor, agent.targets_copy["critic"], x, zeros,
                                                   agent.alphas(), agent.action_dim)
        out = {}
        for name, values in (("q_omega", option_heads(agent.option_net, x)[0]), ("critic_values", critic_values)):
            K = values.shape[1]
            # V(s) from the library's own target kernel: advantage = Q(s, w) - V(s) (+ 0 deliberation cost)
            adv = torch.stack([soft_option_targets(torch.zeros(2, n), torch.zeros(n), values, torch.zeros(n),
                                                   torch.full((n,), v, dtype=torch.long), torch.zeros(n),
                                                   torch.zeros(n), agent.alphas(), mode=cfg.option_value,
                                                   option_temperature=cfg.option_temperature).advantage
                               for v in range(K)], dim=1)
            out[f"{name}_spread"] = round(float((values.max(1).values - values.min(1).values).mean()), 3)
            out[f"{name}_advantage"] = round(float(adv.mean()), 3)
    return out


def option_durations(options: np.ndarray) -> float:
    """Mean length of the runs of one option in an episode's sequence of acting options."""
    return float(len(options) / (1 + np.count_nonzero(np.diff(options)))) if len(options) else 0.0


def soft_returns(rec: dict, gamma: float) -> np.ndarray:
    bonus = -rec["alpha"] * rec["logp"]
    g, acc = np.zeros_like(rec["r"]), 0.0
    for t in range(len(g) - 1, -1, -1):
        nxt = acc  # G_{t+1}
        acc = rec["r"][t] + gamma * (bonus[t + 1] + nxt if t + 1 < len(g) else 0.0)
        g[t] = acc
    return g


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--horizon", type=int, default=300)
    p.add_argument("--seed", type=int, default=1000)
    args = p.parse_args(argv)
    import hrlkit

    torch.set_num_threads(1)
    for path in args.checkpoints:
        agent = hrlkit.SoftOptionCritic.load(path)
        gamma = agent.config.gamma
        cols = {k: [] for k in ("g", "q", "q_omega", "q_omega_max")}
        states, betas, durations = [], [], []
        for rec, truncated in episode_records(agent, args.episodes, args.seed):
            states.append(np.stack(rec["obs"]))
            betas.append(rec["beta"])
            durations.append(option_durations(rec["option"]))
            g = soft_returns(rec, gamma)
            keep = slice(0, max(0, len(g) - args.horizon)) if truncated else slice(None)
            cols["g"].append(g[keep])
            for k in ("q", "q_omega", "q_omega_max"):
                cols[k].append(rec[k][keep])
        c = {k: np.concatenate(v) for k, v in cols.items()}
        K = agent.config.num_options
        greedy = {"greedy_option_policy": round(greedy_returns(agent, args.episodes, args.seed, None), 1)}
        if K > 1:
            greedy["greedy_each_option_alone"] = [round(greedy_returns(agent, args.episodes, args.seed, w), 1)
                                                  for w in range(K)]
        print(json.dumps({"checkpoint": path, "options": K, "steps": int(c["g"].size),
                          "mean_return": round(float(c["g"].mean()), 2),
                          **{f"{k}_minus_return": round(float((c[k] - c["g"]).mean()), 2)
                             for k in ("q", "q_omega", "q_omega_max")},
                          **option_value_gaps(agent, np.concatenate(states)),
                          "beta_acting": round(float(np.concatenate(betas).mean()), 3),
                          "mean_option_duration": round(float(np.mean(durations)), 1), **greedy}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
