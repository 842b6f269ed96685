"""Environments: how a run's envs are made, from whatever the user hands an agent.

Every env-building path (training, evaluation, `hrlkit eval`/`skills`, `--resume`) goes through
one :class:`EnvMaker`, made from an env id (``"CartPole-v1"``, or gymnasium's
``"module:Id"``), a ``gymnasium.Env`` instance, a zero-argument factory, or a
``gymnasium.vector.VectorEnv``, plus the run's wrapper chain (gymnasium wrapper names or
``"package.module:Class"``, applied in order to each env) and env modules (imported before the
env is made: they register the user's ids). Ids are rebuilt from what the run records
(:meth:`EnvMaker.spec`); instances, factories and VectorEnvs are not, so loading such a run
takes ``env=``.

Vector envs use gymnasium's SAME_STEP autoreset: when a sub-env's episode ends, ``step``
returns the first observation of its next episode and puts the last one in
``info["final_obs"]``. The runtime hands agents (obs, action, reward, real next obs) with that
final observation, so no transition ever spans two episodes. A VectorEnv the user built must
use that mode too (it is refused otherwise, saying how to build one).
"""
from __future__ import annotations

import copy
import difflib
import importlib
import inspect
import re
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from .config import ConfigError
from .errors import EnvError

_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
# reward normalizers are left out of evaluation envs: an evaluation reports the env's own return
_REWARD_NORMALIZERS = ("NormalizeReward",)


def check_env_id(env_id: str) -> None:
    import hrlkit.envs  # noqa: F401 - registers hrlkit's own environments

    if not isinstance(env_id, str) or env_id not in gym.registry:
        close = difflib.get_close_matches(str(env_id), list(gym.registry), n=5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `hrlkit list` names the registered ids"
        raise ConfigError(f"env: unknown environment id {env_id!r}{hint}")


def import_env_modules(modules: list[str]) -> None:
    """Import the user's env modules (they register ids with gymnasium on import)."""
    for name in modules:
        if not isinstance(name, str) or not _DOTTED.fullmatch(name):
            raise ConfigError(f"env_module: expected a module name such as 'mypkg.envs', got {name!r}")
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"env_module: cannot import {name!r} ({exc})") from exc


# ---- wrappers ------------------------------------------------------------------------------------
def parse_wrapper(item: Any) -> dict[str, Any]:
    """A wrapper of the chain as ``{"name": ..., "kwargs": {...}}``, from the CLI's
    ``NAME[:key=value,...]`` (NAME a gymnasium.wrappers name or ``package.module:Class``; values
    read as YAML: ``shape=[64,64]``, ``stack_size=4``) or a config file's mapping (``{name: X,
    key: value}`` or ``{name: X, kwargs: {...}}``)."""
    if isinstance(item, dict):
        if "name" not in item:
            raise ConfigError(f"wrappers: expected a mapping with a 'name' key, got {item!r}")
        kwargs = dict(item.get("kwargs") or {}) if "kwargs" in item else {k: v for k, v in item.items() if k != "name"}
        spec = {"name": item["name"], "kwargs": kwargs}
    elif isinstance(item, str):
        name, args = item, ""
        head, sep, tail = item.partition(":")
        if sep and "=" in tail.split(":", 1)[0]:  # NAME:key=value,...
            name, args = head, tail
        elif sep and ":" in tail:  # package.module:Class:key=value,...
            cls, _, args = tail.partition(":")
            name = f"{head}:{cls}"
        spec = {"name": name, "kwargs": _parse_kwargs(args, item)}
    else:
        raise ConfigError(f"wrappers: expected 'NAME[:key=value,...]' or a mapping, got {item!r}")
    resolve_wrapper(spec["name"])  # fail now, before anything is built
    return spec


def _parse_kwargs(text: str, item: str) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    depth, start, parts = 0, 0, []
    for i, ch in enumerate(text + ","):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    for part in (p.strip() for p in parts):
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq or not key.strip().isidentifier():
            raise ConfigError(f"--wrap: expected NAME[:key=value,...], got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value.replace("(", "[").replace(")", "]"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"--wrap: cannot read {part!r} in {item!r} ({exc})") from None
    return out


def resolve_wrapper(name: str) -> type:
    """The wrapper class ``name`` stands for: a name in ``gymnasium.wrappers``, or
    ``package.module:Class``; it must be a ``gymnasium.Wrapper`` (so a run's record can name
    only wrappers, never an arbitrary callable)."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"wrappers: expected a wrapper name, got {name!r}")
    module, sep, attr = name.rpartition(":")
    if not sep:
        module, attr = "gymnasium.wrappers", name
    if not _DOTTED.fullmatch(module) or not attr.isidentifier():
        raise ConfigError(f"wrappers: expected a gymnasium.wrappers name or 'package.module:Class', got {name!r}")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        close = difflib.get_close_matches(attr, dir(gym.wrappers), n=3) if not sep else []
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"wrappers: cannot resolve {name!r} ({exc}){hint}") from None
    if not (inspect.isclass(cls) and issubclass(cls, gym.Wrapper)):
        raise ConfigError(f"wrappers: {name!r} is not a gymnasium.Wrapper subclass")
    return cls


def apply_wrappers(env: gym.Env, wrappers: list[dict[str, Any]], *, for_eval: bool = False) -> gym.Env:
    for w in wrappers:
        cls = resolve_wrapper(w["name"])
        if for_eval and cls.__name__ in _REWARD_NORMALIZERS:
            continue
        try:  # YAML, JSON and the CLI have no tuples; wrappers such as ResizeObservation want them
            env = cls(env, **{k: _as_tuples(v) for k, v in w["kwargs"].items()})
        except TypeError as exc:
            raise ConfigError(f"wrappers: {w['name']} does not take {w['kwargs']} ({exc})") from None
    return env


def _as_tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_as_tuples(v) for v in value)
    return value


# ---- the one env maker ----------------------------------------------------------------------------
class EnvMaker:
    """Makes a run's envs: ``vector(n)`` for training, ``single()`` for evaluation."""

    def __init__(self, env: Any, *, env_kwargs: dict | None = None, wrappers: list | None = None,
                 env_module: list[str] | str | None = None):
        self.env_kwargs = dict(env_kwargs or {})
        self.wrappers = [parse_wrapper(w) for w in (wrappers or [])]
        self.env_module = [env_module] if isinstance(env_module, str) else list(env_module or [])
        self.env_id: str | None = None
        self.instance: gym.Env | None = None
        self.factory: Callable[[], gym.Env] | None = None
        self.vector: gym.vector.VectorEnv | None = None
        if isinstance(env, str):
            module, sep, env_id = env.rpartition(":")
            if sep:  # gymnasium's own "module:Id"
                self.env_module.append(module)
            import_env_modules(self.env_module)
            check_env_id(env_id)
            self.env_id = env_id
        elif isinstance(env, gym.vector.VectorEnv):
            mode = env.metadata.get("autoreset_mode")
            if mode != gym.vector.AutoresetMode.SAME_STEP:
                raise ConfigError(
                    f"env: a VectorEnv with autoreset_mode {getattr(mode, 'name', mode)}; hrlkit needs SAME_STEP "
                    f"(no transition may span two episodes): build it with gym.make_vec(id, n, "
                    f"vectorization_mode='sync', vector_kwargs={{'autoreset_mode': gym.vector.AutoresetMode.SAME_STEP}}),"
                    f" or pass a zero-argument env factory")
            if self.wrappers:
                raise ConfigError("wrappers: cannot wrap the sub-envs of a VectorEnv you built; pass an env id or a "
                                  "factory with wrappers, or wrap the envs before vectorizing them")
            self.vector = env
        elif isinstance(env, gym.Env):
            self.instance = env
        elif callable(env):
            self.factory = env
        else:
            raise ConfigError(f"env: expected an env id, a gymnasium.Env, a zero-argument env factory or a "
                              f"gymnasium.vector.VectorEnv, got {type(env).__name__}")
        if self.env_kwargs and self.env_id is None:
            raise ConfigError("env_kwargs: only for an env id (an instance, factory or VectorEnv is already made)")
        self.name = self.env_id or _env_name(env)

    def fixed_num_envs(self) -> int | None:
        """The number of envs this maker can give (None: any)."""
        if self.vector is not None:
            return int(self.vector.num_envs)
        return 1 if self.instance is not None else None

    def _base(self, render_mode: str | None = None) -> gym.Env:
        if self.env_id is not None:
            kwargs = dict(self.env_kwargs)
            if render_mode is not None:
                kwargs["render_mode"] = render_mode
            return gym.make(self.env_id, **kwargs)
        if self.factory is not None:
            env = self.factory()
            if not isinstance(env, gym.Env):
                raise ConfigError(f"env: the factory returned a {type(env).__name__}, not a gymnasium.Env")
            return env
        if self.instance is not None:
            return self.instance
        raise ConfigError("env: this run's envs were a VectorEnv; pass eval_env= (or env= to load) for a single env")

    def make(self, render_mode: str | None = None, *, for_eval: bool = False) -> gym.Env:
        """One env with the wrapper chain (reward normalizers left out for evaluation)."""
        if for_eval and self.instance is not None:
            raise ConfigError("eval_env: the training env is an instance, which cannot be copied for evaluation; "
                              "pass eval_env= (an env, a factory or an id)")
        return apply_wrappers(self._base(render_mode), self.wrappers, for_eval=for_eval)

    def vector_env(self, num_envs: int, *, async_envs: bool = False) -> gym.vector.VectorEnv:
        if self.vector is not None:
            return self.vector
        fns = [self.make for _ in range(num_envs)]
        cls = gym.vector.AsyncVectorEnv if async_envs and self.instance is None else gym.vector.SyncVectorEnv
        envs = cls(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
        if self.factory is not None and hasattr(envs, "envs"):  # name a factory's run by the env it makes
            self.name = _env_name(envs.envs[0])
        return envs

    def spec(self) -> dict[str, Any] | None:
        """How to make these envs again (recorded in config.json and checkpoints), or None when
        they were handed over as objects."""
        if self.env_id is None:
            return None
        return {"id": self.env_id, "kwargs": copy.deepcopy(self.env_kwargs), "wrappers": copy.deepcopy(self.wrappers),
                "env_module": list(self.env_module)}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "EnvMaker":
        if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
            raise ConfigError(f"env: expected a recorded env spec with an id, got {spec!r}")
        return cls(spec["id"], env_kwargs=spec.get("kwargs"), wrappers=spec.get("wrappers"),
                   env_module=spec.get("env_module"))


def _env_name(env: Any) -> str:
    spec = getattr(env, "spec", None)
    if spec is not None and getattr(spec, "id", None):
        return spec.id
    inner = getattr(env, "unwrapped", env)
    return getattr(inner, "__name__", None) or type(inner).__name__


def make_env(env_id: str, env_kwargs: dict | None = None, render_mode: str | None = None) -> gym.Env:
    """A single env by id (no wrappers): for tools that only know an id."""
    return EnvMaker(env_id, env_kwargs=env_kwargs).make(render_mode)


# ---- normalization statistics belong to the run ------------------------------------------------------
_RMS = ("obs_rms", "return_rms")


def normalization_state(envs: gym.vector.VectorEnv) -> dict[str, list[dict[str, Any]]]:
    """The running statistics of NormalizeObservation / NormalizeReward in each sub-env
    (``{"obs_rms": [{"mean", "var", "count"} per sub-env], ...}``; empty without them)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for attr in _RMS:
        if not _has_wrapper_attr(envs, attr):
            continue
        values = envs.call("get_wrapper_attr", attr)
        if values:
            out[attr] = [{"mean": np.asarray(r.mean), "var": np.asarray(r.var), "count": float(r.count)} for r in values]
    return out


def _has_wrapper_attr(envs: gym.vector.VectorEnv, attr: str) -> bool:
    """Whether every sub-env's wrapper chain has ``attr``, asked without raising inside the
    sub-envs (an AttributeError raised in an AsyncVectorEnv's worker shuts the worker down)."""
    if not hasattr(envs, "call"):
        return False
    try:
        return all(envs.call("has_wrapper_attr", attr))
    except AttributeError:
        return False


def set_normalization_state(envs: gym.vector.VectorEnv, state: dict[str, list[dict[str, Any]]]) -> None:
    """Restore what :func:`normalization_state` saved (a resumed run; no unpickling needed)."""
    for attr, per_env in state.items():
        if attr not in _RMS or not _has_wrapper_attr(envs, attr):
            continue
        current = envs.call("get_wrapper_attr", attr)
        for i, (rms, saved) in enumerate(zip(current, per_env)):
            _set_rms(rms, saved)
            if hasattr(envs, "envs"):
                envs.envs[i].set_wrapper_attr(attr, rms)
            else:  # async: each sub-env keeps its copy in its own process
                envs.call("set_wrapper_attr", attr, rms)


def merged_statistics(per_env: list[dict[str, Any]]) -> dict[str, Any]:
    """One mean/var/count from several sub-envs' (the parallel-variance combination)."""
    mean, var, count = per_env[0]["mean"], per_env[0]["var"], per_env[0]["count"]
    for s in per_env[1:]:
        total = count + s["count"]
        delta = s["mean"] - mean
        mean = mean + delta * s["count"] / total
        var = (var * count + s["var"] * s["count"] + delta ** 2 * count * s["count"] / total) / total
        count = total
    return {"mean": mean, "var": var, "count": count}


def share_observation_statistics(envs: gym.vector.VectorEnv, eval_env: gym.Env) -> None:
    """Give an evaluation env the training envs' observation statistics, frozen (SB3's
    VecNormalize rule: evaluation sees what training learned, and does not change it)."""
    state = normalization_state(envs).get("obs_rms")
    try:
        rms = eval_env.get_wrapper_attr("obs_rms")
    except AttributeError:
        return
    if state:
        _set_rms(rms, merged_statistics(state))
    eval_env.set_wrapper_attr("update_running_mean", False)


def _set_rms(rms, saved: dict[str, Any]) -> None:
    rms.mean = np.array(saved["mean"], dtype=np.asarray(rms.mean).dtype).reshape(np.shape(rms.mean))
    rms.var = np.array(saved["var"], dtype=np.asarray(rms.var).dtype).reshape(np.shape(rms.var))
    rms.count = float(saved["count"])


def real_next_obs(next_obs: np.ndarray, infos: dict[str, Any], done: np.ndarray) -> np.ndarray:
    """The observation each transition actually ended in: ``info["final_obs"]`` where the
    episode ended (SAME_STEP autoreset), else ``next_obs``."""
    if not done.any():
        return next_obs
    real = np.array(next_obs, copy=True)
    mask = infos.get("_final_obs", done)
    for i in np.flatnonzero(mask):
        real[i] = infos["final_obs"][i]
    return real


def step_envs(agent, actions):
    """``agent.envs.step(actions)``; an env whose output does not fit its space (which gymnasium
    reports as "Output array is the wrong shape") is an EnvError naming the env and the space."""
    try:
        return agent.envs.step(actions)
    except ValueError as exc:
        raise EnvError(f"env {agent.env_id!r}: step failed at step {agent.global_step} ({exc}); the agent expects "
                       f"observations in {agent.observation_space} and rewards as floats") from exc


def check_finite_step(agent, rewards: np.ndarray, real_next: np.ndarray, next_obs: np.ndarray) -> None:
    """An EnvError naming the env, the step, the sub-env and the field when the env returned a NaN
    or infinite reward or observation (it would turn every parameter NaN within an update)."""
    fields = [("reward", rewards), ("observation", real_next)]
    if next_obs is not real_next:  # an episode ended: the reset observations are new values too
        fields.append(("observation", next_obs))
    for name, values in fields:
        values = np.asarray(values)
        if values.dtype.kind not in "fc" or np.isfinite(values).all():
            continue
        bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        i = int(np.flatnonzero(bad)[0])
        raise EnvError(f"env {agent.env_id!r}: sub-env {i} returned a non-finite {name} at step {agent.global_step} "
                       f"({np.asarray(values[i]).ravel()[:8].tolist()}); hrlkit trains only on finite values")
