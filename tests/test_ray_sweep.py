"""hrlkit sweep on a local Ray (2 CPUs): trials are ordinary run directories, a failed trial is
reported while the other finishes, an interrupted trial continues from its checkpoint, a rerun
skips finished trials, and bad input is refused before any trial starts."""
from __future__ import annotations

import csv
import json
import os

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.tune")

import hrlkit  # noqa: E402
from hrlkit.cli import main  # noqa: E402
from hrlkit.runtime.config import ConfigError  # noqa: E402

FIXED = {"learning_starts": 100, "batch_size": 32, "hidden_sizes": [32], "option_hidden_sizes": [32],
         "buffer_size": 5_000}
STEPS = 600


from _ray_local import local_ray  # noqa: E402, F401 - the module's local Ray (2 CPUs)


def _sweep(out, **kw):
    # deliberation_cost=1e300 passes the configuration's checks and turns the losses non-finite: a trial that fails
    return hrlkit.sweep("soft-option-critic", "Pendulum-v1", seeds=[0], grid={"deliberation_cost": [0.01, 1e300]},
                        config=FIXED, total_steps=STEPS, out=str(out), log_every=200, eval_every=300, eval_episodes=1,
                        checkpoint_every=300, verbose=0, **kw)


def test_two_trial_sweep_reports_the_failure_resumes_and_skips(tmp_path):
    out = tmp_path / "sweep"
    good = out / "deliberation_cost=0.01__seed0"
    # an interrupted trial: 300 steps and a checkpoint, no trial.json
    partial = hrlkit.SoftOptionCritic("Pendulum-v1", seed=0, deliberation_cost=0.01, **FIXED)
    partial.learn(300, run_dir=str(good), log_every=200, eval_every=None, checkpoint_every=300, progress=False)
    assert not (good / "trial.json").exists()

    summary = _sweep(out)
    by_name = {t["name"]: t for t in summary["trials"]}
    assert by_name["deliberation_cost=0.01__seed0"]["status"] == "done"
    bad = by_name["deliberation_cost=1e+300__seed0"]
    assert bad["status"] == "error" and "non-finite" in bad["error"]
    assert summary["failed"] == ["deliberation_cost=1e+300__seed0"]
    # the finished trial is an ordinary run directory, continued from step 300 (not started again)
    for name in ("config.json", "progress.csv", "checkpoints/latest.pt", "checkpoints/step_300.pt",
                 "checkpoints/step_600.pt"):
        assert (good / name).exists(), name
    with open(good / "config.json") as f:
        assert json.load(f)["config"]["deliberation_cost"] == 0.01
    with open(good / "progress.csv") as f:
        steps = [int(float(r["global_step"])) for r in csv.DictReader(f)]
    assert steps[0] == 200 and steps[-1] == STEPS and steps == sorted(steps)
    # one table (mean, IQM, CI per configuration) and one figure
    row = next(r for r in summary["rows"] if r["label"] == "deliberation_cost=0.01")
    assert len(row["finals"]) == 1 and row["mean"] == row["iqm"] == row["ci"][0] == row["ci"][1]
    table = (out / "table.md").read_text()
    assert "| deliberation_cost=0.01 | 1 |" in table and "failed: deliberation_cost=1e+300__seed0" in table
    assert (out / "curves.png").stat().st_size > 1000
    assert json.loads((out / "results.json").read_text())["failed"] == summary["failed"]

    # a rerun skips the finished trial (its files untouched) and tries the failed one again
    latest = good / "checkpoints" / "latest.pt"
    before = latest.stat().st_mtime_ns
    again = _sweep(out)
    assert latest.stat().st_mtime_ns == before
    assert again["failed"] == ["deliberation_cost=1e+300__seed0"]


def test_bad_sweeps_are_refused_before_any_trial(tmp_path, capsys):
    out = tmp_path / "never"
    with pytest.raises(ConfigError, match=r"--grid: 'num_option' is not a hyperparameter of soft-option-critic "
                                          r"\(expected one of: .*num_options.*\), got --grid num_option=2,4"):
        hrlkit.sweep("soft-option-critic", "Pendulum-v1", grid={"num_option": [2, 4]}, out=str(out), verbose=0)
    with pytest.raises(ConfigError, match=r"--grid batch_size=30: batch_size: expected a positive multiple of "
                                          r"num_options \(4\), got 30"):
        hrlkit.sweep("soft-option-critic", "Pendulum-v1", grid={"batch_size": [32, 30]}, out=str(out), verbose=0)
    with pytest.raises(ConfigError, match=r"--address: cannot reach a Ray cluster at '127.0.0.1:9'"):
        hrlkit.sweep("soft-option-critic", "Pendulum-v1", out=str(out), address="127.0.0.1:9", verbose=0)
    with pytest.raises(ConfigError, match=r"--seeds: expected a range such as 0-4"):
        hrlkit.sweep("soft-option-critic", "Pendulum-v1", seeds="0-x", out=str(out), verbose=0)
    with pytest.raises(ConfigError, match=r"--cpus-per-trial: 3 asked, the Ray cluster has 2 CPUs"):
        hrlkit.sweep("soft-option-critic", "Pendulum-v1", cpus_per_trial=3, out=str(out), verbose=0)
    assert not out.exists()  # nothing was written

    rc = main(["sweep", "soft-option-critic", "--env", "Pendulum-v1", "--grid", "nope=1,2", "--out", str(out)])
    assert rc == 2
    assert "hrlkit sweep: error: --grid: 'nope' is not a hyperparameter of soft-option-critic" in capsys.readouterr().err
    rc = main(["sweep", "soft-option-critic", "--env", "Pendulum-v1", "--address", "nohost", "--out", str(out)])
    assert rc == 2
    assert "--address: expected host:port" in capsys.readouterr().err
    assert not out.exists()
