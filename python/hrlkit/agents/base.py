"""The surface every hrlkit agent shares (Stable-Baselines3's shape):

    agent = hrlkit.OptionCritic("CartPole-v1", seed=0, **hparams)
    agent.learn(200_000)
    action, state = agent.predict(obs, state)
    agent.save("oc.pt"); agent = hrlkit.OptionCritic.load("oc.pt")

An agent subclass defines only what it computes: ``build`` (networks, optimizers), ``act``
(exploratory actions for the vector env), ``observe`` (a transition batch), ``ready`` /
``update`` (a learning step), ``predict`` (greedy actions for evaluation) and its extra state for
checkpoints. An off-policy agent owes gradient steps as data comes in (``owe_gradient_steps`` in
``observe``, tested by the default ``ready``) and runs them in ``update`` with ``run_owed_steps``.
How it is driven (vector envs, logging, evaluation, checkpoints, resume) lives in
:mod:`hrlkit.runtime.trainer`, the one loop for every agent.
"""
from __future__ import annotations

import pickle
import random
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from ..nets import is_image_space
from ..runtime import checkpoint
from ..runtime.config import ConfigError, build_config, to_dict, with_current_names
from ..runtime.envs import (EnvMaker, normalization_state, set_normalization_state,
                             share_observation_statistics)
from ..runtime.errors import NonFiniteError
from ..runtime.threads import DEFAULT_THREADS, check_threads, torch_threads


class Algorithm:
    name: ClassVar[str] = ""
    Config: ClassVar[type]

    def __init__(
        self,
        env: Any,
        *,
        seed: int = 0,
        device: str = "cpu",
        async_envs: bool = False,
        env_kwargs: dict | None = None,
        wrappers: list | None = None,
        env_module: list[str] | str | None = None,
        eval_env: Any = None,
        threads: int = DEFAULT_THREADS,
        config: dict | None = None,
        **hparams: Any,
    ):
        """``env``: an env id (``"CartPole-v1"``, ``"mypkg.envs:MyEnv-v0"``), a gymnasium.Env, a
        zero-argument factory or a gymnasium.vector.VectorEnv (SAME_STEP autoreset);
        ``num_envs`` applies to ids and factories. ``wrappers``: gymnasium wrappers applied in
        order to each env (names, ``"NAME:key=value,..."``, ``"package.module:Class"`` or
        ``{"name": ..., **kwargs}``); ``env_module``: modules to import first (they register
        ids); ``eval_env``: the evaluation env (default: a new env made like the training ones,
        with their observation-normalization statistics, frozen)."""
        maker = env if isinstance(env, EnvMaker) else EnvMaker(env, env_kwargs=env_kwargs, wrappers=wrappers,
                                                                 env_module=env_module)
        self.config = build_config(self.Config, config or {}, hparams)
        fixed = maker.fixed_num_envs()
        if fixed is not None and fixed != self.config.num_envs:
            if "num_envs" in {**(config or {}), **hparams}:
                raise ConfigError(f"num_envs: {self.config.num_envs} asked, but the env given is {fixed} env(s); "
                                  f"num_envs applies to env ids and factories")
            self.config = build_config(self.Config, config or {}, hparams, {"num_envs": fixed})
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed: expected an int >= 0, got {seed!r}")
        self.threads = check_threads(threads)
        self.device = self._check_device(device)
        self.env_maker = maker
        self.eval_env_maker = None if eval_env is None else (
            eval_env if isinstance(eval_env, EnvMaker) else EnvMaker(eval_env))
        self.env_kwargs = maker.env_kwargs
        self.seed = int(seed)
        self.async_envs = async_envs
        self.envs = maker.vector_env(self.config.num_envs, async_envs=async_envs)
        self.env_id = maker.name  # the env's id, or a name for an env handed over as an object
        self.observation_space = self.envs.single_observation_space
        self.action_space = self.envs.single_action_space
        self._resolve_config()
        self._check_spaces()
        seed_everything(self.seed)
        self.rng = np.random.default_rng(self.seed)
        self.global_step = 0
        self.num_updates = 0
        self.total_steps = 0  # set by learn(); learning-rate schedules read it
        self.update_credit = 0.0  # gradient steps owed (off-policy agents: see owe_gradient_steps)
        self.best_eval_return = -np.inf
        self.last_evaluation: dict | None = None  # the last greedy evaluation of learn(): step, mean/std return, episodes
        with torch_threads(self.threads):
            self.build()
        obs, _ = self.envs.reset(seed=self.seed)
        self.obs = obs
        self.episode_return = np.zeros(self.config.num_envs)
        self.episode_length = np.zeros(self.config.num_envs, dtype=np.int64)
        self.on_episode_start(np.ones(self.config.num_envs, dtype=bool))

    # ---- to be defined by each agent ----------------------------------------------------------
    def _resolve_config(self) -> None:
        """Fill in what the configuration leaves to the env's spaces (``self.config``, replaced);
        by default nothing."""

    def _check_spaces(self) -> None:
        """Raise ConfigError when the env's spaces are not supported."""

    def build(self) -> None:
        raise NotImplementedError

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Exploratory actions for the vector env's current observations."""
        raise NotImplementedError

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated) -> None:
        """One vector step: next_obs is the observation each transition really ended in."""
        raise NotImplementedError

    def on_episode_start(self, mask: np.ndarray) -> None:
        """Sub-envs in ``mask`` start a new episode at their current observation."""

    def ready(self) -> bool:
        """Whether ``update`` has work; by default, whether a whole gradient step is owed."""
        return self.update_credit >= 1.0

    def update(self) -> dict[str, float]:
        raise NotImplementedError

    def predict(self, obs: Any, state: Any = None, deterministic: bool = True) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def active_option(self, state: Any) -> int | None:
        """The option running in a ``predict`` state (drawn on evaluation videos), if any."""
        return None

    def log_stats(self) -> dict[str, float]:
        """Extra scalars to log (e.g. option usage), reset after each read."""
        return {}

    def state_extra(self) -> dict[str, Any]:
        """Agent state beyond modules and optimizers (e.g. the running options)."""
        return {}

    def load_state_extra(self, state: dict[str, Any]) -> None:
        pass

    def modules(self) -> dict[str, Any]:
        """Named torch modules and optimizers saved in checkpoints."""
        raise NotImplementedError

    # ---- SB3-shaped surface ---------------------------------------------------------------------
    def learn(self, total_steps: int, **kwargs: Any) -> "Algorithm":
        """Train until ``global_step`` reaches ``total_steps``; see :func:`hrlkit.runtime.trainer.train`.
        Runs with ``self.threads`` torch CPU threads (default 1, as ``hrlkit train``), then gives
        back the caller's torch setting."""
        from ..runtime.trainer import train

        train(self, total_steps, **kwargs)
        return self

    def save(self, path: str, *, include_envs: bool = True, policy_only: bool = False) -> None:
        """Write a checkpoint (see :mod:`hrlkit.runtime.checkpoint`); refused, writing nothing, while
        any parameter is NaN or infinite. ``policy_only``: the networks and counters alone, no
        optimizer state, replay, rollout or envs (a small file to evaluate, ``predict`` or draw
        skills from; training on from it starts fresh optimizers and an empty replay)."""
        if not isinstance(policy_only, bool):
            raise ValueError(f"policy_only: expected a bool, got {policy_only!r}")
        self.check_finite_parameters()
        payload = self.checkpoint_payload(include_envs=include_envs and not policy_only)
        if policy_only:
            kept = _without_optimizers(self.modules())
            payload["modules"] = {k: v for k, v in payload["modules"].items() if k in kept}
            payload.update(policy_only=True, extra={}, obs=None)
        checkpoint.save(path, payload)

    @classmethod
    def load(cls, path: str, *, device: str | None = None, env: Any = None,
             threads: int | None = None, trust_pickle: bool = False) -> "Algorithm":
        """The agent saved at ``path``. Loading runs no code from the file (it imports the env
        modules and wrapper classes the run names, by name). ``env``: the env to run it on (any
        form ``__init__`` takes), needed when the run's env was handed over as an object; by
        default the run's own, rebuilt. ``trust_pickle=True`` also restores the pickled
        environments (an exact resume): only for files you trust."""
        return load_agent(path, cls, device=device, env=env, threads=threads, trust_pickle=trust_pickle)

    def get_parameters(self) -> dict[str, dict[str, Any]]:
        """The state dict of each module and optimizer of :meth:`modules`, by its name there
        (Stable-Baselines3's ``get_parameters``); copies, so training on leaves them as they are."""
        import copy

        return {name: copy.deepcopy(m.state_dict()) for name, m in self.modules().items()}

    def set_parameters(self, params: dict[str, dict[str, Any]], exact_match: bool = True) -> None:
        """Load ``params`` (as :meth:`get_parameters` gives them) into the modules and optimizers
        (Stable-Baselines3's ``set_parameters``). ``exact_match``: every name of :meth:`modules`
        and every key of each module's state dict must be given (else a subset loads). Names,
        keys and tensor shapes are checked first: a mismatch raises ValueError naming each
        difference, and nothing changes."""
        mods = self.modules()
        if not isinstance(params, dict):
            raise TypeError(f"params: expected a dict of state dicts by module name, got {type(params).__name__}")
        problems = [f"unknown name {k!r}" for k in sorted(set(params) - set(mods), key=str)]
        if exact_match:
            problems += [f"{k!r} missing" for k in sorted(set(mods) - set(params))]

        def shapes(state: Any) -> dict[str, tuple]:
            return {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}

        for name, given in params.items():
            if name not in mods:
                continue
            if not isinstance(given, dict):
                problems.append(f"{name!r}: expected a state dict, got {type(given).__name__}")
                continue
            current = mods[name].state_dict()
            if isinstance(mods[name], torch.optim.Optimizer):
                ours = [len(g["params"]) for g in current["param_groups"]]
                theirs = [len(g.get("params", ())) for g in given.get("param_groups", ())]
                if ours != theirs:
                    problems.append(f"{name!r}: parameter groups of {theirs} parameters given, {ours} here")
                    continue
                ids = [i for g in given["param_groups"] for i in g["params"]]
                ref = [p for g in mods[name].param_groups for p in g["params"]]
                for pid, state in given.get("state", {}).items():
                    p = ref[ids.index(pid)] if pid in ids else None
                    for k, shape in shapes(state).items():
                        if p is not None and len(shape) > 0 and shape != tuple(p.shape):
                            problems.append(f"{name!r}: state {k!r} of parameter {pid} has shape {shape}, "
                                            f"the parameter {tuple(p.shape)}")
                continue
            ours, theirs = shapes(current), shapes(given)
            unexpected = sorted(set(theirs) - set(ours))
            absent = sorted(set(ours) - set(theirs)) if exact_match else []
            if unexpected or absent:
                problems.append(f"{name!r}: keys {absent} missing, {unexpected} unexpected")
            problems += [f"{name!r}: {k!r} has shape {theirs[k]} given, {ours[k]} here"
                         for k in sorted(set(ours) & set(theirs)) if ours[k] != theirs[k]]
        if problems:
            raise ValueError(f"set_parameters: params do not match {type(self).__name__}'s (modules "
                             f"{sorted(mods)}); nothing was changed: " + "; ".join(problems))
        backup = self.get_parameters()
        try:
            for name, given in params.items():
                if isinstance(mods[name], torch.optim.Optimizer):
                    mods[name].load_state_dict(given)
                else:
                    mods[name].load_state_dict(given, strict=exact_match)
        except Exception:
            for name, state in backup.items():
                mods[name].load_state_dict(state)
            raise
        from ..runtime.cuda_graphs import CapturedStep

        for value in vars(self).values():  # captured CUDA graphs read the optimizers' old state tensors
            if isinstance(value, CapturedStep):
                value.reset()

    # ---- checkpoints -----------------------------------------------------------------------------
    def checkpoint_payload(self, *, include_envs: bool = True) -> dict[str, Any]:
        envs_blob = None
        if include_envs and not self.async_envs and _pickle_keeps_state(self.envs):
            try:
                envs_blob = pickle.dumps(self.envs)
            except Exception:  # noqa: BLE001 - an env that cannot be pickled resumes from a reset
                envs_blob = None
        return {
            "algo": self.name,
            "env_id": self.env_id,
            "env_kwargs": self.env_kwargs,
            "env_spec": self.env_maker.spec(),
            "normalization": normalization_state(self.envs),
            "seed": self.seed,
            "threads": self.threads,
            "config": to_dict(self.config),
            "global_step": self.global_step,
            "num_updates": self.num_updates,
            "total_steps": self.total_steps,
            "best_eval_return": self.best_eval_return,
            "modules": {k: m.state_dict() for k, m in self.modules().items()},
            "rng": {**checkpoint.rng_state(), "agent": self.rng.bit_generator.state},
            "obs": self.obs,
            "episode_return": self.episode_return,
            "episode_length": self.episode_length,
            "envs": envs_blob,
            "extra": {**self.state_extra(), "update_credit": self.update_credit},
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any], *, device: str | None = None, env: Any = None,
                     threads: int | None = None) -> "Algorithm":
        """The agent a checkpoint holds, on ``env`` (default: the run's own env, rebuilt from its
        recorded id, kwargs, wrappers and env modules); ``threads`` (default: the run's own)."""
        own_env = env is None
        if own_env:
            env = run_env_maker(data)
        agent = cls(
            env,
            seed=data["seed"],
            device=device or "cpu",
            threads=data.get("threads", DEFAULT_THREADS) if threads is None else threads,
            config=with_current_names(cls.Config, data["config"]),  # a checkpoint from before a rename loads
        )
        mods = agent.modules()
        policy_only = bool(data.get("policy_only", False))
        if policy_only:  # a policy file: its optimizers start fresh
            mods = _without_optimizers(mods)
        missing = set(mods) ^ set(data["modules"])
        if missing:
            raise ValueError(f"checkpoint: modules {sorted(missing)} do not match {cls.__name__}'s")
        for k, m in mods.items():
            try:
                m.load_state_dict(data["modules"][k])
            except (RuntimeError, ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"checkpoint: module {k!r} does not match {cls.__name__}'s ({exc})") from exc
        agent.global_step = int(data["global_step"])
        agent.num_updates = int(data["num_updates"])
        agent.total_steps = int(data.get("total_steps", 0))
        agent.best_eval_return = float(data.get("best_eval_return", -np.inf))
        # the run's own env (rebuilt, or handed over because it could not be): its state carries on
        same_env = own_env or data.get("env_spec", "legacy") is None
        if data.get("normalization") and same_env:
            set_normalization_state(agent.envs, data["normalization"])
        if data.get("envs") is not None and same_env:
            agent.envs.close()
            agent.envs = pickle.loads(data["envs"])
            agent.obs = data["obs"]
            agent.episode_return = np.array(data["episode_return"])
            agent.episode_length = np.array(data["episode_length"])
        if same_env and not policy_only:  # replay, counters, running options (re-chosen below where the envs start afresh)
            extra = data.get("extra", {})
            agent.update_credit = float(extra.get("update_credit", 0.0))
            agent.load_state_extra(extra)
            if data.get("envs") is None:
                agent.on_episode_start(np.ones(agent.config.num_envs, dtype=bool))
        checkpoint.set_rng_state(data["rng"])
        agent.rng.bit_generator.state = data["rng"]["agent"]
        return agent

    # ---- helpers ---------------------------------------------------------------------------------
    def make_eval_env(self, render_mode: str | None = None) -> tuple[gym.Env, bool]:
        """An evaluation env (the ``eval_env`` given, or one made like the training envs, with
        their observation statistics, frozen) and whether the caller should close it (not an
        instance the user handed over)."""
        if self.eval_env_maker is not None:
            env = self.eval_env_maker.make(render_mode)
        else:
            env = self.env_maker.make(render_mode, for_eval=True)
        share_observation_statistics(self.envs, env)
        owned = self.eval_env_maker is None or self.eval_env_maker.instance is None
        return env, owned

    def check_finite_parameters(self) -> None:
        """Raise NonFiniteError naming the first module whose parameters or buffers hold NaN/inf."""
        for name, m in self.modules().items():
            if isinstance(m, torch.nn.Module):
                for pname, t in (*m.named_parameters(), *m.named_buffers()):
                    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                        raise NonFiniteError(f"{name}.{pname}: non-finite values at step {self.global_step}; "
                                             f"no checkpoint is written with them")

    def linear_schedule(self, start: float, end: float, span: float) -> float:
        """``start`` moved linearly to ``end`` over the first ``span`` env steps (at least 1), then
        held: exploration rates, prioritized replay's beta."""
        frac = min(1.0, self.global_step / max(1, span))
        return start + frac * (end - start)

    def schedule_learning_rate(self, optimizer: torch.optim.Optimizer, schedule: str) -> None:
        """Each param group's ``lr`` for this update: its ``base_lr`` ('constant'), or that times
        1 - global_step / total_steps, down to 0 at the end of ``learn(total_steps)`` ('linear')."""
        if schedule == "linear":
            frac = max(0.0, 1.0 - self.global_step / max(1, self.total_steps))
            for group in optimizer.param_groups:
                group["lr"] = group.setdefault("base_lr", group["lr"]) * frac  # (a group saved without one: its lr)

    # ---- gradient steps owed (off-policy agents) --------------------------------------------------
    def owe_gradient_steps(self, n: float) -> None:
        """Owe ``n`` more gradient steps (fractions add up), from the vector step that reaches
        ``config.learning_starts`` on: ``observe`` calls it with the update-to-data ratio times the
        transitions it stored. Checkpoints keep the credit (extra["update_credit"])."""
        if self.global_step + self.config.num_envs > self.config.learning_starts:
            self.update_credit += n

    def run_owed_steps(self, step) -> dict[str, Any]:
        """Run ``step()`` once per whole gradient step owed (:meth:`owe_gradient_steps`) and
        return the last step's stats."""
        steps = int(self.update_credit)
        self.update_credit -= steps
        stats: dict[str, Any] = {}
        for _ in range(steps):
            stats = step()
        return stats

    @staticmethod
    def _check_device(device: str) -> torch.device:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ConfigError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {device!r}") from exc
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device: 'cuda' requested but torch sees no CUDA device; use --device cpu")
        return dev

    def obs_tensor(self, obs: Any) -> torch.Tensor:
        """Observations as a float tensor on the agent's device (Discrete ids one-hot encoded;
        pixels stay uint8, for the conv encoder to scale)."""
        space = self.observation_space
        if is_image_space(space):
            return torch.as_tensor(np.asarray(obs), dtype=torch.uint8, device=self.device)
        if isinstance(space, gym.spaces.Discrete):
            idx = torch.as_tensor(np.asarray(obs), dtype=torch.int64, device=self.device)
            return torch.nn.functional.one_hot(idx, int(space.n)).float()
        return torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device)

    def close(self) -> None:
        self.envs.close()


def run_env_maker(data: dict[str, Any]) -> EnvMaker:
    """The env maker a run recorded (checkpoint payload or config.json): its id, kwargs, wrappers
    and env modules; a ConfigError when its env was handed over as an object."""
    if "env_spec" not in data:  # written before env specs were recorded: an id and its kwargs
        return EnvMaker(data["env_id"], env_kwargs=data.get("env_kwargs"))
    if data["env_spec"] is None:
        raise ConfigError(f"env: this run's env ({data.get('env_id')}) was handed over as an object and cannot be "
                          f"rebuilt; pass env= (hrlkit eval/skills: --env)")
    return EnvMaker.from_spec(data["env_spec"])


def load_agent(path: str, cls: type[Algorithm] | None = None, *, device: str | None = None,
               env: Any = None, threads: int | None = None, trust_pickle: bool = False) -> Algorithm:
    """The agent of the checkpoint at ``path`` (of class ``cls``, or the one its ``algo`` names).
    Every error names the file. ``trust_pickle``: see :meth:`Algorithm.load`."""
    from . import ALGORITHMS

    data = checkpoint.load(path, expect_algo=None if cls is None else cls.name, trust_pickle=trust_pickle)
    if cls is None:
        if data["algo"] not in ALGORITHMS:
            raise checkpoint.CheckpointError(f"path: {path!r} holds an unknown algorithm {data['algo']!r}")
        cls = ALGORITHMS[data["algo"]]
    try:
        return cls.from_payload(data, device=device, env=env, threads=threads)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (in checkpoint {path!r})") from exc
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as exc:
        raise checkpoint.CheckpointError(f"path: {path!r} holds a checkpoint that does not load ({exc!r})") from exc


def _without_optimizers(mods: dict[str, Any]) -> dict[str, Any]:
    """:meth:`Algorithm.modules` less its optimizers: what a policy-only file holds."""
    return {k: m for k, m in mods.items() if not isinstance(m, torch.optim.Optimizer)}


def is_flat_box(space: gym.Space) -> bool:
    """A Box of one dimension (a vector observation or action)."""
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 1


def is_bounded_box(space: gym.Space) -> bool:
    """A flat Box with finite bounds on every dimension (actions that can be squashed into it)."""
    return is_flat_box(space) and bool(np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)))


def obs_width(space: gym.Space) -> int:
    """Width of a flat observation as :meth:`Algorithm.obs_tensor` gives it (Discrete: one-hot)."""
    return int(space.n) if isinstance(space, gym.spaces.Discrete) else int(space.shape[0])


def _pickle_keeps_state(envs: gym.vector.VectorEnv) -> bool:
    """Whether pickling these envs keeps their simulation state. Envs built on gymnasium's
    EzPickle (MuJoCo, Box2D) pickle only their constructor arguments: they unpickle to a fresh,
    un-reset simulation (CarRacing cannot even step), so a checkpoint leaves them out and a
    resumed run starts new, seeded episodes instead."""
    from gymnasium.utils import EzPickle

    subs = getattr(envs, "envs", None)
    return subs is not None and not any(isinstance(e.unwrapped, EzPickle) for e in subs)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_random_seed(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch (every device), as each agent does
    with its ``seed`` (Stable-Baselines3's ``set_random_seed``)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed: expected an int >= 0, got {seed!r}")
    seed_everything(int(seed))
