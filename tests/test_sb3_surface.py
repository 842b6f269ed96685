"""The Python surface Stable-Baselines3 users expect: evaluate_policy on an Env and a VectorEnv,
predict on one (unbatched) observation for every agent and space, episode starts in predict,
get/set_parameters, set_random_seed, and learn() that writes nothing unless asked and continues
its run when called again."""
from __future__ import annotations

import os
import random
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

import hrlkit
from hrlkit.runtime.config import ConfigError

PIXELS = "hrlkit-test/TinyPixels-v0"
STEPS = "hrlkit-test/FixedLength-v0"
QUIET = dict(progress=False, eval_every=None, log_every=32)


class TinyPixels(gym.Env):
    """36 x 36 x 3 uint8 frames (the smallest the conv encoder takes), 6-step episodes."""

    def __init__(self, continuous: bool = False):
        self.observation_space = gym.spaces.Box(0, 255, (36, 36, 3), np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32) if continuous else gym.spaces.Discrete(3)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), 1.0, False, self.t >= 6, {}

    def _obs(self):
        return np.full((36, 36, 3), 20 * self.t, np.uint8)


class FixedLength(gym.Env):
    """Episodes of exactly ``length`` steps, reward 1 per step (so a return is a length)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length: int = 3):
        self.length, self.t = length, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.full(2, self.t / 10, np.float32), 1.0, self.t >= self.length, False, {}


for _id, _entry in ((PIXELS, TinyPixels), (STEPS, FixedLength)):
    if _id not in gym.registry:
        gym.register(_id, entry_point=_entry)


@pytest.fixture(scope="module")
def skills_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("skills") / "diayn.pt")
    hrlkit.DIAYN("hrlkit/PointNav-v0", seed=0, num_skills=3, hidden_sizes=[16], discriminator_hidden_sizes=[16]).save(path)
    return path


def _agents(skills_file):
    """(agent, one observation) for every agent and observation space."""
    oc = dict(num_envs=2, rollout_steps=4, hidden_sizes=[16])
    fun = dict(num_envs=2, rollout_steps=4, horizon=2, state_dim=8, goal_embedding=4, hidden_sizes=[16])
    diayn = dict(num_envs=1, num_skills=3, hidden_sizes=[16], discriminator_hidden_sizes=[16], buffer_size=100,
                 feature_dim=16)
    return [
        hrlkit.OptionCritic("hrlkit/FourRooms-v0", **oc),  # Discrete observations (a bare int)
        hrlkit.OptionCritic("CartPole-v1", **oc),
        hrlkit.OptionCritic("Pendulum-v1", **oc),
        hrlkit.SoftOptionCritic("Pendulum-v1", num_envs=1, hidden_sizes=[16], buffer_size=100),
        hrlkit.DIAYN("hrlkit/FourRooms-v0", **diayn),
        hrlkit.DIAYN("hrlkit/PointNav-v0", **diayn),
        hrlkit.DIAYN(PIXELS, env_kwargs={"continuous": True}, **diayn),
        hrlkit.DIAYNManager("hrlkit/PointNavGoal-v0", num_envs=1, skills=skills_file, skill_steps=2, hidden_sizes=[16],
                            buffer_size=100),
        hrlkit.FeudalNetwork("hrlkit/FourRooms-v0", **fun),
        hrlkit.FeudalNetwork("CartPole-v1", **fun),
        hrlkit.FeudalNetwork(PIXELS, **fun),
    ]


def test_predict_one_observation_gives_one_action_for_every_agent_and_space(skills_file):
    for agent in _agents(skills_file):
        what = f"{agent.name} on {agent.env_id}"
        obs = agent.obs[0]
        if isinstance(agent.observation_space, gym.spaces.Discrete):
            obs = int(obs)  # a bare int, as gym.make(...).reset() gives it
        shape = agent.action_space.shape
        action, state = agent.predict(obs)
        assert np.shape(action) == shape, what
        assert agent.action_space.contains(np.asarray(action, dtype=agent.action_space.dtype)), what
        again, state2 = agent.predict(obs, state)  # the state of an unbatched call, passed back unbatched
        assert np.shape(again) == shape, what
        third, _ = agent.predict(obs, state2, deterministic=False)
        assert np.shape(third) == shape, what
        batch, bstate = agent.predict(np.stack([np.asarray(obs)] * 3))  # batches work as before
        assert batch.shape == (3, *shape), what
        assert agent.predict(np.stack([np.asarray(obs)] * 3), bstate)[0].shape == (3, *shape), what
        with pytest.raises(ValueError, match="obs: expected one observation"):
            agent.predict(np.zeros((1, 1, 1, 1, 1)))
        agent.close()


def test_episode_start_begins_a_row_afresh(skills_file):
    for agent in _agents(skills_file):
        obs = np.stack([agent.obs[0], agent.obs[0]])
        _, state = agent.predict(obs)
        for _ in range(3):
            _, state = agent.predict(obs, state)
        mixed, mstate = agent.predict(obs, state, episode_start=np.array([True, False]))
        if agent.name == "diayn":  # a fresh skill for row 0 only, from predict's own stream
            assert mstate["skill"][1] == state["skill"][1]
            agent.close()
            continue
        fresh, _ = agent.predict(obs[:1])
        np.testing.assert_allclose(mixed[0], fresh[0], rtol=1e-5, atol=1e-6, err_msg=f"{agent.name} on {agent.env_id}")
        agent.close()


# ---- evaluate_policy -------------------------------------------------------------------------------
def test_evaluate_policy_on_an_env():
    agent = hrlkit.OptionCritic(STEPS, num_envs=1, rollout_steps=4, hidden_sizes=[8])
    env = gym.make(STEPS, length=4)
    mean, std = hrlkit.evaluate_policy(agent, env, n_eval_episodes=3)
    assert (mean, std) == (4.0, 0.0)
    returns, lengths = hrlkit.evaluate_policy(agent, env, n_eval_episodes=2, return_episode_rewards=True)
    assert returns == [4.0, 4.0] and lengths == [4, 4]
    calls = []
    original = agent.predict

    def spy(obs, state=None, deterministic=True, **kw):
        calls.append((None if state is None else int(state["option"][0]), bool(kw["episode_start"][0])))
        return original(obs, state, deterministic, **kw)

    agent.predict = spy
    hrlkit.evaluate_policy(agent, env, n_eval_episodes=2)
    starts = [s for _, s in calls]
    assert starts == [True, False, False, False] * 2  # each episode starts its options afresh
    assert calls[0][0] is None and all(opt is not None for opt, _ in calls[1:])


@pytest.mark.parametrize("mode", list(gym.vector.AutoresetMode))
def test_evaluate_policy_on_a_vector_env_counts_episodes_as_sb3(mode):
    agent = hrlkit.OptionCritic(STEPS, num_envs=1, rollout_steps=4, hidden_sizes=[8])
    envs = gym.vector.SyncVectorEnv([lambda: FixedLength(2), lambda: FixedLength(5)], autoreset_mode=mode)
    # sub-env i runs (5 + i) // 2 episodes: 2 of length 2, 3 of length 5, the extra short ones are not counted
    returns, lengths = hrlkit.evaluate_policy(agent, envs, n_eval_episodes=5, return_episode_rewards=True)
    assert sorted(lengths) == [2, 2, 5, 5, 5] and sorted(returns) == [2.0, 2.0, 5.0, 5.0, 5.0]
    mean, _ = hrlkit.evaluate_policy(agent, envs, n_eval_episodes=1)
    assert mean == 5.0  # one episode: sub-env 1's ((1 + i) // 2 is 0, then 1)
    envs.close()


def test_evaluate_policy_errors():
    agent = hrlkit.OptionCritic(STEPS, num_envs=1, hidden_sizes=[8])
    with pytest.raises(TypeError, match=r"env: expected a gymnasium.Env .*gymnasium.make\(id\)"):
        hrlkit.evaluate_policy(agent, STEPS)
    with pytest.raises(TypeError, match="env: expected a gymnasium.Env"):
        hrlkit.evaluate_policy(agent, [1, 2])
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="n_eval_episodes: expected an int >= 1"):
            hrlkit.evaluate_policy(agent, gym.make(STEPS), n_eval_episodes=bad)
    with pytest.raises(TypeError, match="model: expected an agent with a predict method"):
        hrlkit.evaluate_policy(object(), gym.make(STEPS))


# ---- parameters and seeds ----------------------------------------------------------------------------
def _flat(agent):
    return torch.cat([p.detach().reshape(-1) for p in agent.net.parameters()])


def test_get_and_set_parameters_round_trip_and_refuse_a_mismatch():
    agent = hrlkit.OptionCritic("CartPole-v1", seed=0, num_envs=2, rollout_steps=4, hidden_sizes=[16])
    params = agent.get_parameters()
    assert set(params) == set(agent.modules()) == {"net", "target", "optimizer"}
    before, q_before = _flat(agent).clone(), agent.net.q.weight.detach().clone()
    agent.learn(64, **QUIET)
    trained = _flat(agent).clone()
    assert not torch.equal(trained, before)
    assert torch.equal(params["net"]["q.weight"], q_before)  # copies: training left them as they were
    after = agent.get_parameters()
    agent.set_parameters(params)
    assert torch.equal(_flat(agent), before)
    assert agent.optimizer.state_dict()["state"] == {}  # the optimizer's state is the one given (fresh)
    agent.set_parameters(after)
    assert torch.equal(_flat(agent), trained)
    # a subset loads without exact_match
    agent.set_parameters({"net": params["net"]}, exact_match=False)
    assert torch.equal(_flat(agent), before)
    # mismatches: named, and nothing changes
    agent.set_parameters(after)
    other = hrlkit.OptionCritic("CartPole-v1", seed=0, num_envs=2, hidden_sizes=[8]).get_parameters()
    with pytest.raises(ValueError, match=r"nothing was changed: .*'net': 'body.first.0.weight' has shape \(8, 4\) given, "
                                         r"\(16, 4\) here"):
        agent.set_parameters(other)
    with pytest.raises(ValueError, match="'optimizer' missing; 'target' missing"):
        agent.set_parameters({"net": after["net"]})
    with pytest.raises(ValueError, match="unknown name 'actor'"):
        agent.set_parameters({**after, "actor": {}}, exact_match=False)
    broken = {**after, "net": {k: v for k, v in after["net"].items() if k != "q.bias"}}
    with pytest.raises(ValueError, match=r"'net': keys \['q.bias'\] missing"):
        agent.set_parameters(broken)
    assert torch.equal(_flat(agent), trained)


def test_every_agent_round_trips_its_parameters(skills_file):
    for agent in _agents(skills_file):
        params = agent.get_parameters()
        assert set(params) == set(agent.modules())
        agent.set_parameters(params)
        agent.set_parameters(params, exact_match=False)
        agent.close()


def test_set_random_seed_seeds_random_numpy_and_torch():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    hrlkit.set_random_seed(7)
    first = draw()
    hrlkit.set_random_seed(7)
    assert draw() == first
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ConfigError, match="seed: expected an int >= 0"):
            hrlkit.set_random_seed(bad)


# ---- learn() ------------------------------------------------------------------------------------------
def _oc(**kw):
    return hrlkit.OptionCritic("CartPole-v1", seed=0, num_envs=2, rollout_steps=4, hidden_sizes=[16], **kw)


def test_learn_without_a_run_dir_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    agent = _oc()
    agent.learn(64, progress=False, log_every=32, eval_every=32, eval_episodes=1)
    assert os.listdir(tmp_path) == []
    assert agent.run_dir is None and agent.global_step == 64
    rows = agent.logger.rows
    assert [r["global_step"] for r in rows if "charts/SPS" in r] == [32, 64]
    assert [r["global_step"] for r in rows if "eval/mean_return" in r] == [32, 64]  # evaluations still run
    assert np.isfinite(agent.best_eval_return)
    with pytest.raises(ConfigError, match="video: needs a run directory"):
        agent.learn(128, video=True, progress=False)
    assert os.listdir(tmp_path) == []


def test_learn_again_continues_the_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    agent = _oc()
    agent.learn(32, **QUIET)
    logger = agent.logger
    agent.learn(64, **QUIET)  # until global_step reaches 64: 32 more
    assert agent.global_step == 64 and agent.logger is logger
    assert [r["global_step"] for r in logger.rows] == [32, 64]
    with pytest.warns(UserWarning, match="already at step 64, so nothing was trained"):
        agent.learn(64, **QUIET)
    agent.learn(32, reset_num_timesteps=False, **QUIET)  # SB3's count: 32 more
    assert agent.global_step == 96
    with pytest.raises(ConfigError, match="reset_num_timesteps: hrlkit never resets"):
        agent.learn(32, reset_num_timesteps=True)
    assert os.listdir(tmp_path) == []
    # with a run directory: the second learn() goes on in it, no second directory
    run = tmp_path / "run"
    agent = _oc()
    agent.learn(32, run_dir=str(run), checkpoint_every=None, **QUIET)
    agent.learn(64, checkpoint_every=None, **QUIET)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agent.learn(64, **QUIET)
    assert os.listdir(tmp_path) == ["run"] and agent.run_dir == str(run)
    assert sorted(os.listdir(run / "checkpoints")) == ["latest.pt", "step_32.pt", "step_64.pt"]
    assert [int(line.split(",")[0]) for line in (run / "progress.csv").read_text().splitlines()[1:]] == [32, 64]
    assert hrlkit.OptionCritic.load(str(run / "checkpoints" / "latest.pt")).global_step == 64


def test_tensorboard_log_makes_one_run_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    agent = _oc()
    agent.learn(32, tensorboard_log="tb", checkpoint_every=None, **QUIET)
    agent.learn(64, tensorboard_log="tb", checkpoint_every=None, **QUIET)
    (run,) = os.listdir(tmp_path / "tb")
    assert run.startswith("CartPole-v1__option-critic__0__") and agent.run_dir == os.path.join("tb", run)
    files = os.listdir(tmp_path / "tb" / run)
    assert "progress.csv" in files and any(f.startswith("events.out.tfevents") for f in files)
    with pytest.raises(ConfigError, match="pass run_dir or tensorboard_log, not both"):
        agent.learn(96, run_dir="x", tensorboard_log="tb")
