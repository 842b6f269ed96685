"""The benchmark scripts stay runnable: every peer buffer and the comparison table, on a tiny
capacity (the real measurements are in benchmarks/, run by hand)."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

BENCH_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH_DIR)

import peers  # noqa: E402

pytest.importorskip("cpprb")


@pytest.mark.parametrize("cls", peers.UNIFORM + peers.PRIORITIZED, ids=lambda c: c.name)
def test_peer_roundtrip(cls):
    rows = peers.make_rows(64, seed=3)
    buf = cls(100)
    buf.fill(rows)
    buf.add_one(peers.one_row(rows, 5))
    buf.add_batch(rows)
    if cls.prioritized:
        buf.sample_update(32, np.linspace(0.0, 1.0, 32))
    else:
        batch = buf.sample(32)
        obs = batch[0] if isinstance(batch, tuple) else batch["obs"]
        assert tuple(obs.shape) == (32, peers.OBS)
        # every sampled obs is one of the rows that were added
        known = {r.tobytes() for r in rows["obs"]}
        assert all(np.asarray(o, dtype=np.float32).tobytes() in known for o in np.asarray(obs))


def test_replay_table_runs(tmp_path, capsys):
    import replay_table

    out = tmp_path / "table.md"
    assert replay_table.main(["--capacity", "2048", "--rounds", "1", "--min-time", "0.001", "--no-memory", "--out", str(out)]) == 0
    text = out.read_text()
    for op in ("single add", "batched add (1024 rows)", "uniform sample (256)", "PER sample + update (256)"):
        assert op in text


def test_four_rooms_transfer_runs(tmp_path):
    import json

    import four_rooms_transfer

    for agent in ("tabular", "neural"):
        out = tmp_path / agent
        assert four_rooms_transfer.main(["--agent", agent, "--runs", "2", "--episodes", "8", "--switch", "4",
                                         "--window", "2", "--jobs", "1", "--out", str(out)]) == 0
        res = json.loads((out / "results.json").read_text())
        assert set(res["summary"]) == {"option-critic (4 options)", "flat actor-critic"}
        assert len(res["lengths"]["4"]) == 2 and len(res["lengths"]["4"][0]) == 8
        assert len(res["beta_before_move"]["0"]) == 104  # a termination map per run, taken at the move
        assert len(res["greedy_option_before_move"]["0"]) == 104
        assert set(res["greedy_option_before_move"]["0"]) <= {0, 1, 2, 3}
        assert set(res["room_ownership"]) == {"upper-left", "upper-right", "lower-left", "lower-right"}
        assert all(0.25 <= v <= 1.0 for v in res["room_ownership"].values())
        assert (out / "steps_per_episode.png").stat().st_size > 1000
        assert (out / "terminations.png").stat().st_size > 1000
        assert (out / "terminations_mean.png").stat().st_size > 1000
        assert agent in (out / "table.md").read_text()
    for bad in (["--set", "num_options=2"], ["--switch", "8"], ["--window", "5"]):
        with pytest.raises(SystemExit):
            four_rooms_transfer.main(["--runs", "1", "--episodes", "8", "--switch", "4", "--window", "2", *bad,
                                      "--out", str(tmp_path / "bad")])
    assert not (tmp_path / "bad").exists()


def test_option_critic_acceptance_runs(tmp_path):
    import json

    import option_critic_acceptance

    out = tmp_path / "acc"
    assert option_critic_acceptance.main(["cartpole", "--seeds", "0", "--steps", "640", "--eval-every", "320",
                                          "--jobs", "1", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())["results"]["seed0"]
    assert res["final"][0] == 640 and len(res["usage_run"]["share"]) == 4
    assert (out / "curves.png").exists() and "seed0" in (out / "table.md").read_text()


def test_sps_script_runs(capsys):
    pytest.importorskip("stable_baselines3")
    import sps_cartpole

    assert sps_cartpole.main(["--steps", "640", "--repeats", "1"]) == 0
    assert "ratio hrlkit / SB3" in capsys.readouterr().out


def test_soft_option_critic_acceptance_runs(tmp_path):
    import json

    import option_critic_acceptance

    out = tmp_path / "soc"
    assert option_critic_acceptance.main(["soc-pendulum", "--seeds", "0", "--steps", "300", "--eval-every", "150",
                                          "--jobs", "1", "--out", str(out), "--set", "learning_starts=100",
                                          "batch_size=16", "hidden_sizes=32,32"]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["algo"] == "soft-option-critic" and data["target"] == -200.0
    assert data["results"]["seed0"]["final"][0] == 300 and len(data["results"]["seed0"]["usage_run"]["share"]) == 4

    import soc_option_behaviour

    assert soc_option_behaviour.main([str(out / "runs" / "seed0"), "--episodes", "1", "--out", str(out)]) == 0
    table = (out / "option_behaviour.md").read_text()
    assert table.count("\n| ") == 5 and (out / "option_behaviour.png").exists()  # header + 4 options
    assert "seed0" in (out / "table.md").read_text()  # the acceptance table is left alone


def test_soc_sps_script_runs(capsys):
    pytest.importorskip("stable_baselines3")
    import sps_pendulum_soc

    assert sps_pendulum_soc.main(["--steps", "50", "--repeats", "1"]) == 0
    assert "ratio hrlkit / SB3" in capsys.readouterr().out
    # the script turned flush-to-zero on for its timing and must leave the process as it found it
    tiny = torch.tensor([1e-40], dtype=torch.float32)
    assert (tiny * 1.0).item() != 0.0


def test_soc_profile_script_runs(capsys):
    import profile_soc_update

    assert profile_soc_update.main(["--warm", "400", "--steps", "3", "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "hidden_sizes=[256, 256] defaults: gradient step" in out and "hidden_sizes=[8, 8]" in out
    assert (torch.tensor([1e-40]) * 1.0).item() != 0.0  # flush-to-zero switched back off
    # a configuration beside the defaults, same env, typed overrides named
    assert profile_soc_update.main(["--warm", "400", "--steps", "2", "--top", "0", "--small", "0",
                                    "--set", "intra_option_learning=true", "num_options=2"]) == 0
    out = capsys.readouterr().out
    assert "defaults: gradient step" in out and "hidden_sizes=[8, 8]" not in out
    assert "{'intra_option_learning': True, 'num_options': 2}: gradient step" in out


def test_diayn_scripts_run(tmp_path, capsys):
    import json

    import diayn_downstream
    import diayn_pointnav

    out = tmp_path / "diayn"
    small = ["num_skills=3", "hidden_sizes=16,16", "discriminator_hidden_sizes=16,16", "learning_starts=50",
             "batch_size=16"]
    assert diayn_pointnav.main(["--seeds", "0", "--steps", "150", "--jobs", "1", "--out", str(out), "--set", *small]) == 0
    res = json.loads((out / "results.json").read_text())["results"][0]
    assert 0.0 <= res["accuracy_deterministic"] <= 1.0 and len(res["end_points"]) == 3
    assert (out / "skills_seed0.png").exists() and "| 0 |" in (out / "table.md").read_text()
    assert diayn_pointnav.main(["--seeds", "0", "--steps", "150", "--jobs", "1", "--out", str(out), "--eval-only",
                                "--set", *small]) == 0
    assert json.loads((out / "results.json").read_text())["results"][0] == res  # the same evaluation again

    down = tmp_path / "down"
    assert diayn_downstream.main(["--skills", str(out / "runs" / "seed0"), "--seeds", "0", "--steps", "1000",
                                  "--jobs", "1", "--out", str(down)]) == 0
    curves = json.loads((down / "results.json").read_text())["curves"]
    assert set(curves) == {"manager_seed0", "sac_seed0"} and curves["manager_seed0"][-1][0] == 1000
    assert (down / "success.png").exists()

    import diayn_manager_skills

    assert diayn_manager_skills.main([str(down), "--goal", "0.7", "0.7", "--episodes", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("closest approach") == 3 and "manager_seed0: skills [" in out


def test_gpu_benchmarks_refuse_without_cuda(capsys):
    if torch.cuda.is_available():
        pytest.skip("has a GPU: the script would run for real")
    sys.path.insert(0, os.path.join(BENCH_DIR, "gpu"))
    import gpu_benchmarks

    assert gpu_benchmarks.main(["per"]) == 2
    assert "need the GPU machine" in capsys.readouterr().err


def test_feudal_maze_script_runs(tmp_path):
    import json

    import feudal_maze

    out = tmp_path / "maze"
    assert feudal_maze.main(["--steps", "640", "--eval-every", "320", "--seeds", "0", "--jobs", "1", "--ablate",
                             "--out", str(out), "--flat-set", "entropy_coef=0.05", "--feudal-set", "reward_scale=0.5"]) == 0
    res = json.loads((out / "results.json").read_text())
    for kind, key, value in (("feudal", "reward_scale", 0.5), ("flat", "entropy_coef", 0.05)):
        assert json.loads((out / "runs" / f"{kind}_seed0" / "config.json").read_text())["config"][key] == value
    runs = res["runs"]
    assert set(runs) == {"feudal_seed0", "flat_seed0"} and "zero_goals_100" in runs["feudal_seed0"]
    assert res["args"]["env"] == "hrlkit/NineRoomsMaze-v0" and res["args"]["flat_set"] == ["entropy_coef=0.05"]
    assert 0.0 <= runs["flat_seed0"]["final_100"] <= 1.0
    assert (out / "success.png").exists() and "| FuN | 0 |" in (out / "table.md").read_text()
    # re-evaluating the saved runs gives the same greedy figures (seeded evaluation episodes)
    assert feudal_maze.main(["--steps", "640", "--seeds", "0", "--jobs", "1", "--ablate", "--out", str(out),
                             "--eval-only"]) == 0
    again = json.loads((out / "results.json").read_text())["runs"]
    for name in ("feudal_seed0", "flat_seed0"):
        assert again[name]["final_100"] == runs[name]["final_100"]
    assert again["feudal_seed0"]["zero_goals_100"] == runs["feudal_seed0"]["zero_goals_100"]
    assert again["flat_seed0"]["steps"] == 640 and "640 env steps per run" in (out / "table.md").read_text()
    # the results carry each run's own configuration, also when only re-evaluated
    assert again["feudal_seed0"]["config"]["reward_scale"] == 0.5 and again["flat_seed0"]["config"]["entropy_coef"] == 0.05
    with pytest.raises(SystemExit, match="no saved run at"):
        feudal_maze.main(["--seeds", "1", "--jobs", "1", "--out", str(out), "--eval-only"])


def test_feudal_maze_random_baseline(capsys):
    import feudal_maze

    for env in ("hrlkit/NineRoomsMaze-v0", "hrlkit/FourRoomsMaze-v0"):
        assert feudal_maze.main(["--random-only", "20", "--env", env]) == 0
        assert f"{env}: uniform random actions succeed in" in capsys.readouterr().out


def test_soc_value_bias_script(tmp_path, capsys):
    import json

    import hrlkit
    import soc_value_bias

    # soft returns by hand: G2 = 3, G1 = 2 + 0.9 (-0.1 * 2 + 3), G0 = 1 + 0.9 (-0.1 * -1 + G1)
    rec = {"r": np.array([1.0, 2.0, 3.0]), "logp": np.array([0.5, -1.0, 2.0]), "alpha": np.full(3, 0.1)}
    g1 = 2 + 0.9 * (-0.2 + 3)
    np.testing.assert_allclose(soc_value_bias.soft_returns(rec, 0.9), [1 + 0.9 * (0.1 + g1), g1, 3.0])
    agent = hrlkit.SoftOptionCritic("Pendulum-v1", seed=0, hidden_sizes=[16], learning_starts=50, batch_size=16)
    agent.learn(100, progress=False, eval_every=None, checkpoint_every=None, tensorboard=False, run_dir=None)
    path = str(tmp_path / "a.pt")
    agent.save(path)
    assert soc_value_bias.main([path, "--episodes", "1", "--horizon", "50"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # Pendulum's episodes end by the time limit (200 steps): the last 50 steps are left out
    assert row["options"] == 4 and row["steps"] == 150 and len(row["greedy_each_option_alone"]) == 4
    assert 0.0 <= row["beta_acting"] <= 1.0 and row["mean_option_duration"] >= 1.0
    assert row["q_omega_spread"] >= 0.0 and row["critic_values_spread"] > 0.0
    # option runs by hand: [0 0 1 1 1 0] has 3 runs in 6 steps
    assert soc_value_bias.option_durations(np.array([0, 0, 1, 1, 1, 0])) == 2.0
    # the option network's spread and advantage by hand (option_value "expected", tau 1: V = softmax-weighted mean)
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    with torch.no_grad():
        q = agent.option_net(torch.as_tensor(obs))[0][:, :4]
    v = (torch.softmax(q, dim=1) * q).sum(1, keepdim=True)
    gaps = soc_value_bias.option_value_gaps(agent, obs)
    assert gaps["q_omega_spread"] == pytest.approx(float((q.max(1).values - q.min(1).values).mean()), abs=1e-3)
    assert gaps["q_omega_advantage"] == pytest.approx(float((q - v).mean()), abs=1e-3)
    assert -2000 < row["greedy_option_policy"] <= 0 and np.isfinite(row["q_minus_return"])
