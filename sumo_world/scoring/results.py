"""Leaderboard-format results files: one JSON per evaluation run, resumable.

The file is byte-for-byte the structure CARLA leaderboard 1.0 writes with
``--checkpoint`` (``leaderboard/utils/statistics_manager.py`` and
``checkpoint_tools.py`` on the ``leaderboard-1.0`` branch), so the
leaderboard's own readers (``scripts/pretty_print_json.py``,
``generate_evalai_stdout.py``, ``generate_evalai_results.py``, and its
``--resume``) accept it, and published 1.0 numbers compare with ours::

    {
      "_checkpoint": {
        "records": [route record, ...],      # list position == record "index"
        "progress": [done, total],
        "global_record": {} | global record  # written once every route ran
      },
      "entry_status": "Started" | "Finished" | "Finished with missing data"
                      | "Finished with agent errors" | "Crashed",
      "eligible": bool,
      "labels": [12 strings], "values": [12 strings, "%.3f"],
      "sensors": ["carla_speedometer", ...],
      "provenance": {...}                     # ours: what produced the file (see below)
    }

A route record::

    {"route_id": "RouteScenario_<id>", "index": int, "status": str,
     "infractions": {<each INFRACTION_TYPES key>: [message, ...]},
     "scores": {"score_route": %, "score_penalty": 0..1, "score_composed": %},
     "meta": {"route_length": m, "duration_game": s, "duration_system": s,
              ...our extras...}}

Our extras live in the record's ``meta`` (the leaderboard reads only the three
keys above there): ``route_config_id`` (the id in the routes file),
``repetition``, ``town``, ``outside_route_lanes_percent``,
``agent_exceptions``, plus the run's own metadata (agent name, seed, ...).

``provenance`` (ours; the leaderboard's readers ignore it) records what
produced the file: the agent and a digest of its file and checkpoint or config,
a digest of the routes file, the route selection, traffic, seed, scenario file
digest, repetitions, timeout factor and the package version. A run resumes a
file only when they are equal (:class:`ResultsMismatchError` otherwise), so one
file never mixes the results of two runs.

Route records, the global record and the entry status are computed as
leaderboard 1.0 computes them: :mod:`sumo_world.scoring.leaderboard_statistics`.

Differences in leaderboard 2.0 (not written here, but :func:`load_results`
reads 2.0 files too): route ids carry the repetition
(``RouteScenario_<id>_rep<r>``); records gain ``num_infractions`` and the
infraction keys ``min_speed_infractions``, ``yield_emergency_vehicle_infractions``
and ``scenario_timeouts``; status ``"Perfect"`` marks a completed route
without infractions; the global record has ``scores_mean`` instead of
``scores``, its infractions are total events divided by total kilometres
driven (``outside_route_lanes`` there is kilometres, not a count), scores are
rounded to 6 digits; off-lane driving no longer costs a penalty; there are 15
labels/values written with ``str()``; ``entry_status`` is one of
Started/Finished/Rejected/Crashed/Invalid and ``eligible`` follows from it.
"""
from __future__ import annotations

import copy
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from langprop_common.files import atomic_write_json
from driving.penalties import INFRACTION_TYPES
from sumo_world.scoring.leaderboard_statistics import (SCORE_KEYS, compute_entry_status, compute_global_record,
                                                      json_safe, labels_and_values, route_config_id, route_record,
                                                      simulation_crashed)
from sumo_world.scoring.records import RouteOutcome

__all__ = [
    "ResultsFile", "ResultsFileError", "ResultsMismatchError", "RETRY_STATUSES", "SENSOR_ICONS", "path_digest",
    "load_results", "empty_results",
]

logger = logging.getLogger(__name__)

# Sensor type -> the icon name the leaderboard stores under "sensors".
SENSOR_ICONS: dict[str, str] = {
    "sensor.camera.rgb": "carla_camera",
    "sensor.lidar.ray_cast": "carla_lidar",
    "sensor.other.radar": "carla_radar",
    "sensor.other.gnss": "carla_gnss",
    "sensor.other.imu": "carla_imu",
    "sensor.opendrive_map": "carla_opendrive_map",
    "sensor.speedometer": "carla_speedometer",
}

#: statuses of runs that could not run (leaderboard 1.0's words): a resume runs them again,
#: while the agent's driving failures (timed out, blocked, deviated) are results and stay
RETRY_STATUSES = ("Failed - Simulation crashed", "Failed - Agent couldn't be set up", "Failed - Agent crashed")


class ResultsFileError(ValueError):
    """A results file cannot be read or does not have the leaderboard layout."""


class ResultsMismatchError(ResultsFileError):
    """A results file holds the results of another run (another agent, checkpoint, routes, traffic, ...)."""


def path_digest(path: str | Path | None) -> str | None:
    """A short SHA-256 of a file's bytes, or of a folder's files (names and bytes); None for None.

    A path that does not exist digests to ``"missing"`` (the run's own checks name it).
    """
    import hashlib

    if path is None:
        return None
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_file():
        digest.update(path.read_bytes())
    elif path.is_dir():
        for item in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            digest.update(str(item.relative_to(path)).encode() + b"\0" + item.read_bytes() + b"\0")
    else:
        return "missing"
    return digest.hexdigest()[:16]


def empty_results() -> dict[str, Any]:
    """A results document with no routes yet (what the leaderboard starts from)."""
    return {
        "sensors": [],
        "values": [],
        "labels": [],
        "entry_status": "",
        "eligible": "",
        "_checkpoint": {"progress": [], "records": [], "global_record": {}},
    }


# ----------------------------------------------------------------------------- reading


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a results file (ours, leaderboard 1.0 or 2.0), filling optional keys.

    An absent or empty file (the leaderboard truncates the file when it starts
    a run) gives an empty document. Anything unreadable raises
    :class:`ResultsFileError` naming the file and what is wrong.
    """
    path = Path(path)
    if not path.exists():
        return empty_results()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsFileError(f"{path}: cannot read results file: {exc}") from exc
    if not text.strip():
        return empty_results()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsFileError(
            f"{path}: not valid JSON ({exc}); it may have been cut off by a crash outside this "
            f"package. Move it aside or delete it to start fresh, or evaluate without resuming "
            f"into a new results path.") from exc
    return _normalise(data, path)


def _normalise(data: Any, path: Path) -> dict[str, Any]:
    def fail(reason: str) -> ResultsFileError:
        return ResultsFileError(f"{path}: not a leaderboard results file: {reason}. Move it aside or "
                                f"delete it to start fresh.")

    if not isinstance(data, dict):
        raise fail(f"top level is a {type(data).__name__}, expected an object")
    if "_checkpoint" not in data:
        raise fail("it has no '_checkpoint' (a leaderboard or `langprop evaluate` results file has)")
    result = empty_results()
    result.update({key: value for key, value in data.items() if key != "_checkpoint"})
    checkpoint = data.get("_checkpoint", {}) or {}
    if not isinstance(checkpoint, dict):
        raise fail("'_checkpoint' is not an object")
    records = checkpoint.get("records", []) or []
    progress = checkpoint.get("progress", []) or []
    if not isinstance(records, list):
        raise fail("'_checkpoint.records' is not a list")
    if not (isinstance(progress, list) and (len(progress) in (0, 2))
            and all(isinstance(value, int) for value in progress)):
        raise fail(f"'_checkpoint.progress' is {progress!r}, expected [done, total]")
    for position, record in enumerate(records):
        if not isinstance(record, dict):
            raise fail(f"record {position} is not an object")
        for key in ("route_id", "status", "scores"):
            if key not in record:
                raise fail(f"record {position} has no {key!r}")
        if not isinstance(record["scores"], dict) or any(key not in record["scores"] for key in SCORE_KEYS):
            raise fail(f"record {position} ({record['route_id']}): 'scores' lacks one of {SCORE_KEYS}")
        record.setdefault("index", position)
        infractions = record.setdefault("infractions", {})
        for kind in INFRACTION_TYPES:
            infractions.setdefault(kind, [])
        meta = record.setdefault("meta", {})
        for key in ("route_length", "duration_game", "duration_system"):
            meta.setdefault(key, 0.0)
    result["_checkpoint"] = {
        "records": records,
        "progress": progress,
        "global_record": checkpoint.get("global_record", {}) or {},
    }
    return result


# ----------------------------------------------------------------------------- the file


def _could_not_run(record: Mapping[str, Any]) -> bool:
    """Whether the record is of a run that could not run (:data:`RETRY_STATUSES`): a resume retries it."""
    return str(record.get("status", "")) in RETRY_STATUSES


def _check_provenance(path: Path, stored: Any, wanted: dict[str, Any]) -> None:
    """Refuse (one line, naming the first difference and the ways on) to resume another run's file."""
    ways = "start it anew with --no-resume (the old file is kept as .bak) or write to another --results"
    if not isinstance(stored, dict):
        raise ResultsMismatchError(f"{path}: holds results without a record of what produced them, so this "
                                   f"run cannot resume it; {ways}")
    for key in sorted(set(stored) | set(wanted)):
        if stored.get(key) != wanted.get(key):
            raise ResultsMismatchError(f"{path}: holds the results of another run ({key} {stored.get(key)!r} "
                                       f"there, {wanted.get(key)!r} now); {ways}")


class ResultsFile:
    """One evaluation run's results file, written after every route.

    ``ResultsFile(path)`` resumes what is there (an absent or empty file starts
    a new run); ``resume=False`` starts a new run and keeps any previous file
    as ``<name>.bak``. A file that cannot be read raises
    :class:`ResultsFileError` and is never overwritten.

    ``run_meta`` (agent name, seed, ...) is stored in every new record's meta.
    Every change is written at once, atomically (temporary file +
    ``os.replace``), so a crash leaves the previous complete file.
    """

    def __init__(self, path: str | Path, resume: bool = True,
                 run_meta: Mapping[str, Any] | None = None,
                 provenance: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self._run_meta = json_safe(dict(run_meta or {}), "run_meta")
        data = load_results(self.path)
        if resume and provenance is not None and data["_checkpoint"]["records"]:
            _check_provenance(self.path, data.get("provenance"), json_safe(dict(provenance), "provenance"))
        #: where ``resume=False`` kept the previous file (None when there was none)
        self.backup: Path | None = None
        if not resume and self.path.exists():
            self.backup = self.path.with_name(self.path.name + ".bak")
            logger.info("%s: starting a new run; the previous file is kept as %s", self.path, self.backup)
            os.replace(self.path, self.backup)
            data = empty_results()
        if provenance is not None:
            data["provenance"] = json_safe(dict(provenance), "provenance")
        self._data = data
        if data["_checkpoint"]["records"]:
            logger.info("%s: resuming after %d finished route(s)", self.path, len(self.records()))

    # --- reading
    def records(self) -> list[dict[str, Any]]:
        """Copies of the route records, in index order."""
        return copy.deepcopy(self._data["_checkpoint"]["records"])

    def finished_route_ids(self) -> set[str]:
        """Routes-file ids with a record (any repetition).

        Routes whose simulation crashed are left out: like the leaderboard's
        resume, they are run again.
        """
        return {route_id for route_id, _ in self.finished_runs()}

    def finished_runs(self) -> set[tuple[str, int]]:
        """``(route id, repetition)`` of every finished run (runs that could not run excluded:
        :data:`RETRY_STATUSES`)."""
        runs = set()
        for record in self._data["_checkpoint"]["records"]:
            if _could_not_run(record):
                continue
            runs.add((route_config_id(record), int((record.get("meta") or {}).get("repetition", 0))))
        return runs

    @property
    def progress(self) -> list[int]:
        """``[done, total]`` as stored (``[]`` before anything is known)."""
        return list(self._data["_checkpoint"]["progress"])

    @property
    def total_routes(self) -> int | None:
        """The declared number of runs (``progress[1]``); None before it is known."""
        progress = self._data["_checkpoint"]["progress"]
        return int(progress[1]) if progress else None

    @property
    def entry_status(self) -> str:
        """The document's ``entry_status`` ("" before anything is written)."""
        return str(self._data.get("entry_status", ""))

    def global_record(self) -> dict[str, Any]:
        """The global record over the records so far (averaged over those records)."""
        return compute_global_record(self._data["_checkpoint"]["records"])

    def to_dict(self) -> dict[str, Any]:
        """A copy of the whole document."""
        return copy.deepcopy(self._data)

    # --- writing
    def set_total_routes(self, total_routes: int) -> None:
        """Declare how many runs (routes x repetitions) this evaluation has."""
        if total_routes < 0:
            raise ValueError(f"total_routes must be >= 0, got {total_routes}")
        done = len(self._data["_checkpoint"]["records"])
        if total_routes < done:
            raise ValueError(f"{self.path}: total_routes={total_routes} but {done} routes are already recorded")
        self._data["_checkpoint"]["progress"] = [done, int(total_routes)]
        self._refresh_status()
        self._write()

    def set_sensors(self, sensors: Iterable[str]) -> None:
        """Record the agent's sensors (types such as ``"sensor.speedometer"`` or icon names)."""
        self._data["sensors"] = [SENSOR_ICONS.get(sensor, sensor) for sensor in sensors]
        self._write()

    def add(self, outcome: RouteOutcome, index: int, repetition: int = 0) -> dict[str, Any]:
        """Score ``outcome``, store it as record ``index`` and write the file; returns the record.

        A record with the same index is replaced (a re-run on resume). When
        every declared route has a record, the global record, labels, values,
        entry status and eligibility are written too.
        """
        if index < 0:
            raise ValueError(f"route {outcome.route_id!r}: index must be >= 0, got {index}")
        record = route_record(outcome, index, repetition, self._run_meta)
        records = self._data["_checkpoint"]["records"]
        records[:] = [existing for existing in records if int(existing.get("index", -1)) != index]
        records.append(record)
        # Parallel workers finish out of order; the list stays sorted by index.
        records.sort(key=lambda existing: int(existing.get("index", 0)))
        total = self.total_routes
        if total is None or total < len(records):
            total = len(records)
        self._data["_checkpoint"]["progress"] = [len(records), total]
        self._refresh_status()
        self._write()
        return copy.deepcopy(record)

    def finalize(self) -> dict[str, Any]:
        """Write the global record, labels/values and the final entry status now; returns the global record.

        Called automatically when the last declared route is added; call it at
        the end of a run that stopped early (the entry becomes "Finished with
        missing data", as in the leaderboard).
        """
        records = self._data["_checkpoint"]["records"]
        total = self.total_routes if self.total_routes is not None else len(records)
        global_record = self._set_final(total, self._data["_checkpoint"]["progress"] or [len(records), total])
        self._write()
        return copy.deepcopy(global_record)

    def _set_final(self, total: int, progress: list[int]) -> dict[str, Any]:
        """Set the global record, labels/values, entry status and eligibility of a run of ``total``
        routes; returns the global record."""
        checkpoint = self._data["_checkpoint"]
        global_record = compute_global_record(checkpoint["records"], total)
        checkpoint["global_record"] = global_record
        self._data["labels"], self._data["values"] = labels_and_values(global_record)
        self._data["entry_status"], self._data["eligible"] = compute_entry_status(
            checkpoint["records"], progress, total)
        return global_record

    def _refresh_status(self) -> None:
        checkpoint = self._data["_checkpoint"]
        progress = checkpoint["progress"]
        if progress and progress[0] >= progress[1] and progress[1] > 0:
            self._set_final(progress[1], progress)
            return
        # A run in progress, as the leaderboard leaves it between routes.
        checkpoint["global_record"] = {}
        self._data["labels"], self._data["values"] = [], []
        self._data["entry_status"] = "Crashed" if any(map(simulation_crashed, checkpoint["records"])) else "Started"
        self._data["eligible"] = False

    def _write(self) -> None:
        atomic_write_json(self.path, self._data, indent=4, sort_keys=True)
