"""Leaderboard 1.0's statistics of route runs: route records, the global record, labels, entry status.

What ``leaderboard/utils/statistics_manager.py`` (``leaderboard-1.0`` branch)
computes, from our :class:`~sumo_world.scoring.records.RouteOutcome`; the file
that holds them is :mod:`sumo_world.scoring.results`.

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
"""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

from driving.penalties import INFRACTION_TYPES, driving_score, infraction_penalty
from sumo_world.scoring.records import RouteOutcome

__all__ = [
    "LABELS", "ROUTE_NAME_PREFIX", "SCORE_KEYS", "route_scores", "route_record", "compute_global_record",
    "labels_and_values", "compute_entry_status", "json_safe", "simulation_crashed", "leaderboard_route_name", "route_config_id",
]

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

SCORE_KEYS = ("score_route", "score_penalty", "score_composed")
_SIMULATION_CRASHED = "Simulation crashed"
_TIMEOUT_STATUS = "Failed - Agent timed out"
# The leaderboard itself adds this message when the route's timer runs out.
_TIMEOUT_MESSAGE = "Route timeout."


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


def json_safe(value: Any, where: str) -> Any:
    """``value`` as plain JSON data (numpy values, sets, tuples and paths converted); TypeError naming ``where``."""
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
    meta.update(json_safe(dict(run_meta or {}), f"route {outcome.route_id!r}: run metadata"))
    meta.update(json_safe(dict(outcome.meta), f"route {outcome.route_id!r}: outcome.meta"))
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
    scores = {key: 0.0 for key in SCORE_KEYS}
    infractions = {key: 0.0 for key in INFRACTION_TYPES}
    meta: dict[str, Any] = {"total_length": 0.0, "duration_system": 0.0, "duration_game": 0.0}
    status = "Completed"
    for record in records:
        record_meta = record.get("meta") or {}
        for key in SCORE_KEYS:
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
        std_dev = {key: "NaN" for key in SCORE_KEYS}
    else:
        std_dev = {key: 0.0 for key in SCORE_KEYS}
        for record in records:
            for key in SCORE_KEYS:
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


def simulation_crashed(record: Mapping[str, Any]) -> bool:
    """Whether the record's simulation crashed (the leaderboard reruns such routes on resume)."""
    return _SIMULATION_CRASHED in str(record.get("status", ""))


def compute_entry_status(records: list[Mapping[str, Any]], progress: list[int],
                         total_routes: int) -> tuple[str, bool]:
    """``(entry_status, eligible)`` of a finished run, as leaderboard 1.0 decides them.

    A route whose simulation crashed makes the entry ``"Crashed"`` (not
    eligible): 1.0 stops the evaluation there, 2.0 reports it this way.
    """
    if any(simulation_crashed(record) for record in records):
        return "Crashed", False
    if len(records) != total_routes or not progress or progress[0] != progress[1]:
        return "Finished with missing data", False
    if any("Agent" in str(record.get("status", "")) for record in records):
        return "Finished with agent errors", True
    return "Finished", True
