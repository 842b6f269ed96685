"""Option-Critic (Bacon, Harb & Precup, 2017), synchronous n-step form over vector envs.

Per update, a rollout of T steps from N envs gives, for each step t with running option w:

    U(s', w)   = (1 - beta_w(s')) Q_target(s', w) + beta_w(s') V_target(s')     (C++ kernel)
    G_t        = sum_{i<k} gamma^i r_{t+i} + gamma^k U(s_{t+k}, w_{t+k-1})       (C++ kernel)
    critic     = 1/2 (G_t - Q(s_t, w))^2
    policy     = -log pi_w(a_t | s_t) (G_t - Q(s_t, w)) - c_H H(pi_w(. | s_t))
                 (with action_critic: Q_U(s_t, w, a_t) - Q(s_t, w) in place of G_t - Q(s_t, w),
                 and Q_U, the paper's intra-option action critic, regressed on G_t too)
    terminate  = beta_w(s_{t+1}) (Q(s_{t+1}, w) - V(s_{t+1}) + xi)   (not after a terminal step)

with V the value of the epsilon-greedy option policy, (1 - eps) max + eps mean, so the critic
learns the values of the policy that acts. beta is evaluated at the *next* state for the option
that was running; xi (the deliberation cost) keeps options from collapsing to one step. The
window k stops at episode ends (bootstrapping from the final observation after a time-limit
truncation). Discrete actions use per-option softmax policies, continuous ones per-option
Gaussians (clipped to the action bounds in the env; log-probabilities of the raw sample).
With ``hidden_sizes=[]`` and ``head_bias=False`` on a Discrete observation space (one-hot states)
every head is a table; with, in addition, ``optimizer="sgd"``, ``action_critic=True``,
``num_envs=1``, ``rollout_steps=1``, ``update_epochs=1``, ``num_minibatches=1``, ``target_update_every=1``, ``critic_coef=1``,
``termination_coef=1``, ``entropy_coef=0`` and ``max_grad_norm=0`` the updates are those of the
paper's tabular algorithm (``hrlkit.TabularOptionCritic``; a test compares them).

With ``normalize_values`` (by default for continuous actions) Q_Omega is PopArt-normalized: U and
G_t are formed in the reward's units, the head regresses on (G_t - mu) / sigma, and the
termination and policy advantages are divided by sigma (see ``option_critic_targets``).

``option_critic_targets`` computes U, G_t and the termination advantage once per rollout (and, for
several PPO-style passes, the rollout policy's log-probabilities and advantages); ``option_critic_loss``
the terms above for a minibatch, from the network's outputs (``OptionCriticNet.evaluate_actions``).
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .. import targets
from ..nets import ACTIVATIONS, ConvEncoder, PopArt, hard_update, init_linear, is_image_space, mlp, standardized
from ..runtime.config import ConfigError, field, per_kind_help, resolve_per_kind
from ..runtime.policy_evaluation import batch_observation, episode_start_mask
from ._options import OptionAgent, OptionTracker
from .base import is_flat_box, obs_width


# What the fields left at None resolve to, per action-space kind, once the env is known (the
# agent's ``config`` then holds the values, and checkpoints save them). Continuous actions take
# PPOC's long rollouts and ten passes: in the defaults suite (3 seeds, with lambda-returns, the
# default for both kinds) they lifted LunarLanderContinuous from -65.2 to 235.3 (SB3 PPO 179.2) and
# Pendulum-v1 from -482.4 to -318.8; on discrete actions the same setting lowered CartPole-v1
# (453.4 against 500) and LunarLander-v3 (README, "Defaults suite").
# Discrete actions take SB3's PPO settings (2048-sample rollouts over the 8 envs, minibatches of 64,
# ten passes, learning rate 3e-4, the Q_Omega target copied every update) with a body of the
# critic's own: in session 14 that lifted LunarLander-v3 from 37.3 to 269.9 (SB3 PPO 135.3; 3 seeds) and
# kept CartPole-v1 at 500 on every seed (README, "Defaults suite").
KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "discrete": {"rollout_steps": 256, "update_epochs": 10, "num_minibatches": 32, "target_update_every": 1,
                 "learning_rate": 3e-4, "separate_critic": True},
    "continuous": {"rollout_steps": 128, "update_epochs": 10, "num_minibatches": 8, "target_update_every": 2,
                   "learning_rate": 1e-3, "separate_critic": False},
}


def _per_kind(name: str) -> str:
    """The help text's note on a field of KIND_DEFAULTS, from the table itself."""
    return per_kind_help(KIND_DEFAULTS, name)


@dataclasses.dataclass
class OptionCriticConfig:
    num_options: int = field(4, "number of options K", ge=1)
    num_envs: int = field(8, "parallel environments", ge=1)
    rollout_steps: int | None = field(None, "env steps per env between updates (the n of the n-step return); "
                                      + _per_kind("rollout_steps"), ge=1)
    gamma: float = field(0.99, "discount", ge=0, le=1)
    gae_lambda: float = field(0.95, "lambda of the lambda-return G_t (so G_t - Q(s, w) is a GAE(lambda) advantage, "
                                    "as in PPOC); 1: the n-step return over the rollout", ge=0, le=1, saved_before=1.0)
    learning_rate: float | None = field(None, "learning rate (of the body and the intra-option policies); "
                                        + _per_kind("learning_rate"), gt=0, saved_before=1e-3)
    critic_learning_rate: float | None = field(None, "learning rate of the Q_Omega head (None: learning_rate)", gt=0)
    termination_learning_rate: float | None = field(None, "learning rate of the termination head (None: learning_rate)",
                                                    gt=0)
    optimizer: str = field("adam", "'adam', or 'sgd' (plain gradient steps, the paper's tabular setting)",
                           choices=("adam", "sgd"))
    lr_schedule: str = field("constant", "'constant', or 'linear' decay to 0 at the end of learn(total_steps)",
                             choices=("constant", "linear"))
    hidden_sizes: list[int] = field([64, 64], "hidden layer widths of the shared body ([]: linear heads on the "
                                    "observation, tabular for one-hot states)", ge=1)
    activation: str = field("tanh", "activation of the body", choices=sorted(ACTIVATIONS))
    entropy_coef: float = field(0.01, "weight of the intra-option policies' entropy bonus", ge=0)
    critic_coef: float = field(0.5, "weight of the option-value loss", ge=0)
    termination_coef: float = field(1.0, "weight of the termination loss", ge=0)
    deliberation_cost: float = field(0.01, "xi, margin added to the termination advantage")
    epsilon_start: float = field(1.0, "initial epsilon of the epsilon-greedy option choice", ge=0, le=1)
    epsilon_end: float = field(0.1, "final epsilon", ge=0, le=1)
    epsilon_decay_steps: int = field(50_000, "env steps over which epsilon decays linearly", ge=1)
    target_update_every: int | None = field(None, "updates between copies of Q_Omega into its target network; "
                                            + _per_kind("target_update_every"), ge=1)
    max_grad_norm: float = field(0.5, "gradient-norm clip (0 disables)", ge=0)
    log_std_init: float = field(-0.5, "initial log std of the Gaussian options (continuous actions)")
    update_epochs: int | None = field(None, "passes over each rollout (more than 1: PPO-style clipped option updates, "
                                      "as in PPOC; 1: the paper's one-pass update); "
                                      + _per_kind("update_epochs"), ge=1)
    num_minibatches: int | None = field(None, "minibatches per pass over the rollout (a rollout of fewer rows than "
                                        "this is split into one-row minibatches); "
                                        + _per_kind("num_minibatches"), ge=1)
    clip_range: float = field(0.2, "likelihood-ratio clip of the intra-option policy update (0: none)", ge=0, lt=1)
    normalize_advantage: bool = field(True, "standardize the policy advantages of each minibatch (with "
                                      "update_epochs > 1 or num_minibatches > 1)")
    action_critic: bool = field(False, "learn Q_U(s, w, a) (discrete actions) and use Q_U - Q_Omega as the policy's "
                                "advantage")
    diversity_coef: float = field(0.0, "tau of DEOC (Kamat & Precup 2020): the reward r becomes (1 - tau) r + tau D(s), "
                                  "D the mean pairwise cross-entropy of the intra-option policies at s (0: off)", ge=0, le=1)
    diversity_termination: bool = field(False, "DEOC's termination objective: beta raised where the batch-standardized "
                                        "diversity D(s') is high, in place of the advantage Q(s', w) - V(s') + xi")
    separate_critic: bool | None = field(None, "the Q_Omega (and Q_U) heads read a body of their own, of the same "
                                         "architecture (as SB3's PPO keeps separate policy and value networks); the "
                                         "shared body then carries only the policies' and the terminations' "
                                         "gradients (no effect with hidden_sizes=[]); " + _per_kind("separate_critic")
                                         + "; pixels: false (one conv encoder, as SB3's CnnPolicy shares it)",
                                         saved_before=False)
    head_bias: bool = field(True, "bias terms in the heads (false with hidden_sizes=[] on one-hot states: every head "
                            "a table)")
    pixel_features: int = field(256, "pixel observations: width of the conv encoder's features (the body; "
                                "hidden_sizes then unused)", ge=1)
    normalize_values: bool | None = field(None, "PopArt: the Q_Omega head learns values normalized by the running mean "
                                          "and spread of the targets G_t (rescaled to keep its outputs as they move), "
                                          "so the critic's and the termination's gradients keep their scale whatever "
                                          "the reward's. None: on for continuous actions (where the heads have "
                                          "biases), off for discrete ones", saved_before=False)


def option_critic_targets(
    net: OptionCriticNet,
    target: OptionCriticNet,
    rewards: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    *,
    obs: torch.Tensor,
    next_obs: torch.Tensor,
    options: torch.Tensor,
    actions: torch.Tensor,
    gamma: float,
    epsilon: float,
    gae_lambda: float = 1.0,
    deliberation_cost: float,
    next_feats: torch.Tensor | None = None,
    fixed_policy: bool = False,
    diversity_coef: float = 0.0,
    diversity_termination: bool = False,
    popart: PopArt | None = None,
) -> dict[str, torch.Tensor]:
    """What the loss regresses on and weighs by, for a rollout of T steps from N envs, without
    gradient: ``returns`` G_t, ``termination_advantage`` and ``not_terminal`` (each [T * N]).

    rewards / terminated / truncated are [T, N]; obs, next_obs, options, actions flattened to
    [T * N]. next_feats: the body's features at s' when the caller already has them (detached
    here). fixed_policy (several PPO-style passes over the rollout): also the rollout policy's
    ``old_logp`` and its ``advantage``, G_t - Q(s, w) (Q_U(s, w, a) - Q(s, w) with the action
    critic), held fixed across the passes.

    ``gae_lambda`` < 1: G_t is the lambda-return of U, r_t + gamma ((1 - lambda) U(s_{t+1}, w_t) +
    lambda G_{t+1}), the rollout's last step bootstrapping fully (``targets.nstep_returns``'s ``lam``).

    DEOC (Kamat & Precup, 2020): with ``diversity_coef`` tau > 0 the rewards are
    (1 - tau) r_t + tau D(s_t), D the options' diversity (``OptionCriticNet.diversity``); with
    ``diversity_termination`` the termination advantage is -D^(s'), D standardized over the
    batch, so minimizing beta * advantage raises beta where the options differ most.

    ``popart`` (the net's, with ``normalize_values``): the Q heads of ``net`` and ``target`` output
    normalized values; U is formed in the return's units, the statistics then move to this
    rollout's G_t (``PopArt.update``, both heads rescaled to keep their values) and everything
    returned is in the new normalized units: (G_t - mu) / sigma, the termination advantage
    (Q(s', w) - V(s') + xi) / sigma, the policy's advantage (G_t - Q(s, w)) / sigma.
    """
    T, N = rewards.shape
    with torch.no_grad():
        feats_next = net.body(next_obs) if next_feats is None else next_feats.detach()
        if diversity_coef > 0:
            bonus = net.diversity(net.body(obs)).view(T, N).cpu().numpy()
            rewards = (1.0 - diversity_coef) * rewards + diversity_coef * bonus
        q_target_next, beta_next = target.q(target.body(next_obs)), torch.sigmoid(net.beta(feats_next))
        if popart is not None:
            q_target_next = popart.denormalize(q_target_next)
        # U(s', w) = (1 - beta_w(s')) Q_target(s', w) + beta_w(s') V_target(s')
        u = targets.option_bootstrap(q_target_next, beta_next, options, epsilon)
        # G_t = sum_{i<k} gamma^i r_{t+i} + gamma^k U(s_{t+k}, w_{t+k-1}), k stopping at episode ends;
        # with gae_lambda < 1 the lambda-return G_t = r_t + gamma ((1 - lambda) U(s_{t+1}, w_t) + lambda G_{t+1})
        returns = targets.nstep_returns(torch.as_tensor(rewards, dtype=torch.float32), terminated, truncated,
                                        gamma=gamma, n=T, next_values=u.view(T, N).cpu(),
                                        lam=gae_lambda).returns
        returns = returns.reshape(-1).to(options.device)
        if popart is not None:  # the statistics follow G_t; the heads keep their values in the return's units
            popart.update(returns, [m for t in (net, target) for m in (t.q, getattr(t, "qu", None)) if m is not None])
            returns, deliberation_cost = popart.normalize(returns), deliberation_cost / float(popart.std)
        q_next = net.q(feats_next)
        v_next = targets.option_values(q_next, epsilon)  # V(s') = (1 - eps) max_w Q(s', w) + eps mean_w Q(s', w)
        if diversity_termination:
            d = net.diversity(feats_next)
            termination_advantage = -standardized(d)
        else:
            termination_advantage = q_next.gather(1, options[:, None]).squeeze(1) - v_next + deliberation_cost
        out = {
            "returns": returns,
            "termination_advantage": termination_advantage,
            "not_terminal": torch.as_tensor(~terminated.reshape(-1), dtype=torch.float32, device=options.device),
        }
        if fixed_policy:
            rollout = net.evaluate_actions(obs, options, actions, next_feats=feats_next)
            out["advantage"] = (returns if rollout["q_u"] is None else rollout["q_u"]) - rollout["q_w"]
            out["old_logp"] = rollout["logp"]
    return out


def option_critic_loss(
    *,
    q_w: torch.Tensor,
    logp: torch.Tensor,
    entropy: torch.Tensor,
    beta_next: torch.Tensor,
    returns: torch.Tensor,
    termination_advantage: torch.Tensor,
    not_terminal: torch.Tensor,
    entropy_coef: float,
    critic_coef: float,
    termination_coef: float,
    q_u: torch.Tensor | None = None,
    advantage: torch.Tensor | None = None,
    old_logp: torch.Tensor | None = None,
    clip_range: float = 0.0,
    normalize_advantage: bool = False,
) -> dict[str, torch.Tensor]:
    """Option-Critic's loss terms over a batch of steps (each input is [B]), their weighted sum
    ``loss`` and the diagnostics ``entropy`` and ``beta_next`` (batch means, no gradient).

    The network's outputs (``OptionCriticNet.evaluate_actions``): q_w = Q(s_t, w_t), logp /
    entropy of pi_w at s_t, beta_next = beta_w(s_{t+1}), q_u = Q_U(s_t, w_t, a_t) (the action
    critic; None without). The targets (``option_critic_targets``, no gradient): returns G_t,
    termination_advantage Q(s_{t+1}, w) - V(s_{t+1}) + xi, not_terminal (0 where s_{t+1} is
    terminal).

    The policy's advantage is G_t - Q(s_t, w), or Q_U - Q with the action critic, unless a fixed
    ``advantage`` is given (PPO-style passes; then standardized when normalize_advantage). The
    policy term is -log pi A; with old_logp (the rollout policy's log-probabilities) it is the
    likelihood-ratio form -r A, r = pi / pi_old, with r clipped PPO-style to
    [1 - clip_range, 1 + clip_range] when clip_range > 0. Both have the same gradient at r = 1.
    The action critic is regressed on G_t and weighted as the critic.
    """
    if advantage is None:
        advantage = (returns if q_u is None else q_u) - q_w
    elif normalize_advantage and len(advantage) > 1:
        advantage = standardized(advantage)
    adv = advantage.detach()
    if old_logp is None:
        surrogate = logp * adv
    else:
        ratio = torch.exp(logp - old_logp.detach())
        surrogate = ratio * adv
        if clip_range > 0:
            surrogate = torch.min(surrogate, ratio.clamp(1.0 - clip_range, 1.0 + clip_range) * adv)
    out = {
        "critic": 0.5 * (returns - q_w).pow(2).mean(),
        "policy": -surrogate.mean() - entropy_coef * entropy.mean(),
        "termination": (beta_next * termination_advantage.detach() * not_terminal).mean(),
    }
    if q_u is not None:
        out["action_critic"] = 0.5 * (returns - q_u).pow(2).mean()
    critic = out["critic"] + out.get("action_critic", 0.0)
    out["loss"] = out["policy"] + critic_coef * critic + termination_coef * out["termination"]
    out["entropy"] = entropy.detach().mean()
    out["beta_next"] = beta_next.detach().mean()
    return out


def uses_popart(cfg: OptionCriticConfig, discrete: bool) -> bool:
    """Whether the Q heads are PopArt-normalized: ``normalize_values``, or where it is None, for
    continuous actions with biased heads. Per action-space kind because, in the defaults suite
    (3 seeds), it lifted Pendulum-v1 from below the random level to above SB3 PPO and cost
    CartPole-v1 a seed's final evaluation (README, "Defaults suite")."""
    if cfg.normalize_values is not None:
        return bool(cfg.normalize_values)
    return not discrete and cfg.head_bias


class ConcatBodies(nn.Module):
    """Two bodies over the same input; their features side by side."""

    def __init__(self, first: nn.Module, second: nn.Module):
        super().__init__()
        self.first, self.second = first, second

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.first(x), self.second(x)], dim=-1)


class ColumnsLinear(nn.Linear):
    """A linear head on the feature columns [lo, hi) (all of them when the body is not split);
    its parameters are those of nn.Linear(hi - lo, out), so PopArt and checkpoints see a Linear."""

    def __init__(self, lo: int, hi: int, out_features: int, bias: bool = True):
        super().__init__(hi - lo, out_features, bias=bias)
        self.lo, self.hi = lo, hi

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x[..., self.lo:self.hi], self.weight, self.bias)


class OptionCriticNet(nn.Module):
    """Shared body; heads for Q_Omega (K), terminations (K) and K intra-option policies."""

    def __init__(self, obs_dim: int, num_options: int, action_dim: int, discrete: bool, cfg: OptionCriticConfig,
                 image_shape: tuple[int, ...] | None = None):
        super().__init__()
        head_bias = cfg.head_bias
        self.num_options, self.action_dim, self.discrete = num_options, action_dim, discrete
        def make_body() -> tuple[nn.Module, int]:
            if image_shape is not None:  # pixels: the conv encoder is the body
                return ConvEncoder(image_shape, cfg.pixel_features), cfg.pixel_features
            body = mlp(obs_dim, cfg.hidden_sizes, cfg.activation) if cfg.hidden_sizes else nn.Identity()
            return body, (cfg.hidden_sizes[-1] if cfg.hidden_sizes else obs_dim)

        self.body, h = make_body()
        actor, critic = (0, h), (0, h)  # the feature columns the actor's and the critic's heads read
        if cfg.separate_critic and (image_shape is not None or cfg.hidden_sizes):  # [actor body's, critic body's]
            # (with hidden_sizes=[] the body is the observation itself: nothing to separate)
            self.body = ConcatBodies(self.body, make_body()[0])
            critic = (h, 2 * h)
        self.q = init_linear(ColumnsLinear(*critic, num_options, bias=head_bias), 1.0)
        self.beta = init_linear(ColumnsLinear(*actor, num_options, bias=head_bias), 1.0)
        self.pi = init_linear(ColumnsLinear(*actor, num_options * action_dim, bias=head_bias), 0.01)
        if cfg.action_critic:
            self.qu = init_linear(ColumnsLinear(*critic, num_options * action_dim, bias=head_bias), 1.0)
        if uses_popart(cfg, discrete):  # the value heads' statistics (PopArt)
            self.popart = PopArt()
        if not discrete:
            self.log_std = nn.Parameter(torch.full((num_options, action_dim), float(cfg.log_std_init)))

    def policy(self, feats: torch.Tensor, options: torch.Tensor) -> torch.distributions.Distribution:
        out = self.pi(feats).view(-1, self.num_options, self.action_dim)
        out = out[torch.arange(out.shape[0], device=out.device), options]
        if self.discrete:
            return torch.distributions.Categorical(logits=out)
        return torch.distributions.Normal(out, self.log_std[options].exp())

    def diversity(self, feats: torch.Tensor) -> torch.Tensor:
        """D(s) [B]: the mean over ordered pairs i != j of the cross-entropy H(pi_i, pi_j) of the
        intra-option policies at s (-sum_a pi_i(a|s) log pi_j(a|s); for Gaussians its closed form
        sum_d log sigma_j + log(2 pi) / 2 + (sigma_i^2 + (mu_i - mu_j)^2) / (2 sigma_j^2)). 0 with
        one option."""
        k = self.num_options
        if k < 2:
            return feats.new_zeros(feats.shape[0])
        out = self.pi(feats).view(-1, k, self.action_dim)
        if self.discrete:
            ce = -torch.einsum("bia,bja->bij", out.softmax(-1), out.log_softmax(-1))
        else:
            var = (2 * self.log_std).exp()  # [K, A]
            mean_gap = (out[:, :, None, :] - out[:, None, :, :]).pow(2)  # [B, i, j, A]
            ce = (self.log_std[None, None] + 0.5 * np.log(2 * np.pi)
                  + (var[None, :, None] + mean_gap) / (2 * var[None, None])).sum(-1)
        off_diagonal = 1.0 - torch.eye(k, device=feats.device)
        return (ce * off_diagonal).sum((1, 2)) / (k * (k - 1))

    def evaluate_actions(self, obs: torch.Tensor, options: torch.Tensor, actions: torch.Tensor,
                         next_obs: torch.Tensor | None = None, next_feats: torch.Tensor | None = None) -> dict:
        """What ``option_critic_loss`` needs from the network for steps (s, w, a, s'): q_w, logp,
        entropy, q_u (None without the action critic) at s and beta_next at s'; next_feats: the
        body's features at s' when the caller has them, else computed from next_obs."""
        feats = self.body(obs)
        beta_next = torch.sigmoid(self.beta(self.body(next_obs) if next_feats is None else next_feats))
        dist = self.policy(feats, options)
        logp, entropy = dist.log_prob(actions), dist.entropy()
        if not self.discrete:
            logp, entropy = logp.sum(-1), entropy.sum(-1)
        q_w = self.q(feats).gather(1, options[:, None]).squeeze(1)
        q_u = None
        if hasattr(self, "qu"):  # the action critic Q_U(s, w, a)
            q_u = self.qu(feats).view(-1, self.num_options, self.action_dim)
            q_u = q_u[torch.arange(q_u.shape[0], device=q_u.device), options, actions.long()]
        return {"q_w": q_w, "logp": logp, "entropy": entropy, "q_u": q_u,
                "beta_next": beta_next.gather(1, options[:, None]).squeeze(1)}


class OptionCritic(OptionAgent):
    """Option-Critic with K options over discrete (softmax) or continuous (Gaussian) actions."""

    name = "option-critic"
    Config = OptionCriticConfig

    def _resolve_config(self) -> None:
        if self.config.separate_critic is None and is_image_space(self.observation_space):
            # pixels: one conv encoder for both, as SB3's CnnPolicy shares its features extractor
            self.config = dataclasses.replace(self.config, separate_critic=False)
        self.config = resolve_per_kind(self.config, KIND_DEFAULTS, isinstance(self.action_space, gym.spaces.Discrete))

    def _check_spaces(self) -> None:
        obs, act = self.observation_space, self.action_space
        if not (isinstance(obs, gym.spaces.Discrete) or is_flat_box(obs) or is_image_space(obs)):
            raise ConfigError(f"env: option-critic needs a Discrete, a flat Box or an image (uint8 pixels) observation "
                              f"space, got {obs}")
        if not (isinstance(act, gym.spaces.Discrete) or is_flat_box(act)):
            raise ConfigError(f"env: option-critic needs a Discrete or flat Box action space, got {act}")
        if self.config.action_critic and not isinstance(act, gym.spaces.Discrete):
            raise ConfigError(f"action_critic: Q_U(s, w, a) needs a Discrete action space, got {act}")
        if self.config.normalize_values is True and not self.config.head_bias:
            raise ConfigError("normalize_values: PopArt shifts the value heads' biases; expected head_bias=True, got "
                              "head_bias=False")

    # ---- construction ---------------------------------------------------------------------------
    def build(self) -> None:
        cfg = self.config
        pixels = is_image_space(self.observation_space)
        obs_dim = 0 if pixels else obs_width(self.observation_space)
        self.discrete = isinstance(self.action_space, gym.spaces.Discrete)
        action_dim = int(self.action_space.n) if self.discrete else int(self.action_space.shape[0])
        self.net = OptionCriticNet(obs_dim, cfg.num_options, action_dim, self.discrete, cfg,
                                   image_shape=tuple(self.observation_space.shape) if pixels else None).to(self.device)
        self.target = copy.deepcopy(self.net).requires_grad_(False)
        self.optimizer = self._make_optimizer()
        if not self.discrete:
            self.action_low = torch.as_tensor(self.action_space.low, device=self.device)
            self.action_high = torch.as_tensor(self.action_space.high, device=self.device)
        self.tracker = OptionTracker(cfg.num_envs, cfg.num_options)
        self.rollout: list[tuple] = []
        self._raw_actions: torch.Tensor | None = None

    def _make_optimizer(self) -> torch.optim.Optimizer:
        """One optimizer; the Q_Omega and termination heads get their own learning rates."""
        cfg, net = self.config, self.net
        heads = {"q": cfg.critic_learning_rate, "beta": cfg.termination_learning_rate}
        if cfg.action_critic:
            heads["qu"] = cfg.critic_learning_rate
        groups = [{"params": [p for n, p in net.named_parameters() if n.split(".")[0] not in heads],
                   "lr": cfg.learning_rate, "base_lr": cfg.learning_rate}]
        for head, lr in heads.items():
            lr = cfg.learning_rate if lr is None else lr
            groups.append({"params": list(getattr(net, head).parameters()), "lr": lr, "base_lr": lr})
        return torch.optim.SGD(groups) if cfg.optimizer == "sgd" else torch.optim.Adam(groups)

    def modules(self) -> dict[str, Any]:
        return {"net": self.net, "target": self.target, "optimizer": self.optimizer}

    # ---- acting ----------------------------------------------------------------------------------
    def epsilon(self) -> float:
        cfg = self.config
        return self.linear_schedule(cfg.epsilon_start, cfg.epsilon_end, cfg.epsilon_decay_steps)

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        feats = self.net.body(self.obs_tensor(obs))
        q = self.net.q(feats)
        beta = torch.sigmoid(self.net.beta(feats)).cpu().numpy()
        tr = self.tracker
        n, k = len(tr.options), self.config.num_options
        choose = tr.terminations(beta[np.arange(n), tr.options], self.rng)
        new = tr.options
        if choose.any():
            greedy = q.argmax(dim=1).cpu().numpy()
            explore = self.rng.random(n) < self.epsilon()
            new = np.where(explore, self.rng.integers(k, size=n), greedy)
        options = tr.start(choose, new)
        dist = self.net.policy(feats, torch.as_tensor(options, device=self.device))
        raw = dist.sample()
        self._raw_actions = raw
        return self._env_actions(raw)

    def _env_actions(self, raw: torch.Tensor) -> np.ndarray:
        if self.discrete:
            return raw.cpu().numpy()
        return torch.max(torch.min(raw, self.action_high), self.action_low).cpu().numpy()

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated) -> None:
        self.rollout.append(
            (obs, self.tracker.options.copy(), self._raw_actions, rewards, next_obs, terminated, truncated)
        )

    def ready(self) -> bool:
        return len(self.rollout) >= self.config.rollout_steps

    # ---- learning ---------------------------------------------------------------------------------
    def update(self) -> dict[str, float]:
        cfg = self.config
        batch, rewards, terminated, truncated = self._rollout_batch()
        several = cfg.update_epochs > 1 or cfg.num_minibatches > 1
        # One pass: the body's forward at s' serves both the targets (detached) and the termination
        # gradient. Several (PPO-style): recomputed per minibatch, the rollout policy held fixed.
        next_feats = None if several else self.net.body(batch["next_obs"])
        fixed = option_critic_targets(self.net, self.target, rewards, terminated, truncated, **batch, gamma=cfg.gamma,
                                      gae_lambda=cfg.gae_lambda, epsilon=self.epsilon(),
                                      deliberation_cost=cfg.deliberation_cost, next_feats=next_feats, fixed_policy=several,
                                      diversity_coef=cfg.diversity_coef, diversity_termination=cfg.diversity_termination,
                                      popart=getattr(self.net, "popart", None))
        self.schedule_learning_rate(self.optimizer, cfg.lr_schedule)
        coefs = dict(entropy_coef=cfg.entropy_coef, critic_coef=cfg.critic_coef, termination_coef=cfg.termination_coef,
                     clip_range=cfg.clip_range, normalize_advantage=cfg.normalize_advantage)
        size, history = len(fixed["returns"]), {}
        for _ in range(cfg.update_epochs):
            order = torch.randperm(size, device=self.device) if several else torch.arange(size, device=self.device)
            for mb in order.chunk(cfg.num_minibatches):
                outputs = self.net.evaluate_actions(**{k: v[mb] for k, v in batch.items()}, next_feats=next_feats)
                out = option_critic_loss(**outputs, **{k: v[mb] for k, v in fixed.items()}, **coefs)
                self.optimizer.zero_grad(set_to_none=True)
                out["loss"].backward()
                if cfg.max_grad_norm > 0:
                    nn.utils.clip_grad_norm_(self.net.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                for k, v in out.items():
                    if k != "loss":
                        history.setdefault(f"losses/{k}", []).append(float(v.detach()))
        if (self.num_updates + 1) % cfg.target_update_every == 0:
            hard_update(self.target, self.net)
        return {k: float(np.mean(v)) for k, v in history.items()}

    def _rollout_batch(self) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray, np.ndarray]:
        """The rollout as tensors of [T * N] steps (obs, next_obs, options, actions) and the
        [T, N] rewards, terminated and truncated flags; the rollout is emptied."""
        obs, options, actions, rewards, next_obs, terminated, truncated = zip(*self.rollout)
        self.rollout.clear()
        batch = {"obs": self.obs_tensor(np.concatenate(obs)), "next_obs": self.obs_tensor(np.concatenate(next_obs)),
                 "options": torch.as_tensor(np.concatenate(options), device=self.device), "actions": torch.cat(actions)}
        return batch, np.stack(rewards), np.stack(terminated), np.stack(truncated)

    # ---- evaluation ---------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, obs: Any, state: Any = None, deterministic: bool = True, *,
                episode_start: Any = None) -> tuple[np.ndarray, Any]:
        """Actions for a batch of observations, or the action for one (unbatched) observation.
        ``state`` carries the running options between calls (None at an episode start; a batch
        of one for one observation); ``episode_start`` (SB3's: a bool per row) drops the running
        option of the rows whose episode starts. Deterministic: the greedy option, terminated
        where beta >= 0.5, and the most likely action (the Gaussian mean for continuous actions)."""
        obs, single = batch_observation(self.observation_space, obs)
        feats = self.net.body(self.obs_tensor(obs))
        greedy = self.net.q(feats).argmax(dim=1).cpu().numpy()
        options = self._predict_options(state, greedy, torch.sigmoid(self.net.beta(feats)).cpu().numpy(), deterministic)
        starts = episode_start_mask(episode_start, len(options))
        if starts is not None:
            options = np.where(starts, greedy, options)
        dist = self.net.policy(feats, torch.as_tensor(options, device=self.device))
        if deterministic:
            raw = dist.probs.argmax(-1) if self.discrete else dist.mean
        else:
            raw = dist.sample()
        actions = self._env_actions(raw)
        return (actions[0] if single else actions), {"option": options}

    # ---- logging and checkpoints ------------------------------------------------------------------------
    def log_stats(self) -> dict[str, float]:
        return {**self.tracker.log_stats(), "charts/epsilon": self.epsilon()}

