"""hrlkit's agents, by the name the CLI uses."""
from __future__ import annotations

from .base import Algorithm
from .diayn import DIAYN, DIAYNConfig
from .diayn_manager import DIAYNManager, DIAYNManagerConfig
from .feudal import FeudalConfig, FeudalNetwork
from .option_critic import OptionCritic, OptionCriticConfig
from .soft_option_critic import SoftOptionCritic, SoftOptionCriticConfig
from .tabular_option_critic import TabularOptionCritic, TabularOptionCriticConfig

ALGORITHMS: dict[str, type[Algorithm]] = {a.name: a for a in (OptionCritic, SoftOptionCritic, DIAYN, DIAYNManager, FeudalNetwork)}

__all__ = ["ALGORITHMS", "DIAYN", "DIAYNConfig", "DIAYNManager", "DIAYNManagerConfig", "FeudalConfig", "FeudalNetwork", "Algorithm", "OptionCritic", "OptionCriticConfig", "SoftOptionCritic", "SoftOptionCriticConfig", "TabularOptionCritic", "TabularOptionCriticConfig"]
