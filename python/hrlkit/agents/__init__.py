"""hrlkit's agents, by the name the CLI uses."""
from __future__ import annotations

from .base import Algorithm
from .option_critic import OptionCritic, OptionCriticConfig

ALGORITHMS: dict[str, type[Algorithm]] = {OptionCritic.name: OptionCritic}

__all__ = ["ALGORITHMS", "Algorithm", "OptionCritic", "OptionCriticConfig"]
