"""The local Ray the Ray tests share the shape of: 2 CPUs, started once per test module."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
