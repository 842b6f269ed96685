"""The pixel pipeline (issue 17): image layouts, ActionRepeat, the carracing preset, Option-Critic
on pixels, async envs that survive a checkpoint, and car paths in the skills tools."""
from __future__ import annotations

import os
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

import hrlkit
from hrlkit.cli import main as cli
from hrlkit.nets import ConvEncoder, image_layout, is_image_space, to_channels_first
from hrlkit.presets import frames_per_step, preset
from hrlkit.runtime.config import ConfigError
from hrlkit.runtime.envs import EnvMaker, normalization_state
from hrlkit.wrappers import ActionRepeat

QUIET = dict(progress=False, eval_every=None, checkpoint_every=None, tensorboard=False, log_every=10**9)


def _box(shape):
    return gym.spaces.Box(0, 255, shape, np.uint8)


@pytest.mark.parametrize("shape, layout", [((96, 96, 3), (96, 96, 3)), ((64, 64, 1), (64, 64, 1)),
                                           ((4, 84, 84), (84, 84, 4)), ((4, 64, 64, 1), (64, 64, 4)),
                                           ((2, 64, 48, 3), (64, 48, 6)), ((64, 64), (64, 64, 1))])
def test_image_layouts(shape, layout):
    assert image_layout(shape) == layout
    assert is_image_space(_box(shape))
    x = torch.randint(0, 256, (3, *shape), dtype=torch.uint8)
    chw = to_channels_first(x, shape)
    h, w, c = layout
    assert chw.shape == (3, c, h, w) and chw.dtype == torch.uint8
    assert ConvEncoder(shape, 32)(x).shape == (3, 32)


def test_stacked_frames_keep_their_channels_in_order():
    frames = torch.arange(3 * 8 * 8 * 2).reshape(1, 3, 8, 8, 2)  # S=3 frames of 8x8x2
    chw = to_channels_first(frames, (3, 8, 8, 2))
    for s in range(3):
        for c in range(2):
            assert torch.equal(chw[0, 2 * s + c], frames[0, s, :, :, c])


def test_not_images():
    assert not is_image_space(gym.spaces.Box(0, 1, (4, 84, 84), np.float32))  # not uint8
    assert not is_image_space(gym.spaces.Box(0, 255, (6,), np.uint8))
    assert not is_image_space(gym.spaces.Discrete(4))
    with pytest.raises(ValueError, match="shape"):
        ConvEncoder((5,))
    with pytest.raises(ValueError, match="at least 36x36 pixels, got 16x16"):
        ConvEncoder((16, 16, 3))


class _Counter(gym.Env):
    """Reward = the action; ends after 10 frames; the observation counts frames."""

    observation_space = gym.spaces.Box(0, 100, (1,), np.float32)
    action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], np.float32), float(action), self.t >= 10, False, {}


def test_action_repeat_sums_rewards_and_stops_at_the_episode_end():
    env = ActionRepeat(_Counter(), repeat=4)
    env.reset(seed=0)
    obs, r, te, tr, info = env.step(2)
    assert obs[0] == 4 and r == 8.0 and info["frames"] == 4 and not te
    env.step(1)
    obs, r, te, _, info = env.step(1)  # frames 9, 10: the episode ends inside the repeat
    assert te and obs[0] == 10 and r == 2.0 and info["frames"] == 2


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "4"])
def test_action_repeat_refuses_bad_repeat(bad):
    with pytest.raises(ValueError, match="repeat: expected an int >= 1"):
        ActionRepeat(_Counter(), repeat=bad)
    with pytest.raises(ValueError, match="skip_render: expected a bool, got 'no'"):
        ActionRepeat(_Counter(), skip_render="no")


def test_carracing_skip_render_changes_nothing_but_time():
    """Frames in between not drawn: the same rewards, ends and last observation as drawing them."""
    pytest.importorskip("Box2D")

    def episode(skip):
        env = ActionRepeat(gym.make("CarRacing-v3", continuous=False, max_episode_steps=120), 4, skip_render=skip)
        env.reset(seed=3)
        rng, rewards, obs = np.random.default_rng(0), [], None
        for _ in range(30):
            obs, r, te, tr, info = env.step(int(rng.integers(5)))
            rewards.append(r)
            if te or tr:
                break
        assert env.skip_render == skip
        return rewards, obs

    (r1, o1), (r2, o2) = episode(False), episode(True)
    assert r1 == r2 and np.array_equal(o1, o2)


def test_preset_api_and_errors():
    kw = preset("carracing", "feudal")
    assert kw["env"] == "CarRacing-v3" and kw["env_kwargs"] == {"continuous": False} and kw["async_envs"]
    kw["config"]["num_envs"] = 99  # a copy
    assert preset("carracing", "feudal")["config"]["num_envs"] == 8
    assert frames_per_step("carracing") == 4
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        preset("nope", "feudal")
    with pytest.raises(ConfigError, match="no set-up for 'soft-option-critic'"):
        preset("carracing", "soft-option-critic")


def test_cli_preset_refuses_another_env(tmp_path, capsys):
    assert cli(["train", "feudal", "--preset", "carracing", "--env", "CartPole-v1", "--run-dir", str(tmp_path / "r")]) == 2
    assert "--env: the preset 'carracing' is for CarRacing-v3" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_preset_pipeline_shapes():
    pytest.importorskip("Box2D")
    pytest.importorskip("cv2")
    for algo, shape in (("feudal", (64, 64, 1)), ("option-critic", (4, 64, 64, 1))):
        kw = preset("carracing", algo)
        env = EnvMaker(kw["env"], env_kwargs=kw["env_kwargs"], wrappers=kw["wrappers"]).make()
        obs, _ = env.reset(seed=0)
        assert obs.shape == shape and obs.dtype == np.uint8
        _, _, _, _, info = env.step(3)
        assert info["frames"] == 4
        env.close()


class _Pixels(gym.Env):
    """A tiny pixel task: the frame's brightness says which action pays (stacked 36x36 gray)."""

    observation_space = gym.spaces.Box(0, 255, (2, 36, 36, 1), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        self.side = int(self.np_random.integers(2))
        return np.full((2, 36, 36, 1), 255 * self.side, np.uint8)

    def step(self, action):
        self.t += 1
        r = float(action == self.side)
        return self._obs(), r, False, self.t >= 20, {}


def test_option_critic_learns_from_pixels():
    torch.manual_seed(0)
    # the discrete settings this test was written with (the defaults before session 14: 320 minibatch
    # steps per 64-row rollout made it ten times slower)
    agent = hrlkit.OptionCritic(lambda: _Pixels(), seed=0, num_options=1, num_envs=4, rollout_steps=16,
                                num_minibatches=2, update_epochs=4, target_update_every=50, pixel_features=32,
                                learning_rate=1e-3, threads=1)
    assert isinstance(agent.net.body, ConvEncoder)
    agent.learn(6000, **QUIET)
    obs = np.stack([np.full((2, 36, 36, 1), 255 * s, np.uint8) for s in (0, 1)])
    actions, _ = agent.predict(obs)
    assert actions.tolist() == [0, 1]


def test_async_envs_survive_a_normalization_probe():
    """Asking async sub-envs for NormalizeObservation's statistics they do not have used to raise
    inside the workers and shut them down (a checkpoint killed the run's envs)."""
    envs = EnvMaker("CartPole-v1").vector_env(2, async_envs=True)
    try:
        envs.reset(seed=0)
        assert normalization_state(envs) == {}
        envs.step(np.zeros(2, dtype=np.int64))  # still alive
    finally:
        envs.close()


class _Driving(gym.Env):
    """A 'car' that moves by its action in the plane; CarRacing's car.hull and track attributes."""

    observation_space = gym.spaces.Box(-100, 100, (2,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.car, self.t = SimpleNamespace(hull=SimpleNamespace(position=(0.0, 0.0))), 0
        self.track = [(0, 0, float(np.cos(a)) * 5, float(np.sin(a)) * 5) for a in np.linspace(0, 6, 12)]
        return np.zeros(2, np.float32), {}

    def step(self, action):
        x, y = self.car.hull.position
        self.car.hull.position = (x + float(action[0]), y + float(action[1]))
        self.t += 1
        return np.array(self.car.hull.position, np.float32), 0.0, False, self.t >= 5, {}


def test_skills_record_car_paths(tmp_path, monkeypatch):
    from hrlkit import skills

    gym.register("hrlkit_test/Driving-v0", entry_point=_Driving)
    try:
        rand = skills.random_endpoints("hrlkit_test/Driving-v0", None, 3, seed=0)
        for eps in rand.values():
            assert eps[0]["xy"].shape == (6, 2) and eps[0]["track"].shape == (12, 2)
            assert np.allclose(eps[0]["xy"][-1], eps[0]["obs"][-1])
        assert skills.endpoint_spread(rand, key="xy") == pytest.approx(skills.endpoint_spread(rand))
        out = skills.plot_skills(rand, str(tmp_path / "paths.png"), baseline=rand, title="paths")
        assert (tmp_path / "paths.png").stat().st_size > 0 and out.endswith("paths.png")
    finally:
        gym.registry.pop("hrlkit_test/Driving-v0")


@pytest.mark.parametrize("make", [
    lambda: hrlkit.FeudalNetwork("CartPole-v1", seed=0, num_envs=2, rollout_steps=5, state_dim=16, threads=1),
    lambda: hrlkit.OptionCritic("CartPole-v1", seed=0, num_envs=2, threads=1),
    lambda: hrlkit.DIAYN("Pendulum-v1", seed=0, num_envs=1, learning_starts=20, batch_size=8, buffer_size=500,
                         threads=1),
    lambda: hrlkit.SoftOptionCritic("Pendulum-v1", seed=0, num_envs=1, learning_starts=20, batch_size=8,
                                    buffer_size=500, threads=1),
])
def test_policy_only_files_are_small_and_act_the_same(tmp_path, make):
    agent = make()
    agent.learn(60, **QUIET)
    full, small = str(tmp_path / "full.pt"), str(tmp_path / "policy.pt")
    agent.save(full)
    agent.save(small, policy_only=True)
    assert os.path.getsize(small) < os.path.getsize(full)
    loaded = type(agent).load(small)
    assert loaded.global_step == agent.global_step
    obs = np.stack([agent.observation_space.sample() for _ in range(4)])
    state = {"skill": [0, 1, 2, 3]} if isinstance(agent, hrlkit.DIAYN) else None
    a1, _ = agent.predict(obs, state)
    a2, _ = loaded.predict(obs, state)
    assert np.allclose(a1, a2)
    loaded.learn(120, **QUIET)  # trains on, with fresh optimizers
    assert loaded.global_step >= 120
    with pytest.raises(ValueError, match="policy_only: expected a bool"):
        agent.save(small, policy_only="yes")


def test_image_rows_read_only_their_band_of_every_frame():
    from hrlkit.nets import ImageRows

    rows = ImageRows((2, 36, 36, 1), (30, 36))
    x = torch.randint(0, 256, (3, 2, 36, 36, 1), dtype=torch.uint8)
    y = rows(x)
    assert y.shape == (3, 2 * 6 * 36) and rows.out_dim == 2 * 6 * 36
    torch.testing.assert_close(y[:, :6 * 36], x[:, 0, 30:, :, 0].reshape(3, -1).float() / 255)
    x2 = x.clone()
    x2[:, :, :30] = 0  # outside the band: nothing changes
    assert torch.equal(rows(x2), y)
    with pytest.raises(ValueError, match=r"rows: expected \[first, last\) with 0 <= first < last <= 36"):
        ImageRows((2, 36, 36, 1), (30, 40))


def test_diayn_discriminator_on_image_rows():
    small = dict(num_envs=2, buffer_size=256, batch_size=16, learning_starts=32, hidden_sizes=[16],
                 discriminator_hidden_sizes=[16], feature_dim=16, threads=1)
    agent = hrlkit.DIAYN(lambda: _Pixels(), seed=0, discriminator_rows=[30, 36], **small)
    assert agent.discriminator.weights[0].shape[1] == 2 * 6 * 36 and not list(agent.disc_encoder.parameters())
    x = torch.randint(0, 256, (4, 2, 36, 36, 1), dtype=torch.uint8)
    x2 = x.clone()
    x2[:, :, :30] = 7
    assert torch.equal(agent.discriminator_logits(x), agent.discriminator_logits(x2))
    x2[:, :, 33] = 7
    assert not torch.equal(agent.discriminator_logits(x), agent.discriminator_logits(x2))
    before = [p.clone() for p in agent.discriminator.parameters()]
    agent.learn(64, **QUIET)
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.discriminator.parameters()))
    for bad, match in (([30, 40], r"discriminator_rows: expected rows within the frame's 36 .* got \[30, 40\]"),
                       ([5, 3], r"discriminator_rows: expected \[first, last\) image rows with 0 <= first < last, got \[5, 3\]"),
                       ([1], "discriminator_rows")):
        with pytest.raises(ConfigError, match=match):
            hrlkit.DIAYN(lambda: _Pixels(), seed=0, **{**small, "discriminator_rows": bad})
    with pytest.raises(ConfigError, match="discriminator_rows: only for pixel observations"):
        hrlkit.DIAYN("Pendulum-v1", seed=0, discriminator_rows=[0, 1], num_envs=1)


def test_carracing_preset_diayn_discriminator_reads_the_dashboard():
    pytest.importorskip("Box2D")
    pytest.importorskip("cv2")
    from hrlkit.nets import ImageRows

    kw = preset("carracing", "diayn")
    kw["config"].update(num_envs=1, buffer_size=64, hidden_sizes=[16], discriminator_hidden_sizes=[16], feature_dim=16)
    agent = hrlkit.DIAYN(**{**kw, "async_envs": False}, seed=0)
    try:
        assert isinstance(agent.disc_encoder, ImageRows) and agent.disc_encoder.out_dim == 4 * 8 * 64
        frame = np.asarray(agent.obs)[:1]  # the zoomed-in first frame: the dashboard strip is the bottom 8 rows
        assert agent.discriminator_logits(torch.as_tensor(frame)).shape == (1, agent.config.num_skills)
    finally:
        agent.close()
