"""The runtime every agent shares: configuration, vector envs, the training loop, logging,
checkpoints and evaluation."""
from __future__ import annotations

from . import checkpoint, config, envs, evaluation, logger, trainer
from .config import ConfigError
from .evaluation import evaluate
from .trainer import train

__all__ = ["ConfigError", "checkpoint", "config", "envs", "evaluate", "evaluation", "logger", "train", "trainer"]
