"""The agents' configuration: the leaderboard's ``TEAM_CONFIG`` plus environment.

``TEAM_CONFIG`` (the path given to ``setup``) may be:

- empty or None: everything from the environment;
- a checkpoint directory or a ``.py`` script: the LangProp policy to run;
- a JSON file (``.json``) with the keys below;
- any other file: YAML ``key: value`` lines.

Files are read by the project's one config loader
(:mod:`langprop_common.config_files`): an unknown key is an error naming it,
and each value is read as its key's type (``sandbox: no`` is false,
``route_id: 007`` stays ``"007"``).

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

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, get_type_hints

# The one loader of every config (commands, config files, TEAM_CONFIG): ConfigError is its error.
from langprop_common.config_files import ConfigError, convert_value, load_config, read_config_file

__all__ = ["AgentConfig", "ConfigError", "load_agent_config", "split_fork_suffix",
           "DEFAULT_TIMEOUT_S", "DEFAULT_MAX_TIMEOUTS"]


# Per-call limit of the policy in a closed-loop run, and how many timeouts in a row
# mark a runaway script (see the module docstring).
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_TIMEOUTS = 3


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
_PATH_KEYS = ("checkpoint", "record_dir")


def _convert(key: str, value: str, where: str) -> Any:
    """``value`` (text, e.g. an environment variable's) as the type of ``AgentConfig.<key>``."""
    return convert_value(get_type_hints(AgentConfig)[key], value, key, where)


def _from_file(path: Path) -> dict[str, Any]:
    """The keys a config file sets, typed by the one loader; relative paths resolved against its folder
    when that path exists there. Empty values are left out (the environment or the default applies)."""
    raw = {key: value for key, value in read_config_file(path).items() if value not in ("", None)}
    loaded = load_config(AgentConfig, raw, str(path))  # unknown keys and bad values raise, naming them
    out = {key: getattr(loaded, key) for key in raw}
    for key in _PATH_KEYS:
        if key in out and out[key] is not None and not out[key].is_absolute():
            candidate = path.parent / out[key]
            if candidate.exists():
                out[key] = candidate
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
            values = {**values, **_from_file(path)}
        else:
            raise ConfigError(f"agent config {path} does not exist (expected a checkpoint dir, "
                              f"a .py script, a .json file or a 'key: value' file)")
    for key, variable in _ENV.items():
        if key not in values and env.get(variable, "") != "":
            values[key] = _convert(key, env[variable], f"environment variable {variable}")
    if "track" not in values and env.get("CHALLENGE_TRACK_CODENAME"):
        values["track"] = env["CHALLENGE_TRACK_CODENAME"]
    return replace(AgentConfig(), **values)
