"""hrlkit's agents, by the name the CLI uses."""
from __future__ import annotations

from .base import Algorithm
from .option_critic import OptionCritic, OptionCriticConfig
from .soft_option_critic import SoftOptionCritic, SoftOptionCriticConfig

ALGORITHMS: dict[str, type[Algorithm]] = {a.name: a for a in (OptionCritic, SoftOptionCritic)}

__all__ = ["ALGORITHMS", "Algorithm", "OptionCritic", "OptionCriticConfig", "SoftOptionCritic", "SoftOptionCriticConfig"]
