"""CLI odds and ends (issue 15, items 5 and 6): --total-steps bounds, --video without moviepy on
eval/skills, --version and ``python -m hrlkit``, plot --metric naming the columns, and optional
tracking: Weights & Biases through ``Logger(track=...)`` / ``train --track`` and the
hyperparameters in TensorBoard's hparams plugin."""
from __future__ import annotations

import csv
import inspect
import json
import os
import subprocess
import sys
import types

import pytest

import hrlkit
from hrlkit.cli import main
from hrlkit.runtime import trainer
from hrlkit.runtime.config import ConfigError
from hrlkit.runtime.logger import HPARAM_METRICS, Logger
from hrlkit.runtime.tracking import TRACKING_FILE, flat_hparams


def _error(capsys) -> str:
    return capsys.readouterr().err


# ---- --total-steps --------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", ["0", "-5"])
def test_total_steps_below_one_is_an_error(steps, capsys, tmp_path):
    rc = main(["train", "option-critic", "--env", "CartPole-v1", "--total-steps", steps, "--quiet",
               "--run-dir", str(tmp_path / "run")])
    assert rc == 2
    assert f"hrlkit train: error: --total-steps: expected an int >= 1, got {steps}" in _error(capsys)
    assert not (tmp_path / "run").exists()  # refused before anything was built or written


# ---- --video without moviepy ----------------------------------------------------------------------


@pytest.fixture
def no_moviepy(monkeypatch):
    monkeypatch.setitem(sys.modules, "moviepy", None)  # `import moviepy` raises ImportError


def _video_error(argv, capsys) -> str:
    assert main(argv) == 2
    err = _error(capsys).strip()
    assert "Traceback" not in err
    return err.split(": error: ", 1)[1]


def test_eval_and_skills_video_without_moviepy_fail_like_train(no_moviepy, tmp_path, capsys):
    oc = hrlkit.OptionCritic("CartPole-v1", seed=0)
    oc.save(str(tmp_path / "oc" / "checkpoints" / "latest.pt"))
    diayn = hrlkit.DIAYN("hrlkit/PointNav-v0", seed=0, num_skills=2, hidden_sizes=[8], discriminator_hidden_sizes=[8])
    diayn.save(str(tmp_path / "diayn" / "checkpoints" / "latest.pt"))

    train = _video_error(["train", "option-critic", "--env", "CartPole-v1", "--total-steps", "64", "--quiet", "--video",
                          "--run-dir", str(tmp_path / "train")], capsys)
    evaluation = _video_error(["eval", str(tmp_path / "oc"), "--episodes", "1", "--video"], capsys)
    skills = _video_error(["skills", str(tmp_path / "diayn"), "--video"], capsys)
    assert train == evaluation == skills == "video: recording needs moviepy; pip install 'hrlkit[video]'"
    assert not (tmp_path / "oc" / "videos").exists() and not (tmp_path / "diayn" / "skills").exists()


# ---- --version, python -m hrlkit -----------------------------------------------------------------


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"hrlkit {hrlkit.__version__}"


def test_python_dash_m_hrlkit():
    run = subprocess.run([sys.executable, "-m", "hrlkit", "--version"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"hrlkit {hrlkit.__version__}"
    bad = subprocess.run([sys.executable, "-m", "hrlkit", "train", "option-critic", "--env", "CartPole-v1",
                          "--total-steps", "0"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--total-steps" in bad.stderr


# ---- plot --metric --------------------------------------------------------------------------------


def _fake_run(path, columns=("charts/episodic_return", "losses/total")):
    os.makedirs(path)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump({"algo": "option-critic", "env_id": "CartPole-v1", "seed": 0, "config": {}}, f)
    with open(os.path.join(path, "progress.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["global_step", *columns])
        for step in (100, 200, 300):
            w.writerow([step, *[step / 10] * len(columns)])
    return str(path)


def test_plot_metric_absent_lists_the_columns(tmp_path, capsys):
    run = _fake_run(tmp_path / "run")
    assert main(["plot", run, "--metric", "eval/mean_return", "--out", str(tmp_path / "c.png")]) == 2
    err = _error(capsys)
    assert "--metric: 'eval/mean_return' is not a column of" in err
    assert "its columns: charts/episodic_return, losses/total" in err
    assert not (tmp_path / "c.png").exists()
    assert main(["plot", run, "--metric", "losses/total", "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 0


# ---- tracking: a fake wandb that records its calls -------------------------------------------------


class FakeWandb(types.ModuleType):
    def __init__(self):
        super().__init__("wandb")
        self.inits, self.logs, self.finished = [], [], 0

    def init(self, **kwargs):
        self.inits.append(kwargs)
        fake = self

        class Run:
            def log(self, data, step=None):
                fake.logs.append((step, dict(data)))

            def finish(self):
                fake.finished += 1

        return Run()


@pytest.fixture
def fake_wandb(monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    return fake


def _write_config(run_dir, **config):
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump({"algo": "option-critic", "env_id": "CartPole-v1", "env_kwargs": {}, "seed": 3, "threads": 1,
                   "total_steps": 1000, "config": {"learning_rate": 0.001, "hidden_sizes": [64, 64], **config}}, f)


def test_logger_track_sends_scalars_and_hyperparameters(fake_wandb, tmp_path):
    run = str(tmp_path / "run")
    _write_config(run)
    log = Logger(run, tensorboard=False, track={"project": "p", "entity": "e"})
    log.record_many({"charts/SPS": 100.0, "losses/total": float("nan")})
    log.dump(10)
    log.record("charts/SPS", 200.0)
    log.dump(20)
    log.close()
    (init,) = fake_wandb.inits
    assert init["project"] == "p" and init["entity"] == "e" and init["dir"] == run and init["name"] == "run"
    assert init["config"] == {"learning_rate": 0.001, "hidden_sizes": "[64, 64]", "algo": "option-critic",
                              "env_id": "CartPole-v1", "seed": 3, "threads": 1, "total_steps": 1000}
    assert fake_wandb.logs == [(10, {"charts/SPS": 100.0}), (20, {"charts/SPS": 200.0})]  # NaN left out, as in TB
    assert fake_wandb.finished == 1
    saved = json.load(open(os.path.join(run, TRACKING_FILE)))["wandb_id"]
    # a resumed run (its progress.csv exists) continues the same wandb run; a fresh one starts another
    Logger(run, tensorboard=False, track={}).close()
    assert fake_wandb.inits[-1]["id"] == saved and fake_wandb.inits[-1]["resume"] == "allow"
    os.remove(os.path.join(run, "progress.csv"))
    Logger(run, tensorboard=False, track={"config": {"x": 1}}).close()
    assert fake_wandb.inits[-1]["id"] != saved and fake_wandb.inits[-1]["config"] == {"x": 1}


def test_wandb_init_failure_names_track(fake_wandb, monkeypatch, tmp_path):
    def refuse(**kwargs):
        raise RuntimeError("api_key not configured (no-tty)")

    monkeypatch.setattr(fake_wandb, "init", refuse)
    with pytest.raises(ConfigError, match=r"^track: wandb.init failed \(RuntimeError: api_key.*WANDB_MODE=offline"):
        Logger(str(tmp_path / "run"), tensorboard=False, track={"project": "p"})


def test_logger_without_track_imports_no_wandb(monkeypatch, tmp_path):
    monkeypatch.delitem(sys.modules, "wandb", raising=False)
    Logger(str(tmp_path / "run"), tensorboard=False).close()
    assert "wandb" not in sys.modules


def test_track_without_wandb_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ConfigError, match=r"^track: .*needs wandb.*pip install wandb"):
        Logger(str(tmp_path / "run"), tensorboard=False, track={"project": "p"})
    rc = main(["train", "option-critic", "--env", "CartPole-v1", "--total-steps", "64", "--quiet", "--track",
               "--run-dir", str(tmp_path / "cli")])
    assert rc == 2
    assert "hrlkit train: error: --track: logging to Weights & Biases needs wandb" in _error(capsys)
    assert not (tmp_path / "cli").exists()
    assert main(["train", "option-critic", "--env", "CartPole-v1", "--track-project", "p"]) == 2
    assert "--track-project/--track-entity: only with --track" in _error(capsys)


def test_train_track_hands_track_to_the_trainer(fake_wandb, monkeypatch, tmp_path):
    seen = {}

    def fake_train(agent, total_steps, **kwargs):
        seen.update(kwargs, total_steps=total_steps)
        agent.run_dir = kwargs["run_dir"]
        return kwargs["run_dir"]

    monkeypatch.setattr(trainer, "train", fake_train)
    argv = ["train", "option-critic", "--env", "CartPole-v1", "--quiet", "--run-dir", str(tmp_path / "r")]
    assert main(argv + ["--track", "--track-project", "proj"]) == 0
    assert seen["track"] == {"project": "proj", "entity": None} and seen["total_steps"] == 100_000
    seen.clear()
    assert main(argv) == 0
    assert "track" not in seen  # nothing about tracking reaches the trainer unless asked


@pytest.mark.skipif("track" not in inspect.signature(trainer.train).parameters,
                    reason="the trainer does not pass track to its Logger yet")
def test_train_track_end_to_end(fake_wandb, tmp_path):
    run = str(tmp_path / "run")
    assert main(["train", "option-critic", "--env", "CartPole-v1", "--total-steps", "256", "--log-every", "128",
                 "--eval-every", "0", "--quiet", "--no-tensorboard", "--track", "--run-dir", run]) == 0
    (init,) = fake_wandb.inits
    assert init["project"] == "hrlkit" and init["config"]["algo"] == "option-critic"
    with open(os.path.join(run, "progress.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert [step for step, _ in fake_wandb.logs] == [int(r["global_step"]) for r in rows]
    assert fake_wandb.finished == 1


def test_logger_track_with_real_wandb_offline(monkeypatch, tmp_path):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = str(tmp_path / "run")
    _write_config(run)
    log = Logger(run, tensorboard=False, track={"project": "hrlkit-test"})
    for step in (10, 20):
        log.record("charts/SPS", float(step))
        log.dump(step)
    log.close()
    offline = [d for d in os.listdir(os.path.join(run, "wandb")) if d.startswith("offline-run-")]
    assert len(offline) == 1
    run_id = json.load(open(os.path.join(run, TRACKING_FILE)))["wandb_id"]
    assert offline[0].endswith(run_id)
    assert any(name.endswith(".wandb") for name in os.listdir(os.path.join(run, "wandb", offline[0])))


# ---- hyperparameters in TensorBoard ---------------------------------------------------------------


def test_hparams_written_to_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run = str(tmp_path / "run")
    _write_config(run, autotune=True)
    log = Logger(run, tensorboard=True)
    log.record("eval/mean_return", 1.5)
    log.dump(100)
    log.close()
    acc = EventAccumulator(run)
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = start.session_start_info.hparams
    assert hp["learning_rate"].number_value == pytest.approx(0.001)
    assert hp["autotune"].number_value == 1.0  # torch's hparams() writes bools as numbers
    assert hp["hidden_sizes"].string_value == "[64, 64]" and hp["env_id"].string_value == "CartPole-v1"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert [m.name.tag for m in experiment.metric_infos] == list(HPARAM_METRICS)
    assert acc.Scalars("eval/mean_return")[0].value == 1.5  # the same events file holds the scalars


def test_flat_hparams_keeps_scalars_and_names():
    flat = flat_hparams({"algo": "diayn", "seed": 1, "env_kwargs": {"size": 5},
                         "config": {"lr": 0.1, "sizes": [1, 2], "opt": None, "seed": 9, "x": float("inf")}})
    assert flat == {"lr": 0.1, "sizes": "[1, 2]", "opt": "null", "seed": 9, "x": "Infinity", "algo": "diayn",
                    "run/seed": 1, "env_kwargs/size": 5}


# ---- a resume after a stop between a checkpoint and its evaluation --------------------------------------------------
def test_resume_makes_the_evaluation_a_stop_skipped(tmp_path, monkeypatch):
    """Checkpoints come before evaluations: a run stopped between the two resumes with the missing
    evaluation made first, so its logs hold the same evaluations as a run that never stopped
    (values equal up to the resume: the envs are rebuilt there, without --trust-checkpoint)."""
    def train(run, resume=False):
        new = ["--env", "Pendulum-v1", "--seed", "0", "--set", "learning_starts=100", "batch_size=32",
               "hidden_sizes=[16]", "--run-dir", str(run)]
        return main(["train", "soft-option-critic", *(["--resume", str(run)] if resume else new), "--total-steps",
                     "600", "--eval-every", "200", "--eval-episodes", "1", "--checkpoint-every", "200", "--quiet",
                     "--no-tensorboard", "--threads", "1"])

    def evaluations(run):
        with open(run / "progress.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        return [(int(float(r["global_step"])), float(r["eval/mean_return"])) for r in rows if r.get("eval/mean_return")]

    real, calls = trainer._evaluate, []

    def stopped_inside(agent, *args):
        calls.append(agent.global_step)
        if len(calls) == 2:  # step 400: its checkpoint is written, its evaluation is not
            raise KeyboardInterrupt("the session ended")
        real(agent, *args)

    monkeypatch.setattr(trainer, "_evaluate", stopped_inside)
    stopped, whole = tmp_path / "stopped", tmp_path / "whole"
    with pytest.raises(KeyboardInterrupt):
        train(stopped)
    monkeypatch.setattr(trainer, "_evaluate", real)
    assert [s for s, _ in evaluations(stopped)] == [200]
    assert train(stopped, resume=True) == 0
    assert train(whole) == 0
    got, want = evaluations(stopped), evaluations(whole)
    assert [s for s, _ in got] == [s for s, _ in want] == [200, 400, 600]
    assert got[:2] == want[:2]  # 400: made at the resume, from the checkpoint's parameters
    # a finished run resumed again evaluates nothing more: its last evaluation is at its last step
    with pytest.warns(UserWarning, match="already at step 600"):
        assert train(stopped, resume=True) == 0
    assert [s for s, _ in evaluations(stopped)] == [200, 400, 600]


def test_typed_values_reads_the_parsed_config_and_names_an_unknown_key():
    from hrlkit.agents.soft_option_critic import SoftOptionCriticConfig
    from hrlkit.runtime.config import build_config, parse_overrides, typed_values

    overrides = parse_overrides(["option_temperature=10", "prioritized=false", "option_hidden_sizes=[32,32]"])
    cfg = build_config(SoftOptionCriticConfig, overrides)
    assert typed_values(cfg, overrides) == {"option_temperature": 10.0, "prioritized": False,
                                            "option_hidden_sizes": [32, 32]}
    assert typed_values(cfg, None) == {}
    with pytest.raises(ConfigError,
                       match="unknown hyperparameter 'no_such_key' for SoftOptionCriticConfig; valid keys: "):
        typed_values(cfg, ["no_such_key"])
