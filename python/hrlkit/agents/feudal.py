"""FeUdal Networks (Vezhnevets et al., 2017), trained A2C-style over vector envs.

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
at the rollout's end. Losses:

    worker  = -A^W log pi(a_t) - entropy_coef H + value_coef (R^W - V^W)^2 / 2
    manager = -A^M cos(s_{t+k} - s_t, g_t(theta)) + value_coef (R^M - V^M)^2 / 2

(the transition policy gradient: the direction is a constant, the gradient flows into g_t only;
steps whose goal was random, or with k = 0, are left out). Recurrent states are carried across
rollouts and recomputed with gradient from each rollout's first step (truncated BPTT).

    hrlkit train feudal --env hrlkit/FourRooms-v0
    hrlkit train feudal --env CarRacing-v3 --set num_envs=4
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .. import targets
from ..nets import ConvEncoder, DilatedLSTM, init_linear, is_image_space, mlp
from ..runtime.config import ConfigError, check, field
from ._sac import ParamHolder
from .base import Algorithm, is_bounded_box, is_flat_box, obs_width

__all__ = ["FeudalConfig", "FeudalNetwork", "transition_loss"]


@dataclasses.dataclass
class FeudalConfig:
    num_envs: int = field(8, "parallel environments")
    rollout_steps: int = field(40, "steps per env per update (T; also the BPTT length)")
    horizon: int = field(10, "c: the manager's horizon, its LSTM's dilation, and the goal window")
    state_dim: int = field(256, "d: perception features and the manager's state/goal space")
    goal_embedding: int = field(16, "k: width of the worker's goal embedding w = phi(sum of goals)")
    hidden_sizes: list[int] = field([128], "vector observations: the perception MLP's hidden widths")
    alpha: float = field(0.5, "weight of the intrinsic reward in the worker's reward")
    gamma_worker: float = field(0.95, "the worker's discount")
    gamma_manager: float = field(0.99, "the manager's discount")
    learning_rate: float = field(3e-4, "Adam learning rate")
    entropy_coef: float = field(0.01, "worker entropy bonus")
    value_coef: float = field(0.5, "weight of the two critics' losses")
    max_grad_norm: float = field(5.0, "gradient clipping (0: none)")
    goal_epsilon: float = field(0.0, "probability of a random unit goal instead of the manager's (exploration)")

    def validate(self) -> None:
        for name in ("num_envs", "rollout_steps", "horizon", "state_dim", "goal_embedding"):
            check(getattr(self, name) >= 1, name, "an int >= 1", getattr(self, name))
        check(all(h >= 1 for h in self.hidden_sizes), "hidden_sizes", "a list of positive ints", self.hidden_sizes)
        for name in ("gamma_worker", "gamma_manager", "goal_epsilon"):
            check(0.0 <= getattr(self, name) <= 1.0, name, "a number in [0, 1]", getattr(self, name))
        check(self.alpha >= 0, "alpha", "a number >= 0", self.alpha)
        check(self.learning_rate > 0, "learning_rate", "a number > 0", self.learning_rate)
        check(self.entropy_coef >= 0, "entropy_coef", "a number >= 0", self.entropy_coef)
        check(self.value_coef >= 0, "value_coef", "a number >= 0", self.value_coef)
        check(self.max_grad_norm >= 0, "max_grad_norm", "a number >= 0", self.max_grad_norm)


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
        self.num_actions, self.k = num_actions, k


class FeudalNetwork(Algorithm):
    """FuN over discrete or bounded Box actions, vector or pixel observations."""

    name = "feudal"
    Config = FeudalConfig

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
        return s, F.normalize(net.goal_head(m_out), dim=-1, eps=1e-8), net.manager_value(s)[:, 0], mgr

    def _worker(self, z: torch.Tensor, wstate, goals: torch.Tensor, goal: torch.Tensor):
        """The worker's policy output and V^W, with ``goal`` (detached) joining the window."""
        net = self.net
        goals = torch.cat([goals[1:], goal.detach()[None]])
        w = net.phi(goals.sum(0))  # no gradient into the goals
        if self.zero_goals:
            w = torch.zeros_like(w)
        wh, wc = net.worker_rnn(z, wstate)
        out = torch.bmm(wh.view(-1, net.num_actions, net.k), w[:, :, None])[..., 0]
        return out, net.worker_value(wh)[:, 0], (wh, wc), goals

    def _step(self, z: torch.Tensor, state, goal: torch.Tensor | None = None):
        """From features z [n, d]: (s, g (the manager's), V^M, policy output, V^W, new state);
        the worker sees ``goal`` when given (the one used when acting), else g."""
        mgr, wstate, goals = state
        s, g, vm, mgr = self._manager(z, mgr)
        out, vw, wstate, goals = self._worker(z, wstate, goals, g if goal is None else goal)
        return s, g, vm, out, vw, (mgr, wstate, goals)

    def _dist(self, out: torch.Tensor):
        if self.discrete:
            return torch.distributions.Categorical(logits=out)
        return torch.distributions.Normal(out, self.log_std.exp().expand_as(out))

    def _env_actions(self, a: torch.Tensor) -> np.ndarray:
        if self.discrete:
            return a.cpu().numpy()
        return torch.maximum(torch.minimum(a, self.action_high), self.action_low).cpu().numpy()

    def _features(self, obs: Any) -> torch.Tensor:
        if is_image_space(self.observation_space):
            return self.net.perception(torch.as_tensor(np.asarray(obs), device=self.device))
        return self.net.perception(self.obs_tensor(obs))

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
        action = self._dist(out).sample()
        self.rollout.append({"obs": obs, "goal": used, "random_goal": random_goal, "starts": starts,
                             "action": action, "s": s})
        self.starting[:] = False
        return self._env_actions(action)

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated) -> None:
        self.rollout[-1].update(reward=np.asarray(rewards, np.float32), terminated=np.asarray(terminated, bool),
                                truncated=np.asarray(truncated, bool))

    def ready(self) -> bool:
        return len(self.rollout) >= self.config.rollout_steps

    # ---- learning ---------------------------------------------------------------------------------
    def update(self) -> dict[str, torch.Tensor]:
        cfg = self.config
        steps, self.rollout = self.rollout, []
        T, n, c = len(steps), cfg.num_envs, cfg.horizon
        z_all = self._features(np.concatenate([st["obs"] for st in steps])).view(T, n, -1)
        state = self.rollout_state
        s_l, g_l, vm_l, out_l, vw_l = [], [], [], [], []
        for t, st in enumerate(steps):  # the rollout again, with gradient, from its first state
            state = self._reset(state, st["starts"])
            s, g, vm, out, vw, state = self._step(z_all[t], state, goal=st["goal"])
            s_l.append(s)
            g_l.append(g)
            vm_l.append(vm)
            out_l.append(out)
            vw_l.append(vw)
        s_all, g_all = torch.stack(s_l), torch.stack(g_l)  # [T, n, d]
        vm, vw = torch.stack(vm_l), torch.stack(vw_l)  # [T, n]
        with torch.no_grad():  # bootstrap values at the observation after the rollout
            boot_state = self._reset(_detach(state), torch.as_tensor(self.starting, device=self.device))
            _, _, vm_T, _, vw_T, _ = self._step(self._features(self.obs), boot_state)
        rewards = np.stack([st["reward"] for st in steps])
        term = np.stack([st["terminated"] for st in steps])
        trunc = np.stack([st["truncated"] for st in steps])
        starts = torch.stack([st["starts"] for st in steps])
        goals_used = torch.stack([st["goal"] for st in steps])
        terms = targets.feudal_terms(torch.cat([self.s_hist, s_all.detach()]), torch.cat([self.g_hist, goals_used]),
                                     torch.cat([self.start_hist, starts]), c=c)
        intrinsic = terms.intrinsic.to(torch.float32)

        def next_values(v: torch.Tensor, v_end: torch.Tensor) -> torch.Tensor:
            # V(s_{t+1}) within the rollout; at a truncation the next row starts a new episode,
            # so the truncated step bootstraps from its own value (an approximation)
            nxt = torch.cat([v[1:], v_end[None]]).detach()
            return torch.where(torch.as_tensor(trunc, device=self.device), v.detach(), nxt).cpu()

        r_ext = torch.as_tensor(rewards)
        r_worker = r_ext + cfg.alpha * intrinsic.cpu()
        ret_w = targets.nstep_returns(r_worker, term, trunc, gamma=cfg.gamma_worker, n=T,
                                      next_values=next_values(vw, vw_T)).returns.to(self.device)
        ret_m = targets.nstep_returns(r_ext, term, trunc, gamma=cfg.gamma_manager, n=T,
                                      next_values=next_values(vm, vm_T)).returns.to(self.device)
        adv_w, adv_m = ret_w - vw.detach(), ret_m - vm.detach()
        dist = self._dist(torch.stack(out_l).view(T * n, -1))
        actions = torch.stack([st["action"] for st in steps]).view(T * n, *(() if self.discrete else (-1,)))
        logp = dist.log_prob(actions)
        entropy = dist.entropy()
        if not self.discrete:
            logp, entropy = logp.sum(-1), entropy.sum(-1)
        worker_pg = -(adv_w.view(-1) * logp).mean()
        random_goal = torch.stack([st["random_goal"] for st in steps])
        manager_pg = transition_loss(terms.direction.to(g_all.dtype), g_all, adv_m, (terms.horizon > 0) & ~random_goal)
        value_loss = 0.5 * ((ret_w - vw).pow(2).mean() + (ret_m - vm).pow(2).mean())
        loss = worker_pg + manager_pg - cfg.entropy_coef * entropy.mean() + cfg.value_coef * value_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm > 0:
            nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], cfg.max_grad_norm)
        self.optimizer.step()
        # what the next rollout's kernel call looks back on
        self.s_hist = torch.cat([self.s_hist, s_all.detach()])[-c:]
        self.g_hist = torch.cat([self.g_hist, goals_used])[-c:]
        self.start_hist = torch.cat([self.start_hist, starts])[-c:]
        self.state = _detach(self.state)
        return {
            "losses/worker_policy": worker_pg.detach(),
            "losses/manager_policy": manager_pg.detach(),
            "losses/value": value_loss.detach(),
            "losses/entropy": entropy.mean().detach(),
            "charts/intrinsic_reward": intrinsic.mean(),
            "charts/manager_advantage": adv_m.mean(),
        }

    # ---- evaluation ---------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, obs: Any, state: Any = None, deterministic: bool = True) -> tuple[np.ndarray, Any]:
        """Actions for a batch of observations; ``state`` carries the recurrent states and the
        goal window (None at an episode start). Deterministic: the most likely action, or the
        Gaussian's mean."""
        obs = np.asarray(obs)
        if obs.ndim == len(self.observation_space.shape or ()):
            obs = obs[None]
        state = self.initial_state(obs.shape[0]) if state is None else state
        _, _, _, out, _, state = self._step(self._features(obs), state)
        if deterministic:
            a = out.argmax(-1) if self.discrete else out
        else:
            a = self._dist(out).sample()
        return self._env_actions(a), state

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
