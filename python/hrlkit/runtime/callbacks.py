"""Callbacks in Stable-Baselines3's shape, for ``agent.learn(total_steps, callback=...)``.

    stop = hrlkit.StopTrainingOnRewardThreshold(475)
    agent.learn(100_000, callback=[
        hrlkit.EvalCallback(gym.make("CartPole-v1"), eval_freq=1_000, callback_on_new_best=stop,
                            best_model_save_path="best"),
        hrlkit.CheckpointCallback(save_freq=5_000, save_path="ckpts"),
    ])

The training loop (:mod:`hrlkit.runtime.trainer`) calls ``on_training_start`` once, then per
vector step of the training envs ``on_step`` (after the step, so ``num_timesteps`` is the agent's
``global_step``, counting every sub-env's step), and around each learning step
``on_rollout_end`` (the steps collected since the last learning step are complete, the update
comes next) and ``on_rollout_start`` (collection starts again), and ``on_training_end`` at the
end. ``_on_step`` returning False stops training (as in SB3, ``n_calls`` counts vector steps,
so ``eval_freq`` and ``save_freq`` are in vector steps: with 8 envs, ``eval_freq=1000`` is every
8000 env steps).
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any

import gymnasium as gym
import numpy as np

from .policy_evaluation import evaluate_policy


class BaseCallback(ABC):
    """A training callback: override the ``_on_*`` hooks (``_on_step`` at least).

    Attributes: ``model`` (the agent), ``num_timesteps`` (its ``global_step``), ``n_calls`` (the
    ``on_step`` calls so far), ``locals`` (the loop's variables at the last step: ``actions``,
    ``new_obs``, ``rewards``, ``dones``, ``infos``; at the start ``self``, ``total_steps``),
    ``logger`` (the run's logger: ``record(name, value)``, ``dump(step)``), ``parent`` (the
    callback this one is a child of, e.g. the EvalCallback of a ``callback_on_new_best``)."""

    def __init__(self, verbose: int = 0):
        self.verbose = verbose
        self.model: Any = None
        self.logger: Any = None
        self.parent: BaseCallback | None = None
        self.n_calls = 0
        self.num_timesteps = 0
        self.locals: dict[str, Any] = {}
        self.globals: dict[str, Any] = {}

    @property
    def training_env(self) -> gym.vector.VectorEnv:
        return self.model.envs

    # ---- called by the training loop -----------------------------------------------------------
    def init_callback(self, model: Any) -> None:
        self.model = model
        self.logger = getattr(model, "logger", None)
        self._init_callback()

    def on_training_start(self, locals_: dict[str, Any], globals_: dict[str, Any]) -> None:
        self.locals, self.globals = dict(locals_), globals_
        self.num_timesteps = self.model.global_step
        self._on_training_start()

    def on_rollout_start(self) -> None:
        self._on_rollout_start()

    def on_step(self) -> bool:
        """Called after each vector step; False stops training (None, a missing return, does not)."""
        self.n_calls += 1
        self.num_timesteps = self.model.global_step
        return self._on_step() is not False

    def on_rollout_end(self) -> None:
        self._on_rollout_end()

    def on_training_end(self) -> None:
        self._on_training_end()

    def update_locals(self, locals_: dict[str, Any]) -> None:
        self.locals.update(locals_)
        self.update_child_locals(locals_)

    def update_child_locals(self, locals_: dict[str, Any]) -> None:
        """Hand ``locals_`` on to child callbacks (CallbackList, EvalCallback)."""

    # ---- to override ------------------------------------------------------------------------------
    def _init_callback(self) -> None:
        pass

    def _on_training_start(self) -> None:
        pass

    def _on_rollout_start(self) -> None:
        pass

    @abstractmethod
    def _on_step(self) -> bool:
        """Return False to stop training."""

    def _on_rollout_end(self) -> None:
        pass

    def _on_training_end(self) -> None:
        pass


class CallbackList(BaseCallback):
    """Several callbacks as one: each hook calls every callback, in order; training stops when
    any ``on_step`` returns False (all of them are still called for that step)."""

    def __init__(self, callbacks: list[BaseCallback]):
        super().__init__()
        callbacks = list(callbacks)
        for i, cb in enumerate(callbacks):
            if not isinstance(cb, BaseCallback):
                raise TypeError(f"callback: expected BaseCallback instances in the list, item {i} is "
                                f"{type(cb).__name__}")
        self.callbacks = callbacks

    def _init_callback(self) -> None:
        for cb in self.callbacks:
            cb.init_callback(self.model)

    def _on_training_start(self) -> None:
        for cb in self.callbacks:
            cb.on_training_start(self.locals, self.globals)

    def _on_rollout_start(self) -> None:
        for cb in self.callbacks:
            cb.on_rollout_start()

    def _on_step(self) -> bool:
        results = [cb.on_step() for cb in self.callbacks]
        return all(results)

    def _on_rollout_end(self) -> None:
        for cb in self.callbacks:
            cb.on_rollout_end()

    def _on_training_end(self) -> None:
        for cb in self.callbacks:
            cb.on_training_end()

    def update_child_locals(self, locals_: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.update_locals(locals_)


def as_callback(callback: Any) -> BaseCallback | None:
    """``learn``'s ``callback`` when it is a BaseCallback or a list of them (a CallbackList); None
    for None. A plain function is not converted (the trainer calls it after each log row)."""
    if callback is None or isinstance(callback, BaseCallback):
        return callback
    if isinstance(callback, (list, tuple)):
        return CallbackList(list(callback))
    raise TypeError(f"callback: expected a BaseCallback, a list of them, or a function callback(agent, scalars), "
                    f"got {type(callback).__name__}")


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
    return int(value)


class StopTrainingOnRewardThreshold(BaseCallback):
    """Stops training once the parent EvalCallback's best mean return reaches
    ``reward_threshold``; use it as ``EvalCallback(..., callback_on_new_best=this)``."""

    def __init__(self, reward_threshold: float, verbose: int = 0):
        super().__init__(verbose)
        self.reward_threshold = float(reward_threshold)

    def _on_step(self) -> bool:
        if self.parent is None:
            raise RuntimeError("StopTrainingOnRewardThreshold: use it as EvalCallback(callback_on_new_best=...)")
        best = self.parent.best_mean_reward
        if best >= self.reward_threshold:
            if self.verbose >= 1:
                print(f"Stopping training: the best mean reward {best:.2f} reached the threshold "
                      f"{self.reward_threshold:.2f}")
            return False
        return True


class EvalCallback(BaseCallback):
    """Every ``eval_freq`` vector steps, :func:`evaluate_policy` over ``n_eval_episodes`` episodes
    of ``eval_env`` (a gymnasium Env or VectorEnv of its own); logs ``eval/mean_reward`` and
    ``eval/mean_ep_length`` to the run's logger. A new best mean return is saved with
    ``model.save`` as ``best_model_save_path/best_model.pt`` (when given) and runs
    ``callback_on_new_best`` (whose False stops training). ``log_path``: every evaluation in
    ``log_path/evaluations.npz`` (``timesteps``, ``results``, ``ep_lengths``, as SB3 writes it).
    ``best_mean_reward`` and ``last_mean_reward`` hold the results."""

    def __init__(self, eval_env: gym.Env | gym.vector.VectorEnv, *, n_eval_episodes: int = 5, eval_freq: int = 10_000,
                 deterministic: bool = True, best_model_save_path: str | None = None, log_path: str | None = None,
                 callback_on_new_best: BaseCallback | None = None, verbose: int = 0):
        super().__init__(verbose)
        if not isinstance(eval_env, (gym.Env, gym.vector.VectorEnv)):
            raise TypeError(f"eval_env: expected a gymnasium.Env or a gymnasium.vector.VectorEnv, got "
                            f"{type(eval_env).__name__}")
        _check_count("n_eval_episodes", n_eval_episodes)
        if callback_on_new_best is not None and not isinstance(callback_on_new_best, BaseCallback):
            raise TypeError(f"callback_on_new_best: expected a BaseCallback, got {type(callback_on_new_best).__name__}")
        self.eval_env = eval_env
        self.n_eval_episodes = int(n_eval_episodes)
        self.eval_freq = _check_count("eval_freq", eval_freq)
        self.deterministic = deterministic
        self.best_model_save_path = best_model_save_path
        self.log_path = None if log_path is None else os.path.join(log_path, "evaluations.npz")
        self.callback_on_new_best = callback_on_new_best
        if callback_on_new_best is not None:
            callback_on_new_best.parent = self
        self.best_mean_reward = -np.inf
        self.last_mean_reward = -np.inf
        self.evaluations_timesteps: list[int] = []
        self.evaluations_results: list[list[float]] = []
        self.evaluations_length: list[list[int]] = []

    def _init_callback(self) -> None:
        for path in (self.best_model_save_path, self.log_path and os.path.dirname(self.log_path)):
            if path:
                os.makedirs(path, exist_ok=True)
        if self.callback_on_new_best is not None:
            self.callback_on_new_best.init_callback(self.model)

    def update_child_locals(self, locals_: dict[str, Any]) -> None:
        if self.callback_on_new_best is not None:
            self.callback_on_new_best.update_locals(locals_)

    def _on_step(self) -> bool:
        if self.n_calls % self.eval_freq != 0:
            return True
        returns, lengths = evaluate_policy(self.model, self.eval_env, n_eval_episodes=self.n_eval_episodes,
                                           deterministic=self.deterministic, return_episode_rewards=True)
        if self.log_path is not None:
            self.evaluations_timesteps.append(self.num_timesteps)
            self.evaluations_results.append(returns)
            self.evaluations_length.append(lengths)
            np.savez(self.log_path, timesteps=self.evaluations_timesteps, results=self.evaluations_results,
                     ep_lengths=self.evaluations_length)
        mean_reward, std_reward = float(np.mean(returns)), float(np.std(returns))
        mean_length = float(np.mean(lengths))
        self.last_mean_reward = mean_reward
        if self.verbose >= 1:
            print(f"Eval num_timesteps={self.num_timesteps}, episode_reward={mean_reward:.2f} +/- {std_reward:.2f}")
            print(f"Episode length: {mean_length:.2f} +/- {np.std(lengths):.2f}")
        if self.logger is not None:
            self.logger.record("eval/mean_reward", mean_reward)
            self.logger.record("eval/mean_ep_length", mean_length)
            self.logger.dump(self.num_timesteps)
        if mean_reward <= self.best_mean_reward:
            return True
        if self.verbose >= 1:
            print("New best mean reward!")
        self.best_mean_reward = mean_reward
        if self.best_model_save_path is not None:
            self.model.save(os.path.join(self.best_model_save_path, "best_model.pt"))
        if self.callback_on_new_best is not None:
            return self.callback_on_new_best.on_step()
        return True


class CheckpointCallback(BaseCallback):
    """Every ``save_freq`` vector steps, ``model.save`` to
    ``save_path/{name_prefix}_{num_timesteps}_steps.pt`` (SB3's names, hrlkit's checkpoint
    format: load with ``hrlkit.<Agent>.load``). Taken at the step it falls on, which may be
    inside an on-policy agent's rollout; the trainer's own checkpoints (``checkpoint_every``),
    taken right after updates, are the ones a resume continues from exactly."""

    def __init__(self, save_freq: int, save_path: str, name_prefix: str = "rl_model", verbose: int = 0):
        super().__init__(verbose)
        self.save_freq = _check_count("save_freq", save_freq)
        self.save_path = os.fspath(save_path)
        self.name_prefix = name_prefix

    def _init_callback(self) -> None:
        os.makedirs(self.save_path, exist_ok=True)

    def _on_step(self) -> bool:
        if self.n_calls % self.save_freq == 0:
            path = os.path.join(self.save_path, f"{self.name_prefix}_{self.num_timesteps}_steps.pt")
            self.model.save(path)
            if self.verbose >= 2:
                print(f"Saving model checkpoint to {path}")
        return True
