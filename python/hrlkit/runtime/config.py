"""Hyperparameters: one dataclass per algorithm, filled from defaults, a YAML/TOML file and
``key=value`` overrides, validated before anything is built.

Every field carries its help text in ``metadata["help"]``; ``hrlkit train --help`` lists them.
"""
from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from typing import Any, Mapping


_UNIONS = (typing.Union, types.UnionType)  # Optional[float] and float | None


class ConfigError(ValueError):
    """A bad configuration: names the key, what was expected and what came."""


def field(default: Any, help: str, **kwargs) -> Any:  # noqa: A002 - mirrors argparse's name
    if isinstance(default, (list, dict, tuple)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata={"help": help}, **kwargs)
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


def describe_fields(cls) -> list[tuple[str, str, Any, str]]:
    """(name, type name, default, help) for every field of a config dataclass."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        out.append((f.name, _type_name(hints[f.name]), default, f.metadata.get("help", "")))
    return out


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"list[{_type_name(args[0])}]"
    if origin in _UNIONS:
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _coerce(key: str, value: Any, tp) -> Any:
    """Convert value (from a file or a --set string) to the field's type, or raise ConfigError."""
    origin = typing.get_origin(tp)
    if origin in _UNIONS:
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(key, value, a)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin in (list, tuple):
        (inner,) = typing.get_args(tp)[:1]
        if isinstance(value, str):
            value = [v for v in value.replace("[", "").replace("]", "").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list of {_type_name(inner)}, got {value!r}")
        return [_coerce(key, v.strip() if isinstance(v, str) else v, inner) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"{key}: expected a bool (true/false), got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an int, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                try:
                    as_float = float(value)  # "2e5"
                except ValueError:
                    as_float = None
                if as_float is not None and as_float.is_integer():
                    return int(as_float)
        raise ConfigError(f"{key}: expected an int, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a float, got {value!r}")
        number = None
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"{key}: expected a float, got {value!r}")
        if not math.isfinite(number):  # inf/NaN hyperparameters end in NaN weights, never in learning
            raise ConfigError(f"{key}: expected a finite float, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported field type {tp}")


def build_config(cls, *sources: Mapping[str, Any]):
    """A ``cls`` instance from its defaults updated by each mapping in turn (later wins).

    Unknown keys and values of the wrong type raise ConfigError naming the key; then the
    dataclass's own ``validate()`` checks ranges.
    """
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values: dict[str, Any] = {}
    for src in sources:
        for key, value in src.items():
            if key not in hints:
                raise ConfigError(f"unknown hyperparameter {key!r} for {cls.__name__}; valid keys: {', '.join(names)}")
            values[key] = _coerce(key, value, hints[key])
    cfg = cls(**values)
    validate = getattr(cfg, "validate", None)
    if validate is not None:
        validate()
    return cfg


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """``["lr=3e-4", "hidden_sizes=64,64"]`` -> ``{"lr": "3e-4", "hidden_sizes": "64,64"}``."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set: expected key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a flat mapping of hyperparameters from a .yaml/.yml or .toml file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"--config: file {path!r} does not exist")
    ext = os.path.splitext(path)[1].lower()
    if ext in (".yaml", ".yml"):
        import yaml

        with open(path) as f:
            try:
                data = yaml.safe_load(f) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"--config: {path!r} is not valid YAML ({exc})") from None
    elif ext == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib
        with open(path, "rb") as f:
            try:
                data = tomllib.load(f)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"--config: {path!r} is not valid TOML ({exc})") from None
    else:
        raise ConfigError(f"--config: expected a .yaml, .yml or .toml file, got {path!r}")
    if not isinstance(data, dict):
        raise ConfigError(f"--config: expected a mapping of hyperparameters in {path!r}, got {type(data).__name__}")
    return data


def to_dict(cfg) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def check(cond: bool, key: str, expected: str, got: Any) -> None:
    if not cond:
        raise ConfigError(f"{key}: expected {expected}, got {got!r}")
