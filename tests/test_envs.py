"""Bring your own environment: ids, instances, factories, VectorEnvs, wrapper chains, user env
modules, and normalization statistics shared with evaluation and kept in checkpoints."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest

import hrlkit
from hrlkit.cli import main as cli
from hrlkit.runtime.config import ConfigError
from hrlkit.runtime.envs import EnvMaker, parse_wrapper

SMALL = dict(rollout_steps=4)
QUIET = dict(progress=False, tensorboard=False, eval_every=None, log_every=64)


def _same_step_vector(n: int) -> gym.vector.VectorEnv:
    return gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1") for _ in range(n)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


# ---- env arguments ---------------------------------------------------------------------------------
def test_an_env_instance_trains_as_one_env(tmp_path):
    agent = hrlkit.OptionCritic(gym.make("CartPole-v1"), seed=0, **SMALL)
    assert agent.config.num_envs == 1 and agent.env_id == "CartPole-v1"
    agent.learn(64, run_dir=str(tmp_path / "run"), **QUIET)
    assert agent.global_step == 64
    with pytest.raises(ConfigError, match="num_envs: 4 asked, but the env given is 1 env"):
        hrlkit.OptionCritic(gym.make("CartPole-v1"), num_envs=4)


def test_a_factory_makes_num_envs_envs(tmp_path):
    made = []

    def factory():
        made.append(1)
        return gym.make("CartPole-v1")

    agent = hrlkit.OptionCritic(factory, seed=0, num_envs=3, **SMALL)
    assert agent.envs.num_envs == 3 and len(made) >= 3
    agent.learn(48, run_dir=str(tmp_path / "run"), **QUIET)
    assert hrlkit.runtime.evaluation.evaluate(agent, 1).shape == (1,)  # a fresh env from the same factory


def test_a_vector_env_sets_num_envs_and_must_autoreset_in_the_same_step(tmp_path):
    agent = hrlkit.OptionCritic(_same_step_vector(2), seed=0, **SMALL)
    assert agent.config.num_envs == 2
    agent.learn(32, run_dir=str(tmp_path / "run"), **QUIET)
    with pytest.raises(ConfigError, match="num_envs: 4 asked, but the env given is 2 env"):
        hrlkit.OptionCritic(_same_step_vector(2), num_envs=4)
    with pytest.raises(ConfigError, match="autoreset_mode NEXT_STEP; hrlkit needs SAME_STEP"):
        hrlkit.OptionCritic(gym.make_vec("CartPole-v1", num_envs=2))
    with pytest.raises(ConfigError, match="cannot wrap the sub-envs of a VectorEnv"):
        hrlkit.OptionCritic(_same_step_vector(2), wrappers=["NormalizeObservation"])


@pytest.mark.parametrize("bad, match", [
    (42, "env: expected an env id, a gymnasium.Env, a zero-argument env factory or a gymnasium.vector.VectorEnv, got int"),
    ("NoSuch-v9", "env: unknown environment id 'NoSuch-v9'"),
    ("no_such_module_xyz:Foo-v0", "env_module: cannot import 'no_such_module_xyz'"),
])
def test_what_is_not_an_env_is_refused_naming_the_argument(bad, match):
    with pytest.raises(ConfigError, match=match):
        hrlkit.OptionCritic(bad)


def test_eval_env_argument_and_load_with_env(tmp_path):
    evals = []

    def eval_factory():
        evals.append(1)
        return gym.make("CartPole-v1")

    agent = hrlkit.OptionCritic(gym.make("CartPole-v1"), seed=0, eval_env=eval_factory, **SMALL)
    agent.learn(64, run_dir=str(tmp_path / "run"), **{**QUIET, "eval_every": 32, "eval_episodes": 1})
    assert len(evals) >= 2
    path = str(tmp_path / "a.pt")
    agent.save(path)
    with pytest.raises(ConfigError, match=r"handed over as an object and cannot be rebuilt; pass env="):
        hrlkit.OptionCritic.load(path)
    loaded = hrlkit.OptionCritic.load(path, env=gym.make("CartPole-v1"))
    assert loaded.global_step == 64
    with pytest.raises(ConfigError, match="training env is an instance"):
        hrlkit.OptionCritic(gym.make("CartPole-v1")).make_eval_env()


# ---- wrappers ------------------------------------------------------------------------------------------
def test_wrapper_specs_parse_and_bad_ones_are_refused():
    assert parse_wrapper("ResizeObservation:shape=(64,64)") == {"name": "ResizeObservation", "kwargs": {"shape": [64, 64]}}
    assert parse_wrapper("gymnasium.wrappers:ClipReward:min_reward=-1,max_reward=1") == {
        "name": "gymnasium.wrappers:ClipReward", "kwargs": {"min_reward": -1, "max_reward": 1}}
    assert parse_wrapper({"name": "FrameStackObservation", "stack_size": 4})["kwargs"] == {"stack_size": 4}
    with pytest.raises(ConfigError, match=r"wrappers: cannot resolve 'NormaliseObservation'.*did you mean NormalizeObservation"):
        hrlkit.OptionCritic("CartPole-v1", wrappers=["NormaliseObservation"])
    with pytest.raises(ConfigError, match="wrappers: 'subprocess:Popen' is not a gymnasium.Wrapper subclass"):
        hrlkit.OptionCritic("CartPole-v1", wrappers=["subprocess:Popen"])
    with pytest.raises(ConfigError, match=r"wrappers: ClipReward does not take \{'nope': 1\}"):
        hrlkit.OptionCritic("CartPole-v1", wrappers=["ClipReward:nope=1"])


def test_a_wrapper_chain_from_the_cli_is_recorded_and_reused_by_eval_and_resume(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "option-critic", "--env", "CartPole-v1", "--wrap", "NormalizeObservation",
            "--wrap", "ClipReward:min_reward=0,max_reward=0.5", "--set", "num_envs=2", "rollout_steps=4",
            "--total-steps", "128", "--quiet", "--no-tensorboard", "--eval-every", "0", "--run-dir", str(run)]
    assert cli(args) == 0
    from hrlkit.runtime import checkpoint

    data = checkpoint.load(str(run / "checkpoints" / "latest.pt"))
    assert [w["name"] for w in data["env_spec"]["wrappers"]] == ["NormalizeObservation", "ClipReward"]
    agent = hrlkit.OptionCritic.load(str(run / "checkpoints" / "latest.pt"))
    assert isinstance(agent.envs.envs[0], gym.wrappers.ClipReward)
    assert cli(["eval", str(run), "--episodes", "2"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["episodes"] == 2
    assert cli(["train", "option-critic", "--resume", str(run), "--total-steps", "192", "--quiet", "--no-tensorboard",
                "--eval-every", "0"]) == 0
    assert checkpoint.load(str(run / "checkpoints" / "latest.pt"))["global_step"] == 192


def test_a_wrapper_chain_from_a_config_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("num_options: 2\nwrappers:\n  - name: TimeLimit\n    max_episode_steps: 7\n  - NormalizeObservation\n")
    run = tmp_path / "run"
    assert cli(["train", "option-critic", "--env", "CartPole-v1", "--config", str(cfg), "--total-steps", "64",
                "--quiet", "--no-tensorboard", "--eval-every", "0", "--run-dir", str(run), "--num-envs", "2"]) == 0
    agent = hrlkit.OptionCritic.load(str(run / "checkpoints" / "latest.pt"))
    assert agent.config.num_options == 2
    assert agent.envs.envs[0].get_wrapper_attr("_max_episode_steps") == 7


# ---- user env modules -------------------------------------------------------------------------------
MODULE = textwrap.dedent('''
    import gymnasium as gym
    import numpy as np

    class Corridor(gym.Env):
        observation_space = gym.spaces.Box(0.0, 10.0, (1,), np.float32)
        action_space = gym.spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.x = 0
            return np.array([0.0], np.float32), {}

        def step(self, action):
            self.x += 1 if action == 1 else 0
            return np.array([self.x], np.float32), float(action), self.x >= 5, False, {}

    if "usertest/Corridor-v0" not in gym.registry:
        gym.register("usertest/Corridor-v0", entry_point=Corridor, max_episode_steps=20)
''')


@pytest.mark.parametrize("how", ["colon", "env-module"])
def test_a_user_module_env_trains_and_is_evaluated_in_a_new_process(tmp_path, monkeypatch, how):
    pkg = tmp_path / "mods"
    pkg.mkdir()
    (pkg / f"usertest_envs_{how.replace('-', '_')}.py").write_text(MODULE)
    mod = f"usertest_envs_{how.replace('-', '_')}"
    monkeypatch.syspath_prepend(str(pkg))
    run = tmp_path / "run"
    env_args = ["--env", f"{mod}:usertest/Corridor-v0"] if how == "colon" else \
        ["--env-module", mod, "--env", "usertest/Corridor-v0"]
    assert cli(["train", "option-critic", *env_args, "--total-steps", "64", "--quiet", "--no-tensorboard",
                "--eval-every", "0", "--run-dir", str(run), "--set", "num_envs=2", "rollout_steps=4"]) == 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(pkg), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "hrlkit.cli", "eval", str(run), "--episodes", "2"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["episodes"] == 2


# ---- normalization statistics belong to the run ----------------------------------------------------------
def test_normalization_statistics_reach_evaluation_frozen_and_survive_a_checkpoint(tmp_path):
    agent = hrlkit.OptionCritic("CartPole-v1", seed=0, num_envs=2, wrappers=["NormalizeObservation"], **SMALL)
    agent.learn(200, run_dir=str(tmp_path / "run"), **QUIET)
    per_env = [e.get_wrapper_attr("obs_rms") for e in agent.envs.envs]
    env, owned = agent.make_eval_env()
    rms = env.get_wrapper_attr("obs_rms")
    total = sum(r.count for r in per_env)
    mean = sum(r.mean * r.count for r in per_env) / total
    np.testing.assert_allclose(rms.mean, mean, rtol=1e-6)
    assert rms.count == pytest.approx(total)
    before = rms.mean.copy()
    env.reset(seed=0)
    env.step(0)
    np.testing.assert_array_equal(env.get_wrapper_attr("obs_rms").mean, before)  # frozen in evaluation
    path = str(tmp_path / "a.pt")
    agent.save(path)
    loaded = hrlkit.OptionCritic.load(path)  # no unpickling: the statistics are plain arrays
    for mine, theirs in zip(per_env, (e.get_wrapper_attr("obs_rms") for e in loaded.envs.envs)):
        np.testing.assert_array_equal(mine.mean, theirs.mean)
        np.testing.assert_array_equal(mine.var, theirs.var)
        assert mine.count == theirs.count


def test_reward_normalizers_are_left_out_of_evaluation():
    maker = EnvMaker("CartPole-v1", wrappers=["NormalizeReward", "NormalizeObservation"])
    train_env, eval_env = maker.make(), maker.make(for_eval=True)
    assert isinstance(train_env.env, gym.wrappers.NormalizeReward)
    assert not isinstance(eval_env.env, gym.wrappers.NormalizeReward)
