"""Without Ray, hrlkit works as before and a Ray feature says what to install; the sweep's
statistics agree with rliable's."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import hrlkit
from hrlkit.distributed.report import bootstrap_ci, bootstrap_ci_of, iqm, probability_of_improvement
from hrlkit.runtime.config import ConfigError


@pytest.fixture
def no_ray(monkeypatch):
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError


def test_ray_features_without_ray_say_what_to_install(no_ray, tmp_path, capsys):
    agent = hrlkit.SoftOptionCritic("Pendulum-v1", learning_starts=10, batch_size=8, hidden_sizes=[8],
                                    option_hidden_sizes=[8], buffer_size=100)
    with pytest.raises(ConfigError, match=r'collectors: needs Ray, which is not installed; pip install "hrlkit\[ray\]"'):
        agent.learn(100, collectors=2, run_dir=str(tmp_path / "run"))
    assert agent.global_step == 0 and not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=r'sweep: needs Ray.*pip install "hrlkit\[ray\]"'):
        hrlkit.sweep("soft-option-critic", "Pendulum-v1", out=str(tmp_path / "sweep"))
    from hrlkit.cli import main

    assert main(["sweep", "diayn", "--env", "Pendulum-v1", "--out", str(tmp_path / "s")]) == 2
    assert 'pip install "hrlkit[ray]"' in capsys.readouterr().err
    assert main(["train", "diayn", "--env", "Pendulum-v1", "--collectors", "1", "--run-dir", str(tmp_path / "r"),
                 "--quiet"]) == 2
    assert 'pip install "hrlkit[ray]"' in capsys.readouterr().err
    agent.learn(50)  # in-process training needs no Ray
    assert agent.global_step == 50


def test_iqm_and_its_interval_match_rliable():
    rliable = pytest.importorskip("rliable.metrics")
    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 8, 13):
        x = rng.normal(size=n) * 100
        assert iqm(x) == pytest.approx(float(rliable.aggregate_iqm(x[:, None])), rel=1e-12)
    x = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    assert iqm(x) == 3.0  # the outlier and the lowest score are cut
    lo, hi = bootstrap_ci(x)
    assert lo < iqm(x) < hi and lo >= 1.0 and hi <= 100.0
    assert bootstrap_ci([5.0]) == (5.0, 5.0)


def test_probability_of_improvement_counts_won_pairs():
    assert probability_of_improvement([3.0, 4.0], [1.0, 2.0]) == 1.0
    assert probability_of_improvement([1.0, 2.0], [3.0, 4.0]) == 0.0
    assert probability_of_improvement([1.0, 3.0], [2.0]) == 0.5
    assert probability_of_improvement([2.0, 2.0], [2.0]) == 0.5  # ties count half
    assert probability_of_improvement([5.0], [1.0, 5.0, 9.0, 9.0]) == pytest.approx(1.5 / 4)
    assert np.isnan(probability_of_improvement([], [1.0]))
    x, y = np.random.default_rng(4).normal(size=(2, 7))
    assert probability_of_improvement(x, y) + probability_of_improvement(y, x) == pytest.approx(1.0)
    stats = pytest.importorskip("scipy.stats")
    assert probability_of_improvement(x, y) == pytest.approx(stats.mannwhitneyu(x, y).statistic / 49)


def test_two_sample_bootstrap_resamples_each_sample_on_its_own():
    x, y = [1.0, 2.0, 3.0], [10.0, 20.0]
    assert bootstrap_ci_of([x], iqm, seed=5) == bootstrap_ci(x, seed=5)  # one sample: bootstrap_ci's draws
    lo, hi = bootstrap_ci_of([x, y], probability_of_improvement)
    assert (lo, hi) == (0.0, 0.0)  # every resample of x stays below every resample of y
    lo, hi = bootstrap_ci_of([x, y], lambda a, b: float(np.mean(b) - np.mean(a)))
    assert 7.0 <= lo < hi <= 19.0
    assert np.isnan(bootstrap_ci_of([x, []], probability_of_improvement)).all()
