"""Soft Option-Critic: maximum-entropy options (SAC per option) on option-tagged replay.

K options, each a tanh-squashed Gaussian actor pi_w(a|s) with its own entropy temperature
alpha_w, share twin critics Q_j(s, a, w) (one head per option, target copies updated by polyak
averaging). An option network gives the option values Q_Omega(s, .) and the terminations
beta_.(s). Q_Omega(s, w) is regressed on the soft value of option w's actor,

    Q_Omega(s, w) <- min_j Q_j(s, a_w, w) - alpha_w log pi_w(a_w|s),   a_w ~ pi_w(s),

options are chosen by a Boltzmann policy pi_Omega(w|s) ~ exp(Q_Omega(s, w) / tau), and with V(s)
the value of that choice (its expectation, or tau logsumexp with ``option_value="soft"``) each
transition trains its option w towards the seed's soft target (one sample a' ~ pi_w(s'))

    y = r + gamma (1 - d) [ (1 - beta_w(s')) (min_j Q'_j(s', a', w) - alpha_w log pi_w(a'|s')) + beta_w(s') V(s') ]

computed for the whole batch in one C++ kernel call (``targets.soft_option_targets``). With
``target_option_values="critics"`` the Q_Omega(s', .) in V(s') and in the termination advantage
are not the option network's but every option's soft value from the target critics, min_j
Q'_j(s', a'_v, v) - alpha_v log pi_v(a'_v|s') with a'_v ~ pi_v(s') (one bootstrap instead of two;
the target's actor and critic passes on K B rows instead of B); the option network still chooses the options. Actors
minimise alpha_w log pi_w - min_j Q_j(s, a_w, w); terminations follow the option-critic gradient
beta_w(s') (Q_Omega(s', w) - V(s') + xi); each alpha_w is tuned to a target entropy.

A batch of B transitions is split into K groups of B/K, one per option, so every network is
evaluated once per batch as a stacked ensemble (one batched matmul per layer, no Python loop
over options). ``learn_from_all_data=True`` (default) samples B rows from all data and deals
them to the options in turn (every transition is valid off-policy data for each option's soft
Q, and every option's Q_Omega and beta see the whole state space); ``False`` fills group w from
option w's own rows of the tagged buffer (``sample(B/K, option=w)``). With
``intra_option_learning=True`` every option learns from every one of the B transitions instead
(its critic head, actor, Q_Omega and beta; intra-option learning, Sutton, Precup & Singh 1999):
the loss runs on K B rows, group w holding all B transitions for option w, each transition's s'
valued once for every option.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import _cuda_ops, targets
from ..nets import EnsembleMLP, SharedTrunkEnsemble, soft_update
from ..replay import PrioritizedReplayBuffer, ReplayBuffer, from_bytes_like, to_bytes
from ..runtime.config import ConfigError, check, field
from ..runtime.policy_evaluation import batch_observation, episode_start_mask
from ..runtime.cuda_graphs import CapturedStep
from ._options import OptionAgent, OptionTracker
from .base import is_bounded_box, is_flat_box
from ._sac import (ParamHolder, SACConfig, actor_loss, alpha_loss, critic_loss, fused_adam, sample_squashed, soft_value,
                   squashed_gaussian)

__all__ = ["SoftOptionCritic", "SoftOptionCriticConfig", "soft_option_critic_loss", "squashed_gaussian"]


@dataclasses.dataclass
class SoftOptionCriticConfig(SACConfig):
    """The shared SAC fields (batch_size: a multiple of num_options), then the options'."""

    num_options: int = field(4, "number of options K", ge=1)
    option_learning_rate: float = field(3e-4, "Adam learning rate of the option network (Q_Omega and beta)", gt=0,
                                        renamed_from=("option_lr",))
    option_hidden_sizes: list[int] = field([64, 64], "hidden layer widths of the option network", ge=1, nonempty=True)
    entropy_coef: float = field(1.0, "SAC's temperature alpha, per option: the initial value when "
                                "autotune_entropy_coef, else fixed", gt=0, renamed_from=("alpha",))
    autotune_entropy_coef: bool = field(True, "tune each option's entropy_coef towards target_entropy",
                                        renamed_from=("autotune_alpha",))
    target_entropy: float | None = field(None, "target entropy per option (None: -action_dim)")
    option_temperature: float = field(1.0, "tau_Omega of the Boltzmann option policy (0: greedy)", ge=0)
    option_value: str = field("expected", "V(s) over options: 'expected' (E_pi_Omega Q_Omega) or 'soft' "
                              "(option_temperature logsumexp)", choices=("expected", "soft"))
    deliberation_cost: float = field(0.01, "xi, margin added to the termination advantage")
    target_option_values: str = field("option_net", "Q_Omega(s', .) in the critics' target and the termination "
                                      "advantage: 'option_net' (the target option network) or 'critics' (every "
                                      "option's soft value from the target critics at a' ~ pi_w(s'), K times the "
                                      "target's compute)", choices=("option_net", "critics"))
    share_actor_trunk: bool = field(False, "the options' actors share their hidden layers, one output layer per "
                                    "option (False: K separate actor networks)")
    learn_from_all_data: bool = field(True, "deal all data to every option (False: each option trains on its own rows)")
    intra_option_learning: bool = field(False, "every option learns from every transition of the batch (its critic head, "
                                        "actor, Q_Omega and beta: K batch_size loss rows, K times the actors' passes and the "
                                        "critics' passes at the actors' actions) instead of batch_size / K dealt rows")
    log_prob_epsilon: float = field(0.0, "epsilon of the tanh correction log(1 - a^2 + epsilon) in log pi (0: exact, "
                                    "2 (log 2 - u - softplus(-2u)); SB3 uses 1e-6)", ge=0)
    update_order: str = field("joint", "'joint': one Adam step on the summed loss, every term read from the same "
                              "parameters; 'critic_first': the critics (and entropy_coef) step first, then the actors, "
                              "Q_Omega and beta step on losses read from the stepped critics (SB3's SAC order; two "
                              "backward passes and two Adam steps a gradient step)", choices=("joint", "critic_first"))
    prioritized: bool = field(True, "prioritized replay (priorities from the critics' TD errors)")
    per_alpha: float = field(0.6, "priority exponent of prioritized replay", ge=0)
    per_beta: float = field(0.4, "initial importance-sampling exponent (annealed to 1 over learn())", ge=0, le=1)
    replay_device: str = field("auto", "where the replay lives: auto (on the agent's device where hrlkit._cuda is "
                               "built), cpu", choices=("auto", "cpu"))
    cuda_graph: bool = field(True, "on CUDA with a device replay: capture the gradient step and act's forward as CUDA "
                             "graphs")

    def validate(self) -> None:
        if self.intra_option_learning:
            check(self.learn_from_all_data, "learn_from_all_data", "true with intra_option_learning (every option "
                  "learns from every transition)", self.learn_from_all_data)
        else:
            check(self.batch_size % self.num_options == 0, "batch_size",
                  f"a positive multiple of num_options ({self.num_options})", self.batch_size)


def soft_option_critic_loss(
    batch: dict[str, torch.Tensor], *, actor: EnsembleMLP, critic: EnsembleMLP, option_net: EnsembleMLP,
    target_critic: EnsembleMLP, target_option_net: EnsembleMLP, log_alpha: torch.Tensor, options: torch.Tensor,
    cfg: SoftOptionCriticConfig, target_entropy: float, rows: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Every Soft Option-Critic loss term on B transitions; row b trains option w = options[b].

    batch: obs, action, reward, next_obs, terminated [B] (and weights [B], prioritized replay's
    importance weights), in K consecutive groups of B/K rows, group w for option w (each network
    runs once as a stacked ensemble). actor: the K option actors (mean and log std of pi_w);
    critic: the twin critics, head w for option w; option_net: Q_Omega(s, .) and the termination
    logits; target_*: their polyak copies; log_alpha [K]. With a' ~ pi_w(s'), a_w ~ pi_w(s), d the
    terminal flag and V(s') the option policy's value of Q_Omega'(s', .):

        y            = r + gamma (1 - d) [(1 - beta_w(s')) (min_j Q'_j(s', a', w) - alpha_w log pi_w(a'|s'))
                                          + beta_w(s') V(s')]
        critic       = sum_j 1/2 mean(weights (Q_j(s, a, w) - y)^2)
        actor        = mean(alpha_w log pi_w(a_w|s) - min_j Q_j(s, a_w, w))
        option_value = 1/2 mean((Q_Omega(s, w) - [min_j Q_j(s, a_w, w) - alpha_w log pi_w(a_w|s)])^2)
        termination  = mean(beta_w(s') (Q_Omega'(s', w) - V(s') + xi) (1 - d))
        alpha        = -mean(log alpha_w (log pi_w(a_w|s) + target_entropy))
        total        = critic + actor + option_value + termination (+ alpha with autotune_entropy_coef)

    With ``cfg.update_order="critic_first"``, total is critic (+ alpha) only, and
    ``after_critic_step`` a function to call once the critics have stepped: it reads
    min_j Q_j(s, a_w, w) from the stepped critics (same a_w) and returns actor, option_value and their
    total actor + option_value + termination.

    With ``cfg.target_option_values="critics"``, Q_Omega'(s', .) in V(s') and the termination
    advantage is :func:`critic_option_values`'s, the target critics' soft value of every option.

    Each term trains only its own network (the others' outputs enter detached). Also returns the
    diagnostics target [B] (y), q [2, B] (Q_j(s, a, w)), beta_next [B] and entropy (-mean log pi_w).

    rows [N] (intra-option learning): the loss rows are transitions rows[n] for options options[n]
    (every term above over these N rows, in K groups of N/K; the critics' values at s' computed
    once per transition), and the diagnostics have N rows.
    """
    transitions = batch  # the distinct transitions: networks that see no option-dependent input run on these once

    def at_rows(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
        return x if rows is None else x.index_select(dim, rows)

    if rows is not None:
        batch = {k: at_rows(v) for k, v in batch.items() if k != "indices"}
    obs, action, next_obs, w = batch["obs"], batch["action"], batch["next_obs"], options
    (B, A), K = action.shape, log_alpha.shape[0]
    not_terminal = 1.0 - batch["terminated"].to(torch.float32)
    with torch.no_grad():  # at s': a' ~ pi_w(s'), the target critics' heads w, the target Q_Omega'(s', .)
        if cfg.target_option_values == "critics":
            q_next, logp_next, q_omega_next = critic_option_values(actor, target_critic, transitions["next_obs"], w,
                                                                   log_alpha.detach().exp(), A, rows,
                                                                   cfg.log_prob_epsilon)
        else:
            a_next, logp_next = sample_squashed(actor(next_obs.view(K, B // K, -1)), A, cfg.log_prob_epsilon)
            q_next = own_heads(target_critic(torch.cat([next_obs, a_next.reshape(B, -1)], dim=-1)), w)
            q_omega_next = at_rows(option_heads(target_option_net, transitions["next_obs"])[0])
    # the option network at s (Q_Omega(s, w), regressed) and at s' (beta_w(s'), for y and the termination loss)
    n = transitions["obs"].shape[0]
    q_omega_all, beta_all = option_heads(option_net, torch.cat([transitions["obs"], transitions["next_obs"]]))
    q_omega = at_rows(q_omega_all[:n]).gather(1, w[:, None]).squeeze(1)
    beta_next = at_rows(beta_all[n:]).gather(1, w[:, None]).squeeze(1)
    # y = r + gamma (1 - d) [(1 - beta_w(s')) (min_j Q'_j(s', a', w) - alpha_w log pi_w(a'|s')) + beta_w(s') V(s')],
    # advantage = Q_Omega'(s', w) - V(s') + xi, V(s') = E_pi_Omega Q_Omega'(s', .) (or tau logsumexp): one kernel call
    t = targets.soft_option_targets(q_next, logp_next.reshape(B), q_omega_next, beta_next.detach(), w, batch["reward"],
                                    cfg.gamma * not_terminal, log_alpha.detach().exp(), mode=cfg.option_value,
                                    option_temperature=cfg.option_temperature, deliberation_cost=cfg.deliberation_cost,
                                    validate=False)
    q = own_heads(at_rows(critic(torch.cat([transitions["obs"], transitions["action"]], dim=-1)), dim=1), w)
    a_pi, logp_pi = sample_squashed(actor(obs.view(K, B // K, -1)), A, cfg.log_prob_epsilon)
    logp_pi = logp_pi.reshape(B)
    log_alpha_w = log_alpha[w]
    alpha_w = log_alpha_w.detach().exp()  # a copy: the value before any step of log_alpha
    weights = batch.get("weights")
    terms = {
        "critic": critic_loss(q, t.target, None if weights is None else weights.to(torch.float32)),
        "termination": (beta_next * t.advantage.detach() * not_terminal).mean(),
        "alpha": alpha_loss(log_alpha_w, logp_pi, target_entropy),
    }
    critic_total = terms["critic"] + terms["alpha"] if cfg.autotune_entropy_coef else terms["critic"]

    def policy_terms() -> dict[str, torch.Tensor]:
        # min_j Q_j(s, a_w, w) with the critics' parameters detached: its gradient reaches the actor only
        q_pi = own_heads(critic(torch.cat([obs, a_pi.reshape(B, -1)], dim=-1), detach_params=True), w).min(dim=0).values
        out = {"actor": actor_loss(q_pi, logp_pi, alpha_w),
               "option_value": 0.5 * (q_omega - soft_value(q_pi, logp_pi, alpha_w).detach()).pow(2).mean()}
        return {**out, "total": out["actor"] + out["option_value"] + terms["termination"]}

    diagnostics = {"target": t.target, "q": q, "beta_next": beta_next, "entropy": -logp_pi.detach().mean()}
    if cfg.update_order == "critic_first":
        return {**terms, **diagnostics, "total": critic_total, "after_critic_step": policy_terms}
    policy = policy_terms()
    return {**terms, **diagnostics, "actor": policy["actor"], "option_value": policy["option_value"],
            "total": critic_total + policy["total"]}


def critic_option_values(actor: nn.Module, target_critic: EnsembleMLP, next_obs: torch.Tensor, options: torch.Tensor,
                         alpha: torch.Tensor, action_dim: int, rows: torch.Tensor | None = None,
                         log_prob_epsilon: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every option's soft value at s' from the target critics (``target_option_values="critics"``):
    a'_v ~ pi_v(s') for each option v and row b, then

        Q_Omega(s', v) = min_j Q'_j(s', a'_v, v) - alpha_v log pi_v(a'_v|s')      [B, K]

    and, for each row's own option w = options[b] (the same draws), q_next [2, B] (both critics'
    head w at a'_w) and logp_next [B]. With rows [N] (loss row n is transition rows[n], option
    options[n]): q_next [2, N], logp_next [N] and the values [N, K] of those rows."""
    B, K = next_obs.shape[0], alpha.shape[0]
    a_next, logp_all = sample_squashed(actor(next_obs), action_dim, log_prob_epsilon)  # [K, B, A], [K, B]
    x = torch.cat([next_obs.expand(K, -1, -1), a_next], dim=-1).reshape(K * B, -1)
    q_all = torch.diagonal(target_critic(x).view(2, K, B, K), dim1=1, dim2=3)  # [2, B, K]: head v at a'_v
    values = q_all.min(dim=0).values - (alpha[:, None] * logp_all).T
    if rows is None:
        rows = torch.arange(B, device=next_obs.device)
    else:
        values = values[rows]
    return q_all[:, rows, options], logp_all[options, rows], values


def own_heads(q: torch.Tensor, options: torch.Tensor) -> torch.Tensor:
    """Head w of each row's option w = options[b]: [E, B, K] -> [E, B]."""
    return q.gather(2, options.view(1, -1, 1).expand(q.shape[0], -1, 1)).squeeze(2)


def option_heads(option_net: EnsembleMLP, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The option network at x [N, obs]: Q_Omega(x, .) and beta_.(x), each [N, K]."""
    out = option_net(x)[0]
    K = out.shape[-1] // 2
    return out[:, :K], torch.sigmoid(out[:, K:])


class SoftOptionCritic(OptionAgent):
    """Soft Option-Critic over a flat Box observation and a bounded Box action space."""

    name = "soft-option-critic"
    Config = SoftOptionCriticConfig

    def _check_spaces(self) -> None:
        obs, act = self.observation_space, self.action_space
        if not is_flat_box(obs):
            raise ConfigError(f"env: soft-option-critic needs a flat Box observation space, got {obs}")
        if not is_bounded_box(act):
            raise ConfigError(f"env: soft-option-critic needs a bounded flat Box action space, got {act}")

    # ---- construction ---------------------------------------------------------------------------
    def build(self) -> None:
        cfg = self.config
        K = cfg.num_options
        self.obs_dim = obs_dim = int(self.observation_space.shape[0])
        self.action_dim = A = int(self.action_space.shape[0])
        actor_class = SharedTrunkEnsemble if cfg.share_actor_trunk else EnsembleMLP
        self.actor = actor_class(K, obs_dim, cfg.hidden_sizes, 2 * A, cfg.activation).to(self.device)
        self.critic = EnsembleMLP(2, obs_dim + A, cfg.hidden_sizes, K, cfg.activation,
                                  cfg.critic_layer_norm).to(self.device)
        self.option_net = EnsembleMLP(1, obs_dim, cfg.option_hidden_sizes, 2 * K, cfg.activation).to(self.device)
        self.targets = nn.ModuleDict({"critic": self.critic, "option_net": self.option_net})
        self.targets_copy = copy.deepcopy(self.targets).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.full((K,), math.log(cfg.entropy_coef), device=self.device),
                                      requires_grad=cfg.autotune_entropy_coef)
        groups = [
            {"params": list(self.actor.parameters()), "lr": cfg.actor_learning_rate},
            {"params": list(self.critic.parameters()), "lr": cfg.critic_learning_rate},
            {"params": list(self.option_net.parameters()), "lr": cfg.option_learning_rate},
        ]
        if cfg.autotune_entropy_coef:
            groups.append({"params": [self.log_alpha], "lr": cfg.entropy_coef_learning_rate})
        self.optimizer = torch.optim.Adam(groups, **fused_adam(self.device), capturable=self.device.type == "cuda")
        self.target_entropy = float(-A if cfg.target_entropy is None else cfg.target_entropy)
        low, high = self.action_space.low.astype(np.float32), self.action_space.high.astype(np.float32)
        self.action_center, self.action_scale = (high + low) / 2.0, (high - low) / 2.0
        if cfg.intra_option_learning:  # loss row w B + b: transition b for option w
            B = cfg.batch_size
            self.group_options = torch.arange(K, device=self.device).repeat_interleave(B)
            self.loss_rows: torch.Tensor | None = torch.arange(B, device=self.device).repeat(K)
        else:
            m = cfg.batch_size // K
            self.group_options = torch.arange(K, device=self.device).repeat_interleave(m)  # option of each batch row
            self.loss_rows = None
        self.buffer = self._make_buffer()
        self.tracker = OptionTracker(cfg.num_envs, K)
        self._actions: np.ndarray | None = None  # the last act()'s actions in [-1, 1]
        self._order = None  # the batch dealing permutation as a device tensor (device replay)
        # on CUDA with a device replay (_graph_wanted): the gradient step and act's forward as CUDA graphs
        self._train_step = CapturedStep(self._gradient_step, device=self.device, warmup=3,
                                        generators=lambda: [self.buffer.generator], name="the gradient step")
        self._act_in: torch.Tensor | None = None  # act's static input (and its pinned host staging copy)
        self._act_step = CapturedStep(lambda: self._act_outputs(self._act_in, True), device=self.device, warmup=0,
                                      dry_runs=2, name="act")

    def _make_buffer(self) -> ReplayBuffer:
        cfg = self.config
        obs_shape = tuple(self.observation_space.shape)
        spec = {
            "obs": (obs_shape, "float32"),
            "action": ((self.action_dim,), "float32"),
            "reward": ((), "float32"),
            "next_obs": (obs_shape, "float32"),
            "terminated": ((), "bool"),
        }
        seed = int(self.rng.integers(2**63))
        on_gpu = self.device.type == "cuda" and cfg.replay_device == "auto" and _cuda_ops.available()
        device = self.device if on_gpu else None
        if cfg.prioritized:
            return PrioritizedReplayBuffer(cfg.buffer_size, spec, alpha=cfg.per_alpha, beta=cfg.per_beta,
                                           num_options=cfg.num_options, seed=seed, device=device)
        return ReplayBuffer(cfg.buffer_size, spec, num_options=cfg.num_options, seed=seed, device=device)

    def modules(self) -> dict[str, Any]:
        return {"actor": self.actor, "critic": self.critic, "option_net": self.option_net,
                "targets": self.targets_copy, "log_alpha": ParamHolder(self.log_alpha), "optimizer": self.optimizer}

    # ---- networks ---------------------------------------------------------------------------------
    def alphas(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    def _option_probs(self, q_omega: torch.Tensor) -> torch.Tensor:
        """The Boltzmann option policy at temperature tau (q_omega itself at tau = 0: unused)."""
        tau = self.config.option_temperature
        return q_omega if tau == 0.0 else torch.softmax(q_omega / tau, dim=1)

    def _choose_from(self, q_omega: np.ndarray, probs: np.ndarray, greedy: bool) -> np.ndarray:
        """Options for each row on the host: argmax Q_Omega (greedy or tau = 0), else a draw from probs."""
        if greedy or self.config.option_temperature == 0.0:
            return q_omega.argmax(axis=1)
        u = self.rng.random((len(probs), 1))
        probs = probs.astype(np.float64)
        return np.minimum((probs.cumsum(axis=1) < u).sum(axis=1), probs.shape[1] - 1)

    def _choose_options(self, q_omega: torch.Tensor, greedy: bool) -> np.ndarray:
        return self._choose_from(q_omega.cpu().numpy(), self._option_probs(q_omega).cpu().numpy(), greedy)

    def _env_actions(self, squashed: np.ndarray) -> np.ndarray:
        return self.action_center + self.action_scale * squashed

    # ---- acting ----------------------------------------------------------------------------------
    def _act_outputs(self, x: torch.Tensor, acting: bool) -> torch.Tensor:
        """Q_Omega, beta and the option policy at x, and (acting) every option's sampled action,
        flattened into one tensor so that one device-to-host copy serves the whole step."""
        q_omega, beta = option_heads(self.option_net, x)
        parts = [q_omega, beta, self._option_probs(q_omega)]
        if acting:
            parts.append(sample_squashed(self.actor(x), self.action_dim)[0])
        return torch.cat([p.reshape(-1) for p in parts])

    def _act_replay(self, obs: np.ndarray) -> np.ndarray:
        """_act_outputs of acting at obs, as a replay of its CUDA graph (the obs copied into its
        static input through pinned memory)."""
        if self._act_in is None:
            n, d = self.config.num_envs, self.obs_dim
            self._act_in = torch.zeros((n, d), device=self.device)
            self._act_pinned = torch.empty((n, d), pin_memory=True)
        self._act_pinned.copy_(torch.from_numpy(np.asarray(obs)))
        self._act_in.copy_(self._act_pinned, non_blocking=True)
        return self._act_step().cpu().numpy()

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        tr = self.tracker
        n, K, A = len(tr.options), self.config.num_options, self.action_dim
        acting = self.global_step >= self.config.learning_starts
        if acting and self._graph_wanted():
            host = self._act_replay(obs)
        else:
            host = self._act_outputs(self.obs_tensor(obs), acting).cpu().numpy()
        q_h, beta_h, probs_h = (host[i * n * K:(i + 1) * n * K].reshape(n, K) for i in range(3))
        choose = tr.terminations(beta_h[np.arange(n), tr.options], self.rng)
        new = self._choose_from(q_h, probs_h, greedy=False) if choose.any() else tr.options
        options = tr.start(choose, new)
        if acting:
            squashed = host[3 * n * K:].reshape(K, n, A)[options, np.arange(n)]
        else:
            squashed = self.rng.uniform(-1.0, 1.0, size=(n, A)).astype(np.float32)
        self._actions = squashed
        return self._env_actions(squashed)

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated) -> None:
        self.buffer.add(
            obs=np.asarray(obs, dtype=np.float32),
            action=self._actions,
            reward=np.asarray(rewards, dtype=np.float32),
            next_obs=np.asarray(next_obs, dtype=np.float32),
            terminated=np.asarray(terminated, dtype=bool),
            option=self.tracker.options,
        )
        self.owe_gradient_steps(self.config.utd_ratio * self.config.num_envs)

    # ---- learning ---------------------------------------------------------------------------------
    def update(self) -> dict[str, float]:
        if self.buffer.prioritized:
            self.buffer.beta = self.linear_schedule(self.config.per_beta, 1.0, self.total_steps)
        # 0-dim tensors, read by the logger once per interval (no host sync here)
        return self.run_owed_steps(self._train_step if self._graph_wanted() else self._gradient_step)

    def _graph_wanted(self) -> bool:
        """CUDA graphs for the gradient step and acting: on CUDA, with a device replay dealing all
        data, until capturing the gradient step fails."""
        cfg = self.config
        return (not self._train_step.failed and cfg.cuda_graph and self.device.type == "cuda"
                and cfg.learn_from_all_data and self.buffer.device.type != "cpu")

    @property
    def _graph(self) -> Any:
        """The captured gradient step: None (not yet), False (eager) or the CUDAGraph (read by
        benchmarks/gpu/gpu_benchmarks.py)."""
        return self._train_step.graph

    def _sample(self) -> dict[str, np.ndarray]:
        """B rows as K consecutive groups of B/K, group w for option w."""
        cfg = self.config
        K, B = cfg.num_options, cfg.batch_size
        m = B // K
        if cfg.intra_option_learning:  # every option learns from every row: nothing to deal
            return self.buffer.sample(B)
        if cfg.learn_from_all_data:
            batch = self.buffer.sample(B)
            # deal the (stratified, position-ordered) rows to the options in turn
            order = np.arange(B).reshape(m, K).T.reshape(-1)
            if self.buffer.device.type != "cpu":  # a CUDA storage's batch: tensors
                if self._order is None:  # made once: no host-to-device copy inside a captured step
                    self._order = torch.as_tensor(order, device=batch["indices"].device)
                order = self._order
            return {k: v[order] for k, v in batch.items()}
        parts = []
        for w in range(K):
            # an option with no rows of its own yet learns from all data
            parts.append(self.buffer.sample(m, option=w if self.buffer.count(option=w) > 0 else None))
        if self.buffer.device.type != "cpu":
            return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _gradient_step(self) -> dict[str, torch.Tensor]:
        """One gradient step: a batch, its losses, one Adam step over every network, the polyak
        targets and the new priorities; the logged values as 0-dim tensors (no host sync)."""
        batch = {k: torch.as_tensor(v, device=self.device) for k, v in self._sample().items()}
        out = soft_option_critic_loss(
            batch, actor=self.actor, critic=self.critic, option_net=self.option_net,
            target_critic=self.targets_copy["critic"], target_option_net=self.targets_copy["option_net"],
            log_alpha=self.log_alpha, options=self.group_options, cfg=self.config, target_entropy=self.target_entropy,
            rows=self.loss_rows,
        )
        self.optimizer.zero_grad(set_to_none=True)
        out["total"].backward()
        self.optimizer.step()
        if "after_critic_step" in out:  # update_order="critic_first": the actor and the option network read the
            policy = out["after_critic_step"]()  # stepped critics (their parameters only get gradients here)
            self.optimizer.zero_grad(set_to_none=True)
            policy["total"].backward()
            self.optimizer.step()
            out.update(actor=policy["actor"], option_value=policy["option_value"])
        soft_update(self.targets_copy, self.targets, self.config.polyak)
        if self.buffer.prioritized:
            td = (out["q"].detach() - out["target"]).abs().mean(dim=0)
            if self.loss_rows is not None:  # a transition's error: the mean over the options learning from it
                td = td.view(self.config.num_options, -1).mean(dim=0)
            if self.buffer.device.type == "cpu":  # host memory
                self.buffer.update_priorities(batch["indices"].cpu().numpy(), td.cpu().numpy())
            else:  # on the GPU: indices and errors stay there, no host sync
                self.buffer.update_priorities(batch["indices"], td, validate=False)
        logged = {f"losses/{k}": out[k].detach() for k in ("critic", "actor", "option_value", "termination", "alpha")}
        logged["losses/q"] = out["q"].detach().mean()
        logged["losses/beta_next"] = out["beta_next"].detach().mean()
        logged["losses/entropy"] = out["entropy"]
        logged["charts/alpha"] = self.alphas().mean()
        return logged

    # ---- evaluation ---------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, obs: Any, state: Any = None, deterministic: bool = True, *,
                episode_start: Any = None) -> tuple[np.ndarray, Any]:
        """Actions for a batch of observations, or the action for one (unbatched) observation;
        ``state`` carries the running options (None at an episode start; a batch of one for one
        observation), ``episode_start`` (SB3's: a bool per row) drops those of the rows whose
        episode starts. Deterministic: the option with the highest Q_Omega, terminated where
        beta >= 0.5, and the tanh of its Gaussian mean."""
        obs, single = batch_observation(self.observation_space, obs)
        x = self.obs_tensor(obs)
        n = x.shape[0]
        q_omega, beta = option_heads(self.option_net, x)
        chosen = self._choose_options(q_omega, greedy=deterministic)
        options = self._predict_options(state, chosen, beta.cpu().numpy(), deterministic)
        starts = episode_start_mask(episode_start, n)
        if starts is not None:
            options = np.where(starts, chosen, options)
        out = self.actor(x)[torch.as_tensor(options, device=self.device), torch.arange(n, device=self.device)]
        if deterministic:
            squashed = torch.tanh(out[:, :self.action_dim])
        else:
            squashed, _ = sample_squashed(out, self.action_dim)
        actions = self._env_actions(squashed.cpu().numpy())
        return (actions[0] if single else actions), {"option": options}

    # ---- logging and checkpoints ------------------------------------------------------------------------
    def log_stats(self) -> dict[str, float]:
        out = self.tracker.log_stats()
        for k, a in enumerate(self.alphas().cpu().numpy()):
            out[f"options/alpha_{k}"] = float(a)
        return out

    def state_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = super().state_extra()
        if self.config.save_replay:
            extra["replay"] = to_bytes(self.buffer)
        return extra

    def load_state_extra(self, state: dict[str, Any]) -> None:
        super().load_state_extra(state)
        self._train_step.reset()  # new tensors: capture again
        self._act_step.reset()
        if state.get("replay") is not None:
            self.buffer = from_bytes_like(self.buffer, state["replay"])
