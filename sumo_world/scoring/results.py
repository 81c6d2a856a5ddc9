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

Scoring, as 1.0 does it: ``score_penalty`` is the product of the per-event
penalties of :mod:`driving.penalties` times ``(1 - % outside route lanes /
100)``; ``score_route`` is 100 when the route was completed, else the
completion percentage; ``score_composed = score_route * score_penalty``.
Route deviation, blocking and timeouts end the route without a penalty.

The global record follows 1.0's arithmetic exactly: scores are sums over the
route records divided by the number of routes of the run; ``scores_std_dev``
is the sample standard deviation (the string ``"NaN"`` for a single route);
infractions are the **sum over routes of each route's infractions per
kilometre driven** (routes with zero completion are skipped); ``route_id`` and
``index`` are ``-1``; ``status`` is ``"Failed"`` when any route did not
complete; ``meta`` holds ``total_length``, ``duration_game``,
``duration_system`` and ``exceptions`` ``[[route_id, index, status], ...]``.

``provenance`` (ours; the leaderboard's readers ignore it) records what
produced the file: the agent and a digest of its file and checkpoint or config,
a digest of the routes file, the route selection, traffic, seed, scenario file
digest, repetitions, timeout factor and the package version. A run resumes a
file only when they are equal (:class:`ResultsMismatchError` otherwise), so one
file never mixes the results of two runs.

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
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping

from langprop_common.files import atomic_write_json
from driving.penalties import INFRACTION_TYPES, driving_score, infraction_penalty
from sumo_world.scoring.records import RouteOutcome

__all__ = [
    "ResultsFile", "ResultsFileError", "ResultsMismatchError", "RETRY_STATUSES", "path_digest",
    "LABELS", "ROUTE_NAME_PREFIX", "SENSOR_ICONS",
    "route_scores", "route_record", "compute_global_record", "labels_and_values",
    "compute_entry_status", "leaderboard_route_name", "route_config_id", "load_results",
    "empty_results",
]

logger = logging.getLogger(__name__)

ROUTE_NAME_PREFIX = "RouteScenario_"

# The order of ``values`` matches this list (leaderboard 1.0's save_global_record).
LABELS: tuple[str, ...] = (
    "Avg. driving score",
    "Avg. route completion",
    "Avg. infraction penalty",
    "Collisions with pedestrians",
    "Collisions with vehicles",
    "Collisions with layout",
    "Red lights infractions",
    "Stop sign infractions",
    "Off-road infractions",
    "Route deviations",
    "Route timeouts",
    "Agent blocked",
)
_VALUE_INFRACTIONS: tuple[str, ...] = (
    "collisions_pedestrian", "collisions_vehicle", "collisions_layout", "red_light",
    "stop_infraction", "outside_route_lanes", "route_dev", "route_timeout", "vehicle_blocked",
)

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

_SCORE_KEYS = ("score_route", "score_penalty", "score_composed")
_SIMULATION_CRASHED = "Simulation crashed"
#: statuses of runs that could not run (leaderboard 1.0's words): a resume runs them again,
#: while the agent's driving failures (timed out, blocked, deviated) are results and stay
RETRY_STATUSES = ("Failed - Simulation crashed", "Failed - Agent couldn't be set up", "Failed - Agent crashed")
_TIMEOUT_STATUS = "Failed - Agent timed out"
# The leaderboard itself adds this message when the route's timer runs out.
_TIMEOUT_MESSAGE = "Route timeout."


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


# ----------------------------------------------------------------------------- scoring


def route_scores(outcome: RouteOutcome) -> dict[str, float]:
    """``{"score_route", "score_penalty", "score_composed"}`` of one route run."""
    counts = Counter(infraction.kind for infraction in outcome.infractions)
    penalty = infraction_penalty(counts, outcome.outside_route_lanes_percent)
    if outcome.status == "Completed":
        completion = 100.0  # the leaderboard credits the whole route once the target is reached
    else:
        completion = max(0.0, min(100.0, float(outcome.route_completion_percent)))
    return {
        "score_route": completion,
        "score_penalty": penalty,
        "score_composed": max(driving_score(completion, penalty), 0.0),
    }


def leaderboard_route_name(route_id: str) -> str:
    """The leaderboard's name of a route: ``"0"`` -> ``"RouteScenario_0"``."""
    route_id = str(route_id)
    return route_id if route_id.startswith(ROUTE_NAME_PREFIX) else ROUTE_NAME_PREFIX + route_id


def route_config_id(record: Mapping[str, Any]) -> str:
    """The routes-file id of a record (ours keep it in meta; else strip the leaderboard prefix)."""
    meta = record.get("meta") or {}
    if "route_config_id" in meta:
        return str(meta["route_config_id"])
    name = str(record.get("route_id", ""))
    if name.startswith(ROUTE_NAME_PREFIX):
        name = name[len(ROUTE_NAME_PREFIX):]
    if "_rep" in name:  # leaderboard 2.0 names carry the repetition
        name = name.rsplit("_rep", 1)[0]
    return name


def _driven_distance_m(outcome: RouteOutcome) -> float:
    if len(outcome.trajectory) >= 2:
        return sum(math.hypot(b.x - a.x, b.y - a.y)
                   for a, b in zip(outcome.trajectory, outcome.trajectory[1:]))
    return outcome.route_length_m * max(0.0, outcome.route_completion_percent) / 100.0


def _outside_lanes_message(outcome: RouteOutcome) -> str:
    # Same wording and rounding as the leaderboard's OutsideRouteLanesTest (2.0's global
    # statistics parse the distance back out of the ninth word).
    percent = outcome.outside_route_lanes_percent
    distance_m = _driven_distance_m(outcome) * percent / 100.0
    return (f"Agent went outside its route lanes for about {round(distance_m, 3)} meters "
            f"({round(percent, 2)}% of the completed route)")


def _json_safe(value: Any, where: str) -> Any:
    try:
        return json.loads(json.dumps(value, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{where} is not JSON-serializable: {exc}") from exc


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays arrive through outcome.meta
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} {value!r}")


def route_record(outcome: RouteOutcome, index: int, repetition: int = 0,
                 run_meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The leaderboard-1.0 route record of one run (a JSON-safe dict)."""
    infractions: dict[str, list[str]] = {kind: [] for kind in INFRACTION_TYPES}
    for infraction in outcome.infractions:
        if infraction.kind not in infractions:
            raise ValueError(f"route {outcome.route_id!r}: unknown infraction kind {infraction.kind!r} "
                             f"(expected one of {', '.join(INFRACTION_TYPES)})")
        infractions[infraction.kind].append(str(infraction.message))
    if outcome.outside_route_lanes_percent > 0 and not infractions["outside_route_lanes"]:
        infractions["outside_route_lanes"].append(_outside_lanes_message(outcome))
    if outcome.status == _TIMEOUT_STATUS and not infractions["route_timeout"]:
        infractions["route_timeout"].append(_TIMEOUT_MESSAGE)

    meta: dict[str, Any] = {}
    meta.update(_json_safe(dict(run_meta or {}), f"route {outcome.route_id!r}: run metadata"))
    meta.update(_json_safe(dict(outcome.meta), f"route {outcome.route_id!r}: outcome.meta"))
    meta.update({
        "route_length": float(outcome.route_length_m),
        "duration_game": float(outcome.duration_game_s),
        "duration_system": float(outcome.duration_system_s),
        "route_config_id": str(outcome.route_id),
        "repetition": int(repetition),
        "town": outcome.town,
        "outside_route_lanes_percent": float(outcome.outside_route_lanes_percent),
        "agent_exceptions": int(outcome.agent_exceptions),
    })
    return {
        "route_id": leaderboard_route_name(outcome.route_id),
        "index": int(index),
        "status": outcome.status,
        "infractions": infractions,
        "scores": route_scores(outcome),
        "meta": meta,
    }


def compute_global_record(records: list[Mapping[str, Any]], total_routes: int | None = None) -> dict[str, Any]:
    """The global record, with leaderboard 1.0's arithmetic (see the module docstring).

    ``total_routes`` is the number of routes of the run (the divisor of the
    averages); it defaults to ``len(records)``.
    """
    total = len(records) if total_routes is None else int(total_routes)
    scores = {key: 0.0 for key in _SCORE_KEYS}
    infractions = {key: 0.0 for key in INFRACTION_TYPES}
    meta: dict[str, Any] = {"total_length": 0.0, "duration_system": 0.0, "duration_game": 0.0}
    status = "Completed"
    for record in records:
        record_meta = record.get("meta") or {}
        for key in _SCORE_KEYS:
            scores[key] += float(record["scores"][key])
        meta["total_length"] += float(record_meta.get("route_length", 0.0))
        meta["duration_game"] += float(record_meta.get("duration_game", 0.0))
        meta["duration_system"] += float(record_meta.get("duration_system", 0.0))
        score_route = float(record["scores"]["score_route"])
        route_km = score_route / 100.0 * float(record_meta.get("route_length", 0.0)) / 1000.0
        # 1.0 skips routes where the car did not move: their events come from the setup.
        if score_route != 0 and route_km > 0:
            for key in INFRACTION_TYPES:
                infractions[key] += len(record.get("infractions", {}).get(key, [])) / route_km
        if record["status"] != "Completed":
            status = "Failed"
            meta.setdefault("exceptions", []).append(
                [record["route_id"], record["index"], record["status"]])
    std_dev: dict[str, Any]
    if total > 0:
        scores = {key: value / total for key, value in scores.items()}
    if total == 1:
        std_dev = {key: "NaN" for key in _SCORE_KEYS}
    else:
        std_dev = {key: 0.0 for key in _SCORE_KEYS}
        for record in records:
            for key in _SCORE_KEYS:
                std_dev[key] += (float(record["scores"][key]) - scores[key]) ** 2
        if total > 1:
            std_dev = {key: math.sqrt(value / (total - 1)) for key, value in std_dev.items()}
    return {
        "route_id": -1,
        "index": -1,
        "status": status,
        "infractions": infractions,
        "scores": scores,
        "scores_std_dev": std_dev,
        "meta": meta,
    }


def labels_and_values(global_record: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """``labels`` and ``values`` as the leaderboard writes them (values are ``"%.3f"`` strings)."""
    scores = global_record["scores"]
    infractions = global_record["infractions"]
    values = [f"{float(scores[key]):.3f}" for key in ("score_composed", "score_route", "score_penalty")]
    values += [f"{float(infractions[key]):.3f}" for key in _VALUE_INFRACTIONS]
    return list(LABELS), values


def _crashed(record: Mapping[str, Any]) -> bool:
    """Whether the record's simulation crashed (the leaderboard reruns such routes on resume)."""
    return _SIMULATION_CRASHED in str(record.get("status", ""))


def _could_not_run(record: Mapping[str, Any]) -> bool:
    """Whether the record is of a run that could not run (:data:`RETRY_STATUSES`): a resume retries it."""
    return str(record.get("status", "")) in RETRY_STATUSES


def compute_entry_status(records: list[Mapping[str, Any]], progress: list[int],
                         total_routes: int) -> tuple[str, bool]:
    """``(entry_status, eligible)`` of a finished run, as leaderboard 1.0 decides them.

    A route whose simulation crashed makes the entry ``"Crashed"`` (not
    eligible): 1.0 stops the evaluation there, 2.0 reports it this way.
    """
    if any(_crashed(record) for record in records):
        return "Crashed", False
    if len(records) != total_routes or not progress or progress[0] != progress[1]:
        return "Finished with missing data", False
    if any("Agent" in str(record.get("status", "")) for record in records):
        return "Finished with agent errors", True
    return "Finished", True


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
        if not isinstance(record["scores"], dict) or any(key not in record["scores"] for key in _SCORE_KEYS):
            raise fail(f"record {position} ({record['route_id']}): 'scores' lacks one of {_SCORE_KEYS}")
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
        self._run_meta = _json_safe(dict(run_meta or {}), "run_meta")
        data = load_results(self.path)
        if resume and provenance is not None and data["_checkpoint"]["records"]:
            _check_provenance(self.path, data.get("provenance"), _json_safe(dict(provenance), "provenance"))
        #: where ``resume=False`` kept the previous file (None when there was none)
        self.backup: Path | None = None
        if not resume and self.path.exists():
            self.backup = self.path.with_name(self.path.name + ".bak")
            logger.info("%s: starting a new run; the previous file is kept as %s", self.path, self.backup)
            os.replace(self.path, self.backup)
            data = empty_results()
        if provenance is not None:
            data["provenance"] = _json_safe(dict(provenance), "provenance")
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
        self._data["entry_status"] = "Crashed" if any(map(_crashed, checkpoint["records"])) else "Started"
        self._data["eligible"] = False

    def _write(self) -> None:
        atomic_write_json(self.path, self._data, indent=4, sort_keys=True)
