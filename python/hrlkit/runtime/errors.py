"""Errors of a training run that are not configuration errors (those are ConfigError)."""
from __future__ import annotations


class EnvError(RuntimeError):
    """The environment misbehaved (a non-finite reward or observation, an observation that does
    not fit its space): names the env, the step and what came."""


class NonFiniteError(RuntimeError):
    """Training produced NaN or infinite values (a loss, a parameter): it stops, and no checkpoint
    is written with them."""
