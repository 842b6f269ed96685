"""hrlkit: hierarchical reinforcement learning on a fast, torch-free C++ core."""
from __future__ import annotations

from . import envs, targets
from .agents import OptionCritic
from .replay import SUPPORTED_DTYPES, PrioritizedReplayBuffer, ReplayBuffer
from .targets import nstep_returns, option_bootstrap, option_values

__version__ = "0.1.0"

__all__ = [
    "OptionCritic",
    "ReplayBuffer",
    "PrioritizedReplayBuffer",
    "SUPPORTED_DTYPES",
    "nstep_returns",
    "option_values",
    "option_bootstrap",
    "targets",
    "__version__",
]
