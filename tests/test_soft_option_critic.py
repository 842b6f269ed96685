"""Soft Option-Critic: loss terms and the squashed Gaussian on hand-computed examples, the stacked
ensembles against a loop over members, the batch layout, the termination gradient on a toy
problem, exact resume, config errors, the CLI and a small fixed-seed learning check."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch
from torch.nn import functional as F

import hrlkit
from hrlkit import soft_option_targets
from hrlkit.agents.soft_option_critic import soft_option_critic_losses, squashed_gaussian
from hrlkit.cli import main as cli
from hrlkit.nets import EnsembleMLP, soft_update
from hrlkit.runtime.config import ConfigError

SMALL = dict(hidden_sizes=[32, 32], option_hidden_sizes=[16], batch_size=16, learning_starts=100)


def _params(agent) -> torch.Tensor:
    mods = [agent.actor, agent.critic, agent.option_net, agent.targets_copy]
    return torch.cat([p.detach().flatten() for m in mods for p in m.parameters()] + [agent.log_alpha.detach()])


# ---- maths ----------------------------------------------------------------------------------------
def test_squashed_gaussian_log_prob_matches_torch_transformed_distribution():
    g = torch.Generator().manual_seed(0)
    mean, log_std = torch.randn(64, 3, generator=g), torch.randn(64, 3, generator=g) * 0.5
    noise = torch.randn(64, 3, generator=g)
    a, logp = squashed_gaussian(mean, log_std, noise)
    dist = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()), [torch.distributions.TanhTransform()]
    )
    u = mean + log_std.exp() * noise
    assert torch.allclose(a, torch.tanh(u))
    inside = a.abs().max(dim=1).values < 0.999  # torch's own formula loses precision near +-1
    ref = dist.log_prob(a).sum(-1)
    assert torch.allclose(logp[inside], ref[inside], atol=1e-4)
    # saturated actions stay finite (the softplus form needs no 1e-6 fudge)
    _, logp_far = squashed_gaussian(torch.full((1, 1), 30.0), torch.zeros(1, 1), torch.zeros(1, 1))
    assert torch.isfinite(logp_far).all()


def test_loss_terms_match_hand_computation():
    q = torch.tensor([[1.0, 2.0], [1.5, 1.0]], requires_grad=True)
    q_pi = torch.tensor([3.0, 1.0], requires_grad=True)
    logp_pi = torch.tensor([-1.0, 0.5], requires_grad=True)
    q_omega = torch.tensor([2.5, 1.0], requires_grad=True)
    beta = torch.tensor([0.2, 0.6], requires_grad=True)
    log_alpha = torch.log(torch.tensor([0.1, 0.2])).requires_grad_(True)
    kw = dict(q=q, target=torch.tensor([2.0, 0.0]), q_pi=q_pi, logp_pi=logp_pi, q_omega=q_omega, beta_next=beta,
              advantage=torch.tensor([0.3, -0.2]), not_terminal=torch.tensor([1.0, 0.0]), log_alpha=log_alpha,
              target_entropy=-1.0)
    terms = soft_option_critic_losses(**kw)
    # critic: 1/2 [mean((1-2)^2, (2-0)^2) + mean((1.5-2)^2, (1-0)^2)] = 1/2 (2.5 + 0.625)
    assert terms["critic"].item() == pytest.approx(1.5625)
    # actor: mean(0.1 * -1 - 3, 0.2 * 0.5 - 1)
    assert terms["actor"].item() == pytest.approx(-2.0)
    # option value: regressed on q_pi - alpha logp = (3.1, 0.9): 1/2 mean(0.6^2, 0.1^2)
    assert terms["option_value"].item() == pytest.approx(0.0925)
    # termination: mean(0.2 * 0.3 * 1, 0.6 * -0.2 * 0) (a terminal next state contributes nothing)
    assert terms["termination"].item() == pytest.approx(0.03)
    # alpha: -mean(log 0.1 (-1 - 1), log 0.2 (0.5 - 1))
    assert terms["alpha"].item() == pytest.approx(-(-2 * math.log(0.1) - 0.5 * math.log(0.2)) / 2)
    sum(terms.values()).backward()
    assert beta.grad.tolist() == pytest.approx([0.15, 0.0])  # beta rises where continuing is worse
    assert q_pi.grad.tolist() == pytest.approx([-0.5, -0.5])  # the option-value target carries no gradient
    assert log_alpha.grad.tolist() == pytest.approx([1.0, 0.25])  # alpha falls while entropy is above target
    assert q_omega.grad.tolist() == pytest.approx([-0.3, 0.05])
    # importance weights scale each transition's critic error
    weighted = soft_option_critic_losses(**{**kw, "weights": torch.tensor([2.0, 0.0])})
    assert weighted["critic"].item() == pytest.approx(0.5 * ((2 * 1 + 0) / 2 + (2 * 0.25 + 0) / 2))


def test_ensemble_matches_a_loop_over_members():
    torch.manual_seed(0)
    net = EnsembleMLP(3, 4, [8, 8], 2, "relu")
    x_shared, x_own = torch.randn(5, 4), torch.randn(3, 5, 4)

    def member(e, x):
        for j, (w, b) in enumerate(zip(net.weights, net.biases)):
            x = F.linear(x, w[e].T, b[e, 0])
            if j < len(net.weights) - 1:
                x = torch.relu(x)
        return x

    out_shared, out_own = net(x_shared), net(x_own)
    assert out_shared.shape == (3, 5, 2) and out_own.shape == (3, 5, 2)
    for e in range(3):
        assert torch.allclose(out_shared[e], member(e, x_shared), atol=1e-6)
        assert torch.allclose(out_own[e], member(e, x_own[e]), atol=1e-6)
    # detach_params: same values, gradients to the input only
    x = x_shared.clone().requires_grad_(True)
    y = net(x, detach_params=True)
    assert torch.allclose(y, out_shared)
    y.sum().backward()
    assert x.grad is not None and all(p.grad is None for p in net.parameters())
    # members start independently
    assert not torch.allclose(net.weights[0][0], net.weights[0][1])


def test_soft_update_is_polyak_averaging():
    a, b = EnsembleMLP(2, 3, [4], 1), EnsembleMLP(2, 3, [4], 1)
    before = [p.clone() for p in a.parameters()]
    soft_update(a, b, 0.25)
    for p0, p, s in zip(before, a.parameters(), b.parameters()):
        assert torch.allclose(p, 0.75 * p0 + 0.25 * s)


# ---- the agent ------------------------------------------------------------------------------------
def test_batch_groups_follow_the_options():
    agent = hrlkit.SoftOptionCritic("Pendulum-v1", seed=0, learn_from_all_data=False, **{**SMALL, "learning_starts": 10_000})
    agent.learn(400, progress=False, eval_every=None, checkpoint_every=None, tensorboard=False, log_every=400,
                run_dir=None)
    assert len(agent.buffer) == 400 and agent.num_updates == 0  # still in the random warm-up
    assert all(agent.buffer.count(option=k) > 0 for k in range(4))
    batch = agent._sample()
    assert batch["obs"].shape == (16, 3)
    np.testing.assert_array_equal(batch["option"], np.repeat(np.arange(4), 4))  # group w holds option w's rows
    np.testing.assert_array_equal(agent.group_options.numpy(), np.repeat(np.arange(4), 4))
    q = torch.arange(2 * 16 * 4, dtype=torch.float32).view(2, 16, 4)
    own = agent._own(q)
    assert torch.equal(own, q[:, torch.arange(16), agent.group_options])
    # all-data mode deals the (position-ordered) rows to the options in turn
    agent.config.learn_from_all_data = True
    dealt = agent._sample()
    assert dealt["obs"].shape == (16, 3)


def test_terminations_follow_the_advantage_on_a_toy_problem():
    """Option 0 is the better option for x < 0, option 1 for x > 0 (fixed option values).
    Training beta with the library's kernel and loss must make each option terminate where the
    other is better and continue where it is the best: beta is stuck neither at 0 nor at 1."""
    torch.manual_seed(0)
    net = EnsembleMLP(1, 1, [16], 2, "tanh")
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    x = torch.linspace(-1, 1, 64)[:, None]
    q_omega = torch.cat([-x, x], dim=1) * 2.0  # Q_Omega(x, 0) = -2x, Q_Omega(x, 1) = 2x
    for _ in range(200):
        beta = torch.sigmoid(net(x)[0])  # [64, 2]
        loss = 0.0
        for w in range(2):
            t = soft_option_targets(
                torch.zeros(2, 64), torch.zeros(64), q_omega, beta[:, w].detach(), torch.full((64,), w),
                torch.zeros(64), torch.full((64,), 0.99), torch.ones(2), option_temperature=2.0, deliberation_cost=0.01,
            )
            loss = loss + soft_option_critic_losses(
                q=torch.zeros(2, 64), target=t.target, q_pi=torch.zeros(64), logp_pi=torch.zeros(64),
                q_omega=torch.zeros(64), beta_next=beta[:, w], advantage=t.advantage, not_terminal=torch.ones(64),
                log_alpha=torch.zeros(64), target_entropy=0.0,
            )["termination"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    beta = torch.sigmoid(net(x)[0]).detach()
    left, right = x[:, 0] < -0.2, x[:, 0] > 0.2
    assert beta[left, 0].mean() < 0.1 and beta[right, 0].mean() > 0.9
    assert beta[left, 1].mean() > 0.9 and beta[right, 1].mean() < 0.1
    assert 0.3 < beta.mean() < 0.7


def test_option_health_is_logged(tmp_path):
    agent = hrlkit.SoftOptionCritic("Pendulum-v1", seed=0, **SMALL)
    agent.learn(600, run_dir=str(tmp_path / "run"), progress=False, log_every=200, eval_every=300, eval_episodes=1,
                checkpoint_every=None, tensorboard=False)
    header = (tmp_path / "run" / "progress.csv").read_text().splitlines()[0].split(",")
    for col in ("losses/critic", "losses/actor", "losses/termination", "losses/option_value", "options/share_0",
                "options/mean_duration", "options/termination_rate", "options/alpha_3", "eval/mean_return"):
        assert col in header
    assert agent.num_updates == 500  # one gradient step per env step after learning_starts


def test_utd_ratio_counts_gradient_steps():
    agent = hrlkit.SoftOptionCritic("Pendulum-v1", seed=0, num_envs=2, utd_ratio=0.5, **SMALL)
    calls = []
    original = agent._gradient_step
    agent._gradient_step = lambda: calls.append(1) or original()
    agent.learn(300, progress=False, eval_every=None, checkpoint_every=None, tensorboard=False, log_every=300,
                run_dir=None)
    assert len(calls) == 100  # 0.5 per env step over the 200 steps after learning_starts


def test_resume_gives_the_same_parameters_as_not_stopping(tmp_path):
    kw = dict(seed=3, save_replay=True, **SMALL)
    straight = hrlkit.SoftOptionCritic("Pendulum-v1", **kw)
    straight.learn(400, run_dir=str(tmp_path / "a"), progress=False, log_every=100, eval_every=200,
                   eval_episodes=1, checkpoint_every=200, tensorboard=False)
    resumed = hrlkit.SoftOptionCritic.load(str(tmp_path / "a" / "checkpoints" / "step_200.pt"), trust_pickle=True)
    assert resumed.global_step == 200 and len(resumed.buffer) == 200
    resumed.learn(400, run_dir=str(tmp_path / "b"), progress=False, log_every=100, eval_every=200,
                  eval_episodes=1, checkpoint_every=200, tensorboard=False)
    assert torch.equal(_params(straight), _params(resumed))


def test_checkpoint_without_replay_is_smaller_and_still_loads(tmp_path):
    agent = hrlkit.SoftOptionCritic("Pendulum-v1", seed=0, **SMALL)
    agent.learn(200, run_dir=str(tmp_path / "a"), progress=False, eval_every=None, checkpoint_every=None,
                tensorboard=False)
    agent.save(str(tmp_path / "plain.pt"))
    agent.config.save_replay = True
    agent.save(str(tmp_path / "full.pt"))
    assert os.path.getsize(tmp_path / "full.pt") > os.path.getsize(tmp_path / "plain.pt") + 200 * 8 * 4
    loaded = hrlkit.SoftOptionCritic.load(str(tmp_path / "plain.pt"))
    assert len(loaded.buffer) == 0 and torch.equal(_params(loaded), _params(agent))
    obs = np.zeros((3, 3), np.float32)
    a1, s1 = agent.predict(obs)
    a2, s2 = loaded.predict(obs)
    np.testing.assert_array_equal(a1, a2)
    assert np.all(np.abs(a1) <= 2.0) and a1.shape == (3, 1)
    a3, _ = loaded.predict(obs, s2, deterministic=False)
    assert np.all(np.abs(a3) <= 2.0)


@pytest.mark.parametrize("kw, key", [
    (dict(batch_size=10), "batch_size"),
    (dict(num_options=0), "num_options"),
    (dict(tau=0.0), "tau"),
    (dict(option_value="max"), "option_value"),
    (dict(option_temperature=-1.0), "option_temperature"),
    (dict(utd_ratio=0.0), "utd_ratio"),
    (dict(option_hidden_sizes=[]), "option_hidden_sizes"),
])
def test_bad_hyperparameters_name_the_key(kw, key):
    with pytest.raises(ConfigError, match=key):
        hrlkit.SoftOptionCritic("Pendulum-v1", **kw)


def test_discrete_actions_are_refused():
    with pytest.raises(ConfigError, match="bounded flat Box action space"):
        hrlkit.SoftOptionCritic("CartPole-v1")


def test_cli_trains_and_evaluates(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert cli(["train", "soft-option-critic", "--env", "Pendulum-v1", "--total-steps", "300", "--quiet",
                "--set", "hidden_sizes=32,32", "batch_size=16", "learning_starts=100", "--run-dir", run,
                "--log-every", "100", "--eval-every", "300", "--eval-episodes", "1", "--no-tensorboard"]) == 0
    assert json.loads(open(os.path.join(run, "config.json")).read())["algo"] == "soft-option-critic"
    assert cli(["eval", run, "--episodes", "1"]) == 0
    assert len(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["returns"]) == 1
    with pytest.raises(ValueError, match="expected 'option-critic'"):
        hrlkit.OptionCritic.load(os.path.join(run, "checkpoints", "latest.pt"))


# ---- learning --------------------------------------------------------------------------------------
def test_learns_pendulum():
    """Fixed seed, [64, 64] networks: from about -1400 (random) to better than -400 in 8k steps
    (measured: -128, about 35 s on 2 cores)."""
    torch.set_num_threads(1)
    agent = hrlkit.SoftOptionCritic("Pendulum-v1", seed=0, hidden_sizes=[64, 64], learning_starts=500)
    agent.learn(8_000, progress=False, eval_every=None, checkpoint_every=None, tensorboard=False, log_every=4_000,
                run_dir=None)
    returns = hrlkit.runtime.evaluation.evaluate(agent, 5)
    assert returns.mean() >= -400, returns


def test_video_records_mp4_with_option_overlay(tmp_path):
    pytest.importorskip("moviepy")
    pytest.importorskip("pygame")
    agent = hrlkit.SoftOptionCritic("Pendulum-v1", seed=0, **SMALL)
    agent.learn(200, run_dir=str(tmp_path / "run"), progress=False, eval_every=200, eval_episodes=1,
                checkpoint_every=None, tensorboard=False, video=True)
    videos = list((tmp_path / "run" / "videos").glob("*.mp4"))
    assert videos and all(v.stat().st_size > 0 for v in videos)
