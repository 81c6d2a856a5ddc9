"""One loader for every configuration: a mapping or a YAML/JSON file -> a frozen (nested) config dataclass.

Commands, config files (``langprop train --config FILE``) and the agents'
``TEAM_CONFIG`` all go through :func:`load_config`, so they agree on what a
key means and on what a bad one says:

- an unknown key raises :class:`ConfigError` naming it with its path
  (``objective.horizn_s``) and the keys known there, before anything runs;
- values are converted to the field's type: ``bool`` takes true/false,
  yes/no, on/off, 1/0; ``int``, ``float``, ``str`` and ``Path`` take their
  text; an optional field takes ``null`` (or ``~``); a nested config dataclass
  takes a mapping, merged over that field's default; a ``tuple`` takes a list;
- the dataclass's own checks (``__post_init__``) run, and a ``ValueError``
  they raise becomes a :class:`ConfigError` naming the source.

YAML is read with every scalar as text (:func:`read_config_file`): the
field's type decides what ``no``, ``007`` or ``1e3`` mean, not YAML's
guesses, so a file means the same to every config and to the agents'
environment variables, which are text too.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

__all__ = ["ConfigError", "load_config", "read_config_file", "config_from_file", "convert_value", "layered",
           "read_sections"]

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_NULL = {"null", "Null", "NULL", "~"}


class ConfigError(ValueError):
    """A bad configuration; the message (one line) names the source, the key and the value."""


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping of a ``.json`` file or of a YAML file (any other suffix; scalars as text)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}, line {error.lineno}: invalid JSON: {error.msg}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object, got {type(data).__name__}")
        return data
    try:
        node = yaml.compose(text, Loader=yaml.BaseLoader)
        data = yaml.load(text, Loader=yaml.BaseLoader) if node is not None else {}
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f", line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {error.problem or error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}, line {node.start_mark.line + 1}: expected 'key: value' lines, "
                          f"got {str(text).strip().splitlines()[0][:60]!r}")
    return data


def load_config(cls: type[T], values: Mapping[str, Any], source: str, base: T | None = None,
                prefix: str = "") -> T:
    """``cls`` (a dataclass) from ``values``, over ``base`` (default: ``cls()``); unknown keys raise naming them.

    ``source`` names where the values come from (a file, "--config", an
    environment variable) in error messages; ``prefix`` is the path of a
    nested config's keys.
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'the config'} must be a mapping of keys, "
                          f"got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [str(key) for key in values if key not in fields]
    if unknown:
        raise ConfigError(f"{source}: unknown key {prefix + unknown[0]!r}; known keys"
                          f"{' of ' + prefix.rstrip('.') if prefix else ''}: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    changes: dict[str, Any] = {}
    for key, value in values.items():
        current = getattr(base, key) if base is not None else _default(fields[key])
        changes[key] = convert_value(hints[key], value, f"{prefix}{key}", source, current)
    try:
        return dataclasses.replace(base, **changes) if base is not None else cls(**changes)
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{source}: {exc}") from None


def config_from_file(cls: type[T], path: str | Path, base: T | None = None) -> T:
    """``cls`` from the YAML/JSON file at ``path`` (see :func:`load_config`)."""
    return load_config(cls, read_config_file(path), str(path), base)


def layered(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """The layers merged, later over earlier, nested mappings key by key (defaults < file < command line)."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = layered(out[key], value)
            else:
                out[key] = value
    return out


def read_sections(path: str | Path, sections: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The sections of a config file (``section: {key: value}``), each checked against its config.

    ``sections`` maps each section's name to a config instance its values are
    loaded over (so every key and value is checked now, before anything
    runs); an unknown section or key raises :class:`ConfigError` naming it.
    Returns the raw mapping of each section the file has.
    """
    data = read_config_file(path)
    unknown = [str(key) for key in data if key not in sections]
    if unknown:
        raise ConfigError(f"{path}: unknown section {unknown[0]!r}; known sections: {', '.join(sorted(sections))}")
    for name, values in data.items():
        base = sections[name]
        load_config(type(base), values, str(path), base, prefix=f"{name}.")
    return {name: dict(values) for name, values in data.items()}


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def convert_value(kind: Any, value: Any, key: str, source: str, current: Any = None) -> Any:
    """``value`` as the type ``kind`` of the field ``key`` (a nested dataclass merges over ``current``)."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if value is None or (isinstance(value, str) and value in _NULL):
            if len(options) < len(typing.get_args(kind)):
                return None
            raise ConfigError(f"{source}: {key!r} cannot be empty")
        if len(options) == 1:
            return convert_value(options[0], value, key, source, current)
        for option in options:  # e.g. ``str | TrafficConfig``: the first that takes the value
            try:
                return convert_value(option, value, key, source, current)
            except ConfigError:
                continue
        raise ConfigError(f"{source}: bad value {value!r} for {key!r}")
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        return load_config(kind, value, source, current if isinstance(current, kind) else None, prefix=f"{key}.")
    if origin is tuple:
        args = typing.get_args(kind)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: bad value {value!r} for {key!r}: expected a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert_value(args[0], v, f"{key}[{i}]", source) for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(f"{source}: bad value {value!r} for {key!r}: expected {len(args)} items")
        return tuple(convert_value(a, v, f"{key}[{i}]", source) for i, (a, v) in enumerate(zip(args, value)))
    try:
        return _scalar(kind, value)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{source}: bad value {value!r} for {key!r}: {error}") from None


def _scalar(kind: Any, value: Any) -> Any:
    if isinstance(value, (dict, list)):
        raise ValueError("expected a single value")
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("expected true/false")
    if kind is int:
        if isinstance(value, bool) or isinstance(value, float):
            raise ValueError("expected an integer")
        return int(str(value).strip())
    if kind is float:
        if isinstance(value, bool):
            raise ValueError("expected a number")
        return float(str(value).strip())
    if kind is Path:
        return Path(str(value)).expanduser()
    if kind is str:
        return str(value)
    if kind is Any:
        return value
    raise TypeError(f"a config field of type {kind!r} cannot be read from a file")
