"""The Ray connection: hrlkit's one place that imports Ray, starts a local instance or joins a
running cluster, and says what to install when Ray is missing."""
from __future__ import annotations

import logging
import os
import socket
from typing import Any

from ..runtime.config import ConfigError

INSTALL_HINT = 'pip install "hrlkit[ray]"'


def require_ray(what: str) -> Any:
    """The ``ray`` module, or a ConfigError naming the option ``what`` that needs it and how to
    install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"{what}: needs Ray, which is not installed; {INSTALL_HINT}") from None
    return ray


def check_address(address: str, *, timeout: float = 5.0) -> None:
    """A ConfigError naming ``--address`` unless a TCP connection to it opens within
    ``timeout`` seconds (``auto`` is left to Ray: it reads the local cluster's address file).
    Ray itself would retry for a minute before failing with a message about the GCS."""
    if not isinstance(address, str) or not address.strip():
        raise ConfigError(f"--address: expected host:port of a running Ray head (or 'auto'), got {address!r}")
    if address == "auto":
        return
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--address: expected host:port (e.g. 10.0.0.1:6379, or ray://10.0.0.1:10001 for Ray "
                          f"client), or 'auto', got {address!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ConfigError(f"--address: cannot reach a Ray cluster at {address!r} ({exc.strerror or exc}); expected "
                          f"the host:port of a running head (`ray start --head` prints it), reachable from here") \
            from None


def connect(address: str | None = None, *, num_cpus: int | None = None, what: str = "--address") -> Any:
    """Ray, initialised: joins ``address`` (or ``RAY_ADDRESS``), or starts a local instance with
    ``num_cpus`` CPUs (default: every core) when none is running in this process; a local
    instance runs its workers (collectors, trials) at niceness 0, not Ray's 15."""
    ray = require_ray(what)
    if address is not None:
        check_address(address)
    if ray.is_initialized():  # this process already runs one (the caller's ray.init): use it
        return ray
    address = address if address is not None else os.environ.get("RAY_ADDRESS") or None
    if address is not None:
        check_address(address)
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, RuntimeError) as exc:
            raise ConfigError(f"--address: {address!r} answers but is not a Ray cluster this Ray can join ({exc})") \
                from None
        return ray
    # workers at the learner's priority: Ray's default niceness for them (15) lets every other process
    # on the machine starve them, and a replacement collector then took minutes to build under load
    ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
             _system_config={"worker_niceness": 0})
    return ray


def cluster_cpus(ray: Any) -> float:
    return float(ray.cluster_resources().get("CPU", 0.0))
