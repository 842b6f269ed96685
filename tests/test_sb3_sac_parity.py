"""hrlkit's SAC update against Stable-Baselines3's SAC.train: a one-option Soft Option-Critic with
the critics' bootstrap (``num_options=1, target_option_values="critics"``) is plain SAC. From the
same weights, batches and noise draws, ``update_order="critic_first"`` with SB3's tanh correction
(``log_prob_epsilon=1e-6``) takes SB3's gradient steps to float rounding; ``"joint"`` (one Adam
step on the summed loss) differs in the actor only. And the whole training loop around it (warmup,
acting, storing, sampling, when updates start) is SB3's ``SAC.learn``: from the same weights and
draws both store the same transitions and end at the same weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import hrlkit
from hrlkit.agents import _sac

sb3 = pytest.importorskip("stable_baselines3")
from stable_baselines3.common.logger import configure  # noqa: E402
from stable_baselines3.common.type_aliases import ReplayBufferSamples  # noqa: E402

B, STEPS = 64, 12


def _linears(seq) -> list[torch.nn.Linear]:
    return [m for m in seq if isinstance(m, torch.nn.Linear)]


def _copy_weights(sb, agent) -> None:
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


def _train_both(update_order: str, monkeypatch, log_prob_epsilon: float = 1e-6) -> tuple:
    sb = sb3.SAC("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", policy_kwargs={"net_arch": [32, 32]})
    sb._logger = configure(None, [])
    agent = hrlkit.SoftOptionCritic("Pendulum-v1", seed=0, num_options=1, target_option_values="critics",
                                    prioritized=False, hidden_sizes=[32, 32], batch_size=B, update_order=update_order,
                                    log_prob_epsilon=log_prob_epsilon)
    _copy_weights(sb, agent)
    g = torch.Generator().manual_seed(1)
    D, A = 3, 1
    batches = [dict(obs=torch.randn(B, D, generator=g), action=torch.rand(B, A, generator=g) * 2 - 1,
                    reward=torch.randn(B, generator=g), next_obs=torch.randn(B, D, generator=g),
                    terminated=torch.rand(B, generator=g) < 0.2) for _ in range(STEPS)]
    noise = [(torch.randn(B, A, generator=g), torch.randn(B, A, generator=g)) for _ in range(STEPS)]  # at s, at s'

    # SB3: its replay buffer and its Gaussian's draws replaced by the fixed ones (at s first, then s')
    sb_batches, sb_noise = iter(batches), iter([e for pair in noise for e in pair])

    def sb_sample(batch_size, env=None):
        b = next(sb_batches)
        return ReplayBufferSamples(b["obs"], b["action"], b["next_obs"], b["terminated"].float()[:, None],
                                   b["reward"][:, None], None)

    monkeypatch.setattr(sb.replay_buffer, "sample", sb_sample)
    with monkeypatch.context() as m:
        m.setattr(torch.distributions.Normal, "rsample",
                  lambda self, shape=torch.Size(): self.loc + self.scale * next(sb_noise))
        sb.train(gradient_steps=STEPS, batch_size=B)

    # hrlkit: the same batches and draws (it draws at s' first)
    hk_batches, hk_noise = iter(batches), iter([e for at_s, at_next in noise for e in (at_next, at_s)])
    monkeypatch.setattr(agent, "_sample", lambda: dict(next(hk_batches), indices=np.zeros(B, np.int64)))
    with monkeypatch.context() as m:
        m.setattr(_sac.torch, "randn_like", lambda x: next(hk_noise).view_as(x))
        for _ in range(STEPS):
            agent._gradient_step()
    return sb, agent


def _gaps(sb, agent) -> dict[str, float]:
    actor = [layer.weight.T for layer in _linears(sb.actor.latent_pi)]
    actor.append(torch.cat([sb.actor.mu.weight, sb.actor.log_std.weight]).T)
    gaps = {"actor": max(float((w - agent.actor.weights[j][0]).detach().abs().max()) for j, w in enumerate(actor))}
    pairs = (("critic", sb.critic, agent.critic), ("target", sb.critic_target, agent.targets_copy["critic"]))
    for name, src, dst in pairs:
        gaps[name] = max(float((layer.weight.T - dst.weights[j][e]).detach().abs().max())
                         for e, q in enumerate(src.q_networks) for j, layer in enumerate(_linears(q)))
    gaps["log_alpha"] = abs(float(sb.log_ent_coef.detach()) - float(agent.log_alpha.detach()[0]))
    return gaps


def test_critic_first_is_sb3_sac_step_for_step(monkeypatch):
    sb, agent = _train_both("critic_first", monkeypatch)
    gaps = _gaps(sb, agent)
    assert max(gaps.values()) < 1e-6, gaps  # Adam moves each weight by about 3e-4 a step


def test_joint_update_differs_from_sb3_in_the_actor_only(monkeypatch):
    sb, agent = _train_both("joint", monkeypatch)
    gaps = _gaps(sb, agent)
    assert gaps["actor"] > 1e-5, gaps  # the actor read the critics before their step (critic_first: < 1e-6)
    assert gaps["log_alpha"] < 1e-6, gaps



LOOP_STEPS, LOOP_STARTS, EPISODE = 160, 40, 50


def _recording_hrlkit_run(monkeypatch) -> tuple:
    """hrlkit's trainer on a one-option SOC with SB3's SAC settings, recording what it drew: the
    warmup actions, the replay indices, and each Gaussian draw by its use (acting, a' at s', a at s),
    and every transition as stored (obs, action in [-1, 1], reward, next obs, terminal)."""
    env_kwargs = {"max_episode_steps": EPISODE}  # Pendulum never terminates: episodes end by truncation
    agent = hrlkit.SoftOptionCritic("Pendulum-v1", env_kwargs=env_kwargs, seed=0, num_options=1,
                                    target_option_values="critics", prioritized=False, hidden_sizes=[32, 32],
                                    batch_size=B, update_order="critic_first", log_prob_epsilon=1e-6,
                                    learning_starts=LOOP_STARTS)
    draws: dict[str, list] = {"act": [], "next": [], "s": [], "indices": [], "warmup": []}
    rows: list[tuple] = []
    where = {"in": "act", "k": 0}
    randn_like = torch.randn_like

    def recorded(x, *args, **kwargs):
        e = randn_like(x, *args, **kwargs)
        tag = "act" if where["in"] == "act" else ("next", "s")[where["k"] % 2]  # hrlkit draws at s' first
        where["k"] += where["in"] != "act"
        draws[tag].append(e.clone())
        return e

    step, sample, act, observe = agent._gradient_step, agent.buffer.sample, agent.act, agent.observe

    def gradient_step():
        where.update({"in": "train", "k": 0})
        try:
            return step()
        finally:
            where["in"] = "act"

    def sampled(n, *args, **kwargs):
        batch = sample(n, *args, **kwargs)
        draws["indices"].append(np.asarray(batch["indices"]).copy())
        return batch

    def acted(obs):
        actions = act(obs)
        if agent.global_step < LOOP_STARTS:
            draws["warmup"].append(actions[0].copy())
        return actions

    def observed(obs, actions, rewards, next_obs, terminated, truncated):
        rows.append((obs[0].copy(), agent._actions[0].copy(), float(rewards[0]), next_obs[0].copy(),
                     bool(terminated[0]), bool(truncated[0])))
        return observe(obs, actions, rewards, next_obs, terminated, truncated)

    monkeypatch.setattr(agent, "_gradient_step", gradient_step)
    monkeypatch.setattr(agent.buffer, "sample", sampled)
    monkeypatch.setattr(agent, "act", acted)
    monkeypatch.setattr(agent, "observe", observed)
    return agent, env_kwargs, draws, rows, recorded


def _replaying_sb3_run(env_kwargs: dict, draws: dict, monkeypatch) -> tuple:
    """SB3's SAC.learn on the same env and seed, its warmup actions, replay indices and Gaussian
    draws taken from ``draws`` (SB3 draws at s first, then s'); its stored transitions."""
    import gymnasium as gym
    from stable_baselines3.common.monitor import Monitor

    sb = sb3.SAC("MlpPolicy", Monitor(gym.make("Pendulum-v1", **env_kwargs)), seed=0, device="cpu",
                 batch_size=B, learning_starts=LOOP_STARTS, policy_kwargs={"net_arch": [32, 32]})
    sb._logger = configure(None, [])
    queues = {k: iter(v) for k, v in draws.items()}
    where = {"in": "act", "k": 0}
    rows: list[tuple] = []
    train, rb = sb.train, sb.replay_buffer
    add = rb.add

    def rsample(self, shape=torch.Size()):
        tag = "act" if where["in"] == "act" else ("s", "next")[where["k"] % 2]
        where["k"] += where["in"] != "act"
        return self.loc + self.scale * next(queues[tag]).view_as(self.loc)

    def trained(gradient_steps, batch_size=64):
        where.update({"in": "train", "k": 0})
        try:
            return train(gradient_steps, batch_size)
        finally:
            where["in"] = "act"

    def added(obs, next_obs, action, reward, done, infos):
        timeout = bool(infos[0].get("TimeLimit.truncated", False))
        rows.append((obs[0].copy(), action[0].copy(), float(reward[0]), next_obs[0].copy(),
                     bool(done[0]) and not timeout, timeout))
        return add(obs, next_obs, action, reward, done, infos)

    monkeypatch.setattr(torch.distributions.Normal, "rsample", rsample)
    monkeypatch.setattr(sb, "train", trained)
    monkeypatch.setattr(rb, "sample", lambda batch_size, env=None: rb._get_samples(next(queues["indices"]), env))
    monkeypatch.setattr(rb, "add", added)
    monkeypatch.setattr(sb.action_space, "sample", lambda: next(queues["warmup"]))
    return sb, rows


def test_training_loop_is_sb3_sac_learn_step_for_step(monkeypatch):
    """The whole loop, not the update alone: from the same weights, env seed, warmup actions, replay
    indices and Gaussian draws, hrlkit's ``learn`` (acting, the warmup, storing with the real final
    observation at truncation, when updates start, sampling, the gradient step) stores the transitions
    SB3's ``SAC.learn`` stores and ends at its weights."""
    agent, env_kwargs, draws, hk_rows, recorded = _recording_hrlkit_run(monkeypatch)
    sb, sb_rows = _replaying_sb3_run(env_kwargs, draws, monkeypatch)
    _copy_weights(sb, agent)
    with monkeypatch.context() as m:
        m.setattr(torch, "randn_like", recorded)
        agent.learn(LOOP_STEPS, progress=False, eval_every=None, checkpoint_every=None, tensorboard=False,
                    run_dir=None)
    updates = LOOP_STEPS - LOOP_STARTS
    assert [len(draws[k]) for k in ("warmup", "act", "next", "s", "indices")] == [LOOP_STARTS] + [updates] * 4
    sb.learn(LOOP_STEPS)
    assert len(sb_rows) == len(hk_rows) == LOOP_STEPS
    assert sum(r[5] for r in hk_rows) == LOOP_STEPS // EPISODE  # truncations stored, each with its final obs
    for i, (h, s) in enumerate(zip(hk_rows, sb_rows)):
        assert h[4:] == s[4:], (i, h[4:], s[4:])  # terminal, truncated
        for j in range(4):  # obs, action, reward, next obs
            assert np.allclose(h[j], s[j], atol=1e-4), (i, j, h[j], s[j])
    gaps = _gaps(sb, agent)
    assert max(gaps.values()) < 1e-4, gaps
