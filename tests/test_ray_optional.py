"""Without Ray, hrlkit works as before and a Ray feature says what to install; the sweep's
statistics agree with rliable's."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import hrlkit
from hrlkit.distributed.report import bootstrap_ci, iqm
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
