"""PopArt value normalization (``normalize_values``): the statistics, the preserve step, and what
Option-Critic's and FuN's targets become with it (the same targets in units of the returns'
spread), checkpoints and resume."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import hrlkit
from _checkpoints import loaded_without
from hrlkit.agents import feudal as feudal_mod
from hrlkit.agents.option_critic import option_critic_targets
from hrlkit.nets import PopArt
from hrlkit.runtime.config import ConfigError


def _head(seed=0, n_out=3):
    torch.manual_seed(seed)
    head = nn.Linear(5, n_out)
    nn.init.normal_(head.bias)
    return head


def test_first_update_takes_the_batch_statistics_and_later_ones_move_at_the_rate():
    p = PopArt(rate=0.1)
    assert float(p.mean) == 0.0 and float(p.std) == 1.0  # the identity before any update
    x = torch.tensor([1.0, 3.0, 5.0, 7.0]) * 100
    p.update(x, [])
    torch.testing.assert_close(p.mean, x.mean())  # debiased: the first batch's moments exactly
    torch.testing.assert_close(p.std, x.std(unbiased=False))
    y = torch.full((4,), 2000.0)
    p.update(y, [])
    w = 0.1 / (1 - 0.9 ** 2)  # the second batch's debiased weight
    torch.testing.assert_close(p.mean, (1 - w) * x.mean() + w * 2000.0)
    torch.testing.assert_close(p.normalize(p.denormalize(x)), x)
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="rate"):
            PopArt(rate=bad)


def test_update_preserves_every_heads_values_and_normalizes_the_targets():
    p, heads = PopArt(rate=0.3), [_head(0), _head(1)]
    x = torch.randn(16, 5)
    for targets in (torch.randn(64) * 300 - 1000, torch.randn(64) * 5 + 40, torch.randn(64) * 1e-3):
        before = [p.denormalize(h(x)).detach() for h in heads]
        p.update(targets, heads)
        for h, b in zip(heads, before):
            torch.testing.assert_close(p.denormalize(h(x)).detach(), b, rtol=1e-4, atol=1e-3)
    fresh = PopArt(rate=1.0)
    t = torch.randn(256) * 50 + 700
    fresh.update(t, [])
    n = fresh.normalize(t)
    assert abs(float(n.mean())) < 1e-4 and abs(float(n.std(unbiased=False)) - 1) < 1e-4
    for small in (torch.full((8,), 3.0), torch.tensor([0.0, 0.0, 0.01, 0.0])):  # spreads below 1: floored at 1,
        tiny = PopArt(rate=1.0)  # so a sparse reward's near-constant returns are shifted, never blown up
        tiny.update(small, [])
        assert float(tiny.std) == 1.0
        torch.testing.assert_close(tiny.normalize(small), small - small.mean())


def _oc_pair(**kw):
    """Option-Critic without and with normalize_values, the second's Q heads set to the first's
    values in its normalized units (statistics (mu, sigma) put in by hand)."""
    plain = hrlkit.OptionCritic("Pendulum-v1", seed=0, num_envs=2, rollout_steps=4, **kw)
    normed = hrlkit.OptionCritic("Pendulum-v1", seed=0, num_envs=2, rollout_steps=4, normalize_values=True, **kw)
    normed.net.load_state_dict({**plain.net.state_dict(), **{k: v for k, v in normed.net.state_dict().items()
                                                            if k.startswith("popart")}})
    mu, sigma = -300.0, 40.0
    normed.net.popart.moments.copy_(torch.tensor([mu, sigma ** 2 + mu ** 2, 1.0], dtype=torch.float64))
    with torch.no_grad():  # the head's values in normalized units: (Q - mu) / sigma
        normed.net.q.weight.div_(sigma)
        normed.net.q.bias.sub_(mu).div_(sigma)
    normed.target = copy.deepcopy(normed.net).requires_grad_(False)
    return plain, normed


def test_option_critic_targets_are_the_plain_ones_in_units_of_the_new_spread():
    plain, normed = _oc_pair()
    rng = np.random.default_rng(0)
    obs = torch.as_tensor(rng.standard_normal((8, 3)), dtype=torch.float32)
    args = dict(obs=obs, next_obs=obs.flip(0), options=torch.tensor([0, 1, 2, 3] * 2), actions=torch.zeros(8, 1),
                gamma=0.99, epsilon=0.1, deliberation_cost=0.5, fixed_policy=True)
    rewards = (rng.standard_normal((4, 2)) * 3 - 8).astype(np.float32)
    flags = np.zeros((4, 2), dtype=bool)
    a = option_critic_targets(plain.net, plain.target, rewards, flags, flags, **args)
    b = option_critic_targets(normed.net, normed.target, rewards, flags, flags, **args, popart=normed.net.popart)
    p = normed.net.popart
    w = 0.01  # the statistics moved towards this rollout's G_t (debias weight already 1)
    torch.testing.assert_close(p.mean, torch.tensor((1 - w) * -300.0 + w * float(a["returns"].mean())))
    sigma = float(p.std)
    torch.testing.assert_close(b["returns"], p.normalize(a["returns"]), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(b["termination_advantage"], a["termination_advantage"] / sigma, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(b["advantage"], a["advantage"] / sigma, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(b["old_logp"], a["old_logp"])
    # both value heads were rescaled to keep their values (the target's too)
    feats = normed.net.body(obs)
    torch.testing.assert_close(p.denormalize(normed.net.q(feats)), plain.net.q(plain.net.body(obs)), rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(p.denormalize(normed.target.q(normed.target.body(obs))),
                               plain.target.q(plain.target.body(obs)), rtol=1e-4, atol=1e-3)


def test_option_critic_normalize_values_trains_resumes_and_refuses_bias_free_heads(tmp_path):
    kw = dict(seed=1, num_envs=2, rollout_steps=8, normalize_values=True)
    straight = hrlkit.OptionCritic("Pendulum-v1", **kw)
    straight.learn(256, run_dir=str(tmp_path / "a"), progress=False, eval_every=None, checkpoint_every=128,
                   tensorboard=False)
    assert float(straight.net.popart.std) > 1.0  # Pendulum's returns: a spread of tens to hundreds
    resumed = hrlkit.OptionCritic.load(str(tmp_path / "a" / "checkpoints" / "step_128.pt"), trust_pickle=True)
    resumed.learn(256, run_dir=str(tmp_path / "b"), progress=False, eval_every=None, checkpoint_every=128,
                  tensorboard=False)
    for x, y in zip(straight.net.state_dict().values(), resumed.net.state_dict().values()):
        assert torch.equal(x, y)
    with pytest.raises(ConfigError, match=r"normalize_values: .*expected head_bias=True, got head_bias=False"):
        hrlkit.OptionCritic("Pendulum-v1", normalize_values=True, head_bias=False)


def test_feudal_targets_are_the_plain_ones_in_units_of_each_critics_spread():
    from test_feudal import _synthetic_rollout

    r = np.random.default_rng(3).normal(size=(5, 2)) * 30 + 10
    batch, net = _synthetic_rollout(r)
    cfg = feudal_mod.FeudalConfig(horizon=2, gamma_worker=0.95, intrinsic_coef=0.5, normalize_advantage=False)  # A in units of sigma
    pw, pm = PopArt(), PopArt()
    for p, (mu, sigma) in ((pw, (5.0, 3.0)), (pm, (-20.0, 60.0))):
        p.moments.copy_(torch.tensor([mu, sigma ** 2 + mu ** 2, 1.0], dtype=torch.float64))
    # the same critics' values, as the normalized heads would output them
    normed = net._replace(vw=pw.normalize(net.vw), vm=pm.normalize(net.vm), vw_end=pw.normalize(net.vw_end),
                          vm_end=pm.normalize(net.vm_end))
    a, b = feudal_mod.feudal_targets(batch, net, cfg), feudal_mod.feudal_targets(batch, normed, cfg, (pw, pm))
    torch.testing.assert_close(b.ret_w, pw.normalize(a.ret_w))
    torch.testing.assert_close(b.ret_m, pm.normalize(a.ret_m))
    torch.testing.assert_close(b.adv_w, a.adv_w / 3.0)
    torch.testing.assert_close(b.adv_m, a.adv_m / 60.0)
    torch.testing.assert_close(b.mean_adv_m, a.mean_adv_m)  # logged in the reward's units


def test_feudal_normalize_values_moves_the_statistics_after_each_update_and_resumes(tmp_path):
    small = dict(num_envs=2, rollout_steps=6, horizon=2, state_dim=16, goal_embedding=4, hidden_sizes=[16])
    agent = hrlkit.FeudalNetwork("CartPole-v1", seed=2, normalize_values=True, **small)
    agent.learn(12, progress=False, eval_every=None)  # one update: the statistics are the first rollout's
    assert agent.num_updates == 1 and float(agent.net.worker_popart.moments[2]) == pytest.approx(0.01)
    assert float(agent.net.manager_popart.mean) > 0  # CartPole pays +1 per step
    straight = hrlkit.FeudalNetwork("CartPole-v1", seed=2, normalize_values=True, **small)
    straight.learn(96, run_dir=str(tmp_path / "a"), progress=False, eval_every=None, checkpoint_every=48,
                   tensorboard=False)
    resumed = hrlkit.FeudalNetwork.load(str(tmp_path / "a" / "checkpoints" / "step_48.pt"), trust_pickle=True)
    resumed.learn(96, run_dir=str(tmp_path / "b"), progress=False, eval_every=None, checkpoint_every=48,
                  tensorboard=False)
    for x, y in zip(straight.net.state_dict().values(), resumed.net.state_dict().values()):
        assert torch.equal(x, y)


def test_option_critic_default_is_per_action_space_kind():
    assert hasattr(hrlkit.OptionCritic("Pendulum-v1").net, "popart")  # continuous: on
    assert not hasattr(hrlkit.OptionCritic("CartPole-v1").net, "popart")  # discrete: off
    assert hasattr(hrlkit.OptionCritic("CartPole-v1", normalize_values=True).net, "popart")
    assert not hasattr(hrlkit.OptionCritic("Pendulum-v1", normalize_values=False).net, "popart")
    tabular = hrlkit.OptionCritic("hrlkit/FourRooms-v0", hidden_sizes=[], head_bias=False)  # tables: no bias, off
    assert not hasattr(tabular.net, "popart")


def test_a_checkpoint_from_before_normalize_values_rebuilds_the_agent_it_saved(tmp_path):
    """A configuration saved before the field existed lacks it: it loads as the run was (off),
    not as today's default (on for continuous actions)."""
    agent = hrlkit.OptionCritic("Pendulum-v1", seed=0, normalize_values=False, num_envs=2, rollout_steps=4)
    loaded = loaded_without(agent, tmp_path, "normalize_values")
    assert loaded.config.normalize_values is False and not hasattr(loaded.net, "popart")


def test_feudal_default_and_a_checkpoint_from_before_it(tmp_path):
    """FuN normalizes its critics by default; a configuration saved before the field existed
    loads with it off (as that run was trained), and the carracing preset keeps it off."""
    from hrlkit.presets import preset

    small = dict(num_envs=2, rollout_steps=6, horizon=2, state_dim=16, goal_embedding=4, hidden_sizes=[16])
    assert hasattr(hrlkit.FeudalNetwork("CartPole-v1", **small).net, "worker_popart")
    assert preset("carracing", "feudal")["config"]["normalize_values"] is False
    agent = hrlkit.FeudalNetwork("CartPole-v1", seed=0, normalize_values=False, **small)
    loaded = loaded_without(agent, tmp_path, "normalize_values")
    assert loaded.config.normalize_values is False and not hasattr(loaded.net, "worker_popart")
