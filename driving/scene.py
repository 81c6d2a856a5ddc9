"""The scene contract: the one definition of the privileged scene dict.

A *scene* is the plain ``dict`` a driving policy receives at every tick. The
original LangProp paper's keys keep their exact names and meanings, so a policy
written for the paper runs unchanged; keys we add carry their unit in the name.

Frame: CARLA world coordinates in metres, left-handed (x, y); yaw in degrees,
clockwise seen from above; angles relative to the ego are positive to the right.

Traffic lights: leaderboard 1.0 counts a red light when the ego's *tail*
(:data:`RED_LIGHT_TAIL_FRACTION` of its half length behind the centre) crosses
the stop line on red. ``traffic_light_state`` and ``distance_to_traffic_light_m``
describe the light that governs the ego until then: the distance is signed and
turns negative once the centre is past the line (a car standing with its front
over the line on red still sees the light and must hold). The paper's
``distance_to_red_light`` keeps its meaning: only lines ahead of the centre.
``distance_to_junction_exit_m`` says where the junction ahead (or the one the
ego is in) ends, so that a policy can keep the box clear: not follow a lead
into a signalised junction unless its exit has room for the ego.

Everything else (the CARLA extractor, the embedded world, the expert, datasets,
the prompts shown to the LLM) reads the keys from :data:`SCENE_KEYS` and
:data:`ACTOR_KEYS`; nothing else defines a scene key.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import numpy as np

__all__ = [
    "SceneError",
    "KeySpec",
    "SCENE_KEYS",
    "ACTOR_KEYS",
    "PROP_KEYS",
    "ACTOR_GROUPS",
    "ACTOR_TYPES",
    "TRAFFIC_LIGHT_STATES",
    "ROUTE_COMMANDS",
    "RED_LIGHT_TAIL_FRACTION",
    "validate_scene",
    "scene_to_jsonable",
    "scene_from_jsonable",
    "copy_scene",
    "describe_scene_contract",
]


class SceneError(ValueError):
    """A scene does not follow the contract; the message names the key."""


@dataclass(frozen=True)
class KeySpec:
    """One key of the scene (or of an actor entry).

    ``kind`` is one of: ``vec2`` (ndarray shape (2,)), ``points`` (ndarray
    shape (N, 2)), ``float``, ``optional_float`` (float or None), ``bool``,
    ``str``, ``optional_str``, ``actors`` ({int id: actor dict}), ``props``
    ({int id: prop dict}, see :data:`PROP_KEYS`).
    ``paper`` marks the keys of the original LangProp format, which are always
    required; added keys are required from producers (``strict=True``) but a
    paper-format scene without them still validates with ``strict=False``.
    """

    name: str
    kind: str
    description: str
    paper: bool = False
    choices: tuple[str, ...] | None = None


ACTOR_TYPES: tuple[str, ...] = ("car", "truck", "bus", "motorcycle", "bicycle", "pedestrian")
TRAFFIC_LIGHT_STATES: tuple[str, ...] = ("red", "yellow", "green", "off")
# CARLA's agents.navigation.local_planner.RoadOption names.
ROUTE_COMMANDS: tuple[str, ...] = (
    "VOID", "LEFT", "RIGHT", "STRAIGHT", "LANEFOLLOW", "CHANGELANELEFT", "CHANGELANERIGHT",
)

# Leaderboard 1.0's RunningRedLightTest judges a red light by the ego's *tail*: the point this
# fraction of its half length behind the bounding-box centre. A light governs the ego until that
# point has crossed its stop line (``traffic_light_state``, ``distance_to_traffic_light_m``).
RED_LIGHT_TAIL_FRACTION = 0.8

ACTOR_KEYS: tuple[KeySpec, ...] = (
    KeySpec("location_world_coord", "vec2", "bounding-box centre (x, y), metres", paper=True),
    KeySpec("orientation_unit_vector", "vec2", "forward unit vector (x, y)", paper=True),
    KeySpec("forward_speed", "float", "norm of the velocity, m/s (unsigned)", paper=True),
    KeySpec("forward_length", "float", "half of the length (bounding-box extent), metres", paper=True),
    KeySpec("sideways_width", "float", "half of the width (bounding-box extent), metres", paper=True),
    KeySpec("actor_type", "str", "what the actor is", choices=ACTOR_TYPES),
    KeySpec("yaw_deg", "float", "heading, degrees, clockwise seen from above"),
    KeySpec("velocity_mps", "vec2", "world-frame velocity (x, y), m/s"),
    KeySpec("length_m", "float", "full length, metres"),
    KeySpec("width_m", "float", "full width, metres"),
)

PROP_KEYS: tuple[KeySpec, ...] = (
    KeySpec("location_world_coord", "vec2", "bounding-box centre (x, y), metres"),
    KeySpec("orientation_unit_vector", "vec2", "forward unit vector (x, y) of the prop"),
    KeySpec("length_m", "float", "full length along its forward vector, metres"),
    KeySpec("width_m", "float", "full width, metres"),
    KeySpec("prop_type", "str", "CARLA blueprint id, e.g. static.prop.vendingmachine"),
)

SCENE_KEYS: tuple[KeySpec, ...] = (
    # --- the original paper's keys: exact names and meanings -------------------
    KeySpec("ego_location_world_coord", "vec2", "ego bounding-box centre (x, y), metres", paper=True),
    KeySpec("ego_target_location_world_coord", "vec2",
            "first point of the dense route more than 4 m ahead of the ego (x, y), metres", paper=True),
    KeySpec("ego_orientation_unit_vector", "vec2", "ego forward unit vector (x, y)", paper=True),
    KeySpec("ego_forward_speed", "float", "norm of the ego velocity, m/s (unsigned)", paper=True),
    KeySpec("ego_length", "float", "half of the ego length (bounding-box extent, at least 0.5), metres", paper=True),
    KeySpec("ego_width", "float", "half of the ego width (bounding-box extent, at least 0.5), metres", paper=True),
    KeySpec("distance_to_red_light", "optional_float",
            "None unless the next light whose stop line the ego's centre has not passed is red or "
            "yellow and within 50 m; else the forward distance (ego frame) to its stop line, metres "
            "(the paper's meaning, unchanged; distance_to_traffic_light_m keeps the light until the "
            "ego's tail is over the line)", paper=True),
    KeySpec("distance_to_stop_sign", "optional_float",
            "None unless a stop sign affecting the ego, not yet completed (stopped below 0.1 m/s), "
            "is within 30 m; else the forward distance to its stop line, metres", paper=True),
    KeySpec("vehicles", "actors", "vehicles (bicycles included) within 50 m, ego excluded: {id: actor}", paper=True),
    KeySpec("pedestrians", "actors", "walkers within 50 m: {id: actor}", paper=True),
    # --- additions: units in the names ----------------------------------------
    KeySpec("timestamp_s", "float", "simulation time, seconds"),
    KeySpec("ego_yaw_deg", "float", "ego heading, degrees, clockwise seen from above"),
    KeySpec("ego_velocity_mps", "vec2", "ego world-frame velocity (x, y), m/s"),
    KeySpec("ego_length_m", "float", "full ego length, metres"),
    KeySpec("ego_width_m", "float", "full ego width, metres"),
    KeySpec("route_ahead_world_coord", "points",
            "the dense route ahead of the ego, about 1 m apart, up to 50 m, shape (N, 2), metres"),
    KeySpec("route_command", "str", "the route's road option at the target point", choices=ROUTE_COMMANDS),
    KeySpec("speed_limit_mps", "float", "speed limit of the ego's lane, m/s"),
    KeySpec("traffic_light_state", "optional_str",
            "state of the light governing the ego: the first light on the route whose stop line the "
            "ego's tail (0.8 of its half length behind the centre, the point leaderboard 1.0 judges) "
            "has not crossed, within 50 m (None when there is none)",
            choices=TRAFFIC_LIGHT_STATES),
    KeySpec("distance_to_traffic_light_m", "optional_float",
            "signed forward distance (ego frame, from the ego's centre) to the stop line of the light "
            "governing the ego, whatever its state; negative once the centre has passed the line while "
            "the tail has not (down to -0.8 x ego_length); None exactly when traffic_light_state is "
            "None, metres"),
    KeySpec("ego_in_junction", "bool", "whether the ego is inside a junction"),
    KeySpec("distance_to_junction_m", "optional_float",
            "distance along the route to the next junction entry (None when none within 50 m), metres"),
    KeySpec("distance_to_junction_exit_m", "optional_float",
            "distance along the route to where the junction the ego is in, or else the next one "
            "(the one of distance_to_junction_m), ends (None when that is not within 50 m), metres"),
    KeySpec("static_props", "props",
            "static obstacles within 50 m that are not vehicles or walkers (props placed by scenarios, "
            "e.g. a vending machine or a street barrier; hitting one is a collision): {id: prop}"),
)

ACTOR_GROUPS: tuple[str, ...] = tuple(k.name for k in SCENE_KEYS if k.kind == "actors")
_ACTOR_BY_NAME = {k.name: k for k in ACTOR_KEYS}
_PROP_BY_NAME = {k.name: k for k in PROP_KEYS}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _check_value(where: str, spec: KeySpec, value: Any) -> None:
    kind = spec.kind
    if kind in ("vec2", "points"):
        if not isinstance(value, np.ndarray):
            raise SceneError(f"{where}: expected a numpy array, got {type(value).__name__}")
        shape_ok = value.shape == (2,) if kind == "vec2" else (value.ndim == 2 and value.shape[1] == 2)
        if not shape_ok:
            want = "(2,)" if kind == "vec2" else "(N, 2)"
            raise SceneError(f"{where}: expected shape {want}, got {value.shape}")
        if not np.all(np.isfinite(value)):
            raise SceneError(f"{where}: contains NaN or infinity")
    elif kind == "float" or (kind == "optional_float" and value is not None):
        if not _is_number(value) or not math.isfinite(float(value)):
            raise SceneError(f"{where}: expected a finite number, got {value!r}")
    elif kind == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise SceneError(f"{where}: expected a bool, got {value!r}")
    elif kind == "str" or (kind == "optional_str" and value is not None):
        if not isinstance(value, str):
            raise SceneError(f"{where}: expected a string, got {value!r}")
        if spec.choices and value not in spec.choices:
            raise SceneError(f"{where}: {value!r} is not one of {', '.join(spec.choices)}")


def _check_prop(where: str, prop: Any) -> None:
    if not isinstance(prop, Mapping):
        raise SceneError(f"{where}: expected a dict, got {type(prop).__name__}")
    for spec in PROP_KEYS:
        if spec.name not in prop:
            raise SceneError(f"{where}: missing key {spec.name!r}")
        _check_value(f"{where}[{spec.name!r}]", spec, prop[spec.name])


def _check_actor(where: str, actor: Any, strict: bool) -> None:
    if not isinstance(actor, Mapping):
        raise SceneError(f"{where}: expected a dict, got {type(actor).__name__}")
    for spec in ACTOR_KEYS:
        if spec.name not in actor:
            if spec.paper or strict:
                raise SceneError(f"{where}: missing key {spec.name!r}")
            continue
        _check_value(f"{where}[{spec.name!r}]", spec, actor[spec.name])


def validate_scene(scene: Mapping[str, Any], strict: bool = True) -> None:
    """Raise :class:`SceneError` naming the first key that breaks the contract.

    ``strict=False`` accepts a scene in the paper's format alone (added keys may
    be absent, but are checked where present). Unknown keys are allowed: a
    producer may attach extra debugging data.
    """
    if not isinstance(scene, Mapping):
        raise SceneError(f"scene: expected a dict, got {type(scene).__name__}")
    for spec in SCENE_KEYS:
        if spec.name not in scene:
            if spec.paper or strict:
                raise SceneError(f"scene: missing key {spec.name!r}")
            continue
        value = scene[spec.name]
        where = f"scene[{spec.name!r}]"
        if spec.kind in ("actors", "props"):
            if not isinstance(value, Mapping):
                raise SceneError(f"{where}: expected a dict of {spec.kind}, got {type(value).__name__}")
            for actor_id, actor in value.items():
                if not isinstance(actor_id, (int, np.integer)) or isinstance(actor_id, bool):
                    raise SceneError(f"{where}: {spec.kind[:-1]} id {actor_id!r} is not an int")
                if spec.kind == "props":
                    _check_prop(f"{where}[{actor_id}]", actor)
                else:
                    _check_actor(f"{where}[{actor_id}]", actor, strict)
        else:
            _check_value(where, spec, value)


def _convert(entries: Mapping[str, Any], specs: Mapping[str, KeySpec],
             convert: Callable[[str, Any], Any]) -> dict[str, Any]:
    """A copy with each contract key's value passed through ``convert(kind, value)``;
    unknown keys are kept as they are."""
    out: dict[str, Any] = {}
    for name, value in entries.items():
        spec = specs.get(name)
        out[name] = convert(spec.kind, value) if spec is not None else value
    return out


def _value_to_jsonable(kind: str, value: Any) -> Any:
    if kind == "actors":
        return {str(int(i)): _convert(a, _ACTOR_BY_NAME, _value_to_jsonable) for i, a in value.items()}
    if kind == "props":
        return {str(int(i)): _convert(a, _PROP_BY_NAME, _value_to_jsonable) for i, a in value.items()}
    if value is None:
        return None
    if kind in ("vec2", "points"):
        return np.asarray(value, dtype=float).tolist()
    if kind in ("float", "optional_float"):
        return float(value)
    if kind == "bool":
        return bool(value)
    return value


def _value_from_jsonable(kind: str, value: Any) -> Any:
    if kind == "actors":
        return {int(i): _convert(a, _ACTOR_BY_NAME, _value_from_jsonable) for i, a in value.items()}
    if kind == "props":
        return {int(i): _convert(a, _PROP_BY_NAME, _value_from_jsonable) for i, a in value.items()}
    if value is None:
        return None
    if kind == "vec2":
        return np.asarray(value, dtype=float).reshape(2)
    if kind == "points":
        return np.asarray(value, dtype=float).reshape(-1, 2)
    if kind in ("float", "optional_float"):
        return float(value)
    return value


_SCENE_BY_NAME = {k.name: k for k in SCENE_KEYS}


def scene_to_jsonable(scene: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-safe copy: arrays become lists, actor ids become strings.

    Unknown keys are kept as they are (they must already be JSON-safe).
    """
    return _convert(scene, _SCENE_BY_NAME, _value_to_jsonable)


def scene_from_jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`scene_to_jsonable`."""
    return _convert(data, _SCENE_BY_NAME, _value_from_jsonable)


def copy_scene(scene: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy, much faster than ``copy.deepcopy`` for the contract's types.

    LLM-written scripts modify their inputs in place (the paper's published
    scripts do), so every policy call gets its own copy.
    """
    def copy_value(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return value.copy()
        if isinstance(value, dict):
            return {k: copy_value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [copy_value(v) for v in value]
        return value  # immutable scalars, strings, None

    return {k: copy_value(v) for k, v in scene.items()}


def describe_scene_contract(include: Iterable[str] | None = None) -> str:
    """A Markdown description of the scene keys, for prompts and docs.

    ``include`` limits the scene keys listed (actor keys are always listed in full).
    """
    wanted = set(include) if include is not None else None
    type_names = {
        "vec2": "np.ndarray shape (2,)", "points": "np.ndarray shape (N, 2)", "float": "float",
        "optional_float": "float or None", "bool": "bool", "str": "str", "optional_str": "str or None",
        "actors": "dict[int, dict]", "props": "dict[int, dict]",
    }

    def row(spec: KeySpec) -> str:
        extra = f" One of: {', '.join(spec.choices)}." if spec.choices else ""
        return f"- `{spec.name}` ({type_names[spec.kind]}): {spec.description}.{extra}"

    lines = [
        "Coordinates are CARLA world coordinates in metres, in a left-handed frame: yaw is in degrees, "
        "clockwise seen from above; angles relative to the ego are positive to the right.",
        "",
        "Scene keys:",
    ]
    lines += [row(s) for s in SCENE_KEYS if wanted is None or s.name in wanted]
    lines += ["", "Each actor in `vehicles` and `pedestrians` is a dict with:"]
    lines += [row(s) for s in ACTOR_KEYS]
    if wanted is None or "static_props" in wanted:
        lines += ["", "Each prop in `static_props` is a dict with:"]
        lines += [row(s) for s in PROP_KEYS]
    return "\n".join(lines)
