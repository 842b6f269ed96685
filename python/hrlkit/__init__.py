"""hrlkit: hierarchical reinforcement learning on a fast, torch-free C++ core."""
from __future__ import annotations

from . import envs, targets
from .agents import DIAYN, DIAYNManager, FeudalNetwork, OptionCritic, SoftOptionCritic, TabularOptionCritic
from .agents.base import set_random_seed
from .distributed import sweep  # Ray Tune sweeps (pip install "hrlkit[ray]"; Ray is imported only when called)
from .replay import SUPPORTED_DTYPES, PrioritizedReplayBuffer, ReplayBuffer
from .runtime.callbacks import (BaseCallback, CallbackList, CheckpointCallback, EvalCallback,
                                StopTrainingOnRewardThreshold)
from .runtime.policy_evaluation import evaluate_policy
from .targets import nstep_returns, option_bootstrap, option_values, soft_option_targets

__version__ = "0.1.0"

__all__ = [
    "OptionCritic",
    "SoftOptionCritic",
    "TabularOptionCritic",
    "DIAYN",
    "DIAYNManager",
    "FeudalNetwork",
    "ReplayBuffer",
    "PrioritizedReplayBuffer",
    "SUPPORTED_DTYPES",
    "nstep_returns",
    "option_values",
    "option_bootstrap",
    "soft_option_targets",
    "targets",
    "evaluate_policy",
    "set_random_seed",
    "sweep",
    "BaseCallback",
    "CallbackList",
    "EvalCallback",
    "CheckpointCallback",
    "StopTrainingOnRewardThreshold",
    "__version__",
]
