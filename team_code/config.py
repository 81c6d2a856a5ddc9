"""The agents' configuration: the leaderboard's ``TEAM_CONFIG`` plus environment.

``TEAM_CONFIG`` (the path given to ``setup``) may be:

- empty or None: everything from the environment;
- a checkpoint directory or a ``.py`` script: the LangProp policy to run;
- a JSON file (``.json``) with the keys below;
- any other text file of ``key: value`` lines (a YAML subset: ``#`` comments,
  blank lines, quoted or bare scalars).

Keys (environment variable used when the file does not set it):

=================  =======================  ==========================================
key                environment              meaning
=================  =======================  ==========================================
checkpoint         LANGPROP_CHECKPOINT      LangProp checkpoint dir or script (.py)
sandbox            LANGPROP_SANDBOX         run the script in a worker process (true)
sandbox_strict     LANGPROP_SANDBOX_STRICT  refuse to run when the machine lacks a
                                            sandbox protection (false)
timeout_s          LANGPROP_TIMEOUT_S       per-call wall-clock limit of the script (10.0)
max_timeouts       LANGPROP_MAX_TIMEOUTS    timeouts or worker deaths in a row after
                                            which the script is
                                            taken for a runaway and not called again
                                            on this route: the car brakes (3)
record_dir         LANGPROP_RECORD_DIR      record scenes for DAgger into this dataset
record_every       LANGPROP_RECORD_EVERY    flush recorded ticks every N ticks (200)
dagger_beta        LANGPROP_DAGGER_BETA     probability per route that the expert drives
seed               LANGPROP_SEED            seed of the expert/policy draw (0)
route_id           LANGPROP_ROUTE_ID        route name stored with recorded scenes
run_id             LANGPROP_RUN_ID          run name of the recording (default: generated)
track              LANGPROP_TRACK           leaderboard track (SENSORS; falls back on
                                            CHALLENGE_TRACK_CODENAME)
=================  =======================  ==========================================

Bench2Drive's evaluator passes ``TEAM_CONFIG + "+" + save_name``: a path that
does not exist but whose part before the last ``+`` does (or is empty) is read
as that part, and the save name (the route's) becomes ``route_id`` unless the
file sets one.

Relative paths in a config file are resolved against the file's folder when
that path exists there.

Why the generous ``timeout_s``: a closed-loop run waits for the agent (the
simulator does not move on while ``run_step`` runs), so a time limit only
exists to stop runaway scripts. A tight one makes results depend on the
machine's load: a call that overruns under load brakes that tick, and the
rollout drives differently. The training sandbox keeps its own, tighter limit.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

__all__ = ["AgentConfig", "ConfigError", "load_agent_config", "parse_key_value_text", "split_fork_suffix",
           "DEFAULT_TIMEOUT_S", "DEFAULT_MAX_TIMEOUTS"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


# Per-call limit of the policy in a closed-loop run, and how many timeouts in a row
# mark a runaway script (see the module docstring).
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_TIMEOUTS = 3


class ConfigError(ValueError):
    """A bad agent config: the message names the file, line, key and value."""


@dataclass(frozen=True)
class AgentConfig:
    """Settings of a leaderboard agent (see the module docstring for the keys)."""

    checkpoint: Path | None = None
    sandbox: bool = True
    sandbox_strict: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_timeouts: int = DEFAULT_MAX_TIMEOUTS
    record_dir: Path | None = None
    record_every: int = 200
    dagger_beta: float = 0.0
    seed: int = 0
    route_id: str | None = None
    run_id: str | None = None
    track: str = "SENSORS"

    def __post_init__(self) -> None:
        if not 0.0 <= self.dagger_beta <= 1.0:
            raise ConfigError(f"dagger_beta must be within [0, 1], got {self.dagger_beta}")
        if self.timeout_s <= 0:
            raise ConfigError(f"timeout_s must be positive, got {self.timeout_s}")
        if self.max_timeouts < 1:
            raise ConfigError(f"max_timeouts must be at least 1, got {self.max_timeouts}")
        if self.record_every < 1:
            raise ConfigError(f"record_every must be at least 1, got {self.record_every}")


_ENV = {
    "checkpoint": "LANGPROP_CHECKPOINT",
    "sandbox": "LANGPROP_SANDBOX",
    "sandbox_strict": "LANGPROP_SANDBOX_STRICT",
    "timeout_s": "LANGPROP_TIMEOUT_S",
    "max_timeouts": "LANGPROP_MAX_TIMEOUTS",
    "record_dir": "LANGPROP_RECORD_DIR",
    "record_every": "LANGPROP_RECORD_EVERY",
    "dagger_beta": "LANGPROP_DAGGER_BETA",
    "seed": "LANGPROP_SEED",
    "route_id": "LANGPROP_ROUTE_ID",
    "run_id": "LANGPROP_RUN_ID",
    "track": "LANGPROP_TRACK",
}
_FIELD_TYPES = {"checkpoint": Path, "record_dir": Path, "sandbox": bool, "sandbox_strict": bool, "timeout_s": float, "max_timeouts": int,
                "record_every": int, "dagger_beta": float, "seed": int, "route_id": str,
                "run_id": str, "track": str}
_PATH_KEYS = ("checkpoint", "record_dir")


def _convert(key: str, value: Any, where: str) -> Any:
    kind = _FIELD_TYPES[key]
    if value is None:
        return None
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError("expected true/false")
        if kind is Path:
            return Path(str(value)).expanduser()
        if kind is int:
            if isinstance(value, bool):
                raise ValueError("expected an integer")
            return int(str(value).strip())
        if kind is float:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return float(str(value).strip())
        return str(value)
    except ValueError as error:
        raise ConfigError(f"{where}: bad value {value!r} for {key!r}: {error}") from None


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def parse_key_value_text(text: str, source: str) -> dict[str, str]:
    """Parse ``key: value`` lines (a YAML subset); errors name ``source`` and the line."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or line == "---":
            continue
        if ":" not in line:
            raise ConfigError(f"{source}, line {number}: expected 'key: value', got {raw!r}")
        key, _, value = line.partition(":")
        value = value.strip()
        # Drop a trailing comment on an unquoted value.
        if value and value[0] not in "'\"" and " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = _unquote(value)
    return values


def _read_file(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}, line {error.lineno}: invalid JSON: {error.msg}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object, got {type(data).__name__}")
        return data
    return parse_key_value_text(text, str(path))


def _from_mapping(values: Mapping[str, Any], source: str, base_dir: Path | None) -> dict[str, Any]:
    known = {f.name for f in fields(AgentConfig)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{source}: unknown key {key!r}; known keys: {', '.join(sorted(known))}")
        if value in ("", None):
            continue
        converted = _convert(key, value, source)
        if key in _PATH_KEYS and base_dir is not None and not converted.is_absolute():
            candidate = base_dir / converted
            if candidate.exists():
                converted = candidate
        out[key] = converted
    return out


def split_fork_suffix(path_to_conf_file: str) -> tuple[str, str | None]:
    """``(config path, save name)`` of a Bench2Drive-style ``"<config>+<save_name>"`` argument.

    A path that exists is taken whole (``+`` may be part of a real name); else
    the part before the last ``+`` when it exists or is empty (no config).
    Anything else comes back unchanged, for the caller's "does not exist" error.
    """
    if "+" not in path_to_conf_file or Path(path_to_conf_file).expanduser().exists():
        return path_to_conf_file, None
    before, _, save_name = path_to_conf_file.rpartition("+")
    if before == "" or Path(before).expanduser().exists():
        return before, save_name or None
    return path_to_conf_file, None


def load_agent_config(path_to_conf_file: str | os.PathLike | None,
                      environ: Mapping[str, str] | None = None) -> AgentConfig:
    """The agent config from ``TEAM_CONFIG`` (may be None or empty) and the environment."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    save_name = None
    if path_to_conf_file not in (None, ""):
        path_to_conf_file, save_name = split_fork_suffix(os.fspath(path_to_conf_file))
    if save_name is not None:
        values["route_id"] = save_name
    if path_to_conf_file not in (None, ""):
        path = Path(path_to_conf_file).expanduser()
        if path.is_dir() or path.suffix == ".py":
            if not path.exists():
                raise ConfigError(f"agent config: checkpoint script {path} does not exist")
            values["checkpoint"] = path
        elif path.is_file():
            values = {**values, **_from_mapping(_read_file(path), str(path), path.parent)}
        else:
            raise ConfigError(f"agent config {path} does not exist (expected a checkpoint dir, "
                              f"a .py script, a .json file or a 'key: value' file)")
    for key, variable in _ENV.items():
        if key not in values and env.get(variable, "") != "":
            values[key] = _convert(key, env[variable], f"environment variable {variable}")
    if "track" not in values and env.get("CHALLENGE_TRACK_CODENAME"):
        values["track"] = env["CHALLENGE_TRACK_CODENAME"]
    return replace(AgentConfig(), **values)
