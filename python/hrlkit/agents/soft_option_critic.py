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

computed for the whole batch in one C++ kernel call (``targets.soft_option_targets``). Actors
minimise alpha_w log pi_w - min_j Q_j(s, a_w, w); terminations follow the option-critic gradient
beta_w(s') (Q_Omega(s', w) - V(s') + xi); each alpha_w is tuned to a target entropy.

A batch of B transitions is split into K groups of B/K, one per option, so every network is
evaluated once per batch as a stacked ensemble (one batched matmul per layer, no Python loop
over options). ``learn_from_all_data=True`` (default) samples B rows from all data and deals
them to the options in turn (every transition is valid off-policy data for each option's soft
Q, and every option's Q_Omega and beta see the whole state space); ``False`` fills group w from
option w's own rows of the tagged buffer (``sample(B/K, option=w)``).
"""
from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import _cuda_ops, targets
from ..nets import EnsembleMLP, soft_update
from ..replay import PrioritizedReplayBuffer, ReplayBuffer, from_bytes_like, to_bytes
from ..runtime.config import ConfigError, check, field
from ._options import OptionAgent, OptionTracker, check_option_agent_config
from .base import is_bounded_box, is_flat_box
from ._sac import LOG_STD_MAX, LOG_STD_MIN, ParamHolder, SACConfig, fused_adam, sac_losses, squashed_gaussian

__all__ = ["SoftOptionCritic", "SoftOptionCriticConfig", "soft_option_critic_losses", "squashed_gaussian"]



@dataclasses.dataclass
class SoftOptionCriticConfig(SACConfig):
    """The shared SAC fields (batch_size: a multiple of num_options), then the options'."""

    num_options: int = field(4, "number of options K")
    option_lr: float = field(3e-4, "Adam learning rate of the option network (Q_Omega and beta)")
    option_hidden_sizes: list[int] = field([64, 64], "hidden layer widths of the option network")
    alpha: float = field(1.0, "entropy temperature: the initial value when autotune_alpha, else fixed")
    autotune_alpha: bool = field(True, "tune each option's alpha towards target_entropy")
    target_entropy: float | None = field(None, "target entropy per option (None: -action_dim)")
    option_temperature: float = field(1.0, "tau_Omega of the Boltzmann option policy (0: greedy)")
    option_value: str = field("expected", "V(s) over options: 'expected' (E_pi_Omega Q_Omega) or 'soft' (tau logsumexp)")
    deliberation_cost: float = field(0.01, "xi, margin added to the termination advantage")
    learn_from_all_data: bool = field(True, "deal all data to every option (False: each option trains on its own rows)")
    prioritized: bool = field(True, "prioritized replay (priorities from the critics' TD errors)")
    per_alpha: float = field(0.6, "priority exponent of prioritized replay")
    per_beta: float = field(0.4, "initial importance-sampling exponent (annealed to 1 over learn())")
    replay_device: str = field("auto", "where the replay lives: auto (on the agent's device where hrlkit._cuda is built), cpu")
    cuda_graph: bool = field(True, "on CUDA with a device replay: capture the gradient step and act's forward as CUDA graphs")

    def validate(self) -> None:
        check_option_agent_config(self, ("hidden_sizes", "option_hidden_sizes"))
        self.validate_sac(("option_lr", "alpha"))
        check(self.batch_size >= self.num_options and self.batch_size % self.num_options == 0, "batch_size",
              f"a positive multiple of num_options ({self.num_options})", self.batch_size)
        check(self.option_temperature >= 0, "option_temperature", "a number >= 0", self.option_temperature)
        check(self.option_value in ("expected", "soft"), "option_value", "'expected' or 'soft'", self.option_value)
        check(self.replay_device in ("auto", "cpu"), "replay_device", "'auto' or 'cpu'", self.replay_device)
        check(self.per_alpha >= 0, "per_alpha", "a number >= 0", self.per_alpha)
        check(0.0 <= self.per_beta <= 1.0, "per_beta", "a number in [0, 1]", self.per_beta)


def soft_option_critic_losses(
    *,
    q: torch.Tensor,
    target: torch.Tensor,
    q_pi: torch.Tensor,
    logp_pi: torch.Tensor,
    q_omega: torch.Tensor,
    beta_next: torch.Tensor,
    advantage: torch.Tensor,
    not_terminal: torch.Tensor,
    log_alpha: torch.Tensor,
    target_entropy: float,
    weights: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The five Soft Option-Critic loss terms over B transitions, each for its option w.

    q [2, B]: both critics' head w at (s, a); target [B]: y (no gradient); q_pi [B]:
    min_j Q_j(s, a_w, w) at a fresh a_w ~ pi_w(s) (gradient to the actor only); logp_pi [B]:
    log pi_w(a_w|s); q_omega [B]: Q_Omega(s, w); beta_next [B]: beta_w(s'); advantage [B]:
    Q_Omega(s', w) - V(s') + xi (no gradient); not_terminal [B]: 0 where s' is terminal;
    log_alpha [B]: log alpha_w; weights [B]: prioritized replay's importance weights (default 1).

        critic       = sum_j 1/2 mean(weights (Q_j(s, a, w) - y)^2)
        actor        = mean(alpha_w log pi_w(a_w|s) - q_pi)
        option_value = 1/2 mean((Q_Omega(s, w) - [q_pi - alpha_w log pi_w(a_w|s)])^2)
        termination  = mean(beta_w(s') advantage (1 - d))
        alpha        = -mean(log alpha_w (log pi_w(a_w|s) + target_entropy))
    """
    terms = sac_losses(q=q, target=target, q_pi=q_pi, logp_pi=logp_pi, log_alpha=log_alpha,
                       target_entropy=target_entropy, weights=weights)
    soft_value = (q_pi - log_alpha.detach().exp() * logp_pi).detach()
    return {
        "critic": terms["critic"],
        "actor": terms["actor"],
        "option_value": 0.5 * (q_omega - soft_value).pow(2).mean(),
        "termination": (beta_next * advantage.detach() * not_terminal).mean(),
        "alpha": terms["alpha"],
    }


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
        self.actor = EnsembleMLP(K, obs_dim, cfg.hidden_sizes, 2 * A, cfg.activation).to(self.device)
        self.critic = EnsembleMLP(2, obs_dim + A, cfg.hidden_sizes, K, cfg.activation).to(self.device)
        self.option_net = EnsembleMLP(1, obs_dim, cfg.option_hidden_sizes, 2 * K, cfg.activation).to(self.device)
        self.targets = nn.ModuleDict({"critic": self.critic, "option_net": self.option_net})
        self.targets_copy = copy.deepcopy(self.targets).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.full((K,), math.log(cfg.alpha), device=self.device),
                                      requires_grad=cfg.autotune_alpha)
        groups = [
            {"params": list(self.actor.parameters()), "lr": cfg.actor_lr},
            {"params": list(self.critic.parameters()), "lr": cfg.critic_lr},
            {"params": list(self.option_net.parameters()), "lr": cfg.option_lr},
        ]
        if cfg.autotune_alpha:
            groups.append({"params": [self.log_alpha], "lr": cfg.alpha_lr})
        self.optimizer = torch.optim.Adam(groups, **fused_adam(self.device), capturable=self.device.type == "cuda")
        self.target_entropy = float(-A if cfg.target_entropy is None else cfg.target_entropy)
        low, high = self.action_space.low.astype(np.float32), self.action_space.high.astype(np.float32)
        self.action_center, self.action_scale = (high + low) / 2.0, (high - low) / 2.0
        m = cfg.batch_size // K
        self.group_options = torch.arange(K, device=self.device).repeat_interleave(m)  # option of each batch row
        self.buffer = self._make_buffer()
        self.tracker = OptionTracker(cfg.num_envs, K)
        self._actions: np.ndarray | None = None  # the last act()'s actions in [-1, 1]
        self._update_credit = 0.0  # gradient steps owed (utd_ratio per env step after learning_starts)
        self._graph: Any = None  # the captured gradient step: None (not yet), False (eager), or a CUDAGraph
        self._graph_warmup = 0
        self._act_graph: Any = None  # act's forward as a CUDA graph (same states as _graph)
        self._order = None  # the batch dealing permutation as a device tensor (device replay)

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
    def _policy(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Option actors at x: [N, obs] (every option at every row) or [K, m, obs] (option w at
        its group); actions in [-1, 1] of shape [K, N|m, A] and log pi [K, N|m]."""
        mean, log_std = self.actor(x).split(self.action_dim, dim=-1)
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        return squashed_gaussian(mean, log_std, torch.randn_like(mean))

    def _options_and_betas(self, x: torch.Tensor, net: EnsembleMLP | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Q_Omega(x, .) and beta_.(x), each [N, K]."""
        out = (net or self.option_net)(x)[0]
        K = self.config.num_options
        return out[:, :K], torch.sigmoid(out[:, K:])

    def _own(self, q: torch.Tensor) -> torch.Tensor:
        """Head w of each batch row's option: [E, B, K] -> [E, B]."""
        idx = self.group_options.view(1, -1, 1).expand(q.shape[0], -1, 1)
        return q.gather(2, idx).squeeze(2)

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
        q_omega, beta = self._options_and_betas(x)
        parts = [q_omega, beta, self._option_probs(q_omega)]
        if acting:
            parts.append(self._policy(x)[0])
        return torch.cat([p.reshape(-1) for p in parts])

    def _act_replay(self, obs: np.ndarray) -> np.ndarray | None:
        """_act_outputs as a replay of its captured CUDA graph (None where capture failed)."""
        if self._act_graph is None:
            n, d = self.config.num_envs, self.obs_dim
            try:
                self._act_in = torch.zeros((n, d), device=self.device)
                self._act_pinned = torch.empty((n, d), pin_memory=True)
                cur = torch.cuda.current_stream(self.device)
                side = torch.cuda.Stream(self.device)
                side.wait_stream(cur)
                with torch.cuda.stream(side):
                    for _ in range(2):
                        self._act_outputs(self._act_in, True)
                cur.wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    self._act_out = self._act_outputs(self._act_in, True)
                self._act_graph = graph
            except Exception as exc:  # noqa: BLE001 - train on eagerly, and say so
                warnings.warn(f"cuda_graph: capturing act failed ({exc!r}); acting eagerly", RuntimeWarning, stacklevel=2)
                self._act_graph = False
                return None
        self._act_pinned.copy_(torch.from_numpy(np.asarray(obs)))
        self._act_in.copy_(self._act_pinned, non_blocking=True)
        self._act_graph.replay()
        return self._act_out.cpu().numpy()

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        tr = self.tracker
        n, K, A = len(tr.options), self.config.num_options, self.action_dim
        acting = self.global_step >= self.config.learning_starts
        host = None
        if acting and self._act_graph is not False and self._graph_wanted():
            host = self._act_replay(obs)
        if host is None:
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
        if self.global_step + self.config.num_envs > self.config.learning_starts:
            self._update_credit += self.config.utd_ratio * self.config.num_envs

    def ready(self) -> bool:
        return self._update_credit >= 1.0

    # ---- learning ---------------------------------------------------------------------------------
    def update(self) -> dict[str, float]:
        if self.buffer.prioritized:
            self.buffer.beta = self.linear_schedule(self.config.per_beta, 1.0, self.total_steps)
        # 0-dim tensors, read by the logger once per interval (no host sync here)
        return self.run_owed_steps(self._graph_step if self._graph_wanted() else self._gradient_step)

    # ---- CUDA graph of the gradient step ------------------------------------------------------------
    _GRAPH_WARMUP = 3  # eager steps on a side stream before capture (allocator and Adam state settle)

    def _graph_wanted(self) -> bool:
        cfg = self.config
        return (self._graph is not False and cfg.cuda_graph and self.device.type == "cuda"
                and cfg.learn_from_all_data and not isinstance(self.buffer, ReplayBuffer))

    def _graph_step(self) -> dict[str, torch.Tensor]:
        """One gradient step as a replay of its captured CUDA graph: the sample, the losses, the
        backward pass, Adam, the target update and the new priorities, with no host sync and one
        launch. The first steps run eagerly on a side stream, then the step is captured."""
        if self._graph is False:  # capture failed earlier in this update
            return self._gradient_step()
        cur = torch.cuda.current_stream(self.device)
        if self._graph is None and self._graph_warmup < self._GRAPH_WARMUP:
            self._graph_warmup += 1
            side = torch.cuda.Stream(self.device)
            side.wait_stream(cur)
            with torch.cuda.stream(side):
                stats = self._gradient_step()
            cur.wait_stream(side)
            return stats
        if self._graph is None:
            try:
                graph = torch.cuda.CUDAGraph()
                graph.register_generator_state(self.buffer.generator)
                with torch.cuda.graph(graph):
                    stats = self._gradient_step()
                    self._graph_keys = list(stats)
                    self._graph_out = torch.stack([stats[k].float() for k in self._graph_keys])
                self._graph = graph
            except Exception as exc:  # noqa: BLE001 - an unsupported op: train on eagerly, and say so
                warnings.warn(f"cuda_graph: capturing the gradient step failed ({exc!r}); training eagerly",
                              RuntimeWarning, stacklevel=2)
                self._graph = False
                return self._gradient_step()
        self._graph.replay()
        return dict(zip(self._graph_keys, self._graph_out.clone().unbind()))

    def _sample(self) -> dict[str, np.ndarray]:
        """B rows as K consecutive groups of B/K, group w for option w."""
        cfg = self.config
        K, B = cfg.num_options, cfg.batch_size
        m = B // K
        if cfg.learn_from_all_data:
            batch = self.buffer.sample(B)
            # deal the (stratified, position-ordered) rows to the options in turn
            order = np.arange(B).reshape(m, K).T.reshape(-1)
            if isinstance(batch["indices"], torch.Tensor):  # a device buffer's batch
                if self._order is None:  # made once: no host-to-device copy inside a captured step
                    self._order = torch.as_tensor(order, device=batch["indices"].device)
                order = self._order
            return {k: v[order] for k, v in batch.items()}
        parts = []
        for w in range(K):
            # an option with no rows of its own yet learns from all data
            parts.append(self.buffer.sample(m, option=w if self.buffer.count(option=w) > 0 else None))
        if isinstance(parts[0]["indices"], torch.Tensor):
            return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _gradient_step(self) -> dict[str, torch.Tensor]:
        cfg = self.config
        batch = {k: torch.as_tensor(v, device=self.device) for k, v in self._sample().items()}
        not_terminal = 1.0 - batch["terminated"].to(torch.float32)
        with torch.no_grad():
            q_next, logp_next, q_omega_next = self._bootstrap_inputs(batch["next_obs"])
        # beta_w(s') for the targets is the online network's: the forward with gradient is reused
        terms, q, beta_next, logp_pi = self._loss_terms(batch, not_terminal, q_next, logp_next, q_omega_next)
        loss = terms["critic"] + terms["actor"] + terms["option_value"] + terms["termination"]
        if cfg.autotune_alpha:
            loss = loss + terms["alpha"]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        soft_update(self.targets_copy, self.targets, cfg.tau)
        if self.buffer.prioritized:
            td = (q.detach() - terms["target"]).abs().mean(dim=0)
            if isinstance(self.buffer, ReplayBuffer):  # host memory
                self.buffer.update_priorities(batch["indices"].cpu().numpy(), td.cpu().numpy())
            else:  # device-resident: indices and errors stay on the GPU, no host sync
                self.buffer.update_priorities(batch["indices"], td, validate=False)
        out = {f"losses/{k}": v.detach() for k, v in terms.items() if k != "target"}
        out["losses/q"] = q.detach().mean()
        out["losses/beta_next"] = beta_next.detach().mean()
        out["losses/entropy"] = -logp_pi.detach().mean()
        out["charts/alpha"] = self.alphas().mean()
        return out

    def _bootstrap_inputs(self, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """At s': the twin target critics' own heads at a' ~ pi_w(s') [2, B], log pi_w(a'|s') [B]
        and the target option network's Q_Omega(s', .) [B, K]."""
        K, B = self.config.num_options, self.config.batch_size
        a_next, logp_next = self._policy(next_obs.view(K, B // K, -1))
        q_next = self._own(self.targets_copy["critic"](torch.cat([next_obs, a_next.reshape(B, -1)], dim=-1)))
        q_omega_next, _ = self._options_and_betas(next_obs, self.targets_copy["option_net"])
        return q_next, logp_next.reshape(B), q_omega_next

    def _loss_terms(self, batch, not_terminal, q_next, logp_next, q_omega_next):
        cfg = self.config
        K, B = cfg.num_options, cfg.batch_size
        w = self.group_options
        obs, next_obs, action = batch["obs"], batch["next_obs"], batch["action"]
        # the option network at s (Q_Omega, for its regression) and s' (beta, for the termination loss)
        q_omega_all, beta_all = self._options_and_betas(torch.cat([obs, next_obs]))
        q_omega = q_omega_all[:B].gather(1, w[:, None]).squeeze(1)
        beta_next = beta_all[B:].gather(1, w[:, None]).squeeze(1)
        t = targets.soft_option_targets(
            q_next, logp_next, q_omega_next, beta_next.detach(), w, batch["reward"], cfg.gamma * not_terminal,
            self.alphas(), option_temperature=cfg.option_temperature, deliberation_cost=cfg.deliberation_cost,
            mode=cfg.option_value, validate=False,  # the ids are this agent's own group layout
        )
        q = self._own(self.critic(torch.cat([obs, action], dim=-1)))
        a_pi, logp_pi = self._policy(obs.view(K, B // K, -1))
        q_pi = self._own(self.critic(torch.cat([obs, a_pi.reshape(B, -1)], dim=-1), detach_params=True)).min(dim=0).values
        weights = batch.get("weights")
        terms = soft_option_critic_losses(
            q=q, target=t.target, q_pi=q_pi, logp_pi=logp_pi.reshape(B), q_omega=q_omega, beta_next=beta_next,
            advantage=t.advantage, not_terminal=not_terminal, log_alpha=self.log_alpha[w],
            target_entropy=self.target_entropy, weights=None if weights is None else weights.to(torch.float32),
        )
        terms["target"] = t.target
        return terms, q, beta_next, logp_pi

    # ---- evaluation ---------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, obs: Any, state: Any = None, deterministic: bool = True) -> tuple[np.ndarray, Any]:
        """Actions for a batch of observations; ``state`` carries the running options (None at an
        episode start). Deterministic: the option with the highest Q_Omega, terminated where
        beta >= 0.5, and the tanh of its Gaussian mean."""
        obs = np.asarray(obs, dtype=np.float32)
        if obs.ndim == 1:
            obs = obs[None]
        x = self.obs_tensor(obs)
        n = x.shape[0]
        q_omega, beta = self._options_and_betas(x)
        options = self._predict_options(state, self._choose_options(q_omega, greedy=deterministic),
                                        beta.cpu().numpy(), deterministic)
        mean, log_std = self.actor(x).split(self.action_dim, dim=-1)
        idx = (torch.as_tensor(options, device=self.device), torch.arange(n, device=self.device))
        if deterministic:
            squashed = torch.tanh(mean[idx])
        else:
            squashed, _ = squashed_gaussian(mean[idx], log_std[idx].clamp(LOG_STD_MIN, LOG_STD_MAX),
                                            torch.randn_like(mean[idx]))
        return self._env_actions(squashed.cpu().numpy()), {"option": options}

    # ---- logging and checkpoints ------------------------------------------------------------------------
    def log_stats(self) -> dict[str, float]:
        out = self.tracker.log_stats()
        for k, a in enumerate(self.alphas().cpu().numpy()):
            out[f"options/alpha_{k}"] = float(a)
        return out

    def state_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {**super().state_extra(), "update_credit": self._update_credit}
        if self.config.save_replay:
            extra["replay"] = to_bytes(self.buffer)
        return extra

    def load_state_extra(self, state: dict[str, Any]) -> None:
        super().load_state_extra(state)
        self._graph, self._graph_warmup, self._act_graph = None, 0, None  # new tensors: capture again
        self._update_credit = float(state.get("update_credit", 0.0))
        if state.get("replay") is not None:
            self.buffer = from_bytes_like(self.buffer, state["replay"])
