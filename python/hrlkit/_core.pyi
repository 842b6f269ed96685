"""Type stubs for hrlkit._core, the pybind11 module over csrc/core. Its Replay is the host storage of the
replay buffers (hrlkit._host_storage); the buffers check its arguments (hrlkit._replay_checks)."""
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

class Replay:
    def __init__(
        self,
        capacity: int,
        spec: Sequence[tuple[str, Sequence[int], str]],
        num_options: int = 0,
        prioritized: bool = False,
        alpha: float = 0.6,
        eps: float = 1e-6,
        seed: int = 0,
        prefault: bool = False,
    ) -> None: ...
    def add(self, fields: dict[str, Any], validate: bool = True) -> None: ...  # validate: moot, the checks are the copy's
    def sample(self, batch_size: int, option: int = -1, beta: float = 0.0) -> dict[str, np.ndarray]: ...
    def gather(self, indices: npt.ArrayLike) -> dict[str, np.ndarray]: ...
    def update_priorities(self, indices: npt.ArrayLike, td_errors: npt.ArrayLike) -> None: ...
    def count(self, option: int = -1) -> int: ...
    def __len__(self) -> int: ...
    @property
    def capacity(self) -> int: ...
    @property
    def position(self) -> int: ...
    @property
    def num_options(self) -> int: ...
    @property
    def prioritized(self) -> bool: ...
    @property
    def alpha(self) -> float: ...
    @property
    def eps(self) -> float: ...
    @property
    def max_priority(self) -> float: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def overhead_nbytes(self) -> int: ...
    def column(self, field: int) -> np.ndarray: ...
    def priorities(self) -> npt.NDArray[np.float32] | None: ...
    def restore(self, size: int, position: int, max_priority: float, priorities: npt.ArrayLike | None) -> None: ...
    def rng_state(self) -> list[int]: ...
    def set_rng_state(self, state: Sequence[int]) -> None: ...
    def reseed(self, seed: int) -> None: ...
    def lock(self) -> None: ...
    def unlock(self) -> None: ...

def required_bytes(
    capacity: int, spec: Sequence[tuple[str, Sequence[int], str]], num_options: int = 0, prioritized: bool = False
) -> int: ...
def nstep_returns_f32(
    rewards: npt.NDArray[np.float32],
    terminated: npt.NDArray[np.uint8],
    truncated: npt.NDArray[np.uint8] | None,
    option_ends: npt.NDArray[np.uint8] | None,
    next_values: npt.NDArray[np.float32] | None,
    gamma: float,
    n: int,
    lam: float,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
def nstep_returns_f64(
    rewards: npt.NDArray[np.float64],
    terminated: npt.NDArray[np.uint8],
    truncated: npt.NDArray[np.uint8] | None,
    option_ends: npt.NDArray[np.uint8] | None,
    next_values: npt.NDArray[np.float64] | None,
    gamma: float,
    n: int,
    lam: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]: ...
def option_values_f32(q: npt.NDArray[np.float32], eps: float) -> npt.NDArray[np.float32]: ...
def option_values_f64(q: npt.NDArray[np.float64], eps: float) -> npt.NDArray[np.float64]: ...
def option_bootstrap_f32(
    q_next: npt.NDArray[np.float32], beta: npt.NDArray[np.float32], options: npt.NDArray[np.int64], eps: float
) -> npt.NDArray[np.float32]: ...
def option_bootstrap_f64(
    q_next: npt.NDArray[np.float64], beta: npt.NDArray[np.float64], options: npt.NDArray[np.int64], eps: float
) -> npt.NDArray[np.float64]: ...
def soft_option_targets_f32(
    q_next: npt.NDArray[np.float32],
    logp_next: npt.NDArray[np.float32],
    q_omega_next: npt.NDArray[np.float32],
    beta_next: npt.NDArray[np.float32],
    options: npt.NDArray[np.int64],
    rewards: npt.NDArray[np.float32],
    discounts: npt.NDArray[np.float32],
    alpha: npt.NDArray[np.float32],
    tau: float,
    soft: bool,
    xi: float,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
def soft_option_targets_f64(
    q_next: npt.NDArray[np.float64],
    logp_next: npt.NDArray[np.float64],
    q_omega_next: npt.NDArray[np.float64],
    beta_next: npt.NDArray[np.float64],
    options: npt.NDArray[np.int64],
    rewards: npt.NDArray[np.float64],
    discounts: npt.NDArray[np.float64],
    alpha: npt.NDArray[np.float64],
    tau: float,
    soft: bool,
    xi: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
def skill_rewards_f32(
    logits: npt.NDArray[np.float32], skills: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]: ...
def skill_rewards_f64(
    logits: npt.NDArray[np.float64], skills: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]: ...
def feudal_terms_f32(
    states: npt.NDArray[np.float32], goals: npt.NDArray[np.float32], starts: npt.NDArray[np.uint8], c: int, eps: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
def feudal_terms_f64(
    states: npt.NDArray[np.float64], goals: npt.NDArray[np.float64], starts: npt.NDArray[np.uint8], c: int, eps: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]: ...

TREE_FAN: int
