"""hrlkit's SAC update against Stable-Baselines3's SAC.train: a one-option Soft Option-Critic with
the critics' bootstrap (``num_options=1, target_option_values="critics"``) is plain SAC. From the
same weights, batches and noise draws, ``update_order="critic_first"`` with SB3's tanh correction
(``log_prob_epsilon=1e-6``) takes SB3's gradient steps to float rounding; ``"joint"`` (one Adam
step on the summed loss) differs in the actor only."""
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

