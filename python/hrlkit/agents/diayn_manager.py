"""A manager over frozen DIAYN skills (the DIAYN paper's "hierarchical RL with learned skills").

Every ``skill_steps`` env steps (and at every episode start) the manager picks a skill z with an
epsilon-greedy Q(s, .) over the Z skills; the skill's frozen policy pi(a | s, z) then acts
(its mean action, or a sample with ``deterministic_skills=false``) until the next decision. The
manager learns by SMDP Q-learning on the env's own reward: each decision is one transition
(s, z, R, s', gamma^k) with R = sum_{i<k} gamma^i r_i over the k steps it lasted (k < skill_steps
when the episode ends first; gamma^k becomes 0 on termination, and a truncated segment
bootstraps from its final observation), target R + gamma^k Q'(s', argmax_z Q(s', z)) (double
Q-learning), Huber loss, a polyak-averaged target network.

    hrlkit train diayn-manager --skills runs/<a DIAYN run> --env hrlkit/PointNavGoal-v0

``--skills`` (config key ``skills``) is a DIAYN run directory (its latest checkpoint is used) or
a checkpoint file; the skills' weights are also stored in the manager's own checkpoints.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..nets import ACTIVATIONS, EnsembleMLP, hard_update, soft_update
from ..replay import ReplayBuffer
from ..runtime import checkpoint
from ..runtime.config import ConfigError, check, field
from ..runtime.policy_evaluation import batch_observation, episode_start_mask
from ._sac import fused_adam
from .base import Algorithm
from .diayn import DIAYN

__all__ = ["DIAYNManager", "DIAYNManagerConfig", "diayn_manager_loss"]


@dataclasses.dataclass
class DIAYNManagerConfig:
    skills: str = field("", "DIAYN run directory or checkpoint whose skills the manager picks (required)")
    skill_steps: int = field(10, "env steps per manager decision (k)", ge=1)
    deterministic_skills: bool = field(True, "skills act with their mean action (false: sampled)")
    num_envs: int = field(1, "parallel environments", ge=1)
    buffer_size: int = field(100_000, "replay capacity (manager decisions)", ge=1)
    batch_size: int = field(64, "decisions per gradient step", ge=1)
    learning_starts: int = field(500, "env steps of random skill choices before learning", ge=0)
    updates_per_decision: float = field(1.0, "gradient steps per manager decision", gt=0)
    gamma: float = field(0.99, "discount per env step (a decision of k steps discounts by gamma^k)", ge=0, le=1)
    learning_rate: float = field(1e-3, "Adam learning rate of Q", gt=0, renamed_from=("lr",))
    polyak: float = field(0.01, "rate of the target network's soft update, target += polyak (online - target)",
                          gt=0, le=1, renamed_from=("tau",))
    hidden_sizes: list[int] = field([64, 64], "hidden layer widths of Q(s, .)", ge=1, nonempty=True)
    activation: str = field("relu", "activation", choices=sorted(ACTIVATIONS))
    epsilon_start: float = field(1.0, "initial epsilon of the epsilon-greedy skill choice", ge=0, le=1)
    epsilon_end: float = field(0.05, "final epsilon", ge=0, le=1)
    exploration_fraction: float = field(0.3, "fraction of learn()'s steps over which epsilon decays", ge=0, le=1)

    def validate(self) -> None:
        check(bool(self.skills), "skills", "a DIAYN run directory or checkpoint (--skills RUN_DIR)", self.skills)


def diayn_manager_loss(batch: dict[str, torch.Tensor], *, q_net: EnsembleMLP,
                       q_target: EnsembleMLP) -> dict[str, torch.Tensor]:
    """The manager's SMDP double Q-learning loss on B decisions (s, z, R, s', gamma^k).

    batch: obs, option (the skill z), reward (R = sum_{i<k} gamma^i r_i), next_obs, discount
    (gamma^k, 0 where the episode terminated) [B]. q_net: Q(s, .) over the skills; q_target: its
    polyak copy.

        y = R + gamma^k Q'(s', argmax_z' Q(s', z'))
        q = huber(Q(s, z) - y), averaged over the batch

    Also returns the diagnostics target [B] (y) and q_value [B] (Q(s, z)).
    """
    with torch.no_grad():  # double Q-learning: Q picks the next skill, Q' values it
        best = q_net(batch["next_obs"])[0].argmax(dim=1, keepdim=True)
        target = batch["reward"] + batch["discount"] * q_target(batch["next_obs"])[0].gather(1, best)[:, 0]
    q = q_net(batch["obs"])[0].gather(1, batch["option"][:, None])[:, 0]
    return {"q": F.smooth_l1_loss(q, target), "target": target, "q_value": q}


def load_skills(path: str, device: torch.device) -> DIAYN:
    """The DIAYN agent of a run directory (latest checkpoint) or checkpoint file, frozen."""
    file = os.path.join(path, "checkpoints", "latest.pt") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise ConfigError(f"skills: no DIAYN checkpoint at {path!r} (expected a run directory or a .pt file)")
    data = checkpoint.load(file)
    if data.get("algo") != DIAYN.name:
        raise ConfigError(f"skills: {path!r} holds a {data.get('algo')!r} run, expected a diayn run")
    data = {**data, "envs": None, "config": {**data["config"], "num_envs": 1, "buffer_size": 1}}
    skills = DIAYN.from_payload(data, device=str(device))
    skills.envs.close()
    for m in (skills.actor, skills.critic, skills.critic_target, skills.discriminator):
        m.requires_grad_(False)
    return skills


class DIAYNManager(Algorithm):
    """Picks among a DIAYN run's frozen skills to maximize the env's reward."""

    name = "diayn-manager"
    Config = DIAYNManagerConfig

    def build(self) -> None:
        cfg = self.config
        cfg.skills = os.path.abspath(cfg.skills)  # checkpoints then load from any working directory
        self.skill_agent = load_skills(cfg.skills, self.device)
        if self.skill_agent.pixels:
            raise ConfigError(f"skills: {cfg.skills!r} learned on pixels; diayn-manager reads vector observations only")
        if self.skill_agent.observation_space != self.observation_space or \
                self.skill_agent.action_space != self.action_space:
            raise ConfigError(f"skills: the skills were learned on {self.skill_agent.env_id} "
                              f"({self.skill_agent.observation_space}, {self.skill_agent.action_space}); "
                              f"env {self.env_id} has {self.observation_space}, {self.action_space}")
        self.num_skills = Z = self.skill_agent.config.num_skills
        self.obs_dim = self.skill_agent.obs_dim
        self.q = EnsembleMLP(1, self.obs_dim, cfg.hidden_sizes, Z, cfg.activation).to(self.device)
        self.q_target = EnsembleMLP(1, self.obs_dim, cfg.hidden_sizes, Z, cfg.activation).to(self.device)
        hard_update(self.q_target, self.q)
        self.q_target.requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.q.parameters(), lr=cfg.learning_rate, **fused_adam(self.device))
        spec = {"obs": ((self.obs_dim,), "float32"), "reward": ((), "float32"), "next_obs": ((self.obs_dim,), "float32"),
                "discount": ((), "float32")}
        self.buffer = ReplayBuffer(cfg.buffer_size, spec, num_options=Z, seed=int(self.rng.integers(2**63)))
        n = cfg.num_envs
        self.current = np.zeros(n, dtype=np.int64)      # each env's running skill
        self.decide = np.ones(n, dtype=bool)            # envs whose next step starts with a decision
        self.seg_obs = np.zeros((n, self.obs_dim), np.float32)
        self.seg_return = np.zeros(n)
        self.seg_discount = np.ones(n)
        self.seg_len = np.zeros(n, dtype=np.int64)
        self.skill_counts = np.zeros(Z, dtype=np.int64)

    def modules(self) -> dict[str, Any]:
        return {"q": self.q, "q_target": self.q_target, "optimizer": self.optimizer,
                "skills_actor": self.skill_agent.actor}

    def epsilon(self) -> float:
        cfg = self.config
        span = max(1.0, cfg.exploration_fraction * max(1, self.total_steps))
        return self.linear_schedule(cfg.epsilon_start, cfg.epsilon_end, span)

    def _q(self, obs: Any, net: nn.Module | None = None) -> torch.Tensor:
        return (net or self.q)(self.skill_agent._obs(obs))[0]

    # ---- acting ----------------------------------------------------------------------------------
    def on_episode_start(self, mask: np.ndarray) -> None:
        self.decide[np.asarray(mask, dtype=bool)] = True

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        rows = np.flatnonzero(self.decide)
        if len(rows):
            eps = 1.0 if self.global_step < self.config.learning_starts else self.epsilon()
            greedy = self._q(np.asarray(obs)[rows]).argmax(dim=1).cpu().numpy()
            explore = self.rng.random(len(rows)) < eps
            self.current[rows] = np.where(explore, self.rng.integers(self.num_skills, size=len(rows)), greedy)
            self.seg_obs[rows] = np.asarray(self.skill_agent._obs_rows(np.asarray(obs)[rows]), np.float32)
            self.seg_return[rows], self.seg_discount[rows], self.seg_len[rows] = 0.0, 1.0, 0
            self.decide[rows] = False
            np.add.at(self.skill_counts, self.current[rows], 1)
        actions, _ = self.skill_agent.predict(obs, {"skill": self.current}, deterministic=self.config.deterministic_skills)
        return actions

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated) -> None:
        cfg = self.config
        r = np.asarray(rewards, dtype=np.float64)
        self.seg_return += self.seg_discount * r
        self.seg_discount *= cfg.gamma
        self.seg_len += 1
        term = np.asarray(terminated, dtype=bool)
        ends = term | np.asarray(truncated, dtype=bool) | (self.seg_len >= cfg.skill_steps)
        rows = np.flatnonzero(ends)
        if len(rows):
            self.buffer.add(
                obs=self.seg_obs[rows],
                reward=self.seg_return[rows].astype(np.float32),
                next_obs=np.asarray(self.skill_agent._obs_rows(np.asarray(next_obs)[rows]), np.float32),
                discount=np.where(term[rows], 0.0, self.seg_discount[rows]).astype(np.float32),
                option=self.current[rows],
            )
            self.decide[rows] = True
            self.owe_gradient_steps(cfg.updates_per_decision * len(rows))

    def ready(self) -> bool:
        return super().ready() and len(self.buffer) >= self.config.batch_size

    # ---- learning ---------------------------------------------------------------------------------
    def update(self) -> dict[str, torch.Tensor]:
        return self.run_owed_steps(self._gradient_step)

    def _gradient_step(self) -> dict[str, torch.Tensor]:
        """One gradient step: a batch of decisions, the loss, one Adam step, the polyak target."""
        batch = {k: torch.as_tensor(v, device=self.device) for k, v in self.buffer.sample(self.config.batch_size).items()}
        out = diayn_manager_loss(batch, q_net=self.q, q_target=self.q_target)
        self.optimizer.zero_grad(set_to_none=True)
        out["q"].backward()
        self.optimizer.step()
        soft_update(self.q_target, self.q, self.config.polyak)
        return {"losses/q": out["q"].detach(), "charts/q": out["q_value"].detach().mean(),
                "charts/epsilon": torch.tensor(self.epsilon())}

    # ---- evaluation ---------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, obs: Any, state: Any = None, deterministic: bool = True, *,
                episode_start: Any = None) -> tuple[np.ndarray, Any]:
        """Greedy skills, re-chosen every ``skill_steps`` steps, for a batch of observations or
        one (unbatched) observation; ``state`` carries each row's skill and the steps it has run
        (None at an episode start; a batch of one for one observation), ``episode_start`` (SB3's:
        a bool per row) re-chooses the skill of the rows whose episode starts."""
        obs, single = batch_observation(self.observation_space, np.asarray(obs))
        n = obs.shape[0]
        if state is None:
            skills, age = np.zeros(n, dtype=np.int64), np.full(n, self.config.skill_steps)
        else:
            skills, age = np.asarray(state["skill"]).copy(), np.asarray(state["age"]).copy()
        starts = episode_start_mask(episode_start, n)
        if starts is not None:
            age[starts] = self.config.skill_steps
        due = age >= self.config.skill_steps
        if due.any():
            skills[due] = self._q(obs[due]).argmax(dim=1).cpu().numpy()
            age[due] = 0
        actions, _ = self.skill_agent.predict(obs, {"skill": skills}, deterministic=self.config.deterministic_skills)
        return (actions[0] if single else actions), {"skill": skills, "age": age + 1}

    def active_option(self, state: Any) -> int | None:
        return None if state is None else int(np.asarray(state["skill"]).reshape(-1)[0])

    def log_stats(self) -> dict[str, float]:
        total = max(1, int(self.skill_counts.sum()))
        out = {f"skills/share_{k}": float(c) / total for k, c in enumerate(self.skill_counts)}
        self.skill_counts[:] = 0
        return out

    # ---- checkpoints --------------------------------------------------------------------------------
    def state_extra(self) -> dict[str, Any]:
        return {"current": self.current.copy(), "decide": self.decide.copy(), "seg_obs": self.seg_obs.copy(),
                "seg_return": self.seg_return.copy(), "seg_discount": self.seg_discount.copy(),
                "seg_len": self.seg_len.copy()}

    def load_state_extra(self, state: dict[str, Any]) -> None:
        for key in ("current", "decide", "seg_obs", "seg_return", "seg_discount", "seg_len"):
            if key in state:
                setattr(self, key, np.asarray(state[key]).copy())
