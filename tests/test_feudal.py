"""FeUdal Networks: the transition gradient, the kernel's terms on the rollout, the recurrent
recomputation matching what acted, the goal mattering, actions, pixels, checkpoints and the CLI.
(The dilated LSTM's bookkeeping and the intrinsic-reward kernel against its reference are in
tests/test_dilated_lstm.py and tests/test_targets.py.)"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import hrlkit
from hrlkit import targets
from hrlkit.agents import feudal as feudal_mod
from hrlkit.agents.feudal import transition_loss
from hrlkit.cli import main as cli
from hrlkit.runtime.config import ConfigError

SMALL = dict(num_envs=2, rollout_steps=6, horizon=3, state_dim=8, goal_embedding=4, hidden_sizes=[16])
ONE_PASS = dict(update_epochs=1, num_minibatches=1)  # the A2C rule: one gradient step per rollout
QUIET = dict(progress=False, eval_every=None, checkpoint_every=None, tensorboard=False, log_every=100)


def _params(agent) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in agent.net.parameters()])


def _act_one_rollout(agent) -> None:
    obs = agent.obs
    for _ in range(agent.config.rollout_steps):
        a = agent.act(obs)
        nxt, r, te, tr, _ = agent.envs.step(a)
        agent.observe(obs, a, r, nxt, te, tr)
        agent.obs = obs = nxt
    assert agent.ready()


# ---- the manager's transition policy gradient --------------------------------------------------------
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_transition_gradient_turns_the_goal_towards_good_directions(sign):
    direction = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # the second has no direction: left out
    g = torch.tensor([[0.0, 1.0], [1.0, 0.0]], requires_grad=True)
    adv = torch.tensor([sign, 5.0])
    loss = transition_loss(direction, g, adv, torch.tensor([True, True]))
    loss.backward()
    stepped = g.detach() - 0.1 * g.grad
    cos = float(torch.nn.functional.cosine_similarity(stepped[:1], direction[:1]))
    assert (cos > 0) == (sign > 0)  # positive advantage: the goal turns towards s_{t+c} - s_t
    assert torch.equal(g.grad[1], torch.zeros(2))  # zero-norm direction: no gradient
    # the direction is a constant, and masked steps contribute nothing
    d = direction.clone().requires_grad_(True)
    transition_loss(d, g.detach().requires_grad_(True), adv, torch.tensor([True, True])).backward()
    assert d.grad is None or torch.equal(d.grad, torch.zeros_like(d))
    masked = transition_loss(direction, g, adv, torch.tensor([False, False]))
    assert masked.item() == 0.0


# ---- the rollout ------------------------------------------------------------------------------------
def test_update_recomputes_exactly_what_acted_and_feeds_the_kernel():
    agent = hrlkit.FeudalNetwork("CartPole-v1", seed=0, **SMALL, **ONE_PASS)
    seen_dists, kernel_calls = [], []
    orig_dist, orig_terms = agent._dist, targets.feudal_terms

    def spy_dist(out):
        seen_dists.append(out.detach().clone())
        return orig_dist(out)

    def spy_terms(states, goals, starts, *, c, **kw):
        kernel_calls.append((states.clone(), goals.clone(), starts.clone(), c))
        return orig_terms(states, goals, starts, c=c, **kw)

    agent._dist = spy_dist
    feudal_mod.targets.feudal_terms = spy_terms
    try:
        obs = agent.obs
        ends_seen = False
        for _ in range(SMALL["rollout_steps"] * 4):  # several rollouts, with episode ends inside
            a = agent.act(obs)
            nxt, r, te, tr, _ = agent.envs.step(a)
            done = te | tr
            agent.observe(obs, a, r, nxt, te, tr)
            agent.obs = obs = nxt
            if done.any():
                ends_seen = True
                agent.on_episode_start(done)
            if agent.ready():
                acted = seen_dists[-SMALL["rollout_steps"]:]
                starts = torch.stack([st["starts"] for st in agent.rollout])
                seen_dists.clear()
                agent.update()
                recomputed = seen_dists[0].view(SMALL["rollout_steps"], SMALL["num_envs"], -1)
                torch.testing.assert_close(recomputed, torch.stack(acted), rtol=1e-5, atol=1e-6)
                states, goals, kstarts, c = kernel_calls[-1]
                assert c == SMALL["horizon"] and states.shape == (c + SMALL["rollout_steps"], 2, 8)
                assert torch.equal(kstarts[c:], starts)  # this rollout's episode starts reach the kernel
                seen_dists.clear()
        assert ends_seen
    finally:
        feudal_mod.targets.feudal_terms = orig_terms


def test_batched_recomputation_is_the_per_step_network():
    """The update's pass over the rollout (perception, Mspace, the LSTMs' input terms and the heads for
    the whole rollout at once; only the recurrences step) gives what the one-step network gives step
    by step, episode starts and the goal window included, and the same gradients: equal up to the
    rounding of matrix products of other shapes (BLAS picks other kernels for 2 rows than for 80)."""
    agent = hrlkit.FeudalNetwork("CartPole-v1", seed=3, **{**SMALL, "rollout_steps": 40})
    obs = agent.obs
    while not agent.ready():
        a = agent.act(obs)
        nxt, r, te, tr, _ = agent.envs.step(a)
        agent.observe(obs, a, r, nxt, te, tr)
        agent.obs = obs = nxt
        if (te | tr).any():
            agent.on_episode_start(te | tr)
    steps = agent.rollout
    assert torch.stack([st["starts"] for st in steps])[1:].any()  # episodes start inside the rollout
    obs = np.concatenate([st["obs"] for st in steps])
    z = agent._features(obs).view(len(steps), SMALL["num_envs"], -1)
    state, rec = agent.rollout_state, []
    for t, st in enumerate(steps):
        rec.append(agent._step(z[t], agent._reset(state, st["starts"]), goal=st["goal"]))
        state = rec[-1].state
    ref = {f: torch.stack([getattr(r, f) for r in rec]) for f in ("s", "g", "vm", "vw", "out")}
    net, s = agent._recompute(steps, obs)
    for name, got in (("s", s), ("g", net.g), ("vm", net.vm), ("vw", net.vw), ("out", net.out)):
        torch.testing.assert_close(got, ref[name], rtol=1e-6, atol=1e-6, msg=name)
    end = agent._step(agent._features(agent.obs), agent._reset(state, torch.as_tensor(agent.starting)))
    torch.testing.assert_close((net.vm_end, net.vw_end), (end.vm, end.vw), rtol=1e-6, atol=1e-6)

    def grads(outs):
        agent.optimizer.zero_grad()
        weights = torch.Generator().manual_seed(0)
        loss = sum((o * torch.randn(o.shape, generator=weights)).sum() for o in outs)
        loss.backward()
        return [p.grad.clone() for p in agent.net.parameters() if p.grad is not None]

    batched = grads([net.g, net.vm, net.vw, net.out])
    per_step = grads([ref["g"], ref["vm"], ref["vw"], ref["out"]])
    assert len(batched) == len(per_step) == sum(1 for _ in agent.net.parameters())
    for a, b in zip(batched, per_step):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_zero_goals_change_the_workers_policy():
    """The worker's policy is softmax(U w) with w = phi(sum of goals): without the manager's goals
    it has no preference at all, so a worker cannot quietly ignore its manager. (The effect on the
    return is for the maze experiment's ablation, once FuN learns there.)"""
    agent = hrlkit.FeudalNetwork("CartPole-v1", seed=0, **SMALL)
    agent.learn(300, run_dir=None, **QUIET)
    obs = np.stack([agent.envs.single_observation_space.sample() * 0.1 for _ in range(32)]).astype(np.float32)

    def probs() -> torch.Tensor:
        seen = []
        orig = agent._dist
        agent._dist = lambda out: seen.append(out) or orig(out)
        try:
            agent.predict(obs, None, deterministic=False)
        finally:
            agent._dist = orig
        return torch.softmax(seen[0], dim=-1)

    with_goals = probs()
    agent.zero_goals = True
    without = probs()
    torch.testing.assert_close(without, torch.full_like(without, 0.5))
    assert (with_goals - 0.5).abs().max() > 1e-3


def test_continuous_actions_stay_in_bounds_and_learn_steps():
    agent = hrlkit.FeudalNetwork("Pendulum-v1", seed=0, **SMALL)
    agent.learn(60, run_dir=None, **QUIET)
    a, state = agent.predict(np.zeros((3, 3), np.float32), None, deterministic=False)
    assert a.shape == (3, 1) and np.all(np.abs(a) <= 2.0)
    a2, _ = agent.predict(np.zeros((3, 3), np.float32), state)
    assert a2.shape == (3, 1)
    assert agent.log_stats() == {}


@pytest.mark.parametrize("bad,match", [({"horizon": 0}, "horizon: expected an int >= 1, got 0"),
                                       ({"gamma_manager": 1.5}, r"gamma_manager: expected a number in \[0, 1\], got 1.5"),
                                       ({"gamma_worker": 1.5}, r"gamma_worker: expected a number in \[0, 1\] or None, got 1.5"),
                                       ({"goal_epsilon": -0.1}, "goal_epsilon"),
                                       ({"intrinsic_coef": -1}, "intrinsic_coef: expected a number >= 0"),
                                       ({"hidden_sizes": [64, 0]}, "hidden_sizes: expected a list of ints >= 1"),
                                       ({"update_epochs": 0}, "update_epochs: expected an int >= 1 or None, got 0"),
                                       ({"num_minibatches": 0}, "num_minibatches: expected an int >= 1 or None, got 0"),
                                       ({"clip_range": 0}, "clip_range: expected a number > 0, got 0"),
                                       ({"reward_scale": 0}, "reward_scale: expected a number > 0, got 0"),
                                       ({"normalize_advantage": "maybe"}, "normalize_advantage: expected a bool"),
                                       ({"normalize_values": "maybe"}, "normalize_values: expected a bool"),
                                       ({"manager_every_epoch": "maybe"}, "manager_every_epoch: expected a bool"),
                                       ({"advantage_std_floor": -1}, "advantage_std_floor: expected a number >= 0 or None, got -1"),
                                       ({"manager_advantage_floor": "maybe"}, "manager_advantage_floor: expected a bool"),
                                       ({"lr_schedule": "cosine"}, r"lr_schedule: expected one of \['constant', 'linear'\]"),
                                       ({"alpha": 0.5}, "alpha: renamed to 'intrinsic_coef'")])
def test_bad_config_names_the_key(bad, match):
    with pytest.raises(ConfigError, match=match):
        hrlkit.FeudalNetwork("CartPole-v1", seed=0, **{**SMALL, **bad})


def test_random_goals_are_unit_and_left_out_of_the_manager_loss():
    agent = hrlkit.FeudalNetwork("CartPole-v1", seed=0, **SMALL, goal_epsilon=1.0)
    _act_one_rollout(agent)
    assert all(bool(st["random_goal"].all()) for st in agent.rollout)
    torch.testing.assert_close(agent.rollout[-1]["goal"].norm(dim=-1), torch.ones(2))
    assert agent.update()["losses/manager_policy"].item() == 0.0


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_feudal_loss_names_every_term_and_update_logs_them(env_id, monkeypatch):
    agent = hrlkit.FeudalNetwork(env_id, seed=0, **SMALL, **ONE_PASS, entropy_coef=0.1, value_coef=0.7)
    seen, orig = [], feudal_mod.feudal_loss
    monkeypatch.setattr(feudal_mod, "feudal_loss", lambda *args, **kw: seen.append(orig(*args, **kw)) or seen[-1])
    _act_one_rollout(agent)
    logged = agent.update()
    (terms,) = seen
    assert all(t.dim() == 0 for t in terms.values())
    expected = (terms["worker_policy"] + terms["manager_policy"] - 0.1 * terms["entropy"]
                + 0.7 * 0.5 * (terms["worker_value"] + terms["manager_value"]))
    torch.testing.assert_close(terms["loss"], expected)
    for key, value in logged.items():  # what update() logs is the loss's own terms
        assert torch.equal(value, terms[key.split("/")[1]].detach())
    assert set(logged) == {"losses/worker_policy", "losses/manager_policy", "losses/value", "losses/entropy",
                           "charts/intrinsic_reward", "charts/manager_advantage"}


# ---- checkpoints, pixels, CLI ----------------------------------------------------------------------
def test_resume_gives_the_same_parameters_as_not_stopping(tmp_path):
    kw = dict(seed=2, **SMALL)
    straight = hrlkit.FeudalNetwork("CartPole-v1", **kw)
    straight.learn(96, run_dir=str(tmp_path / "a"), progress=False, log_every=48, eval_every=None,
                   checkpoint_every=48, tensorboard=False)  # an update every 12 env steps; checkpoints after updates
    resumed = hrlkit.FeudalNetwork.load(str(tmp_path / "a" / "checkpoints" / "step_48.pt"), trust_pickle=True)
    resumed.learn(96, run_dir=str(tmp_path / "b"), progress=False, log_every=48, eval_every=None,
                  checkpoint_every=48, tensorboard=False)
    assert torch.equal(_params(straight), _params(resumed))


def test_pixels_carracing_runs_checkpoints_and_resumes(tmp_path):
    pytest.importorskip("Box2D")
    pytest.importorskip("pygame")
    torch.set_num_threads(1)
    agent = hrlkit.FeudalNetwork("CarRacing-v3", seed=0, num_envs=2, rollout_steps=5, horizon=3, state_dim=16,
                                 goal_embedding=4)
    run = tmp_path / "car"
    agent.learn(30, run_dir=str(run), progress=False, eval_every=None, checkpoint_every=20, tensorboard=False,
                log_every=10)
    assert "losses/manager_policy" in (run / "progress.csv").read_text().splitlines()[0]
    resumed = hrlkit.FeudalNetwork.load(str(run / "checkpoints" / "step_20.pt"))
    resumed.learn(40, run_dir=str(tmp_path / "again"), **QUIET)
    assert resumed.global_step == 40
    a, _ = resumed.predict(resumed.obs[0])
    assert a.shape == (3,) and resumed.action_space.contains(a.astype(np.float32))


def test_cli_trains_feudal(tmp_path):
    run = str(tmp_path / "run")
    assert cli(["train", "feudal", "--env", "hrlkit/FourRooms-v0", "--total-steps", "120", "--quiet", "--run-dir", run,
                "--set", "num_envs=2", "rollout_steps=10", "state_dim=16", "--eval-every", "120", "--eval-episodes",
                "1", "--no-tensorboard", "--log-every", "60"]) == 0
    assert cli(["eval", run, "--episodes", "1"]) == 0


# ---- reward scale and advantage normalization --------------------------------------------------------
def _synthetic_rollout(rewards: np.ndarray, c: int = 2):
    T, n, d = rewards.shape[0], rewards.shape[1], 4
    g = torch.Generator().manual_seed(0)
    batch = feudal_mod.FeudalRollout(
        states=torch.randn(c + T, n, d, generator=g), goals=torch.nn.functional.normalize(torch.randn(c + T, n, d, generator=g), dim=-1),
        starts=torch.zeros(c + T, n, dtype=torch.bool), random_goal=torch.zeros(T, n, dtype=torch.bool),
        actions=torch.randint(0, 3, (T, n), generator=g), rewards=rewards.astype(np.float32),
        terminated=np.zeros((T, n), bool), truncated=np.zeros((T, n), bool))
    zeros = torch.zeros(T, n)
    net = feudal_mod.FeudalOutputs(g=torch.nn.functional.normalize(torch.randn(T, n, d, generator=g), dim=-1).requires_grad_(True),
                                   vm=zeros.clone().requires_grad_(True), vw=zeros.clone().requires_grad_(True),
                                   out=torch.randn(T, n, 3, generator=g).requires_grad_(True),
                                   vm_end=torch.zeros(n), vw_end=torch.zeros(n))
    return batch, net


def _loss(rewards, **cfg):
    batch, net = _synthetic_rollout(rewards)
    config = feudal_mod.FeudalConfig(horizon=2, gamma_worker=0.95, intrinsic_coef=0.0,  # raw A
                                     **{"normalize_advantage": False, "advantage_std_floor": 0.0,
                                        "manager_advantage_floor": True, **cfg})
    return feudal_mod.feudal_loss(batch, net, lambda out: torch.distributions.Categorical(logits=out), config)


def test_reward_scale_is_the_same_as_scaling_the_env_reward():
    r = np.random.default_rng(0).normal(size=(5, 2)) * 10
    scaled, plain = _loss(r, reward_scale=0.1), _loss(r * 0.1)
    for key in ("worker_policy", "manager_policy", "worker_value", "manager_value"):
        torch.testing.assert_close(scaled[key], plain[key])
    assert not torch.allclose(_loss(r)["worker_value"], scaled["worker_value"])


def test_normalized_advantages_make_the_policy_gradients_scale_free():
    r = np.random.default_rng(1).normal(size=(5, 2))
    small, large = _loss(r, normalize_advantage=True), _loss(r * 50, normalize_advantage=True)
    for key in ("worker_policy", "manager_policy"):  # critics at 0: A = R, standardized away
        torch.testing.assert_close(small[key], large[key])
    assert not torch.allclose(_loss(r)["worker_policy"], _loss(r * 50)["worker_policy"])  # without it they scale
    torch.testing.assert_close(large["manager_advantage"], _loss(r * 50)["manager_advantage"])  # logged raw


@pytest.mark.parametrize("scale", [0.01, 50.0])
def test_the_advantage_std_floor_leaves_a_quiet_rollout_unscaled(scale):
    r = np.random.default_rng(2).normal(size=(5, 2)) * scale
    batch, net = _synthetic_rollout(r)

    def adv(**cfg):
        t = feudal_mod.feudal_targets(batch, net, feudal_mod.FeudalConfig(
            horizon=2, gamma_worker=0.95, intrinsic_coef=0.0,
            **{"normalize_advantage": False, "advantage_std_floor": 0.0, "manager_advantage_floor": True, **cfg}))
        return t.adv_w, t.adv_m

    raw, plain, floored = adv(), adv(normalize_advantage=True), adv(normalize_advantage=True, advantage_std_floor=1.0)
    for a, p, f in zip(raw, plain, floored):
        assert (a.std() < 1) == (scale < 1)
        torch.testing.assert_close(p, (a - a.mean()) / a.std())  # unit std whatever the scale
        # the floor: divided by max(std, 1), so a quiet rollout is only centred, a loud one standardized
        torch.testing.assert_close(f, a - a.mean() if scale < 1 else p)
    # manager_advantage_floor=false: the worker's floored, the manager's standardized plainly
    worker_only = adv(normalize_advantage=True, advantage_std_floor=1.0, manager_advantage_floor=False)
    torch.testing.assert_close(worker_only[0], floored[0])
    torch.testing.assert_close(worker_only[1], plain[1])


def test_update_epochs_fix_the_targets_and_clip_the_worker_ratio(monkeypatch):
    agent = hrlkit.FeudalNetwork("CartPole-v1", seed=0, **SMALL, update_epochs=3, num_minibatches=1, clip_range=0.2)
    target_calls, losses, steps = [], [], []
    orig_targets, orig_loss = feudal_mod.feudal_targets, feudal_mod.feudal_loss
    monkeypatch.setattr(feudal_mod, "feudal_targets", lambda *a: target_calls.append(orig_targets(*a)) or target_calls[-1])
    monkeypatch.setattr(feudal_mod, "feudal_loss", lambda *a, **k: losses.append((a, orig_loss(*a, **k))) or losses[-1][1])
    orig_step = agent.optimizer.step
    monkeypatch.setattr(agent.optimizer, "step", lambda *a, **k: steps.append(1) or orig_step(*a, **k))
    _act_one_rollout(agent)
    acted_logp = torch.cat([st["logp"] for st in agent.rollout])
    agent.update()
    assert len(target_calls) == 1 and len(losses) == 3 and len(steps) == 3
    for args, _ in losses:
        assert args[4] is target_calls[0] and torch.equal(args[5], acted_logp)  # same constants every epoch
    first = losses[0][1]["worker_policy"]  # rho = 1 before any step: -mean(A^W)
    torch.testing.assert_close(first, -target_calls[0].adv_w.mean(), rtol=1e-4, atol=1e-5)
    assert not torch.equal(losses[1][1]["worker_policy"], first)  # later epochs see the moved policy


@pytest.mark.parametrize("every", [False, True])
@pytest.mark.parametrize("minibatches", [1, 2])
def test_the_manager_term_joins_the_first_pass_only_unless_asked(monkeypatch, every, minibatches):
    agent = hrlkit.FeudalNetwork("CartPole-v1", seed=0, **{**SMALL, "num_envs": 4}, update_epochs=3,
                                 num_minibatches=minibatches, manager_every_epoch=every)
    grads = []  # the goal head learns from the manager's transition term alone
    orig_step = agent.optimizer.step
    head = agent.net.goal_head.weight
    monkeypatch.setattr(agent.optimizer, "step", lambda *a, **k: grads.append(head.grad is not None and
                                                                              bool(head.grad.abs().sum() > 0))
                        or orig_step(*a, **k))
    _act_one_rollout(agent)
    agent.update()
    assert grads == [True] * (3 * minibatches) if every else [True] * minibatches + [False] * (2 * minibatches)


def test_a_checkpoint_from_before_manager_every_epoch_loads_with_every_pass(tmp_path):
    from _checkpoints import loaded_without

    agent = hrlkit.FeudalNetwork("CartPole-v1", seed=0, **SMALL, update_epochs=2)
    assert agent.config.manager_every_epoch is False
    assert loaded_without(agent, tmp_path, "manager_every_epoch").config.manager_every_epoch is True  # as it trained


def test_a_minibatch_of_envs_recomputes_exactly_their_columns():
    agent = hrlkit.FeudalNetwork("CartPole-v1", seed=0, **{**SMALL, "num_envs": 4})
    _act_one_rollout(agent)
    obs = np.concatenate([st["obs"] for st in agent.rollout])
    with torch.no_grad():
        full, s = agent._recompute(agent.rollout, obs)
        envs = torch.tensor([3, 1])
        sub, s_sub = agent._recompute(agent.rollout, obs, bootstrap=(full.vm_end[envs], full.vw_end[envs]), envs=envs)
    for name in ("g", "vm", "vw", "out"):  # each env's recurrences are its own
        torch.testing.assert_close(getattr(sub, name), getattr(full, name)[:, envs], msg=name)
    torch.testing.assert_close(s_sub, s[:, envs])
    batch = agent._rollout_batch(agent.rollout, s)
    part = feudal_mod._env_slice(batch, np.array([3, 1]))
    assert torch.equal(part.states, batch.states[:, [3, 1]]) and np.array_equal(part.rewards, batch.rewards[:, [3, 1]])


def test_minibatches_split_the_envs_each_pass_with_the_targets_fixed(monkeypatch):
    agent = hrlkit.FeudalNetwork("CartPole-v1", seed=0, **{**SMALL, "num_envs": 4}, num_minibatches=2, update_epochs=2)
    target_calls, losses = [], []
    orig_targets, orig_loss = feudal_mod.feudal_targets, feudal_mod.feudal_loss
    monkeypatch.setattr(feudal_mod, "feudal_targets", lambda *a: target_calls.append(orig_targets(*a)) or target_calls[-1])
    monkeypatch.setattr(feudal_mod, "feudal_loss", lambda *a, **k: losses.append((a, orig_loss(*a, **k))) or losses[-1][1])
    _act_one_rollout(agent)
    acted_logp = torch.cat([st["logp"] for st in agent.rollout]).view(6, 4)
    actions = torch.stack([st["action"] for st in agent.rollout])
    before = _params(agent)
    agent.update()
    assert len(target_calls) == 1 and len(losses) == 4  # one pass fixes the targets; 2 passes x 2 minibatches
    fixed = target_calls[0]
    for epoch in range(2):
        seen = []
        for args, _ in losses[2 * epoch: 2 * epoch + 2]:
            batch, net, _, _, part, logp = args
            assert batch.rewards.shape == (6, 2) and net.vw.shape == (6, 2) and logp.shape == (12,)
            idx = [next(c for c in range(4) if torch.equal(part.ret_w[:, j], fixed.ret_w[:, c])) for j in range(2)]
            torch.testing.assert_close(logp, acted_logp[:, idx].reshape(-1))
            torch.testing.assert_close(part.adv_m, fixed.adv_m[:, idx])  # the env's columns (found by R^W)
            assert torch.equal(batch.actions, actions[:, idx])
            seen += idx
        assert sorted(seen) == [0, 1, 2, 3]  # every env once per pass
    assert not torch.equal(_params(agent), before)
    many = hrlkit.FeudalNetwork("CartPole-v1", seed=0, **SMALL, num_minibatches=5, update_epochs=1)  # > 2 envs: one each
    assert many.config.num_minibatches == 5
    losses.clear()
    _act_one_rollout(many)
    many.update()
    assert [args[0].rewards.shape for args, _ in losses] == [(6, 1), (6, 1)]


def test_a_checkpoint_from_before_minibatches_loads_with_one(tmp_path):
    from _checkpoints import loaded_without

    agent = hrlkit.FeudalNetwork("CartPole-v1", seed=0, **SMALL, num_minibatches=2, update_epochs=2)
    assert loaded_without(agent, tmp_path, "num_minibatches").config.num_minibatches == 1  # as it trained


def test_clipped_worker_term_stops_pushing_past_the_clip():
    r = np.random.default_rng(2).normal(size=(5, 2))
    batch, net = _synthetic_rollout(r)
    cfg = feudal_mod.FeudalConfig(horizon=2, gamma_worker=0.95, intrinsic_coef=0.0, update_epochs=2, clip_range=0.2, normalize_advantage=True,
                                  advantage_std_floor=0.0, manager_advantage_floor=True)
    fixed = feudal_mod.feudal_targets(batch, net, cfg)
    policy = lambda out: torch.distributions.Categorical(logits=out)  # noqa: E731
    logp = policy(net.out.flatten(0, 1)).log_prob(batch.actions.flatten(0, 1)).detach()
    adv = fixed.adv_w.reshape(-1)
    old = logp - torch.where(adv > 0, 1.0, -1.0)  # rho = e on A > 0, 1/e on A < 0: outside the clip, in A's favour
    out = feudal_mod.feudal_loss(batch, net, policy, cfg, fixed, old)
    grad, = torch.autograd.grad(out["worker_policy"], net.out)
    assert torch.count_nonzero(grad) == 0  # every ratio already moved past the clip in its advantage's direction
    inside = feudal_mod.feudal_loss(batch, net, policy, cfg, fixed, logp)  # rho = 1: the plain gradient
    grad, = torch.autograd.grad(inside["worker_policy"], net.out)
    assert torch.count_nonzero(grad) > 0


def test_gae_lambda_gives_both_critics_lambda_returns():
    r = np.random.default_rng(3).normal(size=(6, 2))
    batch, net = _synthetic_rollout(r)
    g = torch.Generator().manual_seed(1)
    net = net._replace(vm=torch.randn(6, 2, generator=g), vw=torch.randn(6, 2, generator=g),
                       vm_end=torch.randn(2, generator=g), vw_end=torch.randn(2, generator=g))
    cfg = lambda lam: feudal_mod.FeudalConfig(horizon=2, gamma_worker=0.95, intrinsic_coef=0.0, normalize_values=False,  # noqa: E731
                                              gae_lambda=lam, normalize_advantage=False)
    nxt_m, nxt_w = torch.cat([net.vm[1:], net.vm_end[None]]), torch.cat([net.vw[1:], net.vw_end[None]])
    rt = torch.as_tensor(r, dtype=torch.float32)
    td = feudal_mod.feudal_targets(batch, net, cfg(0.0))  # lambda = 0: one-step TD targets
    torch.testing.assert_close(td.ret_m, rt + 0.99 * nxt_m)
    torch.testing.assert_close(td.ret_w, rt + 0.95 * nxt_w)
    half, want = feudal_mod.feudal_targets(batch, net, cfg(0.5)).ret_m, None
    for t in reversed(range(6)):  # G_t = r_t + gamma ((1 - lam) V(s_{t+1}) + lam G_{t+1})
        want = rt[t] + 0.99 * net.vm_end if t == 5 else rt[t] + 0.99 * (0.5 * nxt_m[t] + 0.5 * want)
        torch.testing.assert_close(half[t], want)
    one = feudal_mod.feudal_targets(batch, net, cfg(1.0))
    default = feudal_mod.feudal_targets(batch, net, feudal_mod.FeudalConfig(horizon=2, gamma_worker=0.95, intrinsic_coef=0.0,
                                                                            normalize_values=False,
                                                                            normalize_advantage=False))
    assert torch.equal(one.ret_m, default.ret_m) and torch.equal(one.ret_w, default.ret_w)
    with pytest.raises(ConfigError, match="gae_lambda"):
        hrlkit.FeudalNetwork("CartPole-v1", gae_lambda=1.5)


def test_defaults_per_action_space_kind_are_resolved_and_saved(tmp_path):
    """Fields left at None take their action-space kind's value once the env is known (discrete:
    4 passes of 4 minibatches, standardized advantages, the worker's floored at 1, the worker's
    discount 0.99; continuous, and discrete actions over cell indices: one pass, 0.95); what
    the user sets is kept; checkpoints hold the resolved values, and one from before the per-kind
    defaults loads with what it trained with; the pure learning rule refuses a config left unresolved."""
    from _checkpoints import loaded_without
    from hrlkit.agents.feudal import KIND_DEFAULTS

    fields = tuple(KIND_DEFAULTS["discrete"])
    assert set(KIND_DEFAULTS["continuous"]) == set(fields)
    assert all(getattr(hrlkit.FeudalNetwork.Config(), k) is None for k in fields)
    for env, kind in (("CartPole-v1", "discrete"), ("Pendulum-v1", "continuous"),
                      ("hrlkit/FourRoomsMaze-v0", "continuous")):  # cell indices: the one pass
        agent = hrlkit.FeudalNetwork(env, num_envs=2, rollout_steps=4, state_dim=8)
        assert {k: getattr(agent.config, k) for k in fields} == KIND_DEFAULTS[kind]
    mine = hrlkit.FeudalNetwork("CartPole-v1", seed=0, **SMALL, advantage_std_floor=0.5, num_minibatches=2)
    assert (mine.config.advantage_std_floor, mine.config.num_minibatches, mine.config.update_epochs) == (0.5, 2, 4)
    mine.save(str(tmp_path / "now.pt"))
    again = hrlkit.FeudalNetwork.load(str(tmp_path / "now.pt"))
    assert {k: getattr(again.config, k) for k in fields} == {k: getattr(mine.config, k) for k in fields}
    before = loaded_without(hrlkit.FeudalNetwork("CartPole-v1", seed=0, **SMALL), tmp_path, *fields)
    assert {k: getattr(before.config, k) for k in fields} == KIND_DEFAULTS["continuous"]  # the one pass it had
    batch, net = _synthetic_rollout(np.zeros((5, 2)))
    policy = lambda out: torch.distributions.Categorical(logits=out)  # noqa: E731
    with pytest.raises(ConfigError, match="feudal_targets: normalize_advantage is None"):
        feudal_mod.feudal_loss(batch, net, policy, feudal_mod.FeudalConfig(horizon=2))
    with pytest.raises(ConfigError, match="feudal_targets: advantage_std_floor is None"):
        feudal_mod.feudal_targets(batch, net, feudal_mod.FeudalConfig(horizon=2, gamma_worker=0.95, normalize_advantage=True))
    with pytest.raises(ConfigError, match="feudal_targets: gamma_worker is None"):
        feudal_mod.feudal_targets(batch, net, feudal_mod.FeudalConfig(horizon=2, normalize_advantage=False))
    feudal_mod.feudal_targets(batch, net, feudal_mod.FeudalConfig(horizon=2, gamma_worker=0.95, normalize_advantage=False))  # unused
