"""DIAYN: the skill reward, the discriminator on s', the fixed uniform prior, discrete and
continuous actions, checkpoints, the skills command, and a small learning check on PointNav."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch

import hrlkit
from hrlkit import targets
from hrlkit.agents.diayn import diayn_loss
from hrlkit.cli import main as cli
from hrlkit.runtime.config import ConfigError
from hrlkit.skills import (discriminator_accuracy, endpoint_spread, plot_skills, random_endpoints, rollout_skills,
                           skill_accuracies, skill_confusion)

POINT = "hrlkit/PointNav-v0"
SMALL = dict(num_skills=4, hidden_sizes=[32, 32], discriminator_hidden_sizes=[32, 32], batch_size=32,
             learning_starts=64, buffer_size=10_000)
QUIET = dict(progress=False, eval_every=None, checkpoint_every=None, tensorboard=False, log_every=100)


def _params(agent) -> torch.Tensor:
    mods = (agent.actor, agent.critic, agent.critic_target, agent.discriminator)
    return torch.cat([p.detach().reshape(-1) for m in mods for p in m.parameters()])


def _filled(seed=0, steps=200, **kw):
    agent = hrlkit.DIAYN(POINT, seed=seed, **{**SMALL, **kw})
    agent.learn(steps, run_dir=None, **QUIET)
    return agent


# ---- the reward and the discriminator ---------------------------------------------------------------
def test_discriminator_is_trained_on_next_states():
    agent = _filled()
    seen, sampled = [], []
    orig_logits, orig_sample = agent.discriminator_logits, agent.buffer.sample

    def spy_logits(x):
        seen.append(x.detach().clone())
        return orig_logits(x)

    def spy_sample(n, **kw):
        b = orig_sample(n, **kw)
        sampled.append({k: torch.as_tensor(v).clone() for k, v in b.items()})
        return b

    agent.discriminator_logits, agent.buffer.sample = spy_logits, spy_sample
    stats = agent._gradient_step()
    batch = sampled[0]
    assert len(seen) == 1 and torch.equal(seen[0], batch["next_obs"])  # s', not s
    assert not torch.equal(seen[0], batch["obs"])
    assert torch.isfinite(stats["charts/skill_reward"])
    assert stats["charts/skill_reward"].item() <= math.log(SMALL["num_skills"]) + 1e-6  # log q <= 0


def test_skill_reward_formula_matches_log_softmax_plus_log_z():
    torch.manual_seed(0)
    logits = torch.randn(64, 6)
    z = torch.randint(0, 6, (64,))
    out = targets.skill_rewards(logits, z)
    want = torch.log_softmax(logits, 1).gather(1, z[:, None])[:, 0] + math.log(6)
    torch.testing.assert_close(out.reward, want)
    # a discriminator that cannot tell skills apart pays exactly 0: log(1/Z) - log p(z), p uniform
    flat = targets.skill_rewards(torch.zeros(5, 6), torch.arange(5))
    torch.testing.assert_close(flat.reward, torch.zeros(5))


def test_gradient_step_reward_equals_the_kernel_on_the_same_batch():
    agent = _filled(seed=1)
    batch = agent.buffer.sample(SMALL["batch_size"])
    agent.buffer.sample = lambda n, **kw: batch  # the step sees exactly this batch
    with torch.no_grad():
        logits = agent.discriminator_logits(torch.as_tensor(batch["next_obs"]))
        want = targets.skill_rewards(logits, torch.as_tensor(batch["option"])).reward.mean()
    stats = agent._gradient_step()
    torch.testing.assert_close(stats["charts/skill_reward"], want)


def _loss(agent, batch):
    return diayn_loss(batch, actor=agent.actor, critic=agent.critic, critic_target=agent.critic_target,
                      discriminator=agent.discriminator_logits, log_alpha=agent.log_alpha, cfg=agent.config,
                      target_entropy=agent.target_entropy, discrete=agent.discrete)


@pytest.mark.parametrize("env", [POINT, "hrlkit/FourRooms-v0"])
def test_each_loss_term_trains_only_its_own_network(env):
    agent = hrlkit.DIAYN(env, seed=0, autotune_entropy_coef=True, **SMALL)
    agent.learn(100, run_dir=None, **QUIET)
    batch = {k: torch.as_tensor(v) for k, v in agent.buffer.sample(SMALL["batch_size"]).items()}
    nets = {"actor": agent.actor, "critic": agent.critic, "critic_target": agent.critic_target,
            "discriminator": agent.discriminator, "log_alpha": agent.log_alpha}
    for term, trains in (("critic", "critic"), ("actor", "actor"), ("discriminator", "discriminator"),
                         ("alpha", "log_alpha")):
        agent.optimizer.zero_grad(set_to_none=True)
        _loss(agent, batch)[term].backward()
        for name, net in nets.items():
            params = [net] if isinstance(net, torch.Tensor) else list(net.parameters())
            assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params) == (name == trains), \
                (term, name)
    out = _loss(agent, batch)
    want = out["critic"] + out["actor"] + out["discriminator"] + out["alpha"]  # autotune_alpha: alpha counts
    torch.testing.assert_close(out["total"], want)


def test_discrete_target_is_the_expected_soft_value_of_the_next_state():
    agent = hrlkit.DIAYN("hrlkit/FourRooms-v0", seed=1, extrinsic_coef=0.5, **SMALL)
    agent.learn(100, run_dir=None, **QUIET)
    b = {k: torch.as_tensor(v) for k, v in agent.buffer.sample(SMALL["batch_size"]).items()}
    out = _loss(agent, b)
    with torch.no_grad():
        x = torch.cat([b["next_obs"], torch.nn.functional.one_hot(b["option"], SMALL["num_skills"]).float()], dim=-1)
        logp = torch.log_softmax(agent.actor(x)[0], dim=-1)
        alpha = agent.log_alpha.exp()
        v = (logp.exp() * (agent.critic_target(x).min(dim=0).values - alpha * logp)).sum(-1)
        r = torch.log_softmax(agent.discriminator_logits(b["next_obs"]), 1).gather(1, b["option"][:, None])[:, 0]
        r = r + math.log(SMALL["num_skills"]) + 0.5 * b["reward"]
        want = r + agent.config.gamma * (1.0 - b["terminated"].float()) * v
    torch.testing.assert_close(out["skill_reward"], r)
    torch.testing.assert_close(out["target"], want)
    # ignore_terminations: every row bootstraps, the terminal ones included
    b["terminated"] = torch.arange(len(b["terminated"])) % 2 == 0
    agent.config.ignore_terminations = True
    torch.testing.assert_close(_loss(agent, b)["target"], r + agent.config.gamma * v)
    agent.config.ignore_terminations = False
    assert not torch.allclose(_loss(agent, b)["target"], r + agent.config.gamma * v)


def test_uniform_prior_is_fixed_and_every_episode_start_draws_a_skill():
    agent = hrlkit.DIAYN(POINT, seed=2, num_envs=4, **{k: v for k, v in SMALL.items() if k != "num_skills"},
                         num_skills=5)
    counts = np.zeros(5)
    for _ in range(2000):
        agent.on_episode_start(np.array([True, False, True, True]))
        counts += np.bincount(agent.skills[[0, 2, 3]], minlength=5)
    expected = counts.sum() / 5
    assert ((counts - expected) ** 2 / expected).sum() < 20.5  # chi-square, 4 dof, p ~ 4e-4
    before = agent.skills.copy()
    agent.on_episode_start(np.array([False, True, False, False]))
    assert agent.skills[0] == before[0] and agent.skills[2] == before[2] and agent.skills[3] == before[3]
    # nothing learns the prior: no module holds it, and the reward's offset is log Z
    names = [n for m in agent.modules().values() if hasattr(m, "named_parameters") for n, _ in m.named_parameters()]
    assert not any("prior" in n for n in names)


def test_observe_tags_each_transition_with_the_skill_that_acted():
    agent = hrlkit.DIAYN(POINT, seed=3, num_envs=2, **SMALL)
    agent.skills[:] = [1, 3]
    obs = agent.obs
    actions = agent.act(obs)
    nxt, r, te, tr, _ = agent.envs.step(actions)
    agent.observe(obs, actions, r, nxt, te, tr)
    rows = agent.buffer.get(np.arange(2))
    np.testing.assert_array_equal(rows["option"], [1, 3])
    np.testing.assert_allclose(rows["next_obs"], nxt)


# ---- actions, prediction, config --------------------------------------------------------------------
def test_discrete_actions_and_discrete_observations_train():
    agent = hrlkit.DIAYN("hrlkit/FourRooms-v0", seed=0, **SMALL)
    assert agent.discrete and agent.obs_dim == 104
    agent.learn(300, run_dir=None, **QUIET)
    stats = agent.update() if agent.ready() else agent._gradient_step()
    assert all(torch.isfinite(v) for v in stats.values())
    actions, state = agent.predict(np.array([0, 5, 9]), {"skill": [0, 1, 2]})
    assert actions.shape == (3,) and set(actions.tolist()) <= {0, 1, 2, 3}
    np.testing.assert_array_equal(state["skill"], [0, 1, 2])


def test_predict_skills_from_state_and_errors():
    agent = hrlkit.DIAYN(POINT, seed=0, **SMALL)
    obs = np.zeros((3, 2), np.float32)
    a, s = agent.predict(obs, 2)
    assert a.shape == (3, 2) and np.all(np.abs(a) <= 1.0) and s["skill"].tolist() == [2, 2, 2]
    a0, _ = agent.predict(obs, {"skill": [0, 0, 0]})
    a1, _ = agent.predict(obs, {"skill": [1, 1, 1]})
    assert not np.allclose(a0, a1)  # the skill is an input
    _, fresh = agent.predict(obs)
    assert fresh["skill"].shape == (3,)
    before = agent.rng.bit_generator.state
    agent.predict(obs)
    assert agent.rng.bit_generator.state == before  # evaluation draws from its own stream
    with pytest.raises(ValueError, match="skill ids"):
        agent.predict(obs, {"skill": [0, 9, 1]})
    assert agent.active_option({"skill": np.array([3])}) == 3


@pytest.mark.parametrize("bad,match", [
    ({"num_skills": 1}, "num_skills"),
    ({"discriminator_dims": [0, 5]}, "discriminator_dims"),
    ({"discriminator_dims": [0, 0]}, "discriminator_dims"),
    ({"entropy_coef": 0.0}, "entropy_coef: expected a number > 0, got 0.0"),
    ({"alpha": 0.1}, "alpha: renamed to 'entropy_coef'"),
    ({"discriminator_lr": 1e-3}, "discriminator_lr: renamed to 'discriminator_learning_rate'"),
    ({"hidden_sizes": []}, "hidden_sizes: expected a non-empty list of ints >= 1"),
    ({"ignore_terminations": "maybe"}, "ignore_terminations: expected a bool"),
    ({"utd_ratio": 0.0}, "utd_ratio: expected a number > 0, got 0.0"),  # DIAYN declares its own default
    ({"discriminator_hidden_sizes": [0]}, r"discriminator_hidden_sizes: expected a non-empty list of ints >= 1, got \[0\]"),
    ({"discriminator_hidden_sizes": []}, "discriminator_hidden_sizes: expected a non-empty list of ints >= 1, got"),
])
def test_bad_config_names_the_key(bad, match):
    with pytest.raises(ConfigError, match=match):
        hrlkit.DIAYN(POINT, seed=0, **{**SMALL, **bad})


def test_default_takes_half_a_gradient_step_per_env_step_and_saved_runs_keep_theirs(tmp_path):
    agent = hrlkit.DIAYN(POINT, seed=0, **SMALL)
    assert agent.config.utd_ratio == 0.5
    agent.learn(SMALL["learning_starts"] + 200, run_dir=None, **QUIET)
    assert agent.num_updates == 100  # 0.5 per env step over the 200 steps after learning_starts
    before = hrlkit.DIAYN(POINT, seed=0, utd_ratio=1.0, **SMALL)  # saved with the default before session 22
    before.save(str(tmp_path / "before.pt"))
    assert hrlkit.DIAYN.load(str(tmp_path / "before.pt")).config.utd_ratio == 1.0
    assert hrlkit.SoftOptionCritic("Pendulum-v1", seed=0).config.utd_ratio == 1.0  # SAC's own default stays


def test_default_discriminator_is_64_by_64_and_saved_runs_keep_theirs(tmp_path):
    agent = hrlkit.DIAYN(POINT, seed=0)
    assert agent.config.discriminator_hidden_sizes == [64, 64]
    widths = [p.shape[-1] for name, p in agent.discriminator.named_parameters() if name.startswith("weights.")]
    assert widths == [64, 64, 10]  # the built network: two hidden layers of 64, one logit per skill
    before = hrlkit.DIAYN(POINT, seed=0, discriminator_hidden_sizes=[256, 256])  # the default before session 23
    before.save(str(tmp_path / "before.pt"))
    loaded = hrlkit.DIAYN.load(str(tmp_path / "before.pt"))
    assert loaded.config.discriminator_hidden_sizes == [256, 256]
    saved = loaded.discriminator.state_dict()
    for name, value in before.discriminator.state_dict().items():
        assert torch.equal(saved[name], value)


def test_discriminator_dims_restrict_what_the_discriminator_reads():
    agent = hrlkit.DIAYN(POINT, seed=0, **SMALL, discriminator_dims=[1])
    x = torch.tensor([[0.3, -0.2], [0.9, -0.2]])
    out = agent.discriminator_logits(x)
    torch.testing.assert_close(out[0], out[1])  # only y is read


# ---- checkpoints and the CLI ------------------------------------------------------------------------
def test_resume_gives_the_same_parameters_as_not_stopping(tmp_path):
    kw = dict(seed=4, save_replay=True, **SMALL)
    straight = hrlkit.DIAYN(POINT, **kw)
    straight.learn(300, run_dir=str(tmp_path / "a"), progress=False, log_every=100, eval_every=150, eval_episodes=1,
                   checkpoint_every=150, tensorboard=False)
    resumed = hrlkit.DIAYN.load(str(tmp_path / "a" / "checkpoints" / "step_150.pt"), trust_pickle=True)
    assert resumed.global_step == 150 and len(resumed.buffer) == 150
    resumed.learn(300, run_dir=str(tmp_path / "b"), progress=False, log_every=100, eval_every=150, eval_episodes=1,
                  checkpoint_every=150, tensorboard=False)
    assert torch.equal(_params(straight), _params(resumed))
    np.testing.assert_array_equal(straight.skills, resumed.skills)


def test_cli_trains_and_draws_skills(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert cli(["train", "diayn", "--env", POINT, "--total-steps", "300", "--quiet", "--set", "num_skills=3",
                "hidden_sizes=32,32", "discriminator_hidden_sizes=32,32", "batch_size=16", "learning_starts=100",
                "--run-dir", run, "--log-every", "100", "--eval-every", "300", "--eval-episodes", "1",
                "--no-tensorboard"]) == 0
    capsys.readouterr()
    out = str(tmp_path / "skills.png")
    assert cli(["skills", run, "--out", out, "--episodes", "2"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert os.path.getsize(out) > 10_000 and 0.0 <= report["discriminator_accuracy"] <= 1.0
    assert len(report["returns"]) == 3 and all(len(v) == 2 for v in report["returns"].values())
    oc = str(tmp_path / "oc")
    assert cli(["train", "option-critic", "--env", "CartPole-v1", "--total-steps", "64", "--quiet", "--run-dir", oc,
                "--eval-every", "0", "--no-tensorboard", "--set", "rollout_steps=8"]) == 0
    assert cli(["skills", oc]) == 2
    assert "diayn" in capsys.readouterr().err


def test_skill_plots_for_time_series_envs(tmp_path):
    fake = {k: [{"obs": np.random.default_rng(k).normal(size=(20, 3)).astype(np.float32), "return": 0.0,
                 "x": np.arange(20.0) * k, "xvel": np.full(20, float(k))}] for k in range(3)}
    assert os.path.getsize(plot_skills(fake, str(tmp_path / "mj.png"))) > 5_000
    for ep in fake.values():
        del ep[0]["x"], ep[0]["xvel"]
    assert os.path.getsize(plot_skills(fake, str(tmp_path / "obs.png"))) > 5_000


# ---- learning --------------------------------------------------------------------------------------
def test_skills_become_distinguishable_on_pointnav():
    """Fixed seed, 4 skills, [64, 64]: the discriminator names the skill of fresh deterministic
    rollouts' states far above chance (0.25), and the skills end further apart than random-action
    walks (measured: accuracy 0.84, end-point spread 1.66 vs 0.83 for 4 random walks, about 15 s)."""
    torch.set_num_threads(1)
    agent = hrlkit.DIAYN(POINT, seed=0, num_skills=4, hidden_sizes=[64, 64], discriminator_hidden_sizes=[64, 64],
                         learning_starts=500)
    agent.learn(3_000, run_dir=None, **{**QUIET, "log_every": 1_000})
    rollouts = rollout_skills(agent, 2)
    acc = discriminator_accuracy(agent, rollouts)
    assert acc >= 0.6
    assert endpoint_spread(rollouts) > 1.5 * endpoint_spread(random_endpoints(POINT, None, 4))
    # per skill: each skill's own share, and the overall figure is their mean weighted by its states
    per = discriminator_accuracy(agent, rollouts, per_skill=True)
    assert sorted(per) == [0, 1, 2, 3] and all(0.0 <= v <= 1.0 for v in per.values())
    states = {k: sum(len(ep["obs"]) - 1 for ep in eps) for k, eps in rollouts.items()}
    assert sum(per[k] * states[k] for k in per) / sum(states.values()) == pytest.approx(acc)
    assert per == discriminator_accuracy(agent, {k: rollouts[k] for k in (3, 0, 2, 1)}, per_skill=True)
    # the confusion counts: a row per skill over its states, the diagonal its hits
    counts = skill_confusion(agent, rollouts)
    assert counts.shape == (4, 4) and counts.sum(axis=1).tolist() == [states[k] for k in range(4)]
    assert [counts[k, k] / states[k] for k in range(4)] == pytest.approx([per[k] for k in range(4)])
    assert discriminator_accuracy(agent, rollouts) == skill_accuracies(agent, rollouts, counts=counts)[0]


# ---- the manager over frozen skills -----------------------------------------------------------------
@pytest.fixture(scope="module")
def skills_run(tmp_path_factory):
    run = str(tmp_path_factory.mktemp("skills") / "run")
    agent = hrlkit.DIAYN(POINT, seed=0, **SMALL)
    agent.learn(200, run_dir=run, **{**QUIET, "checkpoint_every": None})
    return run


def test_manager_stores_one_smdp_transition_per_decision(skills_run):
    agent = hrlkit.DIAYNManager("hrlkit/PointNavGoal-v0", seed=0, skills=skills_run, skill_steps=3, gamma=0.5)
    assert agent.num_skills == SMALL["num_skills"]
    frozen = [p.clone() for p in agent.skill_agent.actor.parameters()]
    obs = agent.obs
    for i in range(3):
        a = agent.act(obs)
        nxt, _, _, _, _ = agent.envs.step(a)
        agent.observe(obs, a, np.array([1.0]), nxt, np.array([False]), np.array([False]))
        obs = nxt
        assert len(agent.buffer) == (1 if i == 2 else 0)
    row = agent.buffer.get([0])
    assert row["reward"][0] == pytest.approx(1 + 0.5 + 0.25) and row["discount"][0] == pytest.approx(0.125)
    np.testing.assert_allclose(row["next_obs"][0], obs[0])
    a = agent.act(obs)  # a new decision; the episode ends after one step
    nxt, _, _, _, _ = agent.envs.step(a)
    agent.observe(obs, a, np.array([2.0]), nxt, np.array([True]), np.array([False]))
    row = agent.buffer.get([1])
    assert row["reward"][0] == pytest.approx(2.0) and row["discount"][0] == 0.0
    for _ in range(40):
        agent.buffer.add(**{k: v for k, v in agent.buffer.get([0]).items() if k != "indices"})
    agent.update_credit = 3.0
    stats = agent.update()
    assert torch.isfinite(stats["losses/q"])
    assert all(torch.equal(p, q) for p, q in zip(frozen, agent.skill_agent.actor.parameters()))  # skills stay frozen


def test_manager_predict_rechooses_every_k_steps_and_checkpoints(skills_run, tmp_path):
    agent = hrlkit.DIAYNManager("hrlkit/PointNavGoal-v0", seed=1, skills=skills_run, skill_steps=4)
    obs = np.zeros((1, 2), np.float32)
    state = None
    ages = []
    for _ in range(6):
        _, state = agent.predict(obs, state)
        ages.append(int(state["age"][0]))
    assert ages == [1, 2, 3, 4, 1, 2]
    agent.learn(150, run_dir=str(tmp_path / "m"), **QUIET)
    agent.save(str(tmp_path / "m.pt"))
    again = hrlkit.DIAYNManager.load(str(tmp_path / "m.pt"))
    a1, _ = agent.predict(obs)
    a2, _ = again.predict(obs)
    np.testing.assert_allclose(a1, a2)


def test_manager_errors_name_the_problem(skills_run, tmp_path):
    with pytest.raises(ConfigError, match="skills"):
        hrlkit.DIAYNManager("hrlkit/PointNavGoal-v0", seed=0)
    with pytest.raises(ConfigError, match="skills"):
        hrlkit.DIAYNManager("hrlkit/PointNavGoal-v0", seed=0, skills=str(tmp_path / "nothing"))
    with pytest.raises(ConfigError, match="learned on"):
        hrlkit.DIAYNManager("Pendulum-v1", seed=0, skills=skills_run)
    assert cli(["train", "soft-option-critic", "--env", "Pendulum-v1", "--skills", skills_run, "--quiet"]) == 2


def test_cli_trains_a_manager(skills_run, tmp_path):
    run = str(tmp_path / "mgr")
    assert cli(["train", "diayn-manager", "--skills", skills_run, "--env", "hrlkit/PointNavGoal-v0", "--total-steps",
                "200", "--quiet", "--run-dir", run, "--eval-every", "200", "--eval-episodes", "2",
                "--no-tensorboard", "--log-every", "100"]) == 0
    assert os.path.exists(os.path.join(run, "checkpoints", "latest.pt"))


# ---- pixels ---------------------------------------------------------------------------------------
def test_pixels_carracing_trains_logs_checkpoints_and_resumes(tmp_path):
    pytest.importorskip("Box2D")
    pytest.importorskip("pygame")
    torch.set_num_threads(1)
    kw = dict(num_skills=3, buffer_size=500, batch_size=4, learning_starts=20, hidden_sizes=[16],
              discriminator_hidden_sizes=[16], feature_dim=16)
    agent = hrlkit.DIAYN("CarRacing-v3", seed=0, **kw)
    assert agent.pixels and agent.buffer.spec["obs"] == ((96, 96, 3), "uint8")
    run = tmp_path / "car"
    agent.learn(60, run_dir=str(run), progress=False, eval_every=None, checkpoint_every=30, tensorboard=False,
                log_every=30)
    rows = (run / "progress.csv").read_text().splitlines()
    assert "charts/discriminator_accuracy" in rows[0] and len(rows) >= 3
    before = [p.clone() for p in agent.encoder.parameters()]
    agent.update_credit = 1.0
    agent.update()
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.encoder.parameters()))  # the critic trains it
    resumed = hrlkit.DIAYN.load(str(run / "checkpoints" / "step_30.pt"))
    assert resumed.global_step == 30 and resumed.pixels
    resumed.learn(60, run_dir=str(tmp_path / "again"), progress=False, eval_every=None, checkpoint_every=None,
                  tensorboard=False, log_every=30)
    assert resumed.global_step == 60
    actions, state = resumed.predict(resumed.obs[0], {"skill": [2]})
    assert actions.shape == (3,) and resumed.action_space.contains(actions.astype(np.float32))
    with pytest.raises(ConfigError, match="buffer_size"):
        hrlkit.DIAYN("CarRacing-v3", seed=0, **{**kw, "buffer_size": 10**7})
    with pytest.raises(ConfigError, match="discriminator_dims"):
        hrlkit.DIAYN("CarRacing-v3", seed=0, **{**kw, "discriminator_dims": [0]})


class _UnboundedActions(__import__("gymnasium").Env):
    """A flat Box observation and an action Box without bounds (no squashing possible)."""

    def __init__(self):
        import gymnasium as gym

        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, False, {}


@pytest.mark.parametrize("algo", ["diayn", "feudal", "soft-option-critic"])
def test_unsupported_spaces_are_refused_naming_the_space(algo):
    import gymnasium as gym

    from hrlkit.agents import ALGORITHMS

    if "test/UnboundedActions-v0" not in gym.registry:
        gym.register("test/UnboundedActions-v0", entry_point=_UnboundedActions, max_episode_steps=10)
    cls = ALGORITHMS[algo]
    with pytest.raises(ConfigError, match="action space"):
        cls("test/UnboundedActions-v0", seed=0)
    with pytest.raises(ConfigError, match="observation space"):
        cls("Blackjack-v1", seed=0)  # a Tuple observation


def test_skill_plots_fit_their_axes_and_name_the_dimensions(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from hrlkit.skills import observation_names, telling_dimensions

    rng = np.random.default_rng(0)
    # 5-D states; the skills end apart along dims 3 and 1 only (dim 0 is large but the same for all)
    fake = {}
    for k in range(4):
        obs = rng.normal(size=(30, 5)).astype(np.float32) * 0.1
        obs[:, 0] += 100.0 * np.sin(np.arange(30))
        obs[:, 3] += np.linspace(0, 10 * k, 30)
        obs[:, 1] += np.linspace(0, 3 * (k % 2), 30)
        fake[k] = [{"obs": obs, "return": 0.0}]
    a, b = telling_dimensions(fake)
    assert {a, b} == {1, 3}
    figures = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figures.append(fig))
    names = ["a", "b", "c", "d", "e"]
    assert os.path.getsize(plot_skills(fake, str(tmp_path / "five.png"), dim_names=names)) > 5_000
    plane = figures[-1].axes[0]
    assert (plane.get_xlabel(), plane.get_ylabel()) == (names[a], names[b])
    lo, hi = plane.get_xlim() if a == 3 else plane.get_ylim()
    assert lo < 0 and 30 < hi < 32  # dim 3 runs from about 0 to 30: fitted, not a fixed [-1, 1] box
    # a plane env far from the origin: its box is fitted too
    far = {k: [{"obs": (np.stack([np.linspace(50, 60 + k, 10), np.full(10, -200.0 + k)], 1)).astype(np.float32),
                "return": 0.0}] for k in range(3)}
    plot_skills(far, str(tmp_path / "far.png"))
    ax = figures[-1].axes[0]
    assert ax.get_xlim()[0] > 40 and ax.get_ylim()[1] < -190
    one = {k: [{"obs": np.arange(10, dtype=np.float32)[:, None] * k, "return": 0.0}] for k in range(2)}
    assert os.path.getsize(plot_skills(one, str(tmp_path / "one.png"))) > 5_000
    assert observation_names("Pendulum-v1", 3) == ["cos(theta)", "sin(theta)", "angular velocity"]
    assert observation_names("LunarLander-v3", 8)[:2] == ["x", "y"]
    assert observation_names("gymnasium:Pendulum-v1", 3)[2] == "angular velocity"
    assert observation_names("Pendulum-v1", 4) == ["obs[0]", "obs[1]", "obs[2]", "obs[3]"]  # a wrapper changed it
    assert observation_names(None, 2) == ["obs[0]", "obs[1]"]
