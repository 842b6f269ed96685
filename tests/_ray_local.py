"""The local Ray the Ray tests share the shape of: 2 CPUs, started once per test module the way
hrlkit starts one (``hrlkit.distributed.cluster.connect``)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray = pytest.importorskip("ray")
    from hrlkit.distributed.cluster import connect

    assert not ray.is_initialized()
    connect(num_cpus=2)  # as hrlkit starts a local Ray (its workers at niceness 0)
    yield ray
    ray.shutdown()
