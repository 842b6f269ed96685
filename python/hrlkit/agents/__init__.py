"""hrlkit's agents, by the name the CLI uses."""
from __future__ import annotations

from .base import Algorithm
from .diayn import DIAYN, DIAYNConfig
from .diayn_manager import DIAYNManager, DIAYNManagerConfig
from .option_critic import OptionCritic, OptionCriticConfig
from .soft_option_critic import SoftOptionCritic, SoftOptionCriticConfig

ALGORITHMS: dict[str, type[Algorithm]] = {a.name: a for a in (OptionCritic, SoftOptionCritic, DIAYN, DIAYNManager)}

__all__ = ["ALGORITHMS", "DIAYN", "DIAYNConfig", "DIAYNManager", "DIAYNManagerConfig", "Algorithm", "OptionCritic", "OptionCriticConfig", "SoftOptionCritic", "SoftOptionCriticConfig"]
