"""hrlkit's SAC update against Stable-Baselines3's SAC.train: a one-option Soft Option-Critic with
the critics' bootstrap (``num_options=1, target_option_values="critics"``) is plain SAC. From the
same weights, batches and noise draws, ``update_order="critic_first"`` with SB3's tanh correction
(``log_prob_epsilon=1e-6``) takes SB3's gradient steps to float rounding; ``"joint"`` (one Adam
step on the summed loss) differs in the actor only. And the whole training loop around it (warmup,
acting, storing, sampling, when updates start) is SB3's ``SAC.learn``: from the same weights and
draws both store the same transitions and end at the same weights."""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import torch

from hrlkit.agents import _sac

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import sb3_sac_trace as trace  # noqa: E402

sb3 = pytest.importorskip("stable_baselines3")
from stable_baselines3.common.type_aliases import ReplayBufferSamples  # noqa: E402

B, STEPS = 64, 12


def _train_both(update_order: str, monkeypatch, log_prob_epsilon: float = 1e-6) -> tuple:
    sb, agent = trace.make_pair("Pendulum-v1", {}, hidden=[32, 32], batch_size=B, update_order=update_order,
                                log_prob_epsilon=log_prob_epsilon)
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


def test_critic_first_is_sb3_sac_step_for_step(monkeypatch):
    sb, agent = _train_both("critic_first", monkeypatch)
    gaps = trace.weight_gaps(sb, agent)
    assert max(gaps.values()) < 1e-6, gaps  # Adam moves each weight by about 3e-4 a step


def test_joint_update_differs_from_sb3_in_the_actor_only(monkeypatch):
    sb, agent = _train_both("joint", monkeypatch)
    gaps = trace.weight_gaps(sb, agent)
    assert gaps["actor"] > 1e-5, gaps  # the actor read the critics before their step (critic_first: < 1e-6)
    assert gaps["log_alpha"] < 1e-6, gaps


def test_training_loop_is_sb3_sac_learn_step_for_step():
    """The whole loop, not the update alone: from the same weights, env seed, warmup actions, replay
    indices and Gaussian draws, hrlkit's ``learn`` (acting, the warmup, storing with the real final
    observation at truncation, when updates start, sampling, the gradient step) stores the transitions
    SB3's ``SAC.learn`` stores and ends at its weights (benchmarks/sb3_sac_trace.py, on Pendulum with
    50-step episodes: it never terminates, so they end by truncation)."""
    steps, starts, episode = 160, 40, 50
    sb, agent = trace.make_pair("Pendulum-v1", {"max_episode_steps": episode}, hidden=[32, 32], batch_size=B,
                                learning_starts=starts)
    hk_rows, draws = trace.learn_hrlkit(agent, steps)
    updates = steps - starts
    assert [len(draws[k]) for k in ("warmup", "act", "next", "s", "indices")] == [starts] + [updates] * 4
    sb_rows = trace.learn_sb3(sb, steps, draws)
    assert len(sb_rows) == len(hk_rows) == steps
    assert sum(r[5] for r in hk_rows) == steps // episode  # each stored with its episode's final obs
    gaps, flags = trace.row_gaps(hk_rows, sb_rows)
    assert flags.all() and gaps.max() < 1e-4, (int(gaps.argmax()), gaps.max())  # measured: 6e-7
    weights = trace.weight_gaps(sb, agent)
    assert max(weights.values()) < 1e-4, weights  # measured: 5e-7


def test_trace_script_writes_both_comparisons(tmp_path, capsys):
    assert trace.main(["--env", "Pendulum-v1", "--steps", "120", "--out", str(tmp_path)]) == 0
    out = json.load(open(tmp_path / "sb3_sac_trace_Pendulum-v1.json"))
    assert out["steps"] == 120 and out["perturb"] == 6e-8
    assert len(out["hrlkit_vs_sb3"]["max_gap_by_step"]) == len(out["sb3_vs_perturbed_sb3"]["max_gap_by_step"]) == 120
    assert out["hrlkit_vs_sb3"]["first_step_above_1e-3"] is None and max(out["weights_hrlkit_vs_sb3"].values()) < 1e-4
    assert "hrlkit_vs_sb3: first stored transition" in capsys.readouterr().out
    # evaluations and checkpoints (with the replay) inside hrlkit's run change none of its transitions
    assert trace.main(["--env", "Pendulum-v1", "--steps", "120", "--eval-every", "30", "--out", str(tmp_path)]) == 0
    evaluated = json.load(open(tmp_path / "sb3_sac_trace_Pendulum-v1_eval30.json"))
    assert evaluated["eval_every"] == 30 and evaluated["hrlkit_vs_sb3"] == out["hrlkit_vs_sb3"]
    for argv, message in ((["--steps", "100"], "--steps: expected more than SB3's 100 warmup steps, got 100"),
                          (["--eval-every", "0"], "--eval-every: expected an int >= 1, got 0"),
                          (["--env", "Nope-v0"], "--env: expected a registered env with continuous (Box) actions, "
                                                 "got 'Nope-v0'"),
                          (["--env", "CartPole-v1"], "--env: expected a registered env with continuous (Box) "
                                                     "actions, got 'CartPole-v1'")):
        with pytest.raises(SystemExit):
            trace.main([*argv, "--out", str(tmp_path)])
        assert message in capsys.readouterr().err
