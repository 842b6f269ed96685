"""Option-Critic: loss terms on a hand-computed example, the runtime around it (autoreset,
checkpoints and resume, config errors, CLI) and a small fixed-seed learning check."""
from __future__ import annotations

import json
import os

import gymnasium as gym
import numpy as np
import pytest
import torch

import hrlkit
from hrlkit import targets
from hrlkit.agents.option_critic import option_critic_loss
from hrlkit.cli import main as cli
from hrlkit.runtime import checkpoint
from hrlkit.runtime.config import ConfigError


# ---- loss terms ---------------------------------------------------------------------------------
def test_loss_terms_match_hand_computation():
    q_w = torch.tensor([1.0, 2.0], requires_grad=True)
    logp = torch.tensor([-0.5, -1.0], requires_grad=True)
    beta = torch.tensor([0.2, 0.9], requires_grad=True)
    terms = option_critic_loss(
        q_w=q_w,
        returns=torch.tensor([2.0, 1.0]),
        logp=logp,
        entropy=torch.tensor([0.7, 0.6]),
        beta_next=beta,
        termination_advantage=torch.tensor([0.3, -0.1]),
        not_terminal=torch.tensor([1.0, 0.0]),
        entropy_coef=0.1,
        critic_coef=0.5,
        termination_coef=2.0,
    )
    # critic: 1/2 mean((2-1)^2, (1-2)^2) = 0.5
    assert terms["critic"].item() == pytest.approx(0.5)
    # policy: -mean(-0.5*1, -1.0*-1) - 0.1*mean(0.7, 0.6) = -0.25 - 0.065
    assert terms["policy"].item() == pytest.approx(-0.315)
    # termination: mean(0.2*0.3*1, 0.9*-0.1*0) = 0.03 (a terminal next state contributes nothing)
    assert terms["termination"].item() == pytest.approx(0.03)
    assert "action_critic" not in terms
    # loss: policy + 0.5 critic + 2 termination
    assert terms["loss"].item() == pytest.approx(-0.315 + 0.25 + 0.06)
    assert terms["entropy"].item() == pytest.approx(0.65) and terms["beta_next"].item() == pytest.approx(0.55)
    terms["loss"].backward()
    # d/d beta = 2 advantage * not_terminal / B: beta rises where the option is worse than V - xi
    assert beta.grad.tolist() == pytest.approx([0.3, 0.0])
    # the advantage carries no gradient into Q through the policy term: d/dq_w from critic only
    assert q_w.grad.tolist() == pytest.approx([-0.25, 0.25])
    assert logp.grad.tolist() == pytest.approx([-0.5, 0.5])


def test_action_critic_and_fixed_advantage_terms():
    """With Q_U the policy's advantage is Q_U - Q (no gradient into either) and Q_U is regressed on
    G_t with the critic's weight; a given (fixed) advantage replaces it, standardized on request."""
    q_w = torch.tensor([1.0, 2.0], requires_grad=True)
    q_u = torch.tensor([3.0, 0.0], requires_grad=True)
    logp = torch.tensor([-0.5, -1.0], requires_grad=True)
    common = dict(q_w=q_w, returns=torch.tensor([2.0, 1.0]), entropy=torch.zeros(2), beta_next=torch.zeros(2),
                  termination_advantage=torch.zeros(2), not_terminal=torch.ones(2), entropy_coef=0.0,
                  critic_coef=0.5, termination_coef=1.0)
    terms = option_critic_loss(logp=logp, q_u=q_u, **common)
    # advantage (2, -2): policy -mean(-0.5*2, -1.0*-2) = -0.5; action critic 1/2 mean(1, 1) = 0.5
    assert terms["policy"].item() == pytest.approx(-0.5)
    assert terms["action_critic"].item() == pytest.approx(0.5)
    assert terms["loss"].item() == pytest.approx(-0.5 + 0.5 * (0.5 + 0.5))
    terms["loss"].backward()
    assert q_u.grad.tolist() == pytest.approx([0.25, -0.25])  # 0.5 * (q_u - G) / B
    assert q_w.grad.tolist() == pytest.approx([-0.25, 0.25])  # the critic term only
    assert logp.grad.tolist() == pytest.approx([-1.0, 1.0])
    # a fixed advantage (3, 1), standardized: (1, -1) / sqrt(2) (unbiased std), with 1e-8 beside it
    logp = torch.tensor([-0.5, -1.0], requires_grad=True)
    option_critic_loss(logp=logp, advantage=torch.tensor([3.0, 1.0]), normalize_advantage=True,
                       **common)["policy"].backward()
    assert logp.grad.tolist() == pytest.approx([-0.5 / 2**0.5, 0.5 / 2**0.5])


# ---- runtime ------------------------------------------------------------------------------------
class CountingEnv(gym.Env):
    """obs = steps taken in this episode; episodes end (terminated) after 3 steps, or are
    truncated by a TimeLimit; lets a test see whether a transition spans two episodes."""

    observation_space = gym.spaces.Box(0, 100, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([float(self.t)], np.float32), 1.0, self.t >= 3, False, {}


gym.register("hrlkit-test/Counting-v0", entry_point=CountingEnv, max_episode_steps=2)
gym.register("hrlkit-test/CountingLong-v0", entry_point=CountingEnv)


@pytest.mark.parametrize("env_id", ["hrlkit-test/Counting-v0", "hrlkit-test/CountingLong-v0"])
def test_no_transition_spans_two_episodes(env_id):
    agent = hrlkit.OptionCritic(env_id, seed=0, num_envs=3, rollout_steps=4)
    seen = []
    original = agent.observe

    def spy(obs, actions, rewards, next_obs, terminated, truncated):
        seen.append((obs.copy(), next_obs.copy(), terminated.copy(), truncated.copy()))
        original(obs, actions, rewards, next_obs, terminated, truncated)

    agent.observe = spy
    agent.learn(120, progress=False, log_every=60, eval_every=None, checkpoint_every=None,
                run_dir=None, tensorboard=False)
    assert seen
    for obs, next_obs, terminated, truncated in seen:
        np.testing.assert_array_equal(next_obs, obs + 1)  # never the reset observation
        assert not (terminated & truncated).any()


def _params(agent):
    return torch.cat([p.detach().flatten() for p in agent.net.parameters()])


def test_resume_gives_the_same_parameters_as_not_stopping(tmp_path):
    kw = dict(seed=3, num_envs=4, rollout_steps=8, num_minibatches=4, update_epochs=2)  # several: the shuffles resume too
    straight = hrlkit.OptionCritic("CartPole-v1", **kw)
    straight.learn(1024, run_dir=str(tmp_path / "a"), progress=False, log_every=256, eval_every=512,
                   eval_episodes=2, checkpoint_every=512, tensorboard=False)
    ckpt = tmp_path / "a" / "checkpoints" / "step_512.pt"
    assert ckpt.exists()
    resumed = hrlkit.OptionCritic.load(str(ckpt), trust_pickle=True)
    assert resumed.global_step == 512
    resumed.learn(1024, run_dir=str(tmp_path / "b"), progress=False, log_every=256, eval_every=512,
                  eval_episodes=2, checkpoint_every=512, tensorboard=False)
    assert torch.equal(_params(straight), _params(resumed))


def test_effective_number_of_options():
    from hrlkit.agents._options import OptionTracker, effective_options

    assert effective_options(np.array([0.25, 0.25, 0.25, 0.25])) == pytest.approx(4.0)
    assert effective_options(np.array([1.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert effective_options(np.array([0.5, 0.5, 0.0])) == pytest.approx(2.0)
    assert effective_options(np.zeros(3)) == 0.0
    # between 1 and K, and below the count of options in use when the shares are uneven
    assert 1.0 < effective_options(np.array([0.94, 0.02, 0.02, 0.02])) < 1.4
    tracker = OptionTracker(num_envs=2, num_options=3)
    rng = np.random.default_rng(0)
    for step in range(10):
        choose = tracker.terminations(np.ones(2), rng)
        tracker.start(choose, np.array([0, 1]) if step % 2 == 0 else np.array([0, 0]))
    stats = tracker.log_stats()  # option 0 ran 15 of 20 steps, option 1 five
    assert stats["options/share_0"] == pytest.approx(0.75) and stats["options/share_1"] == pytest.approx(0.25)
    assert stats["options/effective"] == pytest.approx(np.exp(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25))))


def test_run_directory_contents(tmp_path):
    agent = hrlkit.OptionCritic("CartPole-v1", seed=0, num_envs=2, rollout_steps=4)
    agent.learn(256, run_dir=str(tmp_path / "run"), progress=False, log_every=64, eval_every=128,
                eval_episodes=2, checkpoint_every=128)
    run = tmp_path / "run"
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["algo"] == "option-critic" and cfg["config"]["num_options"] == 4
    header = (run / "progress.csv").read_text().splitlines()[0].split(",")
    for col in ("charts/SPS", "losses/critic", "losses/termination", "options/share_0", "options/effective",
                "options/termination_rate", "eval/mean_return"):
        assert col in header
    assert (run / "checkpoints" / "latest.pt").exists()
    assert (run / "checkpoints" / "best.pt").exists()
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(run))
    # a second run into the same directory would overwrite the first: refused, nothing touched
    before = (run / "progress.csv").read_text()
    other = hrlkit.OptionCritic("CartPole-v1", seed=1, num_envs=2, rollout_steps=4)
    with pytest.raises(ConfigError, match="already holds a run"):
        other.learn(64, run_dir=str(run), progress=False)
    assert (run / "progress.csv").read_text() == before


def test_predict_keeps_options_and_respects_action_bounds():
    agent = hrlkit.OptionCritic("Pendulum-v1", seed=0, num_envs=2, rollout_steps=4)
    obs = np.zeros((5, 3), np.float32)
    action, state = agent.predict(obs)
    assert action.shape == (5, 1) and np.all(np.abs(action) <= 2.0)
    action2, state2 = agent.predict(obs, state, deterministic=False)
    assert state2["option"].shape == (5,)
    agent.learn(64, progress=False, eval_every=None, checkpoint_every=None, tensorboard=False,
                run_dir=None, log_every=32)


# ---- configuration errors ------------------------------------------------------------------------
def test_unknown_hyperparameter_names_valid_keys():
    with pytest.raises(ConfigError, match="unknown hyperparameter 'lr'.*learning_rate"):
        hrlkit.OptionCritic("CartPole-v1", lr=0.1)


@pytest.mark.parametrize(
    "kw, key",
    [({"num_options": "two"}, "num_options"), ({"gamma": 1.5}, "gamma"), ({"num_options": 0}, "num_options"),
     ({"activation": "swish"}, "activation"), ({"hidden_sizes": [0]}, "hidden_sizes"),
     ({"separate_critic": "maybe"}, "separate_critic: expected"), ({"learning_rate": 0}, "learning_rate: expected")],
)
def test_bad_hyperparameter_values_name_the_key(kw, key):
    with pytest.raises(ConfigError, match=key):
        hrlkit.OptionCritic("CartPole-v1", **kw)


def test_unknown_env_suggests_ids():
    with pytest.raises(ConfigError, match="CartPole-v1"):
        hrlkit.OptionCritic("CartPole-v9")


def test_checkpoint_of_another_algorithm_is_rejected(tmp_path):
    agent = hrlkit.OptionCritic("CartPole-v1", seed=0, num_envs=2)
    path = str(tmp_path / "oc.pt")
    agent.save(path)
    with pytest.raises(ValueError, match="expected 'soft-option-critic'"):
        checkpoint.load(path, expect_algo="soft-option-critic")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="is not an hrlkit checkpoint"):
        hrlkit.OptionCritic.load(str(tmp_path / "junk.pt"))


# ---- CLI ----------------------------------------------------------------------------------------------
def test_cli_train_eval_plot_list(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert cli(["train", "option-critic", "--env", "CartPole-v1", "--total-steps", "512", "--quiet",
                "--set", "num_envs=2", "rollout_steps=4", "num_minibatches=2", "update_epochs=2", "--run-dir", run,
                "--log-every", "128",
                "--eval-every", "256", "--eval-episodes", "2", "--no-tensorboard"]) == 0
    # the run ends by printing its last greedy evaluation, the figure progress.csv holds last
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("greedy evaluation")]
    import csv

    with open(os.path.join(run, "progress.csv")) as f:
        last = [row for row in csv.DictReader(f) if row["eval/mean_return"]][-1]
    assert printed == [f"greedy evaluation at step 512: mean return {float(last['eval/mean_return']):.1f} "
                       f"+/- {float(last['eval/std_return']):.1f} over 2 episodes"]
    assert cli(["eval", run, "--episodes", "2"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(out["returns"]) == 2
    png = str(tmp_path / "curves.png")
    assert cli(["plot", run, "--out", png]) == 0
    assert os.path.getsize(png) > 1000
    assert cli(["train", "option-critic", "--resume", run, "--total-steps", "768", "--quiet", "--no-tensorboard",
                "--eval-every", "0"]) == 0
    assert checkpoint.load(os.path.join(run, "checkpoints", "latest.pt"))["global_step"] >= 768
    assert cli(["list"]) == 0
    assert "hrlkit/FourRooms-v0" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "nope", "--env", "CartPole-v1"], "invalid choice: 'nope' (choose from 'option-critic'"),
        (["train", "option-critic", "--env", "CartPole-v1", "--set", "bogus=1"], "unknown hyperparameter 'bogus'"),
        (["train", "option-critic", "--env", "CartPole-v1", "--set", "gamma=high"], "gamma: expected a float"),
        (["train", "option-critic", "--env", "NoSuchEnv-v0"], "unknown environment id"),
        (["train", "option-critic"], "--env: required"),
    ],
)
def test_cli_bad_config_fails_before_training(argv, message, capsys, tmp_path):
    assert cli(argv + ["--run-dir", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_cli_help_lists_only_that_algorithms_hyperparameters(capsys):
    assert cli(["train", "option-critic", "--help"]) == 0
    text = capsys.readouterr().out
    for key in ("num_options", "deliberation_cost", "epsilon_decay_steps", "learning_rate", "an int >= 1"):
        assert key in text
    for other in ("num_skills", "goal_embedding", "option_temperature"):  # DIAYN's, FuN's, SOC's
        assert other not in text
    assert cli(["train", "--help"]) == 0
    assert "soft-option-critic" in capsys.readouterr().out


def test_cli_set_is_repeatable_and_cannot_swallow_the_algorithm(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli(["train", "option-critic", "--env", "CartPole-v1", "--set", "num_options=2", "--set", "rollout_steps=4",
                "gamma=0.9", "--total-steps", "64", "--quiet", "--no-tensorboard", "--eval-every", "0",
                "--num-envs", "2", "--run-dir", str(run)]) == 0
    saved = json.loads((run / "config.json").read_text())["config"]
    assert (saved["num_options"], saved["rollout_steps"], saved["gamma"]) == (2, 4, 0.9)
    assert cli(["train", "--set", "num_options=2", "option-critic", "--env", "CartPole-v1"]) == 2
    assert "invalid choice: 'num_options=2'" in capsys.readouterr().err


def test_config_file(tmp_path):
    cfg = tmp_path / "oc.toml"
    cfg.write_text("num_options = 2\nhidden_sizes = [32, 32]\n")
    run = str(tmp_path / "run")
    assert cli(["train", "option-critic", "--env", "CartPole-v1", "--config", str(cfg), "--total-steps", "128",
                "--quiet", "--run-dir", run, "--eval-every", "0", "--no-tensorboard", "--num-envs", "2"]) == 0
    saved = json.loads(open(os.path.join(run, "config.json")).read())["config"]
    assert saved["num_options"] == 2 and saved["hidden_sizes"] == [32, 32] and saved["num_envs"] == 2


# ---- learning -----------------------------------------------------------------------------------------
def test_learns_cartpole_in_30k_steps():
    torch.set_num_threads(1)
    agent = hrlkit.OptionCritic("CartPole-v1", seed=0)
    agent.learn(30_000, progress=False, eval_every=None, checkpoint_every=None, tensorboard=False, log_every=30_000,
                run_dir=None)
    returns = hrlkit.runtime.evaluation.evaluate(agent, 5)
    assert returns.mean() >= 150, returns


# ---- evaluation videos and async envs ----------------------------------------------------------------
def test_draw_option_band_colour_and_digit():
    from hrlkit.runtime.evaluation import OPTION_COLOURS, draw_option

    frame = np.zeros((200, 300, 3), np.uint8)
    out = draw_option(frame, 3)
    assert (frame == 0).all()  # the input is not modified
    band = out[:10]
    assert (band == OPTION_COLOURS[3]).all(axis=-1).mean() > 0.8
    assert (band == 255).all(axis=-1).any()  # the digit is drawn in white
    assert draw_option(frame, None) is frame


def test_video_records_mp4_with_option_overlay(tmp_path):
    pytest.importorskip("moviepy")
    pytest.importorskip("pygame")
    agent = hrlkit.OptionCritic("CartPole-v1", seed=0, num_envs=2, rollout_steps=4)
    agent.learn(64, run_dir=str(tmp_path / "run"), progress=False, eval_every=64, eval_episodes=1,
                checkpoint_every=None, tensorboard=False, video=True)
    videos = list((tmp_path / "run" / "videos").glob("*.mp4"))
    assert videos and all(v.stat().st_size > 0 for v in videos)


@pytest.mark.filterwarnings("ignore:.*render_mode")  # the point of the test: this env cannot render
def test_video_without_rgb_rendering_fails_before_training(tmp_path):
    pytest.importorskip("moviepy")
    agent = hrlkit.OptionCritic("hrlkit-test/Counting-v0", seed=0, num_envs=2)
    with pytest.raises(ConfigError, match="video"):
        agent.learn(64, run_dir=str(tmp_path / "run"), progress=False, video=True)
    assert agent.global_step == 0 and not (tmp_path / "run").exists()


def test_async_envs_train():
    agent = hrlkit.OptionCritic("CartPole-v1", seed=0, num_envs=2, rollout_steps=4, async_envs=True)
    try:
        agent.learn(128, progress=False, eval_every=None, checkpoint_every=None, tensorboard=False, log_every=64)
        assert agent.global_step == 128 and agent.num_updates == 16
    finally:
        agent.close()


def test_clipped_ratio_policy_term():
    """With old log-probabilities the policy term is PPO's clipped surrogate: at r = 1 it has the
    plain policy gradient; past the clip on the side the advantage favours, no gradient."""
    adv = torch.tensor([1.0, -1.0])
    common = dict(q_w=torch.zeros(2), returns=torch.zeros(2), entropy=torch.zeros(2), beta_next=torch.zeros(2),
                  termination_advantage=torch.zeros(2), not_terminal=torch.ones(2), entropy_coef=0.0,
                  critic_coef=0.5, termination_coef=1.0, advantage=adv, clip_range=0.2)
    logp = torch.tensor([-1.0, -1.0], requires_grad=True)
    option_critic_loss(logp=logp, old_logp=torch.tensor([-1.0, -1.0]), **common)["policy"].backward()
    assert logp.grad.tolist() == pytest.approx([-0.5, 0.5])  # = d/dlogp of -mean(logp * adv)
    logp = torch.tensor([-0.5, -1.5], requires_grad=True)  # r = e^0.5 > 1.2 (adv > 0), e^-0.5 < 0.8 (adv < 0)
    terms = option_critic_loss(logp=logp, old_logp=torch.tensor([-1.0, -1.0]), **common)
    terms["policy"].backward()
    assert logp.grad.tolist() == pytest.approx([0.0, 0.0])
    assert terms["policy"].item() == pytest.approx(-(1.2 * 1.0 + 0.8 * -1.0) / 2)


def test_ppo_style_updates_run_and_learn_a_little():
    torch.set_num_threads(1)
    agent = hrlkit.OptionCritic("CartPole-v1", seed=0, update_epochs=4, num_minibatches=4, rollout_steps=32,
                                normalize_advantage=True)
    agent.learn(20_000, progress=False, eval_every=None, checkpoint_every=None, tensorboard=False, log_every=20_000)
    assert hrlkit.runtime.evaluation.evaluate(agent, 3).mean() > 30


@pytest.mark.parametrize(
    "argv, message",
    [
        (["plot", "no/such/run"], "is not an hrlkit run directory"),
        (["eval", "no/such/run"], "no checkpoint at"),
        (["train", "option-critic", "--resume", "no/such/run"], "not an hrlkit run directory"),
        (["train", "option-critic", "--env", "CartPole-v1", "--threads", "0"], "--threads"),
        (["train", "option-critic", "--env", "CartPole-v1", "--config", "missing.yaml"], "does not exist"),
    ],
)
def test_cli_bad_paths_fail_with_a_message(argv, message, capsys):
    assert cli(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1"])
def test_separate_critic_keeps_each_loss_in_its_own_body(env, tmp_path):
    from _checkpoints import loaded_without

    agent = hrlkit.OptionCritic(env, seed=0, num_envs=2, separate_critic=True, action_critic=env == "CartPole-v1")
    net = agent.net
    obs = agent.obs_tensor(agent.obs)
    options, feats = torch.zeros(2, dtype=torch.long), net.body(obs)
    assert feats.shape[-1] == 128  # two 64-wide bodies side by side
    critic = net.q(feats).sum() + (net.qu(feats).sum() if hasattr(net, "qu") else 0)
    actor = net.policy(feats, options).entropy().sum() + net.beta(feats).sum()
    first, second = list(net.body.first.parameters()), list(net.body.second.parameters())
    for loss, untouched, touched in ((critic, first, second), (actor, second, first)):
        grads = torch.autograd.grad(loss, first + second, retain_graph=True, allow_unused=True)
        by_param = dict(zip(map(id, first + second), grads))
        assert all(by_param[id(p)] is None or not by_param[id(p)].any() for p in untouched)
        assert all(by_param[id(p)] is not None and by_param[id(p)].abs().sum() > 0 for p in touched)
    agent.learn(64, progress=False, eval_every=None, checkpoint_every=None, run_dir=None)  # PopArt for Pendulum
    plain = hrlkit.OptionCritic(env, seed=0, num_envs=2, separate_critic=False)
    assert plain.net.body(obs).shape[-1] == 64 and "body.0.weight" in plain.net.state_dict()  # the shared layout
    assert loaded_without(plain, tmp_path, "separate_critic").config.separate_critic is False


def test_tabular_heads_and_per_head_learning_rates():
    """hidden_sizes=[] gives linear heads on the one-hot state (the paper's tabular setting);
    the Q_Omega and termination heads get their own learning rates, and 'sgd' takes plain steps."""
    agent = hrlkit.OptionCritic("hrlkit/FourRooms-v0", seed=0, num_envs=1, rollout_steps=1, hidden_sizes=[],
                                head_bias=False, optimizer="sgd", learning_rate=0.25, critic_learning_rate=0.5,
                                termination_learning_rate=0.1)
    assert isinstance(agent.net.body, torch.nn.Identity) and agent.net.q.in_features == 104
    assert isinstance(agent.optimizer, torch.optim.SGD)
    lrs = {id(p): g["lr"] for g in agent.optimizer.param_groups for p in g["params"]}
    assert lrs[id(agent.net.q.weight)] == 0.5 and lrs[id(agent.net.beta.weight)] == 0.1
    assert lrs[id(agent.net.pi.weight)] == 0.25
    assert sum(len(g["params"]) for g in agent.optimizer.param_groups) == len(list(agent.net.parameters()))
    before = agent.net.q.weight.detach().clone()
    agent.learn(64, progress=False, eval_every=None, checkpoint_every=None, tensorboard=False, run_dir=None)
    changed = (agent.net.q.weight.detach() != before).any(dim=0)
    assert 0 < int(changed.sum()) < 104  # only the visited states' entries move
    with pytest.raises(ConfigError, match="optimizer"):
        hrlkit.OptionCritic("CartPole-v1", optimizer="rmsprop")
    assert agent.net.q.bias is None and agent.net.pi.bias is None  # bias-free: a table per head
    # the default keeps the biases (checkpoints saved before head_bias existed load unchanged)
    assert hrlkit.OptionCritic("hrlkit/FourRooms-v0", num_envs=1, hidden_sizes=[]).net.q.bias is not None


def test_action_critic_head_learning_rate_logs_and_refusals():
    agent = hrlkit.OptionCritic("CartPole-v1", seed=0, num_envs=2, rollout_steps=4, hidden_sizes=[16],
                                action_critic=True, critic_learning_rate=0.01)
    assert agent.net.qu.out_features == 4 * 2 and agent.net.q.bias is not None
    lrs = {id(p): g["lr"] for g in agent.optimizer.param_groups for p in g["params"]}
    assert lrs[id(agent.net.qu.weight)] == 0.01 and lrs[id(agent.net.pi.weight)] == agent.config.learning_rate
    before = agent.net.qu.weight.detach().clone()
    agent.learn(200, progress=False, eval_every=None, checkpoint_every=None, tensorboard=False, run_dir=None)
    assert not torch.equal(agent.net.qu.weight.detach(), before)
    agent.rollout.clear()
    for _ in range(4):
        agent.observe(*_fake_step(agent))
    out = agent.update()
    assert "losses/action_critic" in out and out["losses/action_critic"] >= 0
    with pytest.raises(ConfigError, match="action_critic: Q_U\\(s, w, a\\) needs a Discrete action space"):
        hrlkit.OptionCritic("Pendulum-v1", action_critic=True)


def _fake_step(agent):
    obs = np.zeros((2, 4), dtype=np.float32)
    actions = agent.act(obs)
    return obs, actions, np.ones(2, dtype=np.float32), obs, np.zeros(2, bool), np.zeros(2, bool)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_option_diversity_is_the_mean_pairwise_cross_entropy(env_id):
    agent = hrlkit.OptionCritic(env_id, seed=0, num_envs=2, num_options=3)
    net = agent.net
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.3)  # options that differ
        feats = net.body(torch.randn(5, agent.observation_space.shape[0]))
        got = net.diversity(feats)
        want = torch.zeros(5)
        for i in range(3):
            for j in range(3):
                if i != j:
                    pi = net.policy(feats, torch.full((5,), i))
                    pj = net.policy(feats, torch.full((5,), j))
                    ce = pi.entropy() + torch.distributions.kl_divergence(pi, pj)  # H(p_i, p_j)
                    want += ce if net.discrete else ce.sum(-1)
        assert torch.allclose(got, want / 6, atol=1e-5)
        one = hrlkit.OptionCritic(env_id, seed=0, num_envs=2, num_options=1).net
        assert torch.equal(one.diversity(one.body(torch.zeros(2, agent.observation_space.shape[0]))), torch.zeros(2))


def test_deoc_options_train_and_change_the_targets():
    agent = hrlkit.OptionCritic("CartPole-v1", seed=0, num_envs=2, rollout_steps=4, diversity_coef=0.5,
                                diversity_termination=True)
    agent.learn(64, progress=False, eval_every=None)
    assert agent.num_updates == 8
    assert all(np.isfinite(v).all() for v in (p.detach().numpy() for p in agent.net.parameters()))
    from hrlkit.agents.option_critic import option_critic_targets

    obs = agent.obs_tensor(np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32))
    args = dict(obs=obs, next_obs=obs.flip(0), options=torch.tensor([0, 1] * 4), actions=torch.zeros(8, dtype=torch.long),
                gamma=0.99, epsilon=0.1, deliberation_cost=0.01)
    flags = np.zeros((4, 2), dtype=bool)
    plain = option_critic_targets(agent.net, agent.target, np.ones((4, 2), np.float32), flags, flags, **args)
    deoc = option_critic_targets(agent.net, agent.target, np.ones((4, 2), np.float32), flags, flags, **args,
                                 diversity_coef=0.5, diversity_termination=True)
    assert not torch.allclose(plain["returns"], deoc["returns"])
    adv = deoc["termination_advantage"]  # -standardized D(s'): mean 0, std 1
    assert abs(float(adv.mean())) < 1e-5 and abs(float(adv.std()) - 1) < 1e-4
    assert torch.allclose(adv, -(lambda d: (d - d.mean()) / (d.std() + 1e-8))(agent.net.diversity(agent.net.body(args["next_obs"]))))
    with pytest.raises(ConfigError, match="diversity_coef"):
        hrlkit.OptionCritic("CartPole-v1", diversity_coef=1.5)


def test_gae_lambda_makes_the_returns_lambda_returns_of_u():
    agent = hrlkit.OptionCritic("CartPole-v1", seed=0, num_envs=2, rollout_steps=4)
    agent.learn(64, progress=False, eval_every=None)
    from hrlkit.agents.option_critic import option_critic_targets

    rng = np.random.default_rng(0)
    obs = agent.obs_tensor(rng.standard_normal((8, 4)).astype(np.float32))
    next_obs = agent.obs_tensor(rng.standard_normal((8, 4)).astype(np.float32))
    options = torch.tensor([0, 1, 2, 3, 1, 0, 3, 2])
    args = dict(obs=obs, next_obs=next_obs, options=options, actions=torch.zeros(8, dtype=torch.long), gamma=0.9,
                epsilon=0.1, deliberation_cost=0.01)
    rewards, terminated = rng.normal(size=(4, 2)).astype(np.float32), np.zeros((4, 2), bool)
    terminated[1, 0] = True
    with torch.no_grad():  # U(s', w) = (1 - beta_w(s')) Q_target(s', w) + beta_w(s') V_target(s')
        u = targets.option_bootstrap(agent.target.q(agent.target.body(next_obs)),
                                     torch.sigmoid(agent.net.beta(agent.net.body(next_obs))), options, 0.1).view(4, 2)
    r = torch.as_tensor(rewards)
    td = option_critic_targets(agent.net, agent.target, rewards, terminated, np.zeros_like(terminated), **args,
                               gae_lambda=0.0)
    torch.testing.assert_close(td["returns"].view(4, 2), r + 0.9 * torch.where(torch.as_tensor(terminated), 0.0, u))
    lam = option_critic_targets(agent.net, agent.target, rewards, terminated, np.zeros_like(terminated), **args,
                                gae_lambda=0.7)
    want = torch.zeros(4, 2)
    for t in reversed(range(4)):
        nxt = u[t] if t == 3 else 0.3 * u[t] + 0.7 * want[t + 1]
        want[t] = r[t] + 0.9 * torch.where(torch.as_tensor(terminated[t]), 0.0, nxt)
    torch.testing.assert_close(lam["returns"].view(4, 2), want)
    with pytest.raises(ConfigError, match="gae_lambda"):
        hrlkit.OptionCritic("CartPole-v1", gae_lambda=-0.5)


def test_defaults_per_action_space_kind_are_resolved_and_saved(tmp_path):
    """Fields left at None take their action-space kind's value once the env is known; what the
    user sets is kept; checkpoints hold the resolved values; a checkpoint from before gae_lambda
    loads with 1 (the n-step return it trained with), not the default 0.95."""
    from _checkpoints import loaded_without
    from hrlkit.agents.option_critic import KIND_DEFAULTS

    fields = tuple(KIND_DEFAULTS["discrete"])
    assert set(KIND_DEFAULTS["continuous"]) == set(fields)
    assert all(getattr(hrlkit.OptionCritic.Config(), k) is None for k in fields)
    assert hrlkit.OptionCritic.Config().gae_lambda == 0.95  # lambda-returns for both kinds
    for env, kind in (("CartPole-v1", "discrete"), ("Pendulum-v1", "continuous")):
        agent = hrlkit.OptionCritic(env, num_envs=2)
        assert {k: getattr(agent.config, k) for k in fields} == KIND_DEFAULTS[kind]
    mine = hrlkit.OptionCritic("Pendulum-v1", num_envs=2, rollout_steps=4, gae_lambda=1.0)
    assert (mine.config.rollout_steps, mine.config.gae_lambda, mine.config.update_epochs) == (4, 1.0, 10)
    loaded = loaded_without(mine, tmp_path, "gae_lambda")
    assert loaded.config.gae_lambda == 1.0 and loaded.config.rollout_steps == 4
    mine.save(str(tmp_path / "now.pt"))
    again = hrlkit.OptionCritic.load(str(tmp_path / "now.pt"))
    assert {k: getattr(again.config, k) for k in fields} == {k: getattr(mine.config, k) for k in fields}
    with pytest.raises(ConfigError, match="rollout_steps"):
        hrlkit.OptionCritic("Pendulum-v1", rollout_steps=0)
