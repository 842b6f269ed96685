"""DIAYN, "Diversity is All You Need" (Eysenbach et al., 2018): skills without a reward.

A skill z is drawn from a fixed uniform prior p(z) at every episode start of every env and held
for the episode. The policy pi(a | s, z) is SAC with z one-hot appended to the observation
(continuous actions: tanh-squashed Gaussian; discrete: a categorical over the actions, with the
expectation over actions in the targets and the actor loss). A discriminator q_phi(z | s') reads
the *next* state and is trained by cross-entropy to tell the skills apart; the policy's reward is

    r_z(s') = log q_phi(z | s') - log p(z) = log_softmax(q_phi(s'))[z] + log Z

computed for the whole sampled batch in one kernel call (``hrlkit.targets.skill_rewards``: C++
on the CPU, CUDA on the GPU). ``extrinsic_coef`` adds the env's own reward (0: unsupervised).
``discriminator_dims`` restricts what the discriminator sees (e.g. the x-y position, a common
prior in the papers that followed); by default it reads the whole observation. For pixels,
``discriminator_rows`` gives it a band of image rows instead of the whole encoded frame (CarRacing's
preset: the dashboard, where the env draws the car's speed, wheel spin, steering and yaw rate).

Transitions live in the C++ replay with the skill as the row's tag (the ``option`` column), so
``buffer.sample(B, option=z)`` can also draw one skill's rows. The SAC terms are the package's one
SAC (``agents/_sac.py``), shared with Soft Option-Critic.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .. import _cuda_ops, targets
from ..nets import ConvEncoder, EnsembleMLP, ImageRows, image_layout, is_image_space, soft_update
from ..replay import ReplayBuffer, from_bytes_like, to_bytes
from ..runtime.config import ConfigError, check, field
from ..runtime.policy_evaluation import batch_observation, episode_start_mask
from ._sac import ParamHolder, SACConfig, actor_loss, alpha_loss, critic_loss, fused_adam, sample_squashed, soft_value
from .base import Algorithm, is_bounded_box, is_flat_box, obs_width

__all__ = ["DIAYN", "DIAYNConfig", "diayn_loss"]


@dataclasses.dataclass
class DIAYNConfig(SACConfig):
    """The shared SAC fields, then the skills' and the discriminator's."""

    utd_ratio: float = field(0.5, "gradient steps per env step (update-to-data ratio); half SAC's 1.0 by default: on "
                             "the defaults suite's LunarLanderContinuous 0.5 tells the skills apart where 1.0 and 2.0 "
                             "leave several alike, at half the compute (README, defaults suite)", gt=0)
    num_skills: int = field(10, "number of skills Z (prior p(z) uniform and fixed)", ge=2)
    discriminator_learning_rate: float = field(3e-4, "Adam learning rate of the discriminator", gt=0,
                                               renamed_from=("discriminator_lr",))
    discriminator_hidden_sizes: list[int] = field(
        [64, 64], "hidden layer widths of the discriminator; [64, 64] since session 23 ([256, 256] before): on the "
                  "defaults suite its accuracy's IQM is >= 0.8 on Pendulum, LunarLanderContinuous and Hopper, where "
                  "[256, 256] left LunarLanderContinuous at 0.78 (README, defaults suite)", ge=1, nonempty=True)
    entropy_coef: float = field(0.1, "SAC's temperature alpha (fixed, as in DIAYN, unless autotune_entropy_coef)",
                                gt=0, renamed_from=("alpha",))
    autotune_entropy_coef: bool = field(False, "tune entropy_coef towards target_entropy instead",
                                        renamed_from=("autotune_alpha",))
    target_entropy: float | None = field(None, "target entropy (None: -action_dim, or 0.98 log |A| for discrete)")
    discriminator_dims: list[int] | None = field(None, "observation dims the discriminator reads (None: all)",
                                                 nonempty=True)
    discriminator_rows: list[int] | None = field(
        None, "pixel observations: [first, last) image rows the discriminator reads (every stacked frame), "
              "through its MLP instead of a conv encoder (None: the whole frame, encoded)", nonempty=True)
    extrinsic_coef: float = field(0.0, "weight of the env's reward added to the skill reward (0: unsupervised)")
    ignore_terminations: bool = field(
        False, "bootstrap the skill values through the env's terminations as through time limits, so that ending "
               "an episode neither pays nor costs (log q - log p is negative while a skill is below chance, which "
               "pays it to crash early, and positive above it, which pays it to outlive the others)")
    feature_dim: int = field(256, "pixel observations: features of each conv encoder (critics', discriminator's)",
                             ge=1)

    def validate(self) -> None:
        if self.discriminator_dims is not None:
            check(len(set(self.discriminator_dims)) == len(self.discriminator_dims), "discriminator_dims",
                  "a non-empty list of distinct observation indices", self.discriminator_dims)
        if self.discriminator_rows is not None:
            r = self.discriminator_rows
            check(len(r) == 2 and 0 <= r[0] < r[1], "discriminator_rows",
                  "[first, last) image rows with 0 <= first < last", r)


def diayn_loss(
    batch: dict[str, torch.Tensor], *, actor: EnsembleMLP, critic: EnsembleMLP, critic_target: EnsembleMLP,
    discriminator: Callable[[torch.Tensor], torch.Tensor], log_alpha: torch.Tensor, cfg: DIAYNConfig,
    target_entropy: float, discrete: bool, encoder: nn.Module | None = None, encoder_target: nn.Module | None = None,
) -> dict[str, torch.Tensor]:
    """Every DIAYN loss term on B transitions, each of the skill z that acted (the ``option`` column).

    batch: obs, action, reward, next_obs, terminated, option [B]. actor, critic (twin),
    critic_target: SAC's networks on the observation's features with z one-hot appended
    (discrete actions: one output per action); discriminator: q_phi(. | s') as logits [B, Z];
    encoder, encoder_target: pixels only, the critics' conv encoder and its polyak copy (the actor
    reads its features detached). With a ~ pi(s, z), a' ~ pi(s', z) (discrete: the expectation
    over actions) and d the terminal flag:

        r             = log q_phi(z | s') - log p(z) (+ extrinsic_coef r_env)
        y             = r + gamma (1 - d) (min_j Q'_j(s', a', z) - alpha log pi(a'|s', z))
                        (d = 0 throughout with ignore_terminations)
        critic        = sum_j 1/2 mean((Q_j(s, a, z) - y)^2)
        actor         = mean(alpha log pi(a|s, z) - min_j Q_j(s, a, z))
        alpha         = -mean(log alpha (log pi(a|s, z) + target_entropy))
        discriminator = mean(-log q_phi(z | s'))
        total         = critic + actor + discriminator (+ alpha with autotune_entropy_coef)

    Also returns the diagnostics target [B] (y), skill_reward [B] (r), discriminator_accuracy
    (the share of rows whose z is q_phi's most likely skill), entropy and temperature (alpha).
    """
    z, obs, next_obs, action = batch["option"], batch["obs"], batch["next_obs"], batch["action"]
    Z = cfg.num_skills
    not_terminal = 1.0 - batch["terminated"].to(torch.float32) * (not cfg.ignore_terminations)
    logits = discriminator(next_obs)  # it learns to name the skill from the state it led to, s'
    disc_loss = F.cross_entropy(logits, z)
    skill = targets.skill_rewards(logits.detach(), z, validate=False)  # r = log_softmax(q_phi(s'))[z] + log Z
    reward = skill.reward.to(torch.float32)
    if cfg.extrinsic_coef != 0.0:
        reward = reward + cfg.extrinsic_coef * batch["reward"]
    alpha = log_alpha.detach().exp()
    x = skill_input(obs, z, Z, encoder)  # pixels: the critics' encoder, trained by the critic loss
    x_pi = x if encoder is None else x.detach()  # the actor never trains the encoder
    with torch.no_grad():  # y = r + gamma (1 - d) E_a'~pi[min_j Q'_j(s', a', z) - alpha log pi(a'|s', z)]
        x_next = skill_input(next_obs, z, Z, encoder)
        x_next_target = x_next if encoder is None else skill_input(next_obs, z, Z, encoder_target)
        pi_next, logp_next = skill_policy(actor, x_next, discrete)
        if discrete:  # pi_next: pi(.|s', z), one target critic output per action
            v_next = soft_value(critic_target(x_next_target).min(dim=0).values, logp_next, alpha, pi_next)
        else:  # pi_next: a' ~ pi(s', z)
            v_next = soft_value(critic_target(torch.cat([x_next_target, pi_next], dim=-1))[..., 0].min(dim=0).values,
                                logp_next, alpha)
        target = reward + cfg.gamma * not_terminal * v_next
    if discrete:  # the actor and alpha terms take the expectation under probs = pi(.|s, z)
        q_all = critic(x)
        q = q_all.gather(2, action.view(1, -1, 1).expand(2, -1, 1))[..., 0]
        probs, logp_pi = skill_policy(actor, x_pi, True)
        q_pi = (q_all if encoder is None else critic(x_pi)).detach().min(dim=0).values
    else:  # min_j Q_j(s, a, z), a ~ pi(s, z), with the critics' parameters detached: gradient to the actor only
        q = critic(torch.cat([x, action], dim=-1))[..., 0]
        (a_pi, logp_pi), probs = skill_policy(actor, x_pi, False), None
        q_pi = critic(torch.cat([x_pi, a_pi], dim=-1), detach_params=True)[..., 0].min(dim=0).values
    terms = {
        "critic": critic_loss(q, target),
        "actor": actor_loss(q_pi, logp_pi, alpha, probs),
        "alpha": alpha_loss(log_alpha, logp_pi, target_entropy, probs),
        "discriminator": disc_loss,
    }
    total = terms["critic"] + terms["actor"] + terms["discriminator"]
    if cfg.autotune_entropy_coef:
        total = total + terms["alpha"]
    with torch.no_grad():
        entropy = -logp_pi.mean() if probs is None else -(probs * logp_pi).sum(-1).mean()
    return {**terms, "total": total, "target": target, "skill_reward": reward,
            "discriminator_accuracy": skill.correct.to(torch.float32).mean(), "entropy": entropy, "temperature": alpha}


def skill_input(obs: torch.Tensor, z: torch.Tensor, num_skills: int, encoder: nn.Module | None = None) -> torch.Tensor:
    """The networks' input: the observation (pixels: its ``encoder`` features) with z one-hot appended."""
    feats = obs if encoder is None else encoder(obs)
    return torch.cat([feats, F.one_hot(z, num_skills).to(feats.dtype)], dim=-1)


def skill_policy(actor: EnsembleMLP, x: torch.Tensor, discrete: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """pi(. | x). Continuous: a sampled action in [-1, 1] [N, A] and log pi [N]. Discrete:
    pi(.|x) and log pi(.|x), each [N, A]."""
    out = actor(x)[0]
    if discrete:
        logp = torch.log_softmax(out, dim=-1)
        return logp.exp(), logp
    return sample_squashed(out, out.shape[-1] // 2)


class DIAYN(Algorithm):
    """Unsupervised skill discovery over a flat Box (or Discrete) observation space, with Box or
    Discrete actions."""

    name = "diayn"
    Config = DIAYNConfig

    def _check_spaces(self) -> None:
        self._check_action_space()
        obs = self.observation_space
        if is_image_space(obs):
            if self.config.discriminator_dims is not None:
                raise ConfigError("discriminator_dims: only for vector observations (this env's are pixels; "
                                  "discriminator_rows picks image rows)")
            rows, height = self.config.discriminator_rows, image_layout(obs.shape)[0]
            if rows is not None and rows[1] > height:
                raise ConfigError(f"discriminator_rows: expected rows within the frame's {height} (observation shape "
                                  f"{tuple(obs.shape)}), got {rows}")
            need = 2 * self.config.buffer_size * int(np.prod(obs.shape))  # obs and next_obs, uint8
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
            if total and need > total // 2:
                fits = max(1, total // 4 // (2 * int(np.prod(obs.shape))))
                raise ConfigError(f"buffer_size: {self.config.buffer_size:,} frames of {obs.shape} need {need / 2**30:.1f} GiB "
                                  f"(obs and next_obs), over half of this machine's {total / 2**30:.1f} GiB; "
                                  f"use at most about {fits:,}")
            return
        if self.config.discriminator_rows is not None:
            raise ConfigError("discriminator_rows: only for pixel observations (this env's are vectors; "
                              "discriminator_dims picks observation dims)")
        if not (is_flat_box(obs) or isinstance(obs, gym.spaces.Discrete)):
            raise ConfigError(f"env: diayn needs a flat Box, a Discrete or an image (H, W, C uint8) observation space, got {obs}")
        dims = self.config.discriminator_dims
        n = obs_width(obs)
        if dims is not None and not all(0 <= d < n for d in dims):
            raise ConfigError(f"discriminator_dims: expected indices in [0, {n}) (the observation's), got {dims}")

    def _check_action_space(self) -> None:
        act = self.action_space
        if not (isinstance(act, gym.spaces.Discrete) or is_bounded_box(act)):
            raise ConfigError(f"env: diayn needs a Discrete or a bounded flat Box action space, got {act}")

    # ---- construction -------------------------------------------------------------------------
    def build(self) -> None:
        cfg = self.config
        Z = cfg.num_skills
        space = self.observation_space
        self.pixels = is_image_space(space)
        self.encoder = self.encoder_target = self.disc_encoder = None
        if self.pixels:  # the critics' encoder (and its polyak target); the actor reads its features detached
            self.encoder = ConvEncoder(tuple(space.shape), cfg.feature_dim).to(self.device)
            self.encoder_target = copy.deepcopy(self.encoder).requires_grad_(False)
            self.disc_encoder = (ConvEncoder(tuple(space.shape), cfg.feature_dim) if cfg.discriminator_rows is None
                                 else ImageRows(tuple(space.shape), cfg.discriminator_rows)).to(self.device)
            self.obs_dim = obs_dim = cfg.feature_dim
        else:
            self.obs_dim = obs_dim = obs_width(space)
        self.discrete = isinstance(self.action_space, gym.spaces.Discrete)
        self.action_dim = A = int(self.action_space.n) if self.discrete else int(self.action_space.shape[0])
        x_dim = obs_dim + Z
        self.actor = EnsembleMLP(1, x_dim, cfg.hidden_sizes, A if self.discrete else 2 * A, cfg.activation).to(self.device)
        self.critic = EnsembleMLP(2, x_dim if self.discrete else x_dim + A, cfg.hidden_sizes, A if self.discrete else 1,
                                  cfg.activation, cfg.critic_layer_norm).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        dims = list(range(obs_dim)) if cfg.discriminator_dims is None else list(cfg.discriminator_dims)
        disc_in = self.disc_encoder.out_dim if self.pixels else len(dims)
        self.disc_dims = torch.as_tensor(dims, device=self.device)  # unused for pixels
        self.discriminator = EnsembleMLP(1, disc_in, cfg.discriminator_hidden_sizes, Z, cfg.activation).to(self.device)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.entropy_coef), device=self.device),
                                      requires_grad=cfg.autotune_entropy_coef)
        groups = [
            {"params": list(self.actor.parameters()), "lr": cfg.actor_learning_rate},
            {"params": list(self.critic.parameters()) + self._params(self.encoder), "lr": cfg.critic_learning_rate},
            {"params": list(self.discriminator.parameters()) + self._params(self.disc_encoder),
             "lr": cfg.discriminator_learning_rate},
        ]
        if cfg.autotune_entropy_coef:
            groups.append({"params": [self.log_alpha], "lr": cfg.entropy_coef_learning_rate})
        self.optimizer = torch.optim.Adam(groups, **fused_adam(self.device))
        if cfg.target_entropy is not None:
            self.target_entropy = float(cfg.target_entropy)
        else:
            self.target_entropy = 0.98 * math.log(A) if self.discrete else float(-A)
        if not self.discrete:
            low, high = self.action_space.low.astype(np.float32), self.action_space.high.astype(np.float32)
            self.action_center, self.action_scale = (high + low) / 2.0, (high - low) / 2.0
        self.buffer = self._make_buffer()
        self.skills = np.zeros(cfg.num_envs, dtype=np.int64)  # each env's skill for its current episode
        # skills for predict(state=None): a stream of its own, so evaluating never moves training's
        self._predict_rng = np.random.default_rng([self.seed, 1])
        self._actions: np.ndarray | None = None

    @staticmethod
    def _params(module: nn.Module | None) -> list[nn.Parameter]:
        return [] if module is None else list(module.parameters())

    def _obs_field(self) -> tuple[tuple[int, ...], str]:
        """Shape and dtype of a stored observation: pixels stay uint8, Discrete ids one-hot."""
        space = self.observation_space
        if self.pixels:
            return tuple(space.shape), "uint8"
        if isinstance(space, gym.spaces.Discrete):
            return (int(space.n),), "float32"
        return tuple(space.shape), "float32"

    def _make_buffer(self) -> ReplayBuffer:
        cfg = self.config
        obs_shape, obs_dtype = self._obs_field()
        spec = {
            "obs": (obs_shape, obs_dtype),
            "action": ((), "int64") if self.discrete else ((self.action_dim,), "float32"),
            "reward": ((), "float32"),
            "next_obs": (obs_shape, obs_dtype),
            "terminated": ((), "bool"),
        }
        device = self.device if self.device.type == "cuda" and _cuda_ops.available() else None
        return ReplayBuffer(cfg.buffer_size, spec, num_options=cfg.num_skills, seed=int(self.rng.integers(2**63)),
                            device=device)

    def modules(self) -> dict[str, Any]:
        mods = {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target,
                "discriminator": self.discriminator, "log_alpha": ParamHolder(self.log_alpha),
                "optimizer": self.optimizer}
        if self.pixels:
            mods.update(encoder=self.encoder, encoder_target=self.encoder_target, disc_encoder=self.disc_encoder)
        return mods

    # ---- networks ---------------------------------------------------------------------------------
    def _x(self, obs: torch.Tensor, skills: torch.Tensor) -> torch.Tensor:
        """The networks' input: the observation's features (pixels: the critics' encoder's) with
        the skill one-hot appended."""
        return skill_input(obs, skills, self.config.num_skills, self.encoder)

    def _obs(self, obs: Any) -> torch.Tensor:
        if self.pixels:
            return torch.as_tensor(np.asarray(obs) if not isinstance(obs, torch.Tensor) else obs, device=self.device)
        if isinstance(obs, torch.Tensor) and isinstance(self.observation_space, gym.spaces.Box):
            return obs.to(device=self.device, dtype=torch.float32)
        return self.obs_tensor(obs)

    def discriminator_logits(self, next_obs: torch.Tensor) -> torch.Tensor:
        """q_phi(. | s') as logits [N, Z], from the discriminator's dims of the next observations
        (pixels: through its own encoder, or its image rows)."""
        if self.pixels:
            return self.discriminator(self.disc_encoder(next_obs))[0]
        return self.discriminator(next_obs.index_select(-1, self.disc_dims))[0]

    def alpha(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    def _env_actions(self, actions: np.ndarray) -> np.ndarray:
        return actions if self.discrete else self.action_center + self.action_scale * actions

    # ---- acting ----------------------------------------------------------------------------------
    def on_episode_start(self, mask: np.ndarray) -> None:
        """A fresh skill z ~ p(z) (uniform) for every env that starts an episode."""
        mask = np.asarray(mask, dtype=bool)
        self.skills[mask] = self.rng.integers(self.config.num_skills, size=int(mask.sum()))

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        n = len(self.skills)
        if self.global_step < self.config.learning_starts:
            if self.discrete:
                actions = self.rng.integers(self.action_dim, size=n)
            else:
                actions = self.rng.uniform(-1.0, 1.0, size=(n, self.action_dim)).astype(np.float32)
        else:
            x = self._x(self._obs(obs), torch.as_tensor(self.skills, device=self.device))  # no_grad: detached
            first, _ = skill_policy(self.actor, x, self.discrete)
            actions = (torch.multinomial(first, 1)[:, 0] if self.discrete else first).cpu().numpy()
        self._actions = actions
        return self._env_actions(actions)

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated) -> None:
        dtype = self._obs_field()[1]
        self.buffer.add(
            obs=np.asarray(self._obs_rows(obs), dtype=dtype),
            action=self._actions,
            reward=np.asarray(rewards, dtype=np.float32),
            next_obs=np.asarray(self._obs_rows(next_obs), dtype=dtype),
            terminated=np.asarray(terminated, dtype=bool),
            option=self.skills,  # the skill that acted (the trainer starts new ones after this)
        )
        self.owe_gradient_steps(self.config.utd_ratio * self.config.num_envs)

    def _obs_rows(self, obs: Any) -> np.ndarray:
        if isinstance(self.observation_space, gym.spaces.Discrete):
            return np.eye(self.obs_dim, dtype=np.float32)[np.asarray(obs, dtype=np.int64)]
        return np.asarray(obs)

    # ---- learning ---------------------------------------------------------------------------------
    def update(self) -> dict[str, torch.Tensor]:
        return self.run_owed_steps(self._gradient_step)

    def _gradient_step(self) -> dict[str, torch.Tensor]:
        """One gradient step: a batch, its losses, one Adam step over every network, the polyak
        targets; the logged values as 0-dim tensors."""
        batch = {k: torch.as_tensor(v, device=self.device) for k, v in self.buffer.sample(self.config.batch_size).items()}
        out = diayn_loss(batch, actor=self.actor, critic=self.critic, critic_target=self.critic_target,
                         discriminator=self.discriminator_logits, log_alpha=self.log_alpha, cfg=self.config,
                         target_entropy=self.target_entropy, discrete=self.discrete, encoder=self.encoder,
                         encoder_target=self.encoder_target)
        self.optimizer.zero_grad(set_to_none=True)
        out["total"].backward()
        self.optimizer.step()
        soft_update(self.critic_target, self.critic, self.config.polyak)
        if self.pixels:
            soft_update(self.encoder_target, self.encoder, self.config.polyak)
        return {
            "losses/critic": out["critic"].detach(),
            "losses/actor": out["actor"].detach(),
            "losses/discriminator": out["discriminator"].detach(),
            "losses/entropy": out["entropy"],
            "charts/skill_reward": out["skill_reward"].mean(),
            "charts/discriminator_accuracy": out["discriminator_accuracy"],
            "charts/alpha": out["temperature"],
        }

    # ---- evaluation ---------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, obs: Any, state: Any = None, deterministic: bool = True, *,
                episode_start: Any = None) -> tuple[np.ndarray, Any]:
        """Actions for a batch of observations, or the action for one (unbatched) observation,
        under skills: ``state`` is ``{"skill": ids}`` (one per row), an int (every row), or None
        (a fresh skill per row from p(z), e.g. at an episode start); ``episode_start`` (SB3's: a
        bool per row) draws a fresh skill for the rows whose episode starts. Deterministic: the
        tanh of the Gaussian mean, or the most likely action."""
        obs, single = batch_observation(self.observation_space, obs)
        x_obs = self._obs(obs)
        n = x_obs.shape[0]
        skills = self._skills_for(state, n)
        starts = None if state is None else episode_start_mask(episode_start, n)
        if starts is not None:
            skills = skills.copy()  # not the caller's state
            skills[starts] = self._predict_rng.integers(self.config.num_skills, size=int(starts.sum()))
        out = self.actor(self._x(x_obs, torch.as_tensor(skills, device=self.device)))[0]
        if self.discrete:
            actions = out.argmax(-1) if deterministic else torch.distributions.Categorical(logits=out).sample()
        else:
            actions = torch.tanh(out[:, :self.action_dim]) if deterministic else sample_squashed(out, self.action_dim)[0]
        actions = self._env_actions(actions.cpu().numpy())
        return (actions[0] if single else actions), {"skill": skills}

    def _skills_for(self, state: Any, n: int) -> np.ndarray:
        Z = self.config.num_skills
        if state is None:
            return self._predict_rng.integers(Z, size=n)
        raw = state.get("skill") if isinstance(state, dict) else state
        skills = np.broadcast_to(np.asarray(raw, dtype=np.int64), (n,)).copy() if np.ndim(raw) == 0 else \
            np.asarray(raw, dtype=np.int64)
        if skills.shape != (n,) or (skills.size and (skills.min() < 0 or skills.max() >= Z)):
            raise ValueError(f"state: expected skill ids in [0, {Z}), one per row ({n}), got {raw!r}")
        return skills

    def active_option(self, state: Any) -> int | None:
        if isinstance(state, dict) and "skill" in state:
            return int(np.asarray(state["skill"]).reshape(-1)[0])
        return None

    # ---- checkpoints --------------------------------------------------------------------------------
    def state_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"skills": self.skills.copy(), "predict_rng": self._predict_rng.bit_generator.state}
        if self.config.save_replay:
            extra["replay"] = to_bytes(self.buffer)
        return extra

    def load_state_extra(self, state: dict[str, Any]) -> None:
        if "skills" in state:
            self.skills = np.asarray(state["skills"], dtype=np.int64).copy()
        if "predict_rng" in state:
            self._predict_rng.bit_generator.state = state["predict_rng"]
        if state.get("replay") is not None:
            self.buffer = from_bytes_like(self.buffer, state["replay"])
