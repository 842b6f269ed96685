"""Soft actor-critic pieces shared by the agents that use it (Soft Option-Critic's option actors,
DIAYN's skill-conditioned policy): the tanh-squashed Gaussian, the soft value and the SAC loss
terms, once; each agent's loss function (``soft_option_critic_loss``, ``diayn_loss``) calls them."""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..nets import ACTIVATIONS
from ..runtime.config import field

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
_LOG2 = math.log(2.0)


@dataclasses.dataclass
class SACConfig:
    """The hyperparameters every SAC-based agent has (Soft Option-Critic, DIAYN)."""

    num_envs: int = field(1, "parallel environments", ge=1)
    buffer_size: int = field(1_000_000, "replay capacity (transitions)", ge=1)
    batch_size: int = field(256, "transitions per gradient step", ge=1)
    learning_starts: int = field(1_000, "env steps of uniform random actions before learning", ge=0)
    utd_ratio: float = field(1.0, "gradient steps per env step (update-to-data ratio)", gt=0)
    gamma: float = field(0.99, "discount", ge=0, le=1)
    polyak: float = field(0.005, "rate of the target networks' soft update, target += polyak (online - target)",
                          gt=0, le=1, renamed_from=("tau",))
    actor_learning_rate: float = field(3e-4, "Adam learning rate of the actors", gt=0, renamed_from=("actor_lr",))
    critic_learning_rate: float = field(3e-4, "Adam learning rate of the critics", gt=0, renamed_from=("critic_lr",))
    entropy_coef_learning_rate: float = field(3e-4, "Adam learning rate of log(entropy_coef) (when "
                                              "autotune_entropy_coef)", gt=0, renamed_from=("alpha_lr",))
    hidden_sizes: list[int] = field([256, 256], "hidden layer widths of the actors and critics", ge=1, nonempty=True)
    activation: str = field("relu", "activation", choices=sorted(ACTIVATIONS))
    critic_layer_norm: bool = field(False, "a LayerNorm after every hidden linear layer of the critics (before the "
                                    "activation; as in DroQ, Hiraoka et al. 2022, and RLPD, Ball et al. 2023)")
    save_replay: bool = field(False, "checkpoints include the replay buffer (exact resume)")


def squashed_gaussian(mean: torch.Tensor, log_std: torch.Tensor, noise: torch.Tensor,
                      epsilon: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """a = tanh(u), u = mean + std * noise; log pi(a) with the tanh correction, summed over the
    last dim. epsilon 0: log(1 - tanh(u)^2) computed exactly, as 2 (log 2 - u - softplus(-2u));
    epsilon > 0: log(1 - a^2 + epsilon), SB3's form (1e-6 there), which caps the
    correction of a saturated action at log(epsilon) per dimension."""
    u = mean + log_std.exp() * noise
    logp = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    if epsilon == 0.0:  # tanh after the correction: autograd then sums u's gradients in the order it always has
        logp = logp - (2.0 * (_LOG2 - u - F.softplus(-2.0 * u))).sum(-1)
        return torch.tanh(u), logp
    a = torch.tanh(u)
    return a, logp - torch.log(1.0 - a.pow(2) + epsilon).sum(-1)


def sample_squashed(out: torch.Tensor, action_dim: int, epsilon: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """An actor's output [..., 2A] read as (mean, log std), log std clamped to [LOG_STD_MIN,
    LOG_STD_MAX]: a sample a ~ tanh(N(mean, std)) in [-1, 1] [..., A] and log pi(a) [...]
    (``epsilon``: :func:`squashed_gaussian`'s)."""
    mean, log_std = out.split(action_dim, dim=-1)
    return squashed_gaussian(mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX), torch.randn_like(mean), epsilon)


# ---- SAC's loss terms over B transitions (q_pi, logp_pi: at a fresh a ~ pi(s)) ----------------------
# Continuous actions: q_pi [B] = min_j Q_j(s, a~pi) (gradient to the actor only), logp_pi [B].
# Discrete actions (probs [B, A] = pi(.|s)): q_pi [B, A] = min_j Q_j(s, .) (no gradient), logp_pi
# [B, A] = log pi(.|s), and the actor and alpha terms take the expectation under pi.
def soft_value(q: torch.Tensor, logp: torch.Tensor, alpha: torch.Tensor,
               probs: torch.Tensor | None = None) -> torch.Tensor:
    """The soft value E_pi[q - alpha log pi]: q - alpha logp, or sum_a probs (q - alpha logp)."""
    v = q - alpha * logp
    return v if probs is None else (probs * v).sum(-1)


def critic_loss(q: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """sum_j 1/2 mean(weights (Q_j(s, a) - y)^2): q [2, B] both critics at the stored (s, a), target
    [B] y (no gradient), weights [B] importance weights (default 1)."""
    td2 = (q - target.detach()).pow(2)
    if weights is not None:
        td2 = td2 * weights
    return 0.5 * td2.mean(dim=1).sum()


def actor_loss(q_pi: torch.Tensor, logp_pi: torch.Tensor, alpha: torch.Tensor,
               probs: torch.Tensor | None = None) -> torch.Tensor:
    """mean(E_pi[alpha log pi - q_pi]); alpha (no gradient): one value, or one per row [B]."""
    if probs is None:
        return (alpha * logp_pi - q_pi).mean()
    return (probs * (alpha.unsqueeze(-1) * logp_pi - q_pi)).sum(-1).mean()


def alpha_loss(log_alpha: torch.Tensor, logp_pi: torch.Tensor, target_entropy: float,
               probs: torch.Tensor | None = None) -> torch.Tensor:
    """-mean(log alpha (E_pi[log pi] + target_entropy)): alpha falls while the entropy is above
    target; log_alpha: one value, or one per row [B]."""
    expected_logp = logp_pi.detach() if probs is None else (probs * logp_pi).sum(-1).detach()
    return -(log_alpha * (expected_logp + target_entropy)).mean()


class ParamHolder(nn.Module):
    """Lets a bare parameter (log alpha) save and load, in place, like the other modules."""

    def __init__(self, param: nn.Parameter):
        super().__init__()
        self.param = param


def fused_adam(device: torch.device) -> dict[str, Any]:
    """Adam's fused kernel (one pass over all parameters per step) where this torch has it."""
    try:
        torch.optim.Adam([nn.Parameter(torch.zeros(1, device=device))], fused=True)
    except (RuntimeError, TypeError, ValueError):
        return {}
    return {"fused": True}
