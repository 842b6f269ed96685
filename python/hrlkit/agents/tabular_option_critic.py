"""Tabular Option-Critic (Bacon, Harb & Precup 2017, Algorithm 1) for many independent runs at once.

The paper's Four Rooms experiment is tabular: per state s, option w and action a, the tables

    logits[s, w, a]   intra-option policy pi_w(a | s) = softmax(logits[s, w])
    term[s, w]        termination beta_w(s) = sigmoid(term[s, w])
    q_omega[s, w]     option values Q_Omega(s, w)
    q_u[s, w, a]      the intra-option action critic Q_U(s, w, a)

and one-step updates from each transition (s, w, a, r, s'), all from the values before the step:

    G        = r + gamma (1 - done) U(s', w),  U = (1 - beta_w(s')) Q_Omega(s', w) + beta_w(s') V(s')
    q_u      += critic_learning_rate (G - Q_U(s, w, a));   q_omega += critic_learning_rate (G - Q_Omega(s, w))
    logits   += policy_learning_rate (Q_U(s, w, a) - b(s, w)) grad log pi_w(a | s),  b = Q_Omega(s, w) or 0
    term     -= termination_learning_rate grad beta_w(s') (Q_Omega(s', w) - V(s') + xi)      (s' not terminal)

with V the value of the epsilon-greedy choice over options ((1 - eps) max + eps mean), U from
the C++ kernel (``hrlkit.targets.option_bootstrap``). These are the updates that
``hrlkit.OptionCritic`` makes on one-hot states with ``hidden_sizes=[]``, ``head_bias=False``,
``optimizer="sgd"``, ``action_critic=True``, ``num_envs=1``, ``rollout_steps=1``,
``target_update_every=1``, ``critic_coef=1``, ``termination_coef=1``, ``entropy_coef=0`` and
``max_grad_norm=0`` (the tests check the two agree update for update); here the R runs' tables are stacked ([R, S, ...])
and every run is updated by one vectorized step, so 20+ runs of thousands of episodes take
minutes, not hours. With one option this is an actor-critic (the paper's AC-PG baseline).

The logits are the policy's parameters: a Boltzmann policy exp(theta / tau) stepped with
alpha (Q_U - b)(e_a - pi), as in the common tabular implementations of the paper, is the logit
step policy_learning_rate = alpha / tau (the paper's 0.25 and 0.01 give 25).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .. import targets
from .._validate import check_int
from ..runtime.config import build_config, field

__all__ = ["TabularOptionCritic", "TabularOptionCriticConfig"]


@dataclasses.dataclass
class TabularOptionCriticConfig:
    num_options: int = field(4, "number of options K (1: a flat actor-critic)", ge=1)
    gamma: float = field(0.99, "discount", ge=0, le=1)
    critic_learning_rate: float = field(0.5, "step size of Q_U and Q_Omega", ge=0, renamed_from=("critic_lr",))
    policy_learning_rate: float = field(25.0, "step size of the intra-option policies' logits", ge=0,
                                        renamed_from=("policy_lr",))
    termination_learning_rate: float = field(0.25, "step size of the termination logits", ge=0,
                                             renamed_from=("termination_lr",))
    epsilon: float = field(0.01, "epsilon of the epsilon-greedy choice over options", ge=0, le=1)
    baseline: bool = field(True, "subtract Q_Omega(s, w) from Q_U(s, w, a) in the policy step")
    deliberation_cost: float = field(0.0, "xi, margin added to the termination advantage")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


class TabularOptionCritic:
    """``num_runs`` independent tabular Option-Critic learners over ``num_states`` states and
    ``num_actions`` actions, stepped together (each run has its own tables and its own state).

    Per step: :meth:`act` (the runs' running options and sampled actions at their states), the
    envs' transitions, :meth:`update` (the one-step updates), then :meth:`after_step` (episode
    ends and terminations pick new options).
    """

    def __init__(self, num_states: int, num_actions: int, num_runs: int = 1, seed: int = 0, **hparams: Any):
        S, A, R = (check_int(name, value, minimum=1) for name, value in
                   (("num_states", num_states), ("num_actions", num_actions), ("num_runs", num_runs)))
        self.config = build_config(TabularOptionCriticConfig, hparams)
        K = self.config.num_options
        self.shape = (R, S, K, A)
        self.logits = np.zeros((R, S, K, A))
        self.term = np.zeros((R, S, K))
        self.q_omega = np.zeros((R, S, K))
        self.q_u = np.zeros((R, S, K, A))
        self.rng = np.random.default_rng(seed)
        self.runs = np.arange(R)
        self.options = np.zeros(R, dtype=np.int64)

    # ---- acting ---------------------------------------------------------------------------------
    def _check_ids(self, name: str, x: Any, count: int, what: str) -> np.ndarray:
        """One int id in [0, count) per run."""
        x = np.asarray(x)
        R = self.shape[0]
        if x.shape != (R,) or x.dtype.kind not in "iu" or (x < 0).any() or (x >= count).any():
            raise ValueError(f"{name}: expected {R} {what} in [0, {count}), got {x!r:.120}")
        return x.astype(np.int64)

    def _check_states(self, name: str, s: Any) -> np.ndarray:
        return self._check_ids(name, s, self.shape[1], "state indices")

    def _check_mask(self, name: str, mask: Any, default: bool = True) -> np.ndarray:
        R = self.shape[0]
        if mask is None:
            return np.full(R, default)
        m = np.asarray(mask)
        if m.shape != (R,) or m.dtype != bool:
            raise ValueError(f"{name}: expected {R} bools (one per run), got {m!r:.120}")
        return m

    def _check_options(self, options: Any) -> np.ndarray:
        return self.options if options is None else self._check_ids("options", options, self.shape[2], "option ids")

    def choose_options(self, states: Any, mask: Any | None = None) -> np.ndarray:
        """Epsilon-greedy options at ``states`` (ties broken at random) for the runs in ``mask``
        (bools, all runs by default); they become the running options. Returns a copy of the
        running options."""
        s = self._check_states("states", states)
        mask = self._check_mask("mask", mask)
        q = self.q_omega[self.runs, s]
        K = self.shape[2]
        greedy = np.argmax(q + 1e-9 * self.rng.random(q.shape), axis=1)
        explore = self.rng.random(len(s)) < self.config.epsilon
        new = np.where(explore, self.rng.integers(K, size=len(s)), greedy)
        self.options = np.where(mask, new, self.options)
        return self.options.copy()

    def policy(self, states: Any, options: Any | None = None) -> np.ndarray:
        """pi_w(. | s) for each run, [R, A] (w: the running options unless given)."""
        s = self._check_states("states", states)
        return _softmax(self.logits[self.runs, s, self._check_options(options)])

    def beta(self, states: Any, options: Any | None = None) -> np.ndarray:
        """beta_w(s) for each run, [R] (w: the running options unless given)."""
        s = self._check_states("states", states)
        return _sigmoid(self.term[self.runs, s, self._check_options(options)])

    def act(self, states: Any) -> np.ndarray:
        """An action per run from its running option's policy at its state."""
        p = self.policy(states)
        u = self.rng.random((len(p), 1))
        return np.minimum((np.cumsum(p, axis=1) < u).sum(axis=1), p.shape[1] - 1)

    def after_step(self, next_states: Any, episode_start: Any) -> np.ndarray:
        """New options where an episode starts (``next_states`` are then the reset states) or the
        running option terminates at its next state (with probability beta_w(s'))."""
        s = self._check_states("next_states", next_states)
        start = self._check_mask("episode_start", episode_start)
        stop = start | (self.rng.random(len(s)) < self.beta(s))
        return self.choose_options(s, stop)

    # ---- learning -------------------------------------------------------------------------------
    def update(self, states: Any, actions: Any, rewards: Any, next_states: Any, terminated: Any,
               active: Any | None = None) -> dict[str, np.ndarray]:
        """The one-step updates of each run in ``active`` (all by default) from its transition
        (s, running w, a, r, s'); ``terminated`` marks s' terminal (no bootstrap, no termination
        step). Returns the TD errors of Q_Omega and the termination advantages ([R])."""
        cfg = self.config
        R, A = self.shape[0], self.shape[3]
        s, s2 = self._check_states("states", states), self._check_states("next_states", next_states)
        a = self._check_ids("actions", actions, A, "action indices")
        r = np.asarray(rewards, dtype=np.float64)
        if r.shape != (R,) or not np.isfinite(r).all():
            raise ValueError(f"rewards: expected {R} finite numbers, got {r!r:.120}")
        not_done = 1.0 - self._check_mask("terminated", terminated, False)
        act = self._check_mask("active", active)
        i, w = self.runs[act], self.options[act]
        s, a, r, s2, not_done = s[act], a[act], r[act], s2[act], not_done[act]

        q_next = self.q_omega[i, s2]                                   # [n, K]
        beta_all = _sigmoid(self.term[i, s2])                          # [n, K]
        u = targets.option_bootstrap(q_next, beta_all, w, cfg.epsilon)
        g = r + cfg.gamma * not_done * u
        q_sw, q_swa = self.q_omega[i, s, w], self.q_u[i, s, w, a]
        p = _softmax(self.logits[i, s, w])
        feedback = q_swa - (q_sw if cfg.baseline else 0.0)
        rows = np.arange(len(i))
        beta_next = beta_all[rows, w]
        adv = q_next[rows, w] - targets.option_values(q_next, cfg.epsilon) + cfg.deliberation_cost

        self.q_u[i, s, w, a] += cfg.critic_learning_rate * (g - q_swa)
        self.q_omega[i, s, w] += cfg.critic_learning_rate * (g - q_sw)
        grad = -p
        grad[rows, a] += 1.0
        self.logits[i, s, w] += cfg.policy_learning_rate * feedback[:, None] * grad
        self.term[i, s2, w] -= cfg.termination_learning_rate * beta_next * (1.0 - beta_next) * adv * not_done
        td, out_adv = np.zeros(R), np.zeros(R)
        td[act], out_adv[act] = g - q_sw, adv
        return {"td_error": td, "termination_advantage": out_adv}

    # ---- driving the runs -----------------------------------------------------------------------
    def run_episodes(self, envs: list, episodes: int, on_episode_end: Any = None, seed: int | None = None) -> np.ndarray:
        """Learn on ``envs`` (one gymnasium env per run, Discrete observations and actions of
        this learner's sizes) until every run has finished ``episodes`` episodes; a run that has
        stops learning and acting. Time-limit truncations bootstrap, terminations do not.
        ``on_episode_end(run, episode, length)`` is called after each episode (before the next
        reset; e.g. to move a goal). ``seed`` seeds each env's first reset (run i: seed + i).
        Returns the episode lengths, [R, episodes]."""
        R, S, _, A = self.shape
        if len(envs) != R or len({id(e.unwrapped) for e in envs}) != R:
            raise ValueError(f"envs: expected {R} distinct envs (one per run), got {len(envs)} "
                             f"({len({id(e.unwrapped) for e in envs})} distinct)")
        for e in envs:
            obs_n, act_n = getattr(e.observation_space, "n", None), getattr(e.action_space, "n", None)
            if obs_n != S or act_n != A:
                raise ValueError(f"envs: expected Discrete({S}) observations and Discrete({A}) actions, "
                                 f"got {e.observation_space} and {e.action_space}")
        episodes = check_int("episodes", episodes, minimum=1)
        lengths = np.zeros((R, episodes), dtype=np.int64)
        done_eps = np.zeros(R, dtype=np.int64)
        ep_len = np.zeros(R, dtype=np.int64)
        s = np.array([e.reset(seed=None if seed is None else seed + i)[0] for i, e in enumerate(envs)], dtype=np.int64)
        self.choose_options(s)
        active = np.ones(R, dtype=bool)
        while active.any():
            a = self.act(s)
            s2 = s.copy()
            r, term, start = np.zeros(R), np.zeros(R, dtype=bool), np.zeros(R, dtype=bool)
            for i in np.flatnonzero(active):
                s2[i], r[i], term[i], trunc, _ = envs[i].step(int(a[i]))
                ep_len[i] += 1
                start[i] = term[i] or trunc
            self.update(s, a, r, s2, term, active)
            for i in np.flatnonzero(start):
                lengths[i, done_eps[i]] = ep_len[i]
                done_eps[i] += 1
                if on_episode_end is not None:
                    on_episode_end(int(i), int(done_eps[i] - 1), int(ep_len[i]))
                ep_len[i] = 0
                if done_eps[i] == episodes:
                    active[i] = False
                else:
                    s2[i] = envs[i].reset()[0]
            self.after_step(s2, start)
            s = s2
        return lengths
