"""Callbacks in Stable-Baselines3's shape: the hooks and their counters, stopping, lists,
EvalCallback (its logs, best model, evaluations.npz, StopTrainingOnRewardThreshold),
CheckpointCallback, and the plain-function callback of before."""
from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest

import hrlkit
from hrlkit import BaseCallback, CallbackList, CheckpointCallback, EvalCallback, StopTrainingOnRewardThreshold

QUIET = dict(progress=False, eval_every=None, log_every=32)


def _oc():
    return hrlkit.OptionCritic("CartPole-v1", seed=0, num_envs=2, rollout_steps=4, hidden_sizes=[16])


class Recorder(BaseCallback):
    def __init__(self, stop_at: int | None = None):
        super().__init__()
        self.stop_at = stop_at
        self.events: list[str] = []
        self.steps: list[tuple[int, int]] = []

    def _init_callback(self):
        self.events.append("init")

    def _on_training_start(self):
        self.events.append(f"start@{self.num_timesteps}")

    def _on_rollout_start(self):
        self.events.append("rollout_start")

    def _on_step(self):
        assert set(self.locals) >= {"actions", "new_obs", "rewards", "dones", "infos", "self", "total_steps"}
        assert self.locals["rewards"].shape == (2,)
        self.steps.append((self.n_calls, self.num_timesteps))
        return self.n_calls != self.stop_at

    def _on_rollout_end(self):
        self.events.append("rollout_end")

    def _on_training_end(self):
        self.events.append("end")


def test_hooks_are_called_with_sb3_counters(tmp_path):
    agent = _oc()
    rec = Recorder()
    agent.learn(32, callback=rec, **QUIET)
    assert rec.model is agent and rec.logger is agent.logger
    assert rec.steps == [(i, 2 * i) for i in range(1, 17)]  # every vector step; num_timesteps = global_step
    assert rec.events[:2] == ["init", "start@0"] and rec.events[-1] == "end"
    rollouts = rec.events[2:-1]
    assert rollouts == ["rollout_start", "rollout_end"] * agent.num_updates == ["rollout_start", "rollout_end"] * 4
    # continuing: counters go on from the agent's step
    rec2 = Recorder()
    agent.learn(40, callback=rec2, **QUIET)
    assert rec2.events[1] == "start@32" and rec2.steps[-1] == (4, 40)


def test_on_step_false_stops_training_and_lists_combine():
    agent = _oc()
    first, second = Recorder(stop_at=5), Recorder()
    agent.learn(1_000, callback=[first, second], **QUIET)
    assert agent.global_step == 10  # stopped right after the 5th vector step
    assert first.steps[-1] == (5, 10) and second.steps[-1] == (5, 10)  # every callback saw that step
    assert first.events[-1] == second.events[-1] == "end"
    agent = _oc()
    agent.learn(1_000, callback=CallbackList([Recorder(stop_at=3)]), **QUIET)
    assert agent.global_step == 6


def test_bad_callbacks_are_refused():
    agent = _oc()
    with pytest.raises(TypeError, match="callback: expected a BaseCallback, a list of them, or a function"):
        agent.learn(32, callback=42, **QUIET)
    with pytest.raises(TypeError, match="item 1 is function"):
        agent.learn(32, callback=[Recorder(), lambda a, s: None], **QUIET)
    with pytest.raises(ValueError, match="eval_freq: expected an int >= 1"):
        EvalCallback(gym.make("CartPole-v1"), eval_freq=0)
    with pytest.raises(TypeError, match="eval_env: expected a gymnasium.Env"):
        EvalCallback("CartPole-v1")
    with pytest.raises(ValueError, match="save_freq"):
        CheckpointCallback(0, "x")
    assert agent.global_step == 0


def test_plain_function_callback_still_runs_after_each_log_row():
    agent = _oc()
    seen = []
    agent.learn(64, callback=lambda a, scalars: seen.append((a.global_step, "charts/SPS" in scalars)), **QUIET)
    assert seen == [(32, True), (64, True)]


def test_eval_callback_logs_saves_the_best_model_and_writes_evaluations(tmp_path):
    agent = _oc()
    best = tmp_path / "best"
    cb = EvalCallback(gym.make("CartPole-v1"), n_eval_episodes=2, eval_freq=8, best_model_save_path=str(best),
                      log_path=str(tmp_path / "logs"))
    agent.learn(48, callback=cb, **QUIET)
    rows = [r for r in agent.logger.rows if "eval/mean_reward" in r]
    assert [r["global_step"] for r in rows] == [16, 32, 48] and all(r["eval/mean_ep_length"] >= 1 for r in rows)
    assert cb.last_mean_reward == rows[-1]["eval/mean_reward"]
    assert cb.best_mean_reward == max(r["eval/mean_reward"] for r in rows)
    loaded = hrlkit.OptionCritic.load(str(best / "best_model.pt"))
    assert loaded.global_step in (16, 32, 48)
    data = np.load(tmp_path / "logs" / "evaluations.npz")
    assert data["timesteps"].tolist() == [16, 32, 48] and data["results"].shape == (3, 2)
    assert data["ep_lengths"].shape == (3, 2)
    assert sorted(os.listdir(tmp_path)) == ["best", "logs"]  # nothing else written


def test_eval_callback_on_a_vector_env_and_into_a_run_directory(tmp_path):
    agent = _oc()
    envs = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 2)
    cb = EvalCallback(envs, n_eval_episodes=3, eval_freq=16)
    agent.learn(32, run_dir=str(tmp_path / "run"), callback=cb, checkpoint_every=None, **QUIET)
    header = (tmp_path / "run" / "progress.csv").read_text().splitlines()[0]
    assert "eval/mean_reward" in header and "eval/mean_ep_length" in header
    assert np.isfinite(cb.best_mean_reward)


def test_stop_training_on_reward_threshold():
    agent = _oc()
    stop = StopTrainingOnRewardThreshold(reward_threshold=1.0, verbose=1)
    cb = EvalCallback(gym.make("CartPole-v1"), n_eval_episodes=1, eval_freq=4, callback_on_new_best=stop)
    agent.learn(1_000, callback=cb, **QUIET)
    assert agent.global_step == 8 and cb.best_mean_reward >= 1.0  # the first evaluation reached it
    assert stop.parent is cb
    # a threshold out of reach does not stop
    agent = _oc()
    cb = EvalCallback(gym.make("CartPole-v1"), n_eval_episodes=1, eval_freq=4,
                      callback_on_new_best=StopTrainingOnRewardThreshold(1e9))
    agent.learn(24, callback=cb, **QUIET)
    assert agent.global_step == 24
    with pytest.raises(RuntimeError, match="callback_on_new_best"):
        _oc().learn(8, callback=StopTrainingOnRewardThreshold(0), **QUIET)


def test_checkpoint_callback_saves_every_save_freq_steps(tmp_path):
    agent = _oc()
    agent.learn(24, callback=CheckpointCallback(save_freq=4, save_path=str(tmp_path / "ckpt"), name_prefix="oc"),
                **QUIET)
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["oc_16_steps.pt", "oc_24_steps.pt", "oc_8_steps.pt"]
    assert hrlkit.OptionCritic.load(str(tmp_path / "ckpt" / "oc_16_steps.pt")).global_step == 16
    assert os.listdir(tmp_path) == ["ckpt"]
