"""Hyperparameters: one dataclass per algorithm, filled from defaults, a YAML/TOML file and
``key=value`` overrides, validated before anything is built.

Every field declares its help text and what it accepts (bounds, choices; see :func:`field`), and
validation is derived from those declarations; ``hrlkit train ALGO --help`` lists them.
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


_UNSET = object()  # a Spec's saved_before when the field has been there from the start


@dataclasses.dataclass(frozen=True)
class Spec:
    """What a field accepts, declared beside it: numeric bounds (``ge``/``gt``/``le``/``lt``; for a
    list, of every element), ``choices``, a non-empty list (``nonempty``), and names it had
    before (``renamed_from``: refused in new configurations with a message naming this field,
    accepted from old checkpoints), and the value runs saved before the field existed had
    (``saved_before``: filled in where an old checkpoint's configuration lacks the field, so a
    default changed with the field's arrival does not change what an old checkpoint rebuilds)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple | None = None
    nonempty: bool = False
    renamed_from: tuple[str, ...] = ()
    saved_before: Any = _UNSET

    def expected(self, tp) -> str:
        if self.choices is not None:
            return f"one of {list(self.choices)}"
        base = _type_name(_strip_optional(tp))
        elem = _type_name(typing.get_args(_strip_optional(tp))[0]) if base.startswith("list") else base
        noun = {"int": "an int", "float": "a number", "bool": "true or false", "str": "a string"}.get(elem, elem)
        lo = f">= {self.ge:g}" if self.ge is not None else f"> {self.gt:g}" if self.gt is not None else None
        hi = f"<= {self.le:g}" if self.le is not None else f"< {self.lt:g}" if self.lt is not None else None
        if lo and hi:
            noun += (f" in {'[' if self.ge is not None else '('}{self.ge if self.ge is not None else self.gt:g}, "
                     f"{self.le if self.le is not None else self.lt:g}{']' if self.le is not None else ')'}")
        elif lo or hi:
            noun += f" {lo or hi}"
        if base.startswith("list"):
            noun = f"a {'non-empty ' if self.nonempty else ''}list of {noun.replace('an int', 'ints').replace('a number', 'numbers')}"
        if type(None) in typing.get_args(tp):
            noun += " or None"
        return noun

    def accepts(self, value: Any) -> bool:
        if value is None:
            return True  # only Optional fields get None past the type check
        if isinstance(value, list):
            return (not self.nonempty or len(value) > 0) and all(self.accepts(v) for v in value)
        if self.choices is not None:
            return value in self.choices
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                    and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))
        return True


def field(default: Any, help: str, *, ge=None, gt=None, le=None, lt=None, choices=None, nonempty: bool = False,
          renamed_from: tuple[str, ...] = (), saved_before: Any = _UNSET, **kwargs) -> Any:  # noqa: A002 - argparse's name
    """A config field with its help text and what it accepts (see :class:`Spec`)."""
    spec = Spec(ge, gt, le, lt, None if choices is None else tuple(choices), nonempty, tuple(renamed_from), saved_before)
    metadata = {"help": help, "spec": spec}
    if isinstance(default, (list, dict, tuple)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=metadata, **kwargs)
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


def _spec(f: dataclasses.Field) -> Spec:
    return f.metadata.get("spec", Spec())


def per_kind_help(table: Mapping[str, Mapping[str, Any]], name: str) -> str:
    """The help text's note on a field left at None whose value depends on the action-space kind,
    from the agent's table {"discrete": {field: value}, "continuous": {...}}."""
    return f"None: per action-space kind ({table['discrete'][name]} discrete, {table['continuous'][name]} continuous)"


def resolve_per_kind(cfg, table: Mapping[str, Mapping[str, Any]], discrete: bool):
    """``cfg`` with each field of ``table``'s kind that is None set to that kind's value (what the
    user set is kept)."""
    kind = table["discrete" if discrete else "continuous"]
    return dataclasses.replace(cfg, **{k: v for k, v in kind.items() if getattr(cfg, k) is None})


def describe_fields(cls) -> list[tuple[str, str, Any, str]]:
    """(name, accepted values, default, help) for every field of a config dataclass."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        out.append((f.name, _spec(f).expected(hints[f.name]), default, f.metadata.get("help", "")))
    return out


def renamed_fields(cls) -> dict[str, str]:
    """{old name: current name} of a config dataclass."""
    return {old: f.name for f in dataclasses.fields(cls) for old in _spec(f).renamed_from}


def with_current_names(cls, values: Mapping[str, Any]) -> dict[str, Any]:
    """A saved configuration (e.g. an old checkpoint's) as ``cls`` reads it now: the former names
    of its fields replaced by the current ones, and the fields it predates filled in with the value
    its runs had (``saved_before``)."""
    renamed = renamed_fields(cls)
    out = {renamed.get(k, k) if k not in _field_names(cls) else k: v for k, v in values.items()}
    for f in dataclasses.fields(cls):
        if f.name not in out and _spec(f).saved_before is not _UNSET:
            out[f.name] = _spec(f).saved_before
    return out


def _field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _strip_optional(tp):
    args = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_origin(tp) in _UNIONS else [tp]
    return args[0] if len(args) == 1 else tp


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"list[{_type_name(args[0])}]"
    if origin in _UNIONS:
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _parse_scalar(value: Any, tp) -> Any:
    """``value`` (a YAML/TOML value or a --set string) as ``tp`` (bool, int, float or str), or
    raise ValueError."""
    if tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(value, bool):
        if tp is bool:
            return value
    elif tp is bool:
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
    elif isinstance(value, (int, float, str)):
        try:
            number = float(value) if isinstance(value, str) else value  # "2e5" is an int too
        except ValueError:
            number = math.nan
        if tp is int and isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value)
        if tp is int and float(number).is_integer():
            return int(value) if isinstance(value, int) else int(number)
        if tp is float:
            if not math.isfinite(float(number)):  # inf/NaN hyperparameters end in NaN weights, never in learning
                raise ValueError("a finite float" if number == number or str(value).lower() == "nan" else "a float")
            return float(number)
    raise ValueError({bool: "a bool (true/false)", int: "an int", float: "a float", str: "a string"}[tp])


def _coerce(key: str, value: Any, tp) -> Any:
    """``value`` converted to the field type ``tp`` (Optional, list or scalar), or ConfigError."""
    if typing.get_origin(tp) in _UNIONS:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(key, value, _strip_optional(tp))
    if typing.get_origin(tp) in (list, tuple):
        (inner,) = typing.get_args(tp)[:1]
        if isinstance(value, str):
            value = [v.strip() for v in value.replace("[", "").replace("]", "").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list of {_type_name(inner)}, got {value!r}")
        return [_coerce(key, v, inner) for v in value]
    try:
        return _parse_scalar(value, tp)
    except (ValueError, OverflowError) as exc:
        raise ConfigError(f"{key}: expected {exc.args[0] if exc.args else _type_name(tp)}, got {value!r}") from None


def build_config(cls, *sources: Mapping[str, Any]):
    """A ``cls`` instance from its defaults updated by each mapping in turn (later wins).

    Unknown keys, values of the wrong type and values outside a field's declared bounds or
    choices raise ConfigError naming the key; then the dataclass's ``validate()``, where it has
    one, checks what relates several fields. A field's former name is refused naming the new
    one (:func:`with_current_names` translates a saved configuration first).
    """
    hints = typing.get_type_hints(cls)
    renamed = renamed_fields(cls)
    values: dict[str, Any] = {}
    for src in sources:
        for key, value in src.items():
            if key in renamed and key not in hints:
                raise ConfigError(f"{key}: renamed to {renamed[key]!r} (see the README's table of names); "
                                  f"use {renamed[key]}={value!r}")
            if key not in hints:
                raise _unknown(cls, key)
            values[key] = _coerce(key, value, hints[key])
    for f in dataclasses.fields(cls):
        if f.name in values and not _spec(f).accepts(values[f.name]):
            raise ConfigError(f"{f.name}: expected {_spec(f).expected(hints[f.name])}, got {values[f.name]!r}")
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


def typed_values(cfg, keys) -> dict[str, Any]:
    """The values of ``keys`` (e.g. a --set's names, whose values came as strings) as ``cfg`` holds them,
    after parsing: ``{key: cfg.key}``. An unknown key is build_config's ConfigError naming it."""
    names = _field_names(type(cfg))
    for k in keys or ():
        if k not in names:
            raise _unknown(type(cfg), k)
    return {k: getattr(cfg, k) for k in keys or ()}


def _unknown(cls, key: str) -> ConfigError:
    names = [f.name for f in dataclasses.fields(cls)]
    return ConfigError(f"unknown hyperparameter {key!r} for {cls.__name__}; valid keys: {', '.join(names)}")


def check(cond: bool, key: str, expected: str, got: Any) -> None:
    if not cond:
        raise ConfigError(f"{key}: expected {expected}, got {got!r}")
