"""The run's torch thread count: the Python API applies it as the CLI does (default 1), records
it, gives back the caller's setting, and refuses bad values naming ``threads``."""
from __future__ import annotations

import json

import pytest
import torch

import hrlkit
from hrlkit.cli import main as cli
from hrlkit.runtime.config import ConfigError


@pytest.fixture
def caller_threads():
    """The test's process runs with 3 torch threads, as a user's script might; restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield 3
    torch.set_num_threads(before)


def _threads_seen_by_learn(agent, tmp_path) -> set[int]:
    seen = set()

    def on_episode_end(agent, i, ret, length):
        seen.add(torch.get_num_threads())

    agent.learn(400, run_dir=str(tmp_path / "run"), progress=False, tensorboard=False, eval_every=None,
                checkpoint_every=None, log_every=200, callback=lambda a, s: seen.add(torch.get_num_threads()),
                on_episode_end=on_episode_end)
    return seen


@pytest.mark.parametrize("threads", [None, 2])
def test_python_api_trains_with_the_configured_threads(tmp_path, caller_threads, threads):
    kwargs = {} if threads is None else {"threads": threads}
    agent = hrlkit.OptionCritic("CartPole-v1", seed=0, num_envs=2, rollout_steps=8, num_minibatches=2, update_epochs=2,
                                **kwargs)
    expected = 1 if threads is None else threads
    assert agent.threads == expected
    assert _threads_seen_by_learn(agent, tmp_path) == {expected}
    assert torch.get_num_threads() == caller_threads  # the caller's setting given back
    with open(tmp_path / "run" / "config.json") as f:
        assert json.load(f)["threads"] == expected
    # evaluation runs under the run's setting too, and a checkpoint keeps it
    agent.save(str(tmp_path / "a.pt"))
    assert hrlkit.OptionCritic.load(str(tmp_path / "a.pt")).threads == expected
    assert hrlkit.OptionCritic.load(str(tmp_path / "a.pt"), threads=4).threads == 4


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", None])
def test_bad_threads_is_a_clear_error_that_changes_nothing(bad, caller_threads):
    with pytest.raises(ConfigError, match=r"threads: expected an int >= 1.*got " + repr(bad).replace(".", r"\.")):
        hrlkit.OptionCritic("CartPole-v1", threads=bad)
    assert torch.get_num_threads() == caller_threads


def test_cli_records_threads_and_refuses_bad_ones(tmp_path, capsys, caller_threads):
    run = tmp_path / "run"
    args = ["train", "option-critic", "--env", "CartPole-v1", "--total-steps", "64", "--quiet", "--no-tensorboard",
            "--eval-every", "0", "--run-dir", str(run), "--set", "num_envs=2", "rollout_steps=8",
            "num_minibatches=2", "update_epochs=2"]
    assert cli([*args, "--threads", "0"]) == 2
    assert "--threads: expected an int >= 1, got 0" in capsys.readouterr().err
    assert not run.exists()
    assert cli([*args, "--threads", "2"]) == 0
    assert json.loads((run / "config.json").read_text())["threads"] == 2
    assert torch.get_num_threads() == caller_threads
    # a resumed run keeps its threads unless told otherwise
    agent = hrlkit.OptionCritic.load(str(run / "checkpoints" / "latest.pt"))
    assert agent.threads == 2


def test_cli_and_python_api_share_their_run_defaults():
    """What `hrlkit train` does by default is what `agent.learn()` does by default: the same
    seed, threads, device, env mode and logging/evaluation/checkpoint cadence."""
    import inspect

    from hrlkit.agents.base import Algorithm
    from hrlkit.cli import build_parser
    from hrlkit.runtime.trainer import train

    args = build_parser().parse_args(["train", "option-critic", "--env", "CartPole-v1"])
    learn = inspect.signature(train).parameters
    for flag, param in (("log_every", "log_every"), ("eval_every", "eval_every"), ("eval_episodes", "eval_episodes"),
                        ("checkpoint_every", "checkpoint_every"), ("video", "video")):
        assert getattr(args, flag) == learn[param].default, flag
    assert (not args.quiet, not args.no_tensorboard) == (learn["progress"].default, learn["tensorboard"].default)
    init = inspect.signature(Algorithm.__init__).parameters
    assert (args.seed, args.device, args.async_envs) == (init["seed"].default, init["device"].default,
                                                          init["async_envs"].default)
    assert args.threads is None and init["threads"].default == 1  # the CLI's None: 1, or a resumed run's own
