"""The leaderboard-1.0 scenario file, and which of its scenarios a route gets.

The file (the leaderboard's ``--scenarios``, e.g. ``all_towns_traffic_scenarios_public.json``)::

    {"available_scenarios": [
        {"Town01": [
            {"scenario_type": "Scenario3",
             "available_event_configurations": [
                 {"transform": {"x": "..", "y": "..", "z": "..", "yaw": "..", "pitch": ".."},
                  "other_actors": {"front": [{transform}], "left": [..], "right": [..]}},   (optional)
                 ...]},
            ...]},
        {"Town02": [...]}, ...]}

Numbers may be strings (the public file's) or numbers. Coordinates are CARLA's.

Matching follows leaderboard 1.0 (``leaderboard/utils/route_parser.py`` and
``leaderboard/scenarios/route_scenario.py``), fact for fact:

- a trigger belongs to the route when it lies within ``TRIGGER_THRESHOLD``
  (2 m, measured in 3-D, so the file's z matters) and ``TRIGGER_ANGLE_THRESHOLD``
  (10 degrees) of yaw of a point of the dense route; the first such point is
  the match position;
- Scenario4, 7, 8 and 9 depend on the route's next turn after the match
  position (the first road option that is not a lane follow or lane change):
  4 needs LEFT or RIGHT, 7 LEFT/RIGHT/STRAIGHT, 8 LEFT, 9 RIGHT, else the
  event is dropped;
- triggers within 2 m and 10 degrees of an earlier one share its trigger id;
- per trigger id, in order of first appearance: the highest scenario number is
  taken first; while its positions (trigger and ``other_actors``) coincide
  (2 m) with those of a scenario already taken, another one is drawn with
  ``numpy.random.RandomState(0).choice`` from the rest (one generator for the
  route), until none is left.

``other_actors`` are kept as the leaderboard keeps them: used in the sampling's
position comparison and handed to the scenario (front, then left, then
right); the scenario classes of 1.0 place their own actors from the trigger.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = [
    "TRIGGER_THRESHOLD_M", "TRIGGER_ANGLE_THRESHOLD_DEG", "SCENARIO_NAMES",
    "ScenarioFileError", "TriggerTransform", "ScenarioEvent", "ScenarioDefinition", "ScenarioFile",
    "read_scenario_file", "match_route",
]

TRIGGER_THRESHOLD_M = 2.0
TRIGGER_ANGLE_THRESHOLD_DEG = 10.0
SCENARIO_NAMES: tuple[str, ...] = tuple(f"Scenario{n}" for n in range(1, 11))
_ACTOR_SIDES = ("front", "left", "right")  # the order the leaderboard lists them in
_TURN_COMMANDS = ("LEFT", "RIGHT", "STRAIGHT", "VOID")
# Route-dependent subtypes (route_parser.get_scenario_type): scenario -> {next turn: subtype}.
_SUBTYPES: dict[str, dict[str, str]] = {
    "Scenario4": {"LEFT": "S4left", "RIGHT": "S4right"},
    "Scenario7": {"LEFT": "S7left", "RIGHT": "S7right", "STRAIGHT": "S7opposite"},
    "Scenario8": {"LEFT": "S8left"},
    "Scenario9": {"RIGHT": "S9right"},
}


class ScenarioFileError(ValueError):
    """A scenario file cannot be read; the message names the file and the entry."""

    def __init__(self, path: str | Path, where: str, message: str) -> None:
        self.path = str(path)
        self.where = where
        super().__init__(f"{self.path}: {where}: {message}" if where else f"{self.path}: {message}")


@dataclass(frozen=True)
class TriggerTransform:
    """A transform of the file: CARLA (x, y, z) in metres, yaw in degrees."""

    x: float
    y: float
    z: float
    yaw_deg: float

    def as_dict(self) -> dict[str, float]:
        """JSON form (x, y, z, yaw)."""
        return {"x": self.x, "y": self.y, "z": self.z, "yaw": self.yaw_deg}


@dataclass(frozen=True)
class ScenarioEvent:
    """One entry of ``available_event_configurations``."""

    scenario: str
    trigger: TriggerTransform
    other_actors: Mapping[str, tuple[TriggerTransform, ...]] | None
    entry: str  # where it is in the file, for messages


@dataclass(frozen=True)
class ScenarioDefinition:
    """A scenario a route will run: what the leaderboard's ``_scenario_sampling`` returns.

    ``route_index`` is the match position on the dense route; ``subtype`` the
    route-dependent tag ("valid" for scenarios without one).
    """

    name: str
    trigger: TriggerTransform
    other_actors: Mapping[str, tuple[TriggerTransform, ...]] | None
    subtype: str
    route_index: int
    trigger_id: int

    @property
    def number(self) -> int:
        """The scenario's number (Scenario7 -> 7)."""
        return int(self.name[len("Scenario"):])


@dataclass
class ScenarioFile:
    """A parsed scenario file: per town, the events in file order."""

    path: Path
    towns: dict[str, list[ScenarioEvent]] = field(default_factory=dict)

    def events(self, town: str) -> list[ScenarioEvent]:
        """The events of ``town`` (none when the file has no such town)."""
        return list(self.towns.get(town, []))


# ----------------------------------------------------------------------------- reading


def _number(path: Path, where: str, data: Mapping[str, Any], key: str) -> float:
    if key not in data:
        raise ScenarioFileError(path, where, f"missing {key!r}")
    value = data[key]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ScenarioFileError(path, where, f"{key!r} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise ScenarioFileError(path, where, f"{key!r} is not finite: {value!r}")
    return number


def _transform(path: Path, where: str, data: Any) -> TriggerTransform:
    if not isinstance(data, Mapping):
        raise ScenarioFileError(path, where, f"expected an object with x, y, z, yaw, got {type(data).__name__}")
    return TriggerTransform(*(_number(path, where, data, key) for key in ("x", "y", "z", "yaw")))


def _other_actors(path: Path, where: str, data: Any) -> dict[str, tuple[TriggerTransform, ...]]:
    if not isinstance(data, Mapping):
        raise ScenarioFileError(path, where, f"expected an object of front/left/right lists, got {type(data).__name__}")
    out: dict[str, tuple[TriggerTransform, ...]] = {}
    for side, items in data.items():
        if side not in _ACTOR_SIDES:
            raise ScenarioFileError(path, where, f"unknown side {side!r} (expected one of {', '.join(_ACTOR_SIDES)})")
        if not isinstance(items, list):
            raise ScenarioFileError(path, f"{where}.{side}", "expected a list of transforms")
        out[side] = tuple(_transform(path, f"{where}.{side}[{k}]", item) for k, item in enumerate(items))
    return out


def read_scenario_file(path: str | Path) -> ScenarioFile:
    """Parse a leaderboard-1.0 scenario file; :class:`ScenarioFileError` names what is wrong and where."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioFileError(path, "", f"cannot be read ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScenarioFileError(path, f"line {exc.lineno}", f"not valid JSON ({exc.msg})") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("available_scenarios"), list):
        raise ScenarioFileError(path, "", "expected an object with a list 'available_scenarios'")
    result = ScenarioFile(path)
    for t, town_block in enumerate(data["available_scenarios"]):
        where_block = f"available_scenarios[{t}]"
        if not isinstance(town_block, Mapping):
            raise ScenarioFileError(path, where_block, "expected an object {town: [scenarios]}")
        for town, scenarios in town_block.items():
            where_town = f"{where_block}.{town}"
            if not isinstance(scenarios, list):
                raise ScenarioFileError(path, where_town, "expected a list of scenarios")
            events = result.towns.setdefault(str(town), [])
            for s, scenario in enumerate(scenarios):
                where_s = f"{where_town}[{s}]"
                if not isinstance(scenario, Mapping):
                    raise ScenarioFileError(path, where_s, "expected an object")
                name = scenario.get("scenario_type")
                if name not in SCENARIO_NAMES:
                    raise ScenarioFileError(path, where_s, f"scenario_type {name!r} is not one of "
                                                           f"Scenario1 .. Scenario10")
                configurations = scenario.get("available_event_configurations")
                if not isinstance(configurations, list):
                    raise ScenarioFileError(path, where_s, "missing list 'available_event_configurations'")
                for e, event in enumerate(configurations):
                    where_e = f"{where_s} ({name}).available_event_configurations[{e}]"
                    if not isinstance(event, Mapping) or "transform" not in event:
                        raise ScenarioFileError(path, where_e, "expected an object with a 'transform'")
                    trigger = _transform(path, f"{where_e}.transform", event["transform"])
                    others = (_other_actors(path, f"{where_e}.other_actors", event["other_actors"])
                              if event.get("other_actors") is not None else None)
                    events.append(ScenarioEvent(str(name), trigger, others, where_e))
    return result


# ----------------------------------------------------------------------------- matching


def _yaw_close(a_deg: float, b_deg: float) -> bool:
    dyaw = (a_deg - b_deg) % 360.0
    return dyaw < TRIGGER_ANGLE_THRESHOLD_DEG or dyaw > 360.0 - TRIGGER_ANGLE_THRESHOLD_DEG


def _match_position(trigger: TriggerTransform, points: np.ndarray, yaw_deg: np.ndarray,
                    z: np.ndarray) -> int | None:
    """The first dense-route index within 2 m (3-D) and 10 degrees of the trigger."""
    d = np.sqrt((points[:, 0] - trigger.x) ** 2 + (points[:, 1] - trigger.y) ** 2 + (z - trigger.z) ** 2)
    for index in np.nonzero(d < TRIGGER_THRESHOLD_M)[0]:
        if _yaw_close(trigger.yaw_deg, float(yaw_deg[index])):
            return int(index)
    return None


def _subtype(name: str, match_index: int, commands: Sequence[str]) -> str | None:
    table = _SUBTYPES.get(name)
    if table is None:
        return "valid"
    for command in commands[match_index:]:
        if command in _TURN_COMMANDS:
            return table.get(command)
    return None


def _existing_trigger(trigger: TriggerTransform, triggers: list[TriggerTransform]) -> int | None:
    for trigger_id, other in enumerate(triggers):
        if math.hypot(other.x - trigger.x, other.y - trigger.y) < TRIGGER_THRESHOLD_M \
                and _yaw_close(other.yaw_deg, trigger.yaw_deg):
            return trigger_id
    return None


def _positions(definition: ScenarioDefinition) -> list[TriggerTransform]:
    # compare_scenarios lists the trigger, then left, front, right.
    out = [definition.trigger]
    if definition.other_actors:
        for side in ("left", "front", "right"):
            out += list(definition.other_actors.get(side, ()))
    return out


def _same_place(a: ScenarioDefinition, b: ScenarioDefinition) -> bool:
    # compare_scenarios' angle test compares the choice's yaw with itself (always 0), so only
    # the 3-D distance decides; kept so, as the leaderboard samples.
    for p in _positions(a):
        for q in _positions(b):
            if math.sqrt((p.x - q.x) ** 2 + (p.y - q.y) ** 2 + (p.z - q.z) ** 2) < TRIGGER_THRESHOLD_M:
                return True
    return False


def _highest(candidates: list[ScenarioDefinition]) -> ScenarioDefinition:
    best = candidates[0]
    for candidate in candidates:  # ">=": the last of equal numbers wins, as in select_scenario
        if candidate.number >= best.number:
            best = candidate
    return best


def match_route(scenarios: ScenarioFile, town: str, points: np.ndarray, yaw_deg: np.ndarray,
                commands: Sequence[str], z: np.ndarray | None = None, seed: int = 0) -> list[ScenarioDefinition]:
    """The scenarios a route runs, in trigger order of the file, as leaderboard 1.0 samples them.

    ``points`` (N, 2), ``yaw_deg`` (N,), ``commands`` (N RoadOption names) and
    ``z`` (N,; zeros when None) describe the dense route in CARLA coordinates.
    """
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    yaw_deg = np.asarray(yaw_deg, dtype=float)
    z = np.zeros(len(points)) if z is None else np.asarray(z, dtype=float)
    triggers: list[TriggerTransform] = []
    possible: dict[int, list[ScenarioDefinition]] = {}
    for event in scenarios.events(town):
        index = _match_position(event.trigger, points, yaw_deg, z)
        if index is None:
            continue
        subtype = _subtype(event.scenario, index, commands)
        if subtype is None:
            continue
        trigger_id = _existing_trigger(event.trigger, triggers)
        if trigger_id is None:
            triggers.append(event.trigger)
            trigger_id = len(triggers) - 1
            possible[trigger_id] = []
        possible[trigger_id].append(ScenarioDefinition(event.scenario, event.trigger, event.other_actors,
                                                       subtype, index, trigger_id))

    rng = np.random.RandomState(seed)
    sampled: list[ScenarioDefinition] = []
    for trigger_id in sorted(possible):
        candidates = list(possible[trigger_id])
        choice: ScenarioDefinition | None = _highest(candidates)
        candidates.remove(choice)
        while any(_same_place(choice, taken) for taken in sampled):
            if not candidates:
                choice = None
                break
            choice = candidates[int(rng.choice(len(candidates)))]
            candidates.remove(choice)
        if choice is not None:
            sampled.append(choice)
    return sampled
