"""Checkpoints: one directory per module, readable scripts plus a JSON index.

Layout (version 1)::

    <dir>/index.json          ranked policies: id, lineage, scores, priority,
                              optimizer, sampling params, prompt and reply
    <dir>/scripts/<id>.py     one readable file per script
    <dir>/trainer_state.json  (written by the trainer) where training stands
    <dir>/dependencies/<module>/<id>.py
                              the scripts of the modules this module's scripts
                              call (recorded in the index under
                              "dependencies": module, function, script id)

Every file is written atomically (temporary file + ``os.replace``), scripts
before the index, so a run killed at any moment leaves a loadable checkpoint.

The original LangProp layout loads too: ``config.json`` holding
``{"name", "step", "records": {"<i>": {"main": {"priority", "count",
"avg_score", ...}}}}`` beside ``record_<i>.txt`` script files.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langprop_common.files import atomic_write_json, atomic_write_text
from langprop_core.policy import Policy, policy_id_for
from langprop_core.sandbox import Dependency

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "INDEX_FILE", "Checkpoint", "CheckpointError",
           "read_json", "save_checkpoint", "load_checkpoint", "resolve_checkpoint_dir"]

CHECKPOINT_FORMAT = "langprop-checkpoint"
CHECKPOINT_VERSION = 1
INDEX_FILE = "index.json"
SCRIPTS_DIR = "scripts"
DEPENDENCIES_DIR = "dependencies"
ORIGINAL_CONFIG = "config.json"

logger = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A checkpoint directory is missing, unreadable or inconsistent; the message names the file."""


@dataclass
class Checkpoint:
    """A module's population, best first."""

    module: str
    function_name: str
    policies: list[Policy]
    extra: dict[str, Any] = field(default_factory=dict)
    source_format: str = CHECKPOINT_FORMAT
    dependencies: tuple[Dependency, ...] = ()
    files: dict[str, Path] = field(default_factory=dict)  # policy id -> the script file it came from
    missing: list[str] = field(default_factory=list)  # original layout: listed records without a file

    @property
    def best(self) -> Policy:
        """The script to deploy: the one a selection recorded (``extra["selection"]["deployed_id"]``,
        see :mod:`langprop_core.selection`), else the top-ranked one. Every reader of "the best
        script" (inference, agents, evaluation, DAgger) goes through here."""
        if not self.policies:
            raise CheckpointError(f"checkpoint of module {self.module!r} holds no scripts")
        deployed = (self.extra.get("selection") or {}).get("deployed_id")
        return next((p for p in self.policies if p.id == deployed), self.policies[0])

    def compiled_best(self) -> Policy:
        """The best policy, once its script is known to compile.

        A script that does not compile would otherwise fail on every call (a log
        line every tick of a drive): this fails once, at set-up, with the file and line.
        """
        policy = self.best
        where = str(self.files.get(policy.id, f"<script {policy.id}>"))
        try:
            compile(policy.source, where, "exec")
        except SyntaxError as exc:
            raise CheckpointError(f"{where}:{exc.lineno}: the best script of checkpoint {self.module!r} does "
                                  f"not compile: {exc.msg}") from None
        except ValueError as exc:  # null bytes
            raise CheckpointError(f"{where}: the best script of checkpoint {self.module!r} does not "
                                  f"compile: {exc}") from None
        return policy


def read_json(path: Path) -> Any:
    """Parse a JSON file; errors name the file and position."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: "
                              f"{exc.msg}") from None


def _write_if_changed(target: Path, text: str) -> None:
    # Scripts keep their content under their id: rewriting an unchanged one on
    # every batch would only cost an fsync.
    if not target.is_file() or target.read_text(encoding="utf-8") != text:
        atomic_write_text(target, text)


def _dependency_entries(directory: Path, dependencies: tuple[Dependency, ...],
                        written: set[str]) -> list[dict[str, Any]]:
    entries = []
    for dep in dependencies:
        rel = f"{DEPENDENCIES_DIR}/{dep.module}/{dep.script_id}.py"
        _write_if_changed(directory / rel, dep.source)
        written.add(rel)
        entries.append({"module": dep.module, "function_name": dep.function_name,
                        "policy_id": dep.script_id, "file": rel,
                        "dependencies": _dependency_entries(directory, dep.dependencies, written)})
    return entries


def save_checkpoint(directory: Path, module: str, function_name: str, policies: list[Policy],
                    extra: dict[str, Any] | None = None,
                    dependencies: tuple[Dependency, ...] = ()) -> Path:
    """Write the ranked ``policies``; scripts no longer in the population are removed.

    ``dependencies`` (the scripts the module's scripts call) are recorded in
    the index and copied beside it, so the checkpoint runs on its own.
    """
    directory = Path(directory)
    written: set[str] = set()
    dep_entries = _dependency_entries(directory, tuple(dependencies), written)
    scripts = directory / SCRIPTS_DIR
    scripts.mkdir(parents=True, exist_ok=True)
    entries = []
    for policy in policies:
        rel = f"{SCRIPTS_DIR}/{policy.id}.py"
        _write_if_changed(directory / rel, policy.source)
        entries.append(policy.to_dict(include_source=False) | {"file": rel})
    index = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "module": module,
             "function_name": function_name, "policies": entries, "extra": extra or {}}
    if dep_entries:
        index["dependencies"] = dep_entries
    atomic_write_json(directory / INDEX_FILE, index)
    keep = {f"{p.id}.py" for p in policies}
    for stale in scripts.glob("*.py"):
        if stale.name not in keep:
            stale.unlink()
    for stale in (directory / DEPENDENCIES_DIR).glob("*/*.py"):
        if stale.relative_to(directory).as_posix() not in written:
            stale.unlink()
    return directory


def resolve_checkpoint_dir(path: Path, module: str | None = None) -> Path:
    """The module directory for ``path``: itself, or ``path/checkpoints/<module>`` of a run dir."""
    path = Path(path)
    if (path / INDEX_FILE).is_file() or (path / ORIGINAL_CONFIG).is_file():
        return path
    for root in (path / "checkpoints", path):
        if not root.is_dir():
            continue
        found = sorted(d for d in root.iterdir()
                       if (d / INDEX_FILE).is_file() or (d / ORIGINAL_CONFIG).is_file())
        if module is not None:
            found = [d for d in found if d.name == module]
        if len(found) > 1 and module is None:
            # Modules others depend on are parts; the module nobody depends on is the policy.
            used = {e.get("module") for d in found if (d / INDEX_FILE).is_file()
                    for e in _all_entries(read_json(d / INDEX_FILE).get("dependencies") or [])}
            roots = [d for d in found if d.name not in used]
            found = roots if roots else found
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(d.name for d in found)
            raise CheckpointError(f"{root}: holds several module checkpoints ({names}); "
                                  f"name one")
    raise CheckpointError(f"{path}: not a checkpoint directory (no {INDEX_FILE} or "
                          f"{ORIGINAL_CONFIG}, nor a run directory with checkpoints/)")


def _all_entries(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for entry in entries:
        if isinstance(entry, dict):
            out.append(entry)
            out.extend(_all_entries(entry.get("dependencies") or []))
    return out


def load_checkpoint(path: Path, function_name: str | None = None,
                    module: str | None = None) -> Checkpoint:
    """Load our layout or the original LangProp one; policies come back best first.

    ``path`` may be a run directory; ``module`` names which of its module
    checkpoints to load (by default the one no other module depends on).
    """
    directory = resolve_checkpoint_dir(Path(path), module)
    if (directory / INDEX_FILE).is_file():
        return _load_ours(directory, function_name)
    return _load_original(directory, function_name)


def _load_ours(directory: Path, function_name: str | None) -> Checkpoint:
    index_path = directory / INDEX_FILE
    index = read_json(index_path)
    if not isinstance(index, dict) or index.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{index_path}: not a {CHECKPOINT_FORMAT} index")
    if int(index.get("version", 0)) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{index_path}: version {index['version']} is newer than this "
                              f"package reads ({CHECKPOINT_VERSION}); upgrade langprop-driver")
    policies = []
    files: dict[str, Path] = {}
    for i, entry in enumerate(index.get("policies", [])):
        script = directory / entry.get("file", f"{SCRIPTS_DIR}/{entry.get('id')}.py")
        try:
            source = script.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CheckpointError(f"{index_path}: policies[{i}] ({entry.get('id')}) names "
                                  f"{script}, which does not exist") from None
        policy = Policy.from_dict(entry, source=source)
        if function_name:
            policy.function_name = function_name
        policies.append(policy)
        files[policy.id] = script
    dependencies = _load_dependencies(directory, index_path, index.get("dependencies") or [])
    return Checkpoint(module=index.get("module", directory.name),
                      function_name=function_name or index.get("function_name", ""),
                      policies=policies, extra=index.get("extra", {}), dependencies=dependencies, files=files)


def _load_dependencies(directory: Path, index_path: Path,
                       entries: list[dict[str, Any]]) -> tuple[Dependency, ...]:
    """The recorded dependency scripts: the copy in this checkpoint, else the script
    with the recorded id in the sibling checkpoint of that module."""
    deps = []
    for i, entry in enumerate(entries):
        try:
            module, fname, pid = entry["module"], entry["function_name"], entry["policy_id"]
        except (KeyError, TypeError):
            raise CheckpointError(f"{index_path}: dependencies[{i}] lacks module, function_name "
                                  f"or policy_id") from None
        script = directory / entry.get("file", f"{DEPENDENCIES_DIR}/{module}/{pid}.py")
        if script.is_file():
            source = script.read_text(encoding="utf-8")
        else:
            sibling = directory.parent / module
            source = None
            if (sibling / INDEX_FILE).is_file() or (sibling / ORIGINAL_CONFIG).is_file():
                source = next((p.source for p in load_checkpoint(sibling).policies if p.id == pid),
                              None)
            if source is None:
                raise CheckpointError(f"{index_path}: dependency {module!r} script {pid} is "
                                      f"neither in {script} nor in the checkpoint {sibling}")
        deps.append(Dependency(function_name=fname, source=source, script_id=pid, module=module,
                               dependencies=_load_dependencies(directory, index_path,
                                                               entry.get("dependencies") or [])))
    return tuple(deps)


def _load_original(directory: Path, function_name: str | None) -> Checkpoint:
    config_path = directory / ORIGINAL_CONFIG
    config = read_json(config_path)
    records = config.get("records") if isinstance(config, dict) else None
    if not isinstance(records, dict):
        raise CheckpointError(f"{config_path}: no 'records' object (not a LangProp checkpoint)")
    name = function_name or config.get("name") or directory.name
    ranked = []
    files: dict[str, Path] = {}
    missing: list[str] = []
    for key, record in records.items():
        try:
            number = int(key)
        except ValueError:
            raise CheckpointError(f"{config_path}: record key {key!r} is not a record number") from None
        script = directory / f"record_{key}.txt"
        try:
            source = script.read_text(encoding="utf-8")
        except FileNotFoundError:
            # The original trainer lists records it pruned or never wrote: keep the ones present.
            missing.append(script.name)
            continue
        stats = (record or {}).get("main", {}) if isinstance(record, dict) else {}
        priority = stats.get("priority")
        avg = stats.get("avg_score")
        policy = Policy(id=policy_id_for(source), source=source, function_name=name,
                        optimizer="langprop-original", priority=priority,
                        scores=[avg] if avg is not None else [], n_calls=int(stats.get("count", 0)))
        ranked.append((priority if priority is not None else float("-inf"), number, policy))
        files[policy.id] = script
    if missing:
        if not ranked:
            raise CheckpointError(f"{config_path}: none of its {len(missing)} records has a file "
                                  f"(missing: {', '.join(missing)})")
        logger.warning("%s lists %d record(s) whose files are missing: %s; loading the %d present",
                       config_path, len(missing), ", ".join(missing), len(ranked))
    # Highest priority first; the record number breaks ties as the original ranked them.
    ranked.sort(key=lambda item: (-item[0], item[1]))
    return Checkpoint(module=config.get("name", directory.name), function_name=name,
                      policies=[p for _, _, p in ranked],
                      extra={"original_step": config.get("step")}, source_format="langprop-original",
                      files=files, missing=missing)
