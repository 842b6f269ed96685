"""benchmarks/suite.py stays runnable: a tiny budget of one row, its files, its table, resuming,
bad arguments (the real suite is run by hand; its results are in benchmarks/results/suite)."""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

BENCH_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH_DIR)

import suite  # noqa: E402


def test_suite_runs_resumes_and_reports(tmp_path, capsys):
    out = str(tmp_path / "suite")
    args = ["--algos", "option-critic", "--envs", "CartPole-v1", "--impls", "hrlkit", "--seeds", "0",
            "--budget-scale", "0.05", "--eval-episodes", "2", "--out", out]  # 5,000 steps: two 2,048-step rollouts
    assert suite.main(args) == 0
    runs = [os.path.join(out, "runs", "option-critic", "CartPole-v1", "hrlkit_seed0.json")]
    recs = [json.load(open(p)) for p in runs]
    for rec in recs:
        assert rec["budget"] == 5000 and rec["eval_episodes"] == 2 and rec["steps"][-1] == 5000 and len(rec["steps"]) == len(rec["returns"]) >= 3
        assert rec["final"] == rec["returns"][-1] and rec["best"] == max(rec["returns"])
        assert 1.0 <= rec["effective_options"] <= 4.0
    table = open(os.path.join(out, "table.md")).read()
    finals = ", ".join(f"{r['final']:.1f}" for r in recs)
    assert f"| hrlkit | " in table and finals in table
    assert os.path.getsize(os.path.join(out, "curves_option-critic_CartPole-v1.png")) > 5_000
    summary = json.load(open(os.path.join(out, "results.json")))
    row = summary["rows"][0]
    assert row["finals"] == [r["final"] for r in recs] and row["ci"][0] <= row["iqm"] <= row["ci"][1]
    # a second call finds both runs finished and only reports
    before = [os.path.getmtime(p) for p in runs]
    capsys.readouterr()
    assert suite.main(args) == 0
    assert [os.path.getmtime(p) for p in runs] == before and "runs to do" not in capsys.readouterr().out
    # a call that selects other rows still reports every row with finished runs
    assert suite.main(["--algos", "diayn", "--report-only", "--budget-scale", "0.05", "--out", out]) == 0
    assert finals in open(os.path.join(out, "table.md")).read()


def _plain_run(row, budget, seed, episodes, overrides=None):
    """The protocol as the module docstring states it: the agent and learn(), no run directory."""
    agent = suite._hrlkit_agent(row, seed, overrides)
    agent.learn(budget, eval_every=budget // suite.EVALS, eval_episodes=episodes, log_every=budget // 20,
                checkpoint_every=None, progress=False)
    rows = agent.logger.rows
    shares = [r["options/effective"] for r in rows if "options/effective" in r and r["global_step"] > budget // 2]
    return [r["eval/mean_return"] for r in rows if "eval/mean_return" in r], float(np.mean(shares))


@pytest.mark.parametrize("algo,env,budget,overrides", [
    ("option-critic", "CartPole-v1", 6000, None),
    ("soft-option-critic", "Pendulum-v1", 600, {"learning_starts": 100, "batch_size": 32}),
], ids=["on-policy", "replay"])
def test_suite_run_killed_midway_resumes_from_its_checkpoint(tmp_path, monkeypatch, capsys, algo, env, budget,
                                                              overrides):
    import hrlkit.runtime.trainer as trainer

    row = next(r for r in suite.ROWS if r.algo == algo and r.label == env)
    out = str(tmp_path / "suite")
    path, partial = suite.run_path(out, row, "hrlkit", 0), suite.partial_dir(out, row, "hrlkit", 0)
    real, calls = trainer._checkpoint, []

    def killed_at_the_third(agent, ckpt_dir):
        calls.append(agent.global_step)
        if len(calls) == 3:
            raise KeyboardInterrupt("the session ended")
        real(agent, ckpt_dir)

    monkeypatch.setattr(trainer, "_checkpoint", killed_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        suite.run_one(out, row, "hrlkit", 0, budget, 2, overrides)
    assert not os.path.exists(path) and os.path.isfile(os.path.join(partial, "checkpoints", "latest.pt"))
    monkeypatch.setattr(trainer, "_checkpoint", real)
    with pytest.raises(ValueError, match="holds an unfinished run of .* this call asks for"):
        suite.run_one(out, row, "hrlkit", 0, budget, 3, overrides)  # other settings: refused, the checkpoints kept
    assert os.path.isfile(os.path.join(partial, "checkpoints", "latest.pt"))
    suite.run_one(out, row, "hrlkit", 0, budget, 2, overrides)  # started again: goes on from the second checkpoint
    rec = json.load(open(path))
    assert rec["resumed_at"] == [calls[1]] and not os.path.exists(partial)
    assert f"resuming at step {calls[1]:,} of {budget:,}" in capsys.readouterr().out
    # the same evaluations as a run that was never stopped, equal up to the resume (new episodes after it)
    returns, effective = _plain_run(row, budget, 0, 2, overrides)
    fresh = suite.run_one(str(tmp_path / "fresh"), row, "hrlkit", 0, budget, 2, overrides)
    whole = json.load(open(fresh))
    assert whole["resumed_at"] == [] and whole["returns"] == returns
    assert whole["effective_options"] == pytest.approx(effective)  # the checkpoints change nothing
    assert rec["steps"] == whole["steps"]
    before = [s for s in rec["steps"] if s <= calls[1]]
    assert before and rec["returns"][:len(before)] == whole["returns"][:len(before)]


@pytest.mark.parametrize("algo,env,budget,overrides,kill_at", [
    ("option-critic", "CartPole-v1", 6000, None, 2),  # evaluations at the updates (2048, 4096), not budget/10
    ("soft-option-critic", "Pendulum-v1", 600, {"learning_starts": 100, "batch_size": 32}, 3),
], ids=["on-policy", "replay"])
def test_suite_run_killed_between_checkpoint_and_evaluation_keeps_every_evaluation(tmp_path, monkeypatch, algo, env,
                                                                                   budget, overrides, kill_at):
    import hrlkit.runtime.trainer as trainer

    row = next(r for r in suite.ROWS if r.algo == algo and r.label == env)
    out = str(tmp_path / "suite")
    real, steps = trainer._evaluate, []

    def killed_inside(agent, *args):
        steps.append(agent.global_step)
        if len(steps) == kill_at:  # its checkpoint is written, its evaluation is not
            raise KeyboardInterrupt("the session ended")
        real(agent, *args)

    monkeypatch.setattr(trainer, "_evaluate", killed_inside)
    with pytest.raises(KeyboardInterrupt):
        suite.run_one(out, row, "hrlkit", 0, budget, 2, overrides)
    monkeypatch.setattr(trainer, "_evaluate", real)
    rec = json.load(open(suite.run_one(out, row, "hrlkit", 0, budget, 2, overrides)))
    whole = json.load(open(suite.run_one(str(tmp_path / "fresh"), row, "hrlkit", 0, budget, 2, overrides)))
    killed = steps[kill_at - 1]
    assert rec["resumed_at"] == [killed] and rec["steps"] == whole["steps"] and killed in rec["steps"]
    i = rec["steps"].index(killed)  # the evaluation made at the resume is the one the kill skipped
    assert rec["returns"][:i + 1] == whole["returns"][:i + 1]


def test_suite_variant_runs_beside_the_defaults(tmp_path):
    out = str(tmp_path / "suite")
    assert suite.main(["--algos", "option-critic", "--envs", "CartPole-v1", "--impls", "hrlkit", "--seeds", "0",
                       "--budget-scale", "0.005", "--eval-episodes", "1", "--out", out, "--variant", "deoc",
                       "--set", "diversity_coef=0.1", "diversity_termination=true"]) == 0
    rec = json.load(open(os.path.join(out, "runs", "option-critic", "CartPole-v1", "hrlkit-deoc_seed0.json")))
    assert rec["impl"] == "hrlkit-deoc" and rec["overrides"] == {"diversity_coef": 0.1, "diversity_termination": True}
    assert "| hrlkit-deoc |" in open(os.path.join(out, "table.md")).read()
    with pytest.raises(SystemExit):
        suite.main(["--variant", "x", "--out", out])  # a variant without --set


def test_suite_variant_with_wrappers(tmp_path, capsys):
    out = str(tmp_path / "suite")
    assert suite.main(["--algos", "option-critic", "--envs", "Pendulum-v1", "--impls", "hrlkit", "--seeds", "0",
                       "--budget-scale", "0.005", "--eval-episodes", "1", "--out", out, "--variant", "nr",
                       "--wrappers", "NormalizeReward:gamma=0.99"]) == 0
    rec = json.load(open(os.path.join(out, "runs", "option-critic", "Pendulum-v1", "hrlkit-nr_seed0.json")))
    assert rec["impl"] == "hrlkit-nr" and rec["wrappers"] == ["NormalizeReward:gamma=0.99"] and rec["overrides"] == {}
    # the wrapper really wraps the training envs (and the run's evaluations report the env's own return)
    row = next(r for r in suite.ROWS if r.algo == "option-critic" and r.label == "Pendulum-v1")
    agent = suite._hrlkit_agent(row, 0, None, rec["wrappers"])
    assert agent.envs.envs[0].has_wrapper_attr("return_rms")
    agent.envs.close()
    assert all(-1700 < r < 0 for r in rec["returns"])
    with pytest.raises(SystemExit):
        suite.main(["--variant", "x", "--wrappers", "NoSuchWrapper", "--out", out])
    assert "--wrappers: " in capsys.readouterr().err


def test_suite_diayn_row_scores_skills(tmp_path):
    pytest.importorskip("gymnasium.envs.classic_control")
    out = str(tmp_path / "suite")
    assert suite.main(["--algos", "diayn", "--envs", "Pendulum-v1", "--seeds", "0", "--budget-scale", "0.02",
                       "--out", out]) == 0
    rec = json.load(open(os.path.join(out, "runs", "diayn", "Pendulum-v1", "hrlkit_seed0.json")))
    assert rec["skills"] == 10 and 0.0 <= rec["discriminator_accuracy"] <= 1.0 and rec["random_spread"] > 0
    per, lengths = rec["skill_accuracies"], rec["episode_lengths"]  # the overall share weighs skills by their steps
    assert len(per) == 10 and rec["discriminator_accuracy"] == pytest.approx(np.dot(per, lengths) / sum(lengths))
    confusion = np.array(rec["confusion"])  # rows: the skill that acted, over its states
    assert confusion.sum(axis=1).tolist() == lengths and np.diag(confusion) / lengths == pytest.approx(per)
    assert 0.0 <= rec["stochastic_accuracy"] <= 1.0
    assert "## DIAYN" in open(os.path.join(out, "table.md")).read()
    row = json.load(open(os.path.join(out, "results.json")))["rows"][0]  # one run: its IQM is its accuracy
    assert row["iqm"] == pytest.approx(rec["discriminator_accuracy"]) and row["ci"][0] <= row["iqm"] <= row["ci"][1]
    assert row["goal_met"] == row["iqm_goal_met"] == (rec["discriminator_accuracy"] >= 0.8)


def test_suite_sb3_peer_follows_the_same_protocol(tmp_path):
    pytest.importorskip("stable_baselines3")
    out = str(tmp_path / "suite")
    assert suite.main(["--algos", "option-critic", "--envs", "CartPole-v1", "--impls", "A2C", "--seeds", "0",
                       "--budget-scale", "0.01", "--eval-episodes", "2", "--out", out]) == 0
    rec = json.load(open(os.path.join(out, "runs", "sb3", "CartPole-v1", "A2C_seed0.json")))
    assert rec["steps"] == list(range(100, 1001, 100)) and rec["final"] == rec["returns"][-1]


def test_iqm_ci_matches_the_definition():
    iqm, lo, hi = suite.iqm_ci([1.0, 2.0, 3.0, 4.0, 100.0, -50.0, 2.5, 3.5])
    # the interquartile mean drops the lowest and highest quarter: mean of 2, 2.5, 3, 3.5
    assert iqm == pytest.approx(2.75) and lo <= iqm <= hi
    assert suite.iqm_ci([1.0, 5.0, 2.0, 9.0]) == suite.iqm_ci([1.0, 5.0, 2.0, 9.0])  # seeded: a report is reproducible


def test_report_gives_each_row_its_probability_of_beating_sb3(tmp_path):
    row = next(r for r in suite.ROWS if r.algo == "soft-option-critic" and r.label == "Pendulum-v1")
    out = str(tmp_path / "suite")
    finals = {"hrlkit": [-150.0, -120.0, -300.0], "SAC": [-140.0, -160.0, -170.0]}
    for impl, values in finals.items():
        for seed, final in enumerate(values):
            rec = {"env": row.label, "env_id": row.env_id, "algo": row.algo, "impl": impl, "seed": seed,
                   "budget": row.budget, "steps": [row.budget], "returns": [final], "final": final, "best": final}
            path = suite.run_path(out, row, impl, seed)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                json.dump(rec, f)
    summary = suite.report(out, [row], 1.0)
    mine = next(e for e in summary["rows"] if e["impl"] == "hrlkit")
    # hrlkit's runs beat SAC's in 2 + 3 + 0 of the 9 pairs, yet its IQM (with 3 seeds the mean, -190) is below
    # SAC's (-156.7): the two measures answer different questions, the table gives both
    assert mine["probability_of_improvement"]["SAC"]["p"] == pytest.approx(5 / 9)
    lo, hi = mine["probability_of_improvement"]["SAC"]["ci"]
    assert 0.0 <= lo < 5 / 9 < hi <= 1.0
    assert mine["at_or_above"] == {"SAC": False} and mine["iqm"] == pytest.approx(-190.0)
    table = open(os.path.join(out, "table.md")).read()
    assert f"| < SAC, P 0.56 ({lo:.2f}, {hi:.2f}) |" in table


@pytest.mark.parametrize("argv, message", [
    (["--algos", "nope"], "--algos: unknown ['nope']"),
    (["--envs", "Pong-v5"], "--envs: unknown ['Pong-v5']"),
    (["--impls", "sb3"], "--impls: unknown ['sb3']; expected some of ['A2C', 'PPO', 'SAC', 'hrlkit']"),
    (["--jobs", "0"], "--jobs: expected an int >= 1, got 0"),
    (["--budget-scale", "2"], "--budget-scale: expected a number in (0, 1], got 2.0"),
    (["--eval-episodes", "0"], "--eval-episodes: expected an int >= 1, got 0"),
])
def test_suite_bad_arguments(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit):
        suite.main(argv + ["--out", str(tmp_path / "x")])
    assert message in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x")
