"""Scale-out on Ray (the optional extra ``pip install "hrlkit[ray]"``): sweeps of ordinary runs as
Ray Tune trials (:func:`sweep`, ``hrlkit sweep``), and distributed collection for the off-policy
agents (``learn(..., collectors=N)``, ``hrlkit train --collectors N``). Ray is imported only when
one of them is used."""
from __future__ import annotations

from .cluster import INSTALL_HINT, require_ray

__all__ = ["INSTALL_HINT", "require_ray", "sweep"]


def sweep(*args, **kwargs):
    """See :func:`hrlkit.distributed.sweeps.sweep`."""
    from .sweeps import sweep as run

    return run(*args, **kwargs)
