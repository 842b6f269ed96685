"""FeUdal Networks (Vezhnevets et al., 2017), trained on-policy over vector envs (A2C or PPO-style passes).

Perception f turns an observation into z_t (a conv encoder for pixels, strides 4/2/1; an MLP for
vectors). The manager maps z_t to its state space s_t = f_Mspace(z_t), runs a dilated LSTM
(dilation r = c) over s_t and emits a goal direction g_t = g^_t / |g^_t| (with probability
``goal_epsilon`` a random unit vector instead); its critic V^M reads s_t. The worker's LSTM reads
z_t and emits U_t (|A| x k); the goals of the last c + 1 steps, summed and detached, pass through
a bias-free linear phi to w_t in R^k, and the worker's policy is softmax(U_t w_t) (discrete) or
a Gaussian with mean U_t w_t and a learned state-independent std (continuous). Its critic V^W
reads the worker LSTM's output.

Rewards: the worker is paid r_t + alpha r^I_t with r^I_t = (1/c) sum_{i=1..c} cos(s_t - s_{t-i},
g_{t-i}) inside the episode; the manager the env's r_t. Both intrinsic rewards and the manager's
c-step directions s_{t+k} - s_t (k <= c) come for the whole [T, N] rollout from one kernel call
(``hrlkit.targets.feudal_terms``: C++, or CUDA for CUDA tensors); returns from
``hrlkit.targets.nstep_returns`` with the worker's and the manager's own discounts, bootstrapped
at the rollout's end. Losses (:func:`feudal_loss`, the whole learning rule):

    worker  = -A^W log pi(a_t) - entropy_coef H + value_coef (R^W - V^W)^2 / 2
    manager = -A^M cos(s_{t+k} - s_t, g_t(theta)) + value_coef (R^M - V^M)^2 / 2

Defaults per action-space kind (``KIND_DEFAULTS``): discrete actions take 4 PPO-style passes of 4
minibatches with standardized advantages (the worker's divided by max(std, 1)) and a worker's
discount of 0.99; continuous ones, and discrete actions over Discrete (cell-index) observations,
A2C's single pass and the paper's 0.95.

(r_t is the env's reward times ``reward_scale``; with ``normalize_advantage`` each rollout's A^W and
A^M are standardized before they weigh the policy gradients, divided by max(std, ``advantage_std_floor``)
(A^M plainly unless ``manager_advantage_floor``) so that a rollout without reward is not blown up to
unit-scale noise. With ``update_epochs`` = K > 1 each
rollout is passed over K times, its states, returns and advantages fixed at the first pass
(:func:`feudal_targets`), and the worker's term is PPO's clipped surrogate on pi(a) / pi_old(a);
with ``num_minibatches`` = M > 1 each pass takes M gradient steps, each on a random group of whole
envs whose recurrences are recomputed over the full rollout (the targets then come from one pass
without gradient first), and the worker's term is the clipped surrogate as well. The manager's
transition term has no ratio to clip, so it joins the first pass only (each sample once, as in
A2C) unless ``manager_every_epoch``. (On the nine-rooms maze with 4 passes of 4 minibatches, the
term in every pass let the worker's intrinsic reward fall to about 0 by 40k steps on one seed,
which then never reached the goal again; in the first pass only, the same seed learned, to 80k
steps: see the README's "Session 16's candidate".)
With ``normalize_values``, the default, V^W and V^M are PopArt-normalized (:class:`hrlkit.nets.PopArt`):
R and the advantages are formed in the reward's units, the critics regress on (R - mu) / sigma and
A^W, A^M are divided by their critic's sigma; the statistics take in each rollout's returns after
its update.)

(the transition policy gradient: the direction is a constant, the gradient flows into g_t only;
steps whose goal was random, or with k = 0, are left out). Recurrent states are carried across
rollouts and recomputed with gradient from each rollout's first step (truncated BPTT).

    hrlkit train feudal --env hrlkit/FourRooms-v0
    hrlkit train feudal --env CarRacing-v3 --set num_envs=4
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .. import targets
from ..nets import ConvEncoder, DilatedLSTM, PopArt, init_linear, is_image_space, lstm_cell, lstm_input_gates, mlp, standardized
from ..runtime.config import ConfigError, field, per_kind_help, resolve_per_kind
from ..runtime.policy_evaluation import batch_observation, episode_start_mask
from ._sac import ParamHolder
from .base import Algorithm, is_bounded_box, is_flat_box, obs_width

__all__ = ["FeudalConfig", "FeudalNetwork", "FeudalOutputs", "FeudalRollout", "feudal_loss", "transition_loss"]


# What the fields left at None resolve to, per action-space kind, once the env is known (the
# agent's ``config`` then holds the values, and checkpoints save them). Discrete actions take 4
# PPO-style passes of 4 minibatches over each rollout with standardized advantages, the worker's
# divided by max(std, 1) so that a rollout without reward is not blown up to unit-scale noise, the
# manager's plainly: adopted in session 19, it lifted CartPole-v1 from 133.1 to 500 (SB3 A2C 400.2)
# and the nine-rooms maze's greedy success, at LunarLander-v3's cost (18.9 to -73.2, A2C -68.1).
# Session 20 added the worker's discount 0.99 (FuN's paper: 0.95, about 20 steps ahead, where
# LunarLander pays +-100 at the episode's end): LunarLander-v3 -73.2 to 123.6 (A2C -68.1), CartPole
# 500 to 409.3 (one seed's last evaluation), and the nine-rooms maze's greedy success 0.54 / 0.46 /
# 0.73 to 0.22 / 0.01 / 0.26, above the flat baseline's 0.00 on every seed, one only just (README,
# "Defaults suite" and "FeUdal Networks"). 0.98, probed in sessions 20-21, kept CartPole at 500 on
# every seed and LunarLander at 90.6 but left nine-rooms seed 0 at 0.00 (0.00 / 0.22 / 0.14), so 0.99
# stays. Discrete (cell-index) observations keep A2C's one pass and 0.95, as continuous actions do:
# the manager's directions then live in an embedding of indices with no geometry, and on the
# four-rooms maze three of the four PPO-style settings tried lost one seed of three, this one
# included (its entropy fell before any reward), where the one pass solved nine runs of nine.
# Continuous actions: not measured against a peer.
KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "discrete": {"update_epochs": 4, "num_minibatches": 4, "normalize_advantage": True, "advantage_std_floor": 1.0,
                 "manager_advantage_floor": False, "gamma_worker": 0.99},
    "continuous": {"update_epochs": 1, "num_minibatches": 1, "normalize_advantage": False, "advantage_std_floor": 0.0,
                   "manager_advantage_floor": True, "gamma_worker": 0.95},
}


def _kind_help(name: str) -> str:
    return per_kind_help(KIND_DEFAULTS, name) + "; Discrete (index) observations: the continuous value"


def one_pass_kind(observation_space: gym.Space, action_space: gym.Space) -> bool:
    """True where KIND_DEFAULTS' "continuous" (one-pass) values apply: Box actions, or Discrete
    (cell-index) observations."""
    return not isinstance(action_space, gym.spaces.Discrete) or isinstance(observation_space, gym.spaces.Discrete)


@dataclasses.dataclass
class FeudalConfig:
    num_envs: int = field(8, "parallel environments", ge=1)
    rollout_steps: int = field(40, "steps per env per update (T; also the BPTT length)", ge=1)
    horizon: int = field(10, "c: the manager's horizon, its LSTM's dilation, and the goal window", ge=1)
    state_dim: int = field(256, "d: perception features and the manager's state/goal space", ge=1)
    goal_embedding: int = field(16, "k: width of the worker's goal embedding w = phi(sum of goals)", ge=1)
    hidden_sizes: list[int] = field([128], "vector observations: the perception MLP's hidden widths", ge=1)
    intrinsic_coef: float = field(0.5, "alpha: weight of the intrinsic reward in the worker's reward", ge=0,
                                  renamed_from=("alpha",))
    gamma_worker: float | None = field(None, "the worker's discount; " + _kind_help("gamma_worker"), ge=0, le=1,
                                       saved_before=0.95)
    gamma_manager: float = field(0.99, "the manager's discount", ge=0, le=1)
    gae_lambda: float = field(1.0, "lambda of both critics' lambda-returns (GAE(lambda) advantages); 1: the n-step "
                                   "returns over the rollout", ge=0, le=1)
    learning_rate: float = field(3e-4, "Adam learning rate", gt=0)
    lr_schedule: str = field("constant", "'constant', or 'linear' decay to 0 at the end of learn(total_steps)",
                             choices=("constant", "linear"))
    entropy_coef: float = field(0.01, "worker entropy bonus", ge=0)
    value_coef: float = field(0.5, "weight of the two critics' losses", ge=0)
    max_grad_norm: float = field(5.0, "gradient clipping (0: none)", ge=0)
    goal_epsilon: float = field(0.0, "probability of a random unit goal instead of the manager's (exploration)",
                                ge=0, le=1)
    reward_scale: float = field(1.0, "the env's reward is multiplied by this before either learner sees it "
                                     "(keeps the critics' targets near 1 where rewards are large)", gt=0)
    update_epochs: int | None = field(None, "passes over each rollout (1: A2C's one gradient step; more: the worker's "
                                         "term becomes PPO's clipped surrogate, with the rollout's returns and "
                                         "advantages fixed); " + _kind_help("update_epochs"), ge=1,
                                      saved_before=1)
    num_minibatches: int | None = field(None, "minibatches per pass over each rollout, each a group of whole envs "
                                           "(their recurrences recomputed over the full rollout, as in PPO with "
                                           "LSTMs); more than num_envs: one env each; "
                                           + _kind_help("num_minibatches"), ge=1, saved_before=1)
    manager_every_epoch: bool = field(False, "update_epochs > 1: the manager's transition gradient in every pass "
                                             "(False: in the first pass only, each sample once; the term has no "
                                             "clipped ratio to bound repeated steps)", saved_before=True)
    clip_range: float = field(0.2, "update_epochs > 1 or num_minibatches > 1: PPO's clip on the worker's "
                                   "probability ratio", gt=0)
    normalize_advantage: bool | None = field(None, "standardize each rollout's worker and manager advantages "
                                                    "(zero mean, unit std) before the policy gradients; "
                                                    + _kind_help("normalize_advantage"),
                                             saved_before=False)
    advantage_std_floor: float | None = field(None, "normalize_advantage: divide by max(std, this) instead of the std, "
                                                    "in the advantages' units (with normalize_values: the critics' "
                                                    "spread), so a rollout without reward is not blown up to "
                                                    "unit-scale noise; 0: none; " + _kind_help("advantage_std_floor"),
                                              ge=0, saved_before=0.0)
    manager_advantage_floor: bool | None = field(None, "advantage_std_floor applies to the manager's advantages as well "
                                                       "as the worker's (false: the worker's only, the manager's "
                                                       "standardized plainly); "
                                                       + _kind_help("manager_advantage_floor"), saved_before=True)
    normalize_values: bool = field(True, "PopArt: each critic learns values normalized by the running mean and spread "
                                         "of its returns (its head rescaled to keep its outputs as they move; the "
                                         "statistics take in each rollout's returns after its update), and the "
                                         "advantages are divided by that spread (floored at 1): no reward scale to "
                                         "choose", saved_before=False)


def _need(cfg: FeudalConfig, names: tuple[str, ...], where: str) -> None:
    """ConfigError unless ``cfg`` has the per-kind fields ``names`` set (an agent fills them in from its
    env's action and observation spaces; a config built by hand leaves them None)."""
    for name in names:
        if getattr(cfg, name) is None:
            raise ConfigError(f"{where}: {name} is None, a per-action-space-kind default that an agent fills in "
                              f"from its env; set it ({per_kind_help(KIND_DEFAULTS, name)})")


def transition_loss(direction: torch.Tensor, goals: torch.Tensor, advantage: torch.Tensor, valid: torch.Tensor,
                    eps: float = 1e-8) -> torch.Tensor:
    """The manager's transition policy gradient as a loss: -mean over valid steps of
    A^M cos(direction, g). ``direction`` (s_{t+k} - s_t) and ``advantage`` are constants; a
    direction or goal of norm <= eps contributes 0."""
    d = direction.detach()
    dn, gn = d.norm(dim=-1), goals.norm(dim=-1)
    ok = valid & (dn > eps) & (gn > eps)
    cos = (d * goals).sum(-1) / (dn * gn).clamp_min(eps)
    cos = torch.where(ok, cos, torch.zeros_like(cos))
    return -(advantage.detach() * cos).sum() / ok.sum().clamp_min(1)


class FeudalRollout(NamedTuple):
    """A rollout as it was acted, time first. The kernel's three inputs start with the c steps
    before the rollout (the intrinsic reward's look-back; zeros marked as starts at first)."""

    states: torch.Tensor       # [c + T, n, d] the manager's states s_t (constants)
    goals: torch.Tensor        # [c + T, n, d] the goals the worker saw: g_t, or a random unit one
    starts: torch.Tensor       # [c + T, n] True at an episode's first step
    random_goal: torch.Tensor  # [T, n] the goal was random: no transition gradient there
    actions: torch.Tensor      # [T, n] (discrete) or [T, n, A]
    rewards: np.ndarray        # [T, n] the env's r_t
    terminated: np.ndarray     # [T, n]
    truncated: np.ndarray      # [T, n]


class FeudalOutputs(NamedTuple):
    """The networks over the rollout, recomputed with gradient from its first recurrent state."""

    g: torch.Tensor       # [T, n, d] the manager's unit goals g_t(theta)
    vm: torch.Tensor      # [T, n] V^M(s_t)
    vw: torch.Tensor      # [T, n] V^W
    out: torch.Tensor     # [T, n, A] the worker's policy outputs (logits, or the Gaussian's mean)
    vm_end: torch.Tensor  # [n] V^M after the rollout, to bootstrap from (no gradient)
    vw_end: torch.Tensor  # [n] V^W after the rollout


class FeudalTargets(NamedTuple):
    """The constants of one rollout's update: fixed at its first pass, reused by later epochs."""

    ret_w: torch.Tensor      # [T, n] R^W, the worker's n-step returns
    ret_m: torch.Tensor      # [T, n] R^M
    adv_w: torch.Tensor      # [T, n] A^W (standardized with normalize_advantage)
    adv_m: torch.Tensor      # [T, n] A^M (likewise)
    direction: torch.Tensor  # [T, n, d] s_{t+k} - s_t
    valid: torch.Tensor      # [T, n] steps with a direction and the manager's own goal
    intrinsic: torch.Tensor  # [T, n] r^I
    mean_adv_m: torch.Tensor  # mean A^M before any standardization (logged)


def feudal_targets(batch: FeudalRollout, net: FeudalOutputs, cfg: FeudalConfig,
                   popart: tuple[PopArt, PopArt] | None = None) -> FeudalTargets:
    """Intrinsic rewards, directions, returns and advantages of one rollout, from the critics in ``net``.
    ``popart`` (the worker's and the manager's, with ``normalize_values``): the critics' outputs are
    normalized values; returns are formed in the reward's units and handed back normalized, the
    advantages divided by each critic's spread."""
    _need(cfg, ("normalize_advantage", "gamma_worker"), "feudal_targets")
    if cfg.normalize_advantage:
        _need(cfg, ("advantage_std_floor", "manager_advantage_floor"), "feudal_targets")
    pw, pm = popart if popart is not None else (None, None)
    vw, vw_end = (net.vw, net.vw_end) if pw is None else (pw.denormalize(net.vw), pw.denormalize(net.vw_end))
    vm, vm_end = (net.vm, net.vm_end) if pm is None else (pm.denormalize(net.vm), pm.denormalize(net.vm_end))
    T, dev, ends = len(batch.rewards), net.vw.device, (batch.terminated, batch.truncated)
    # r^I_t = 1/c sum_{i=1..c} d_cos(s_t - s_{t-i}, g_{t-i}); direction s_{t+k} - s_t, k <= c
    terms = targets.feudal_terms(batch.states, batch.goals, batch.starts, c=cfg.horizon)
    r_int, r = terms.intrinsic.to(torch.float32), torch.as_tensor(batch.rewards) * cfg.reward_scale
    r_w = r + cfg.intrinsic_coef * r_int.cpu()  # the worker's reward r_t + alpha r^I_t
    v_next_w = _next_values(vw, vw_end, batch.truncated)  # V^W(s_{t+1}), constants
    v_next_m = _next_values(vm, vm_end, batch.truncated)
    # R^W_t = sum_{i<k} gamma_W^i r^W_{t+i} + gamma_W^k V^W_{t+k}
    # (with gae_lambda < 1 both are lambda-returns: each inner step mixes in (1 - lambda) of V(s_{t+1}))
    ret_w = targets.nstep_returns(r_w, *ends, gamma=cfg.gamma_worker, n=T, next_values=v_next_w,
                                  lam=cfg.gae_lambda).returns.to(dev)
    # R^M_t = sum_{i<k} gamma_M^i r_{t+i} + gamma_M^k V^M_{t+k}
    ret_m = targets.nstep_returns(r, *ends, gamma=cfg.gamma_manager, n=T, next_values=v_next_m,
                                  lam=cfg.gae_lambda).returns.to(dev)
    adv_w, adv_m = ret_w - vw.detach(), ret_m - vm.detach()
    mean_adv_m = adv_m.mean()
    if popart is not None:  # the critics regress on normalized returns; advantages in units of the spread
        ret_w, ret_m, adv_w, adv_m = pw.normalize(ret_w), pm.normalize(ret_m), adv_w / pw.std, adv_m / pm.std
    if cfg.normalize_advantage:
        floor = cfg.advantage_std_floor
        adv_w = standardized(adv_w, std_floor=floor)
        adv_m = standardized(adv_m, std_floor=floor if cfg.manager_advantage_floor else 0.0)
    valid = (terms.horizon > 0) & ~batch.random_goal
    return FeudalTargets(ret_w, ret_m, adv_w, adv_m, terms.direction, valid, r_int, mean_adv_m)


def feudal_loss(batch: FeudalRollout, net: FeudalOutputs, policy: Callable[[torch.Tensor], torch.distributions.Distribution],
                cfg: FeudalConfig, fixed: FeudalTargets | None = None,
                old_logp: torch.Tensor | None = None, manager: bool = True) -> dict[str, torch.Tensor]:
    """FuN's learning rule over one rollout: every loss term, their weighted total ``loss``, and the
    logged diagnostics ``intrinsic_reward`` (mean r^I) and ``manager_advantage`` (mean A^M).
    ``policy`` maps the worker's outputs to its action distribution. ``fixed``: the rollout's
    :func:`feudal_targets` (None: formed here from ``net``'s critics). ``old_logp`` [T * n], the
    log-probabilities the actions were taken with: the worker's term becomes PPO's clipped
    surrogate, -min(rho A^W, clip(rho, 1 -+ clip_range) A^W) with rho = pi(a) / pi_old(a).
    ``manager`` False: the manager's transition term is left out of ``loss`` (still reported)."""
    fixed = feudal_targets(batch, net, cfg) if fixed is None else fixed
    dist = policy(net.out.flatten(0, 1))
    logp, entropy = _joint(dist.log_prob(batch.actions.flatten(0, 1))), _joint(dist.entropy())
    adv_w = fixed.adv_w.reshape(-1)
    if old_logp is None:
        worker_pg = -(adv_w * logp).mean()  # -A^W_t log pi(a_t)
    else:
        rho = (logp - old_logp).exp()
        clipped = rho.clamp(1.0 - cfg.clip_range, 1.0 + cfg.clip_range)
        worker_pg = -torch.min(rho * adv_w, clipped * adv_w).mean()
    # -A^M_t d_cos(s_{t+k} - s_t, g_t), s constant
    manager_pg = transition_loss(fixed.direction.to(net.g.dtype), net.g, fixed.adv_m, fixed.valid)
    worker_value = (fixed.ret_w - net.vw).pow(2).mean()  # (R - V)^2
    manager_value = (fixed.ret_m - net.vm).pow(2).mean()
    value = 0.5 * (worker_value + manager_value)
    policy_loss = worker_pg + manager_pg if manager else worker_pg
    entropy = entropy.mean()  # H, the worker's entropy bonus
    loss = policy_loss - cfg.entropy_coef * entropy + cfg.value_coef * value
    return {"loss": loss, "worker_policy": worker_pg, "manager_policy": manager_pg, "worker_value": worker_value,
            "manager_value": manager_value, "value": value, "entropy": entropy,
            "intrinsic_reward": fixed.intrinsic.mean(), "manager_advantage": fixed.mean_adv_m}


def _joint(x: torch.Tensor) -> torch.Tensor:
    """A per-action-dimension log-probability or entropy [N, A] (a Gaussian's) summed to [N]; [N] as is."""
    return x.sum(-1) if x.dim() > 1 else x


def _next_values(v: torch.Tensor, v_end: torch.Tensor, truncated: np.ndarray) -> torch.Tensor:
    """V(s_{t+1}) within the rollout (constants, on the CPU); at a truncation the next row starts a
    new episode, so the truncated step bootstraps from its own value (an approximation)."""
    nxt = torch.cat([v[1:], v_end[None]]).detach()
    return torch.where(torch.as_tensor(truncated, device=v.device), v.detach(), nxt).cpu()


class FeudalStep(NamedTuple):
    """One recurrent step of :class:`FeudalNetwork` over n envs."""

    s: torch.Tensor    # [n, d] the manager's state s_t = Mspace(z_t)
    g: torch.Tensor    # [n, d] the manager's unit goal g_t
    vm: torch.Tensor   # [n] V^M(s_t)
    out: torch.Tensor  # [n, A] the worker's policy output
    vw: torch.Tensor   # [n] V^W
    state: Any         # the next recurrent state


class FeudalNet(nn.Module):
    """Perception, manager (Mspace, dilated LSTM, goal head, critic) and worker (LSTM, U, phi,
    critic); the per-step recurrences live in :class:`FeudalNetwork`."""

    def __init__(self, space: gym.Space, num_actions: int, cfg: FeudalConfig):
        super().__init__()
        d, k = cfg.state_dim, cfg.goal_embedding
        if is_image_space(space):
            self.perception = ConvEncoder(tuple(space.shape), d)
        else:
            n = obs_width(space)
            body = mlp(n, cfg.hidden_sizes, "relu")
            last = cfg.hidden_sizes[-1] if cfg.hidden_sizes else n
            self.perception = nn.Sequential(body, init_linear(nn.Linear(last, d), math.sqrt(2)), nn.ReLU())
        self.mspace = nn.Sequential(init_linear(nn.Linear(d, d), math.sqrt(2)), nn.ReLU())
        self.manager_rnn = DilatedLSTM(d, d, cfg.horizon)
        self.goal_head = init_linear(nn.Linear(d, d), 1.0)
        self.manager_value = init_linear(nn.Linear(d, 1), 1.0)
        self.worker_rnn = nn.LSTMCell(d, num_actions * k)
        self.phi = nn.Linear(d, k, bias=False)
        self.worker_value = init_linear(nn.Linear(num_actions * k, 1), 1.0)
        if cfg.normalize_values:  # the critics' statistics (PopArt)
            self.worker_popart, self.manager_popart = PopArt(), PopArt()
        self.num_actions, self.k = num_actions, k


class FeudalNetwork(Algorithm):
    """FuN over discrete or bounded Box actions, vector or pixel observations."""

    name = "feudal"
    Config = FeudalConfig

    def _resolve_config(self) -> None:
        self.config = resolve_per_kind(self.config, KIND_DEFAULTS,
                                       not one_pass_kind(self.observation_space, self.action_space))

    def _check_spaces(self) -> None:
        obs, act = self.observation_space, self.action_space
        if not (is_image_space(obs) or isinstance(obs, gym.spaces.Discrete) or is_flat_box(obs)):
            raise ConfigError(f"env: feudal needs a flat Box, a Discrete or an image (H, W, C uint8) observation space, got {obs}")
        if not (isinstance(act, gym.spaces.Discrete) or is_bounded_box(act)):
            raise ConfigError(f"env: feudal needs a Discrete or a bounded flat Box action space, got {act}")

    # ---- construction -------------------------------------------------------------------------
    def build(self) -> None:
        cfg = self.config
        self.discrete = isinstance(self.action_space, gym.spaces.Discrete)
        A = int(self.action_space.n) if self.discrete else int(self.action_space.shape[0])
        self.net = FeudalNet(self.observation_space, A, cfg).to(self.device)
        self.log_std = nn.Parameter(torch.zeros(A, device=self.device), requires_grad=not self.discrete)
        params = list(self.net.parameters()) + ([] if self.discrete else [self.log_std])
        self.optimizer = torch.optim.Adam(params, lr=cfg.learning_rate)
        if not self.discrete:
            self.action_low = torch.as_tensor(self.action_space.low, device=self.device)
            self.action_high = torch.as_tensor(self.action_space.high, device=self.device)
        n, d, c = cfg.num_envs, cfg.state_dim, cfg.horizon
        self.state = self.initial_state(n)
        # the kernel's look-back: the last c steps' s, g and episode starts (row 0 marked a start)
        self.s_hist = torch.zeros(c, n, d, device=self.device)
        self.g_hist = torch.zeros(c, n, d, device=self.device)
        self.start_hist = torch.ones(c, n, dtype=torch.bool, device=self.device)
        self.starting = np.ones(n, dtype=bool)
        self.rollout: list[dict[str, Any]] = []
        self.rollout_state = None
        self.zero_goals = False  # ablation: the worker sees w = 0 (the manager's goal removed)

    def initial_state(self, n: int):
        """(manager dilated-LSTM state, worker (h, c), last c + 1 goals [c + 1, n, d])."""
        cfg = self.config
        wk = self.net.num_actions * self.net.k
        return (self.net.manager_rnn.initial_state(n, self.device),
                (torch.zeros(n, wk, device=self.device), torch.zeros(n, wk, device=self.device)),
                torch.zeros(cfg.horizon + 1, n, cfg.state_dim, device=self.device))

    def modules(self) -> dict[str, Any]:
        return {"net": self.net, "log_std": ParamHolder(self.log_std), "optimizer": self.optimizer}

    # ---- one recurrent step ---------------------------------------------------------------------------
    @staticmethod
    def _reset(state, mask: torch.Tensor):
        mgr, (wh, wc), goals = state
        keep = (~mask).to(wh.dtype)[:, None]
        return (DilatedLSTM.reset_where(mgr, mask), (wh * keep, wc * keep), goals * keep[None])

    def _manager(self, z: torch.Tensor, mgr):
        """s = Mspace(z), the unit goal g, V^M(s) and the manager's next state."""
        net = self.net
        s = net.mspace(z)
        m_out, mgr = net.manager_rnn(s, mgr)
        return s, self._unit_goal(m_out), net.manager_value(s)[:, 0], mgr

    def _unit_goal(self, m_out: torch.Tensor) -> torch.Tensor:
        """g = goal_head(m) / |goal_head(m)| from the manager's LSTM output m, any number of rows."""
        return F.normalize(self.net.goal_head(m_out), dim=-1, eps=1e-8)

    @staticmethod
    def _window(goals: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """The goal window [c + 1, n, d] with ``goal`` (detached: no gradient into the goals) joining it."""
        return torch.cat([goals[1:], goal.detach()[None]])

    def _policy_output(self, wh: torch.Tensor, goal_sum: torch.Tensor) -> torch.Tensor:
        """U w for any number of rows: the worker LSTM's output wh [N, |A| k] read with
        w = phi(goal_sum) (w = 0 with ``zero_goals``)."""
        net = self.net
        w = net.phi(goal_sum)
        if self.zero_goals:
            w = torch.zeros_like(w)
        return torch.bmm(wh.view(-1, net.num_actions, net.k), w[:, :, None])[..., 0]

    def _worker(self, z: torch.Tensor, wstate, goals: torch.Tensor, goal: torch.Tensor):
        """The worker's policy output and V^W, with ``goal`` joining the window."""
        goals = self._window(goals, goal)
        wh, wc = self.net.worker_rnn(z, wstate)
        return self._policy_output(wh, goals.sum(0)), self.net.worker_value(wh)[:, 0], (wh, wc), goals

    def _step(self, z: torch.Tensor, state, goal: torch.Tensor | None = None) -> FeudalStep:
        """One step from features z [n, d]; the worker sees ``goal`` when given (the one used
        when acting), else the manager's g."""
        mgr, wstate, goals = state
        s, g, vm, mgr = self._manager(z, mgr)
        out, vw, wstate, goals = self._worker(z, wstate, goals, g if goal is None else goal)
        return FeudalStep(s, g, vm, out, vw, (mgr, wstate, goals))

    def _dist(self, out: torch.Tensor):
        if self.discrete:
            return torch.distributions.Categorical(logits=out)
        return torch.distributions.Normal(out, self.log_std.exp().expand_as(out))

    def _env_actions(self, a: torch.Tensor) -> np.ndarray:
        if self.discrete:
            return a.cpu().numpy()
        return torch.maximum(torch.minimum(a, self.action_high), self.action_low).cpu().numpy()

    def _features(self, obs: Any) -> torch.Tensor:
        return self.net.perception(self.obs_tensor(obs))  # pixels stay uint8 for the conv encoder

    # ---- acting ----------------------------------------------------------------------------------
    def on_episode_start(self, mask: np.ndarray) -> None:
        self.starting |= np.asarray(mask, dtype=bool)

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        cfg = self.config
        starts = torch.tensor(self.starting, device=self.device)  # a copy: self.starting is cleared below
        self.state = self._reset(self.state, starts)
        if not self.rollout:
            self.rollout_state = _detach(self.state)
        mgr, wstate, goals = self.state
        z = self._features(obs)
        s, g, _, mgr = self._manager(z, mgr)
        random_goal = torch.as_tensor(self.rng.random(len(starts)) < cfg.goal_epsilon, device=self.device)
        used = torch.where(random_goal[:, None], F.normalize(torch.randn_like(g), dim=-1), g)
        out, _, wstate, goals = self._worker(z, wstate, goals, used)
        self.state = (mgr, wstate, goals)
        dist = self._dist(out)
        action = dist.sample()
        self.rollout.append({"obs": obs, "goal": used, "random_goal": random_goal, "starts": starts,
                             "action": action, "s": s})
        if cfg.update_epochs > 1 or cfg.num_minibatches > 1:  # the acting log-probabilities, for the clipped ratio
            self.rollout[-1]["logp"] = _joint(dist.log_prob(action))
        self.starting[:] = False
        return self._env_actions(action)

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated) -> None:
        self.rollout[-1].update(reward=np.asarray(rewards, np.float32), terminated=np.asarray(terminated, bool),
                                truncated=np.asarray(truncated, bool))

    def ready(self) -> bool:
        return len(self.rollout) >= self.config.rollout_steps

    # ---- learning ---------------------------------------------------------------------------------
    def update(self) -> dict[str, torch.Tensor]:
        cfg, c = self.config, self.config.horizon
        steps, self.rollout = self.rollout, []
        obs = np.concatenate([st["obs"] for st in steps])
        several = cfg.update_epochs > 1 or cfg.num_minibatches > 1
        old_logp = torch.cat([st["logp"] for st in steps]) if several else None
        popart = (self.net.worker_popart, self.net.manager_popart) if cfg.normalize_values else None
        self.schedule_learning_rate(self.optimizer, cfg.lr_schedule)
        if cfg.num_minibatches == 1:  # whole-rollout passes; the first one's critics fix the targets
            batch = fixed = net = None
            for epoch in range(cfg.update_epochs):
                net, s = self._recompute(steps, obs, bootstrap=None if net is None else (net.vm_end, net.vw_end))
                if batch is None:
                    batch = self._rollout_batch(steps, s.detach())
                    fixed = feudal_targets(batch, net, cfg, popart)
                losses = self._gradient_step(feudal_loss(batch, net, self._dist, cfg, fixed, old_logp,
                                                         manager=epoch == 0 or cfg.manager_every_epoch))
        else:  # minibatches of whole envs: the targets from one pass without gradient first
            with torch.no_grad():
                net, s = self._recompute(steps, obs)
            batch = self._rollout_batch(steps, s)
            fixed = feudal_targets(batch, net, cfg, popart)
            T, n = len(steps), cfg.num_envs
            for epoch in range(cfg.update_epochs):
                for envs in np.array_split(self.rng.permutation(n), min(cfg.num_minibatches, n)):
                    idx = torch.as_tensor(envs, device=self.device)
                    sub, _ = self._recompute(steps, obs, bootstrap=(net.vm_end[idx], net.vw_end[idx]), envs=idx)
                    logp = old_logp.view(T, n)[:, idx].reshape(-1)
                    losses = self._gradient_step(feudal_loss(_env_slice(batch, envs), sub, self._dist, cfg,
                                                             _env_slice(fixed, envs), logp,
                                                             manager=epoch == 0 or cfg.manager_every_epoch))
        if popart is not None:  # the statistics take in this rollout's returns; the heads keep their values
            for stats, ret, head in zip(popart, (fixed.ret_w, fixed.ret_m), (self.net.worker_value, self.net.manager_value)):
                stats.update(stats.denormalize(ret), [head])
        # the next look-back
        self.s_hist, self.g_hist, self.start_hist = batch.states[-c:], batch.goals[-c:], batch.starts[-c:]
        self.state = _detach(self.state)
        return {"losses/worker_policy": losses["worker_policy"].detach(),
                "losses/manager_policy": losses["manager_policy"].detach(),
                "losses/value": losses["value"].detach(), "losses/entropy": losses["entropy"].detach(),
                "charts/intrinsic_reward": losses["intrinsic_reward"],
                "charts/manager_advantage": losses["manager_advantage"]}

    def _gradient_step(self, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One clipped Adam step on ``losses["loss"]``; the losses handed back for the log."""
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        if self.config.max_grad_norm > 0:
            nn.utils.clip_grad_norm_([p for group in self.optimizer.param_groups for p in group["params"]],
                                     self.config.max_grad_norm)
        self.optimizer.step()
        return losses

    def _recompute(self, steps: list[dict[str, Any]], obs: np.ndarray,
                   bootstrap: tuple[torch.Tensor, torch.Tensor] | None = None,
                   envs: torch.Tensor | None = None) -> tuple[FeudalOutputs, torch.Tensor]:
        """The networks over the rollout again, with gradient, from its first recurrent state
        (truncated BPTT), and the manager's states s [T, n, d]; ``bootstrap``: V^M and V^W after
        the rollout when already known (None: computed; required with ``envs``). ``envs``: only
        these envs' columns (a minibatch), n = len(envs)."""
        # what does not recur is computed for the whole rollout at once (perception, Mspace, the
        # LSTMs' input terms, the heads); the loop carries only the two recurrences and the goal window
        net, T, n = self.net, len(steps), self.config.num_envs
        state = self.rollout_state
        if envs is not None:
            cols = envs.cpu().numpy()
            obs = obs.reshape(T, n, *obs.shape[1:])[:, cols].reshape(T * len(cols), *obs.shape[1:])
            state, n = _select_envs(state, envs), len(cols)
            steps = [{"starts": st["starts"][envs], "goal": st["goal"][envs]} for st in steps]
        z = self._features(obs)
        s = net.mspace(z)
        gates_m = net.manager_rnn.input_gates(s).view(T, n, -1)
        gates_w = lstm_input_gates(z, net.worker_rnn).view(T, n, -1)
        m_out, wh, windows = [], [], []
        for t, st in enumerate(steps):
            mgr, wstate, goals = self._reset(state, st["starts"])
            out_t, mgr = net.manager_rnn.step(gates_m[t], mgr)
            wstate = lstm_cell(gates_w[t], wstate, net.worker_rnn)
            goals = self._window(goals, st["goal"])  # the goals the worker saw when acting
            m_out.append(out_t)
            wh.append(wstate[0])
            windows.append(goals.sum(0))
            state = (mgr, wstate, goals)
        m_out, wh = torch.cat(m_out), torch.cat(wh)
        out, g = self._policy_output(wh, torch.cat(windows)), self._unit_goal(m_out)
        g, vm, vw, out = (x.view(T, n, *x.shape[1:]) for x in (g, net.manager_value(s)[:, 0], net.worker_value(wh)[:, 0], out))
        s = s.view(T, n, -1)
        if bootstrap is None:
            with torch.no_grad():  # V^M and V^W at the observation after the rollout, to bootstrap from
                end_state = self._reset(_detach(state), torch.as_tensor(self.starting, device=self.device))
                end = self._step(self._features(self.obs), end_state)
            bootstrap = (end.vm, end.vw)
        return FeudalOutputs(g, vm, vw, out, *bootstrap), s

    def _rollout_batch(self, steps: list[dict[str, Any]], s: torch.Tensor) -> FeudalRollout:
        """The acted rollout's records stacked, the recomputed states ``s`` [T, n, d] (detached)
        among them, with the kernel's look-back (the c steps before the rollout) in front."""
        col = {key: [st[key] for st in steps] for key in steps[0]}
        return FeudalRollout(torch.cat([self.s_hist, s]), torch.cat([self.g_hist, torch.stack(col["goal"])]),
                             torch.cat([self.start_hist, torch.stack(col["starts"])]), torch.stack(col["random_goal"]),
                             torch.stack(col["action"]), np.stack(col["reward"]), np.stack(col["terminated"]),
                             np.stack(col["truncated"]))

    # ---- evaluation ---------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, obs: Any, state: Any = None, deterministic: bool = True, *,
                episode_start: Any = None) -> tuple[np.ndarray, Any]:
        """Actions for a batch of observations, or the action for one (unbatched) observation;
        ``state`` carries the recurrent states and the goal window (None at an episode start; a
        batch of one for one observation), ``episode_start`` (SB3's: a bool per row) starts them
        afresh for the rows whose episode starts. Deterministic: the most likely action, or the
        Gaussian's mean."""
        obs, single = batch_observation(self.observation_space, obs)
        starts = None if state is None else episode_start_mask(episode_start, obs.shape[0])
        if state is None:
            state = self.initial_state(obs.shape[0])
        elif starts is not None:
            state = self._reset(state, torch.as_tensor(starts, device=self.device))
        step = self._step(self._features(obs), state)
        if deterministic:
            a = step.out.argmax(-1) if self.discrete else step.out
        else:
            a = self._dist(step.out).sample()
        actions = self._env_actions(a)
        return (actions[0] if single else actions), step.state

    # ---- checkpoints --------------------------------------------------------------------------------
    def state_extra(self) -> dict[str, Any]:
        return {"state": _detach(self.state), "s_hist": self.s_hist, "g_hist": self.g_hist,
                "start_hist": self.start_hist, "starting": self.starting.copy(), "rollout": self.rollout,
                "rollout_state": self.rollout_state}

    def load_state_extra(self, state: dict[str, Any]) -> None:
        for key in ("state", "s_hist", "g_hist", "start_hist", "rollout", "rollout_state"):
            if key in state:
                setattr(self, key, _to(state[key], self.device))
        if "starting" in state:
            self.starting = np.asarray(state["starting"], dtype=bool).copy()


def _select_envs(state, envs: torch.Tensor):
    """A recurrent state (manager (h, c, t), worker (h, c), goal window) of these envs only."""
    (mh, mc, mt), (wh, wc), goals = state
    return (mh[:, envs], mc[:, envs], mt[envs]), (wh[envs], wc[envs]), goals[:, envs]


def _env_slice(x: FeudalRollout | FeudalTargets, envs: np.ndarray) -> FeudalRollout | FeudalTargets:
    """A rollout's records or targets (time first, envs second) of these envs only; scalars kept."""
    def pick(v):
        if isinstance(v, np.ndarray):
            return v[:, envs]
        return v if v.dim() == 0 else v[:, torch.as_tensor(envs, device=v.device)]
    return type(x)(*(pick(v) for v in x))


def _detach(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, tuple):
        return tuple(_detach(v) for v in x)
    return x


def _to(x: Any, device: torch.device) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, tuple):
        return tuple(_to(v, device) for v in x)
    if isinstance(x, list):
        return [_to(v, device) for v in x]
    if isinstance(x, dict):
        return {k: _to(v, device) for k, v in x.items()}
    return x
