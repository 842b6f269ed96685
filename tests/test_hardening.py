"""Files a stranger hands you, envs that misbehave, runs that collide: checkpoints load without
running code and refuse any changed byte, NaN never reaches a checkpoint, one process per run
directory, and clear messages instead of tracebacks."""
from __future__ import annotations

import io
import json
import os
import pickle
import signal
import stat
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

import hrlkit
from hrlkit.agents.base import load_agent
from hrlkit.cli import main as cli
from hrlkit.runtime import checkpoint
from hrlkit.runtime.checkpoint import CheckpointError
from hrlkit.runtime.config import ConfigError
from hrlkit.runtime.errors import EnvError, NonFiniteError
from hrlkit.runtime.rundir import run_lock

SMALL = dict(num_envs=2, rollout_steps=4)
LEARN = dict(progress=False, tensorboard=False, eval_every=None, log_every=64)


class Payload:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _frame(body: bytes) -> bytes:
    """A checkpoint file around ``body`` whose header and checksum are right (what an attacker can
    always produce: a checksum is no signature)."""
    import hashlib

    header = {"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "body_bytes": len(body),
              "sha256": hashlib.sha256(body).hexdigest()}
    return checkpoint.MAGIC + json.dumps(header).encode() + b"\n" + body


def _trained_run(tmp_path, steps=128, **learn):
    agent = hrlkit.OptionCritic("CartPole-v1", seed=0, **SMALL)
    run = tmp_path / "run"
    agent.learn(steps, run_dir=str(run), **{**LEARN, "checkpoint_every": 64, **learn})
    return agent, run


# ---- 3. no code runs on load -----------------------------------------------------------------------
def _every_load_path(path, run_dir, tmp_path):
    """Load ``path`` through every public way of loading a checkpoint; each must refuse it."""
    results = []
    for load in (
        lambda: checkpoint.load(path),
        lambda: hrlkit.OptionCritic.load(path),
        lambda: load_agent(path),
        lambda: hrlkit.DIAYNManager("hrlkit/PointNavGoal-v0", skills=path),
    ):
        with pytest.raises((CheckpointError, ConfigError)) as info:
            load()
        results.append(str(info.value))
    results.append(cli(["eval", str(run_dir), "--checkpoint", path, "--episodes", "1"]))
    results.append(cli(["skills", str(run_dir), "--checkpoint", path]))
    return results


def test_a_crafted_checkpoint_cannot_run_code_through_any_load_path(tmp_path, capsys):
    _, run = _trained_run(tmp_path)
    marker = tmp_path / "pwned"
    evil_body = io.BytesIO()
    torch.save({"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "algo": "option-critic",
                "config": Payload(marker)}, evil_body)
    evil = tmp_path / "evil.pt"
    evil.write_bytes(_frame(evil_body.getvalue()))
    legacy = tmp_path / "legacy.pt"  # format 1: a bare torch.save file
    torch.save({"format": checkpoint.FORMAT, "version": 1, "algo": "option-critic", "x": Payload(marker)}, legacy)
    for path in (evil, legacy):
        results = _every_load_path(str(path), run, tmp_path)
        assert not marker.exists()
        assert all(str(path) in r for r in results[:3])
        assert results[-2:] == [2, 2]
    assert "hrlkit convert-checkpoint" in capsys.readouterr().err  # the legacy file's message says what to do
    # --resume of a run whose latest.pt is crafted
    os.replace(evil, run / "checkpoints" / "latest.pt")
    assert cli(["train", "option-critic", "--resume", str(run), "--total-steps", "256", "--quiet"]) == 2
    assert not marker.exists()


def test_the_pickled_envs_are_unpickled_only_when_trusted(tmp_path, capsys):
    agent, run = _trained_run(tmp_path)
    marker = tmp_path / "pwned"
    data = checkpoint.load(str(run / "checkpoints" / "latest.pt"), trust_pickle=True)
    assert data["envs"] is not None  # CartPole's state is in the file, for an exact resume
    data["envs"] = pickle.dumps(Payload(marker))
    path, copy = str(run / "checkpoints" / "latest.pt"), str(tmp_path / "copy.pt")
    for p in (path, copy):
        checkpoint.save(p, {k: v for k, v in data.items() if k not in ("format", "version")})
    assert checkpoint.load(path)["envs"] is None
    hrlkit.OptionCritic.load(path)
    assert cli(["eval", str(run), "--episodes", "1"]) == 0
    assert cli(["train", "option-critic", "--resume", str(run), "--total-steps", "192", "--quiet",
                "--no-tensorboard", "--eval-every", "0"]) == 0
    assert not marker.exists()  # eval, load and a plain --resume never unpickle
    try:  # trusting the file is the user's explicit call, and then its pickle does run
        hrlkit.OptionCritic.load(copy, trust_pickle=True)
    except Exception:  # noqa: BLE001 - the payload is no vector env
        pass
    assert marker.exists()


def test_old_checkpoints_get_a_message_and_a_converter(tmp_path, capsys):
    agent = hrlkit.OptionCritic("CartPole-v1", seed=1, **SMALL)
    payload = agent.checkpoint_payload()
    old = tmp_path / "old.pt"
    torch.save({"format": checkpoint.FORMAT, "version": 1, **payload}, old)  # how format 1 was written
    with pytest.raises(CheckpointError, match="format 1.*hrlkit convert-checkpoint"):
        hrlkit.OptionCritic.load(str(old))
    new = tmp_path / "new.pt"
    assert cli(["convert-checkpoint", str(old), str(new)]) == 0
    loaded = hrlkit.OptionCritic.load(str(new), trust_pickle=True)
    for k, m in agent.modules().items():
        a, b = m.state_dict(), loaded.modules()[k].state_dict()
        assert all(torch.equal(a[n], b[n]) for n in a if isinstance(a[n], torch.Tensor))
    assert np.array_equal(loaded.obs, agent.obs)
    assert cli(["convert-checkpoint", str(new), str(tmp_path / "again.pt")]) == 2  # already converted
    assert "not a format-1" in capsys.readouterr().err


# ---- 4. no silent corruption ---------------------------------------------------------------------------
def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and (a == b or (a != a and b != b))


def test_mutated_checkpoints_load_identical_or_raise_naming_the_file(tmp_path):
    agent = hrlkit.SoftOptionCritic("Pendulum-v1", seed=0, learning_starts=50, batch_size=16, hidden_sizes=[8],
                                    buffer_size=256)
    agent.learn(80, run_dir=str(tmp_path / "run"), **LEARN)
    path = str(tmp_path / "ok.pt")
    agent.save(path)
    original = open(path, "rb").read()
    reference = checkpoint.load(path, trust_pickle=True)
    rng = np.random.default_rng(20261129)
    outcomes = {"identical": 0, "raised": 0}
    for trial in range(300):
        blob = bytearray(original)
        kind = trial % 5
        if kind == 0:  # one bit flip
            pos = int(rng.integers(len(blob)))
            blob[pos] ^= 1 << int(rng.integers(8))
        elif kind == 1:  # a run of random bytes
            pos = int(rng.integers(len(blob) - 8))
            blob[pos:pos + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
        elif kind == 2:  # truncated
            blob = blob[: int(rng.integers(len(blob)))]
        elif kind == 3:  # bytes appended
            blob += rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        else:  # a flip in the header, where the checksum and lengths are
            pos = int(rng.integers(min(len(blob), 200)))
            blob[pos] ^= 1 << int(rng.integers(8))
        bad = str(tmp_path / f"m{trial}.pt")
        with open(bad, "wb") as f:
            f.write(bytes(blob))
        try:
            data = checkpoint.load(bad, trust_pickle=True)
        except (CheckpointError, FileNotFoundError) as exc:
            assert bad in str(exc)
            outcomes["raised"] += 1
        else:
            assert _same(data, reference), f"mutation {trial} ({kind}) loaded different contents"
            outcomes["identical"] += 1
        os.remove(bad)
    assert outcomes["raised"] + outcomes["identical"] == 300
    assert outcomes["raised"] > 250


def test_resume_refuses_a_corrupted_latest_and_falls_back_only_when_asked(tmp_path, capsys):
    _, run = _trained_run(tmp_path, steps=192)
    latest = run / "checkpoints" / "latest.pt"
    blob = bytearray(latest.read_bytes())
    blob[-100] ^= 0x10
    os.remove(latest)  # latest.pt is a second name of step_192.pt: corrupt only this name
    latest.write_bytes(bytes(blob))
    args = ["train", "option-critic", "--resume", str(run), "--total-steps", "256", "--quiet", "--no-tensorboard",
            "--eval-every", "0"]
    assert cli(args) == 2
    err = capsys.readouterr().err
    assert "latest.pt" in err and "checksum" in err and "--resume-fallback" in err
    (run / "checkpoints" / "step_192.pt").unlink()
    assert cli([*args, "--resume-fallback"]) == 0
    assert "resuming from" in capsys.readouterr().err
    assert checkpoint.load(str(latest))["global_step"] == 256


# ---- 5. NaN never reaches the networks or the checkpoints -------------------------------------------
class FaultyEnv(gym.Env):
    """CartPole-like spaces; returns ``bad`` as the reward or the observation from step ``at``."""

    observation_space = gym.spaces.Box(-10, 10, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, field="reward", at=100, bad=float("nan")):
        self.field, self.at, self.bad, self.t = field, at, bad, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(4, np.float32), {}

    def step(self, action):
        self.t += 1
        obs, reward = np.full(4, 0.1, np.float32), 1.0
        if self.t >= self.at:
            if self.field == "reward":
                reward = self.bad
            elif self.field == "observation":
                obs[2] = self.bad
            else:
                obs = np.zeros(7, np.float32)  # the wrong shape
        return obs, reward, False, self.t % 20 == 0, {}


gym.register("hrlkit-test/Faulty-v0", entry_point=FaultyEnv)


@pytest.mark.parametrize("field, bad", [("reward", float("nan")), ("reward", float("inf")),
                                        ("observation", float("nan")), ("observation", -float("inf"))])
def test_non_finite_env_output_stops_training_naming_env_step_and_field(tmp_path, field, bad):
    agent = hrlkit.OptionCritic("hrlkit-test/Faulty-v0", seed=0, env_kwargs={"field": field, "at": 40, "bad": bad},
                                **SMALL)
    with pytest.raises(EnvError, match=rf"env 'hrlkit-test/Faulty-v0': sub-env 0 returned a non-finite {field} at step 78"):
        agent.learn(400, run_dir=str(tmp_path / "run"), checkpoint_every=32, **LEARN)
    latest = hrlkit.OptionCritic.load(str(tmp_path / "run" / "checkpoints" / "latest.pt"))
    latest.check_finite_parameters()
    assert latest.global_step == 64
    agent.check_finite_parameters()  # the bad value never reached an update


def test_a_wrong_shape_observation_names_the_env_and_the_space(tmp_path):
    agent = hrlkit.OptionCritic("hrlkit-test/Faulty-v0", seed=0, env_kwargs={"field": "shape", "at": 3}, **SMALL)
    with pytest.raises(EnvError, match=r"env 'hrlkit-test/Faulty-v0': step failed at step 4 .*Box\(-10\.0, 10\.0, \(4,\)"):
        agent.learn(100, run_dir=str(tmp_path / "run"), **LEARN)


def test_a_non_finite_loss_stops_training_and_keeps_the_last_finite_checkpoint(tmp_path):
    agent = hrlkit.OptionCritic("CartPole-v1", seed=0, **SMALL)
    update = agent.update

    def poisoned():
        stats = update()
        if agent.global_step > 100:
            with torch.no_grad():
                next(agent.net.parameters()).fill_(float("nan"))
            return {**stats, "losses/critic": float("nan")}
        return stats

    agent.update = poisoned
    with pytest.raises(NonFiniteError, match="losses/critic: non-finite loss"):
        agent.learn(400, run_dir=str(tmp_path / "run"), checkpoint_every=32, **LEARN)
    ckpts = sorted(os.listdir(tmp_path / "run" / "checkpoints"))
    assert "step_128.pt" not in ckpts and "step_96.pt" in ckpts
    hrlkit.OptionCritic.load(str(tmp_path / "run" / "checkpoints" / "latest.pt")).check_finite_parameters()
    # and save() itself refuses NaN weights, writing nothing
    with pytest.raises(NonFiniteError, match="non-finite values"):
        agent.save(str(tmp_path / "nan.pt"))
    assert not (tmp_path / "nan.pt").exists()


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", float("inf")])
def test_infinite_or_nan_hyperparameters_are_refused(value):
    with pytest.raises(ConfigError, match="learning_rate: expected a finite float"):
        hrlkit.OptionCritic("CartPole-v1", learning_rate=value)


# ---- 6. one process per run directory -----------------------------------------------------------------
def _train_cmd(run):
    return [sys.executable, "-m", "hrlkit.cli", "train", "option-critic", "--env", "CartPole-v1", "--total-steps",
            "64", "--quiet", "--no-tensorboard", "--eval-every", "0", "--run-dir", str(run), "--set", "num_envs=2"]


def test_a_second_process_on_a_locked_run_dir_is_refused(tmp_path):
    run = tmp_path / "run"
    with run_lock(str(run)):
        proc = subprocess.run(_train_cmd(run), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2
        assert f"is in use by another hrlkit process (pid {os.getpid()})" in proc.stderr
        assert not (run / "config.json").exists()
    # a holder killed with -9 leaves no stale lock
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from hrlkit.runtime.rundir import run_lock\n"
                               f"with run_lock({str(run)!r}):\n    print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    proc = subprocess.run(_train_cmd(run), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# ---- 7. the smaller ones ---------------------------------------------------------------------------------
def test_save_refuses_a_device_node_and_clears_dead_saves_temporaries(tmp_path):
    agent = hrlkit.OptionCritic("CartPole-v1", seed=0, **SMALL)
    with pytest.raises(ValueError, match="path: expected a regular file or a new path, got '/dev/null'"):
        agent.save("/dev/null")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    path = str(tmp_path / "a.pt")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale, live = f"{path}.tmp-{dead.pid}-1", f"{path}.tmp-{os.getppid()}-1"
    for p in (stale, live):
        open(p, "wb").close()
    agent.save(path)
    assert not os.path.exists(stale) and os.path.exists(live)  # a live process's save is left alone


def test_a_run_killed_before_its_first_checkpoint_can_start_again(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "progress.csv").write_text("global_step\n10\n")
    assert cli(["train", "option-critic", "--resume", str(run)]) == 2
    assert "stopped before its first checkpoint; start it again with --run-dir" in capsys.readouterr().err
    assert cli(["train", "option-critic", "--env", "CartPole-v1", "--total-steps", "64", "--quiet", "--no-tensorboard",
                "--eval-every", "0", "--run-dir", str(run), "--set", "num_envs=2"]) == 0
    assert json.loads((run / "config.json").read_text())["algo"] == "option-critic"
    # a run with a checkpoint is still protected
    assert cli(["train", "option-critic", "--env", "CartPole-v1", "--total-steps", "64", "--quiet",
                "--run-dir", str(run)]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_messages_instead_of_tracebacks(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("learning_rate: [1e-3\n")
    assert cli(["train", "option-critic", "--env", "CartPole-v1", "--config", str(broken)]) == 2
    assert f"--config: {str(broken)!r} is not valid YAML" in capsys.readouterr().err
    _, run = _trained_run(tmp_path)
    assert cli(["plot", str(run), "--metric", "charts/SPS", "--out", "/proc/no/such/dir/curves.png"]) == 2
    assert "--out: cannot write '/proc/no/such/dir/curves.png'" in capsys.readouterr().err
    for episodes in ("0", "-3"):
        assert cli(["eval", str(run), "--episodes", episodes]) == 2
        assert f"--episodes: expected an int >= 1, got {episodes}" in capsys.readouterr().err
    data = checkpoint.load(str(run / "checkpoints" / "latest.pt"))
    lacking = str(tmp_path / "lacking.pt")
    checkpoint.save(lacking, {k: v for k, v in data.items() if k not in ("format", "version", "env_id")})
    with pytest.raises(CheckpointError, match=r"lacks the checkpoint key\(s\) 'env_id'"):
        hrlkit.OptionCritic.load(lacking)
    assert cli(["eval", str(run), "--checkpoint", lacking]) == 2
    assert lacking in capsys.readouterr().err


def test_checkpoints_written_before_the_renames_still_load(tmp_path):
    """Configs saved with the old names (tau, alpha, actor_lr, ...) load under the new ones."""
    agent = hrlkit.SoftOptionCritic("Pendulum-v1", seed=0, polyak=0.02, entropy_coef=0.5, actor_learning_rate=1e-3,
                                    hidden_sizes=[8], option_hidden_sizes=[8], buffer_size=64)
    payload = agent.checkpoint_payload()
    cfg = payload["config"]
    for new, old in (("polyak", "tau"), ("entropy_coef", "alpha"), ("actor_learning_rate", "actor_lr"),
                     ("autotune_entropy_coef", "autotune_alpha"), ("option_learning_rate", "option_lr")):
        cfg[old] = cfg.pop(new)
    path = str(tmp_path / "old_names.pt")
    checkpoint.save(path, payload)
    loaded = hrlkit.SoftOptionCritic.load(path)
    assert (loaded.config.polyak, loaded.config.entropy_coef, loaded.config.actor_learning_rate) == (0.02, 0.5, 1e-3)
    with pytest.raises(ConfigError, match="tau: renamed to 'polyak'"):
        hrlkit.SoftOptionCritic("Pendulum-v1", tau=0.02)


def test_the_converter_leaves_out_a_format_1_replay(tmp_path, capsys):
    agent = hrlkit.SoftOptionCritic("Pendulum-v1", seed=0, hidden_sizes=[8], option_hidden_sizes=[8], buffer_size=64,
                                    save_replay=True)
    payload = agent.checkpoint_payload()
    payload["extra"]["replay"] = b"HRLKIT-REPLAY format 1 bytes"
    torch.save({"format": checkpoint.FORMAT, "version": 1, **payload}, tmp_path / "old.pt")
    assert cli(["convert-checkpoint", str(tmp_path / "old.pt"), str(tmp_path / "new.pt")]) == 0
    assert "replay buffer (an old, unchecksummed format) was left out" in capsys.readouterr().out
    loaded = hrlkit.SoftOptionCritic.load(str(tmp_path / "new.pt"))
    assert len(loaded.buffer) == 0
