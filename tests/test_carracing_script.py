"""benchmarks/carracing.py stays usable: its report from run records, a finished run directory
read without training, and bad arguments (the real runs are made by hand; their results are in
benchmarks/results/carracing)."""
from __future__ import annotations

import json
import os
import sys

import pytest

BENCH_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH_DIR)

import carracing  # noqa: E402


def _record(out, agent, seed, returns, **extra):
    rec = {"agent": agent, "seed": seed, "steps": [100 * (i + 1) for i in range(len(returns))], "returns": returns,
           "final": returns[-1], "best": max(returns), **extra, "agent_steps": 100 * len(returns),
           "frames": 400 * len(returns), "frames_per_step": 4, "wall_s": 120.0}
    with open(os.path.join(out, "runs", f"{agent}_seed{seed}.json"), "w") as f:
        json.dump(rec, f)


def test_report_tables_and_curves(tmp_path):
    out = str(tmp_path)
    os.makedirs(os.path.join(out, "runs"))
    _record(out, "feudal", 0, [-50.0, 100.0, 250.0], zero_goals_final=-70.5)
    _record(out, "feudal", 1, [-60.0, 80.0, 150.0])
    _record(out, "a2c", 0, [-70.0, -20.0, 10.0])
    with open(os.path.join(out, "runs", "diayn_seed0.json"), "w") as f:
        json.dump({"agent": "diayn", "seed": 0, "frames": 200_000, "skills": 10, "discriminator_accuracy": 0.93,
                   "spread_ratio": 1.7, "endpoint_spread": 170.0, "random_spread": 100.0}, f)
    with open(os.path.join(out, "runs", "diayn_seed1.json"), "w") as f:  # with each skill's accuracy (JSON keys)
        json.dump({"agent": "diayn", "seed": 1, "frames": 200_000, "skills": 3, "discriminator_accuracy": 0.95,
                   "per_skill_accuracy": {"0": 0.99, "1": 0.875, "2": 0.98},
                   "spread_ratio": 2.0, "endpoint_spread": 20.0, "random_spread": 10.0}, f)
    text = "\n".join(carracing.report(out))
    assert "| hrlkit FuN | 1,200 (300) | 2 | 200.0 " in text and "| 250.0, 150.0 | 250.0, 150.0 |" in text
    assert "(`zero_goals`, the same 10 evaluation episodes): seed 0: 250.0 -> -70.5" in text
    assert "| SB3 A2C CnnPolicy | 1,200 (300) | 1 | 10.0 " in text
    assert "| 0 | 200,000 | 10 | 0.930 (per skill: not recorded) | 1.70 (170.0 / 100.0) |" in text
    assert "| 1 | 200,000 | 3 | 0.950 (lowest skill 1: 0.875) | 2.00 (20.0 / 10.0) |" in text
    assert open(os.path.join(out, "table.md")).read().strip() == text.strip()
    assert os.path.getsize(os.path.join(out, "curves.png")) > 5_000


def test_a_run_past_its_budget_reports_the_last_evaluation_within_it(tmp_path):
    """SB3's PPO stops at the end of a rollout, past the budget: "final" is the evaluation at the
    budget, the evaluation after it is shown apart, and "best" is within the budget too."""
    assert carracing.finals([100, 200, 300], [1.0, 5.0, 3.0], 300) == {"final": 3.0, "best": 5.0, "trained_steps": 300}
    got = carracing.finals([100, 200, 300, 328], [1.0, 5.0, 3.0, 9.0], 300)
    assert got == {"final": 3.0, "best": 5.0, "trained_steps": 328, "final_trained": 9.0}
    out = str(tmp_path)
    os.makedirs(os.path.join(out, "runs"))
    _record(out, "ppo", 0, [1.0, 5.0, 3.0], **{k: v for k, v in got.items() if k != "best"})
    text = "\n".join(carracing.report(out))
    assert "| SB3 PPO CnnPolicy | 1,200 (300; trained 28 steps past it, final there: 9.0) | 1 | 3.0 " in text


def test_evaluations_read_from_progress(tmp_path):
    (tmp_path / "progress.csv").write_text("global_step,eval/mean_return,charts/SPS\n100,,5\n200,-3.5,5\n300,7.25,5\n")
    assert carracing.evaluations(str(tmp_path)) == ([200, 300], [-3.5, 7.25])


@pytest.mark.parametrize("args, message", [(["train", "--frames", "0"], "--frames: expected an int >= 1, got 0"),
                                           (["train", "--jobs", "0"], "--jobs: expected an int >= 1, got 0"),
                                           (["sps", "--steps", "-5"], "--steps: expected an int >= 1, got -5"),
                                           (["sps", "--update-threads", "0"], "--update-threads: expected an int >= 1, got 0"),
                                           (["train", "--agents", "dqn"], "invalid choice: 'dqn'")])
def test_bad_arguments(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit):
        carracing.main(["--out", str(tmp_path / "o"), *args])
    assert message in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "o")
