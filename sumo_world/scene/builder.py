"""Scenes of the embedded world: the contract's dict (CARLA frame) built from SUMO state.

:class:`RouteContext` holds what is known about the planned route before the
run starts (traffic lights and stop signs on it with their stop lines, the
junction entries, the route's lanes) and the ego's progress along it; the
criteria update it every tick and :class:`SumoSceneProvider` reads it.

Rules, following ``driving.scene``:

- a traffic light *governs* the ego when it controls the route's connection
  at the first stop line on the route that the ego's tail
  (``driving.scene.RED_LIGHT_TAIL_FRACTION`` of its half length behind the
  centre, where the red-light criterion judges) has not crossed, within 50 m;
  ``traffic_light_state`` and the signed ``distance_to_traffic_light_m``
  describe it (negative while the centre is past the line and the tail not);
- ``distance_to_red_light`` keeps the paper's meaning: the next light whose
  stop line the ego's *centre* has not passed, when it is red or yellow and
  within 50 m; the distance is the stop line's forward coordinate in the ego
  frame;
- a stop sign counts while the ego has not completed it (stopped below
  0.1 m/s in its stop zone) and its stop line is within 30 m;
- ``ego_target_location_world_coord`` is the first dense-route point more than
  4 m from the ego, after its progress (:class:`driving.route.RouteTracker`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driving.route import RouteTracker
from driving.scene import RED_LIGHT_TAIL_FRACTION, ROUTE_COMMANDS, copy_scene
from sumo_world.ego.dynamics import EgoParams, EgoState
from sumo_world.roads.network import lane_edge_id
from sumo_world.simulation.snapshot import ActorArrays, WorldSnapshot

__all__ = ["RouteControl", "RouteContext", "SumoSceneProvider", "prop_dicts", "ACTOR_RADIUS_M",
           "LIGHT_RANGE_M", "STOP_SIGN_RANGE_M"]

ACTOR_RADIUS_M = 50.0
LIGHT_RANGE_M = 50.0
STOP_SIGN_RANGE_M = 30.0
JUNCTION_RANGE_M = 50.0
# SUMO link-state characters -> the contract's light states.
_LIGHT_STATES = {"r": "red", "u": "red", "y": "yellow", "Y": "yellow", "G": "green", "g": "green",
                 "s": "green", "o": "off", "O": "off"}


@dataclass
class RouteControl:
    """A traffic light or stop sign on the route: where its stop line is and what controls it.

    ``index`` is the dense-route index of the stop line (the end of the
    incoming lane); ``distance_m`` its distance along the route.
    """

    kind: str  # "light" | "stop"
    index: int
    distance_m: float
    xy: np.ndarray
    junction_id: str
    tls_id: str = ""
    link_index: int = -1
    completed: bool = False  # stop signs: the ego stopped in the zone


@dataclass
class RouteContext:
    """The planned route, its lights/stops/junctions, and the ego's progress along it."""

    points: np.ndarray
    commands: list[str]
    lanes: list[str]
    edges: set[str]
    controls: list[RouteControl]
    junction_entries: list[float]  # distances along the route where junctions start
    speed_limits: np.ndarray  # per point, m/s
    junction_exits: list[float] = field(default_factory=list)  # where each of junction_entries ends
    route_id: str = ""
    tracker: RouteTracker = field(init=False)
    cumulative_m: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.tracker = RouteTracker(self.points, self.commands)
        self.cumulative_m = _cumulative_m(self.points)

    @property
    def length_m(self) -> float:
        """The route's length (m)."""
        return float(self.cumulative_m[-1])

    @classmethod
    def from_dense_route(cls, network: Any, dense: Any) -> "RouteContext":
        """Analyse a planned route (``sumo_world.routes.planner.DenseRoute``) on its network."""
        points = np.asarray(dense.points, dtype=float).reshape(-1, 2)
        n = len(points)
        commands = [_command_name(c) for c in (dense.commands or ["LANEFOLLOW"] * n)]
        lanes = [str(lane) for lane in (getattr(dense, "lanes", None) or [""] * n)]
        cumulative = _cumulative_m(points)
        edges = {e for e in (getattr(dense, "edges", None) or []) if e}
        edges |= {lane_edge_id(lane) for lane in lanes if lane}

        speed = np.full(n, 13.89)
        for i, lane in enumerate(lanes):
            if lane:
                try:
                    speed[i] = float(network.lane(lane).getSpeed())
                except KeyError:
                    pass

        controls: list[RouteControl] = []
        junction_spans: list[tuple[float, float]] = []
        stop_lanes = getattr(network, "stop_sign_lanes", {}) or {}
        # Runs of normal (non-internal) lanes; a change between two is a junction passage.
        normal = [(i, lane) for i, lane in enumerate(lanes) if lane and not lane.startswith(":")]
        for (i, lane_a), (j, lane_b) in zip(normal, normal[1:]):
            if lane_a == lane_b or lane_edge_id(lane_a) == lane_edge_id(lane_b):
                continue
            stop_index = i
            connection = _connection(network, lane_a, lane_b)
            if connection is None:
                continue
            junction = connection.getJunction().getID() if hasattr(connection, "getJunction") else ""
            if _is_intersection(network, junction):  # not a mere joint between two road pieces
                # From the end of the approach lane to the first point on the exit lane.
                junction_spans.append((float(cumulative[stop_index]), float(cumulative[j])))
            try:
                stop_xy = np.asarray(network.lane_shape(lane_a)[-1], dtype=float)
                stop_index = _nearest_point(points, stop_xy, i)
            except Exception:
                stop_xy = points[stop_index].copy()
            tls = connection.getTLSID()
            if tls:
                controls.append(RouteControl("light", stop_index, float(cumulative[stop_index]), stop_xy,
                                             junction, tls, int(connection.getTLLinkIndex())))
            elif lane_a in stop_lanes:  # the town's stop signs, or its stop links (generated towns)
                controls.append(RouteControl("stop", stop_index, float(cumulative[stop_index]), stop_xy,
                                             junction))
        spans = sorted(set(junction_spans))
        return cls(points, commands, lanes, edges, controls, [a for a, _ in spans], speed,
                   route_id=str(getattr(dense, "route_id", "") or ""), junction_exits=[b for _, b in spans])

    # ---------------------------------------------------------------- queries
    @property
    def progress_m(self) -> float:
        """The route's length up to the ego's tracked point (m)."""
        return float(self.cumulative_m[self.tracker.index])

    def next_control(self, kind: str, progress_m: float) -> RouteControl | None:
        """The first control of ``kind`` whose stop line the ego's centre (at ``progress_m``) has not passed."""
        for control in self.controls:
            if control.kind == kind and control.distance_m > progress_m:
                return control
        return None

    def next_junction_m(self, progress_m: float) -> float | None:
        """Distance along the route from ``progress_m`` to the next junction entry (None: no more)."""
        for distance in self.junction_entries:
            if distance >= progress_m:
                return distance - progress_m
        return None

    def junction_exit_m(self, progress_m: float) -> float | None:
        """Distance along the route from ``progress_m`` to the end of the junction it is in, else of
        the next one (None: no more, or exits unknown)."""
        for exit_m in self.junction_exits:
            if exit_m > progress_m:
                return exit_m - progress_m
        return None


def _nearest_point(points: np.ndarray, xy: np.ndarray, index: int, window: int = 40) -> int:
    """The route point nearest to the stop line ``xy``, searched around ``index`` (the last point
    matched to the approach lane). Near a junction the route's points are often matched to its
    internal lanes several metres before the approach lane ends, and a light or stop sign known only
    up to that point would vanish from the scene before the car reaches its stop line."""
    lo, hi = max(0, index - window), min(len(points), index + window)
    return lo + int(np.argmin(np.linalg.norm(points[lo:hi] - xy, axis=1)))


def _cumulative_m(points: np.ndarray) -> np.ndarray:
    """Distance along ``points`` (N, 2) to each point, starting at 0."""
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(steps)])


def _is_intersection(network: Any, junction_id: str) -> bool:
    check = getattr(network, "is_intersection", None)
    if check is None or not junction_id:
        return True
    try:
        return bool(check(junction_id))
    except KeyError:
        return True


def _command_name(command: Any) -> str:
    name = getattr(command, "name", None) or str(command)
    return name.split(".")[-1].upper()


def _connection(network: Any, lane_a: str, lane_b: str) -> Any:
    try:
        lane = network.lane(lane_a)
    except KeyError:
        return None
    edge_b = lane_edge_id(lane_b)
    best = None
    for connection in lane.getOutgoing():
        to_lane = connection.getToLane()
        if to_lane.getID() == lane_b:
            return connection
        if to_lane.getEdge().getID() == edge_b and best is None:
            best = connection
    if best is None:  # a lane change before the junction: any lane of the edge leading there
        for other in lane.getEdge().getLanes():
            for connection in other.getOutgoing():
                if connection.getToLane().getEdge().getID() == edge_b:
                    return connection
    return best


def actor_dicts(actors: ActorArrays, ego_xy: np.ndarray, radius_m: float = ACTOR_RADIUS_M,
                ego_z_m: float = float("nan")) -> dict[int, dict]:
    """Scene entries of the actors within ``radius_m`` of the ego and on its level (contract keys)."""
    if not len(actors):
        return {}
    distance = np.linalg.norm(actors.xy - ego_xy, axis=1)
    out: dict[int, dict] = {}
    for k in np.nonzero((distance <= radius_m) & actors.on_level(ego_z_m))[0]:
        yaw = float(actors.yaw_deg[k])
        rad = math.radians(yaw)
        forward = np.array([math.cos(rad), math.sin(rad)])
        speed = float(actors.speed_mps[k])
        half_l = float(actors.half_length_m[k])
        half_w = float(actors.half_width_m[k])
        walker = actors.types[k] == "pedestrian"  # walkers keep their true, smaller footprint
        out[int(actors.ids[k])] = {
            "location_world_coord": actors.xy[k].copy(),
            "orientation_unit_vector": forward,
            "forward_speed": abs(speed),
            "forward_length": half_l if walker else max(0.5, half_l),
            "sideways_width": half_w if walker else max(0.5, half_w),
            "actor_type": actors.types[k],
            "yaw_deg": yaw,
            "velocity_mps": forward * speed,
            "length_m": 2.0 * half_l,
            "width_m": 2.0 * half_w,
        }
    return out


def prop_dicts(props: ActorArrays | None, ego_xy: np.ndarray, radius_m: float = ACTOR_RADIUS_M) -> dict[int, dict]:
    """Scene entries (``driving.scene.PROP_KEYS``) of the static props within ``radius_m`` of the ego."""
    if props is None or not len(props):
        return {}
    distance = np.linalg.norm(props.xy - ego_xy, axis=1)
    out: dict[int, dict] = {}
    for k in np.nonzero(distance <= radius_m)[0]:
        rad = math.radians(float(props.yaw_deg[k]))
        out[int(props.ids[k])] = {
            "location_world_coord": props.xy[k].copy(),
            "orientation_unit_vector": np.array([math.cos(rad), math.sin(rad)]),
            "length_m": 2.0 * float(props.half_length_m[k]),
            "width_m": 2.0 * float(props.half_width_m[k]),
            "prop_type": str(props.types[k]),
        }
    return out


class SumoSceneProvider:
    """:class:`driving.provider.SceneProvider` of the embedded world.

    The runner calls :meth:`update` every tick with the ego and the world
    snapshot; :meth:`get_scene` builds the scene on demand (once per tick).
    """

    def __init__(self, world: Any, dense_route: Any = None, *, context: RouteContext | None = None,
                 ego_params: EgoParams | None = None, start_time_s: float = 0.0) -> None:
        if context is None:
            if dense_route is None:
                raise ValueError("SumoSceneProvider needs a dense route or a RouteContext")
            context = RouteContext.from_dense_route(world.network, dense_route)
        self.world = world
        self.context = context
        self.ego_params = ego_params or getattr(world, "ego_params", None) or EgoParams()
        self.start_time_s = float(start_time_s)  # scene timestamps count from the route's start
        self._ego: EgoState | None = None
        self._snapshot: WorldSnapshot | None = None
        self._scene: dict[str, Any] | None = None

    def update(self, ego: EgoState, snapshot: WorldSnapshot) -> None:
        """Set the state of the current tick (the scene is rebuilt on the next request)."""
        self._ego = ego
        self._snapshot = snapshot
        self._scene = None

    def get_scene(self) -> dict[str, Any]:
        """The scene at the current tick (strict contract); callers get their own copy."""
        if self._ego is None or self._snapshot is None:
            raise RuntimeError("no tick yet: the runner calls update() before the agent's first run_step")
        if self._scene is None:
            self._scene = self._build()
        return copy_scene(self._scene)

    def _build(self) -> dict[str, Any]:
        ego = self._ego
        snap = self._snapshot
        ctx = self.context
        assert ego is not None and snap is not None
        p = self.ego_params
        ego_xy = ego.xy
        forward = ego.forward
        tracker = ctx.tracker
        target_index = tracker.target_index(ego_xy)
        progress_m = ctx.progress_m

        light_state = None
        light_distance = None
        # The light governs until the ego's tail has crossed its line: that is when the red-light
        # criterion judges (sumo_world.scoring.criteria), so a car standing with its front over the line
        # on red is still told about the light.
        tail_m = progress_m - RED_LIGHT_TAIL_FRACTION * p.half_length_m
        light = ctx.next_control("light", tail_m)
        if light is not None and light.distance_m - progress_m <= LIGHT_RANGE_M:
            light_state = _LIGHT_STATES.get(self.world.light_state(light.tls_id, light.link_index), "off")
            light_distance = float(np.dot(light.xy - ego_xy, forward))
        red_distance = None  # the paper's key: the next line the ego's centre has not passed
        ahead = light if light is not None and light.distance_m > progress_m else ctx.next_control("light", progress_m)
        if ahead is not None and ahead.distance_m - progress_m <= LIGHT_RANGE_M:
            state = light_state if ahead is light else _LIGHT_STATES.get(
                self.world.light_state(ahead.tls_id, ahead.link_index), "off")
            if state in ("red", "yellow"):
                red_distance = float(np.dot(ahead.xy - ego_xy, forward))

        stop_distance = None
        stop = ctx.next_control("stop", progress_m)
        if stop is not None and not stop.completed and stop.distance_m - progress_m <= STOP_SIGN_RANGE_M:
            stop_distance = float(np.dot(stop.xy - ego_xy, forward))

        junction_m = ctx.next_junction_m(progress_m)
        if junction_m is not None and junction_m > JUNCTION_RANGE_M:
            junction_m = None
        exit_m = ctx.junction_exit_m(progress_m)
        if exit_m is not None and exit_m > JUNCTION_RANGE_M:
            exit_m = None

        return {
            "ego_location_world_coord": ego_xy.copy(),
            "ego_target_location_world_coord": ctx.points[target_index].copy(),
            "ego_orientation_unit_vector": forward,
            "ego_forward_speed": abs(float(ego.speed_mps)),
            "ego_length": max(0.5, p.half_length_m),
            "ego_width": max(0.5, p.half_width_m),
            "distance_to_red_light": red_distance,
            "distance_to_stop_sign": stop_distance,
            "vehicles": actor_dicts(snap.vehicles, ego_xy, ego_z_m=snap.ego_z_m),
            "pedestrians": actor_dicts(snap.pedestrians, ego_xy, ego_z_m=snap.ego_z_m),
            "timestamp_s": float(snap.time_s - self.start_time_s),
            "ego_yaw_deg": float(ego.yaw_deg),
            "ego_velocity_mps": ego.velocity,
            "ego_length_m": 2.0 * p.half_length_m,
            "ego_width_m": 2.0 * p.half_width_m,
            "route_ahead_world_coord": tracker.points_ahead(50.0),
            "route_command": _valid_command(tracker.command_at(target_index)),
            "speed_limit_mps": float(ctx.speed_limits[tracker.index]),
            "traffic_light_state": light_state,
            "distance_to_traffic_light_m": light_distance,
            "ego_in_junction": bool(snap.ego_lane_id.startswith(":")),
            "distance_to_junction_m": junction_m,
            "distance_to_junction_exit_m": exit_m,
            "static_props": prop_dicts(getattr(snap, "props", None), ego_xy),
        }


def _valid_command(name: str) -> str:
    return name if name in ROUTE_COMMANDS else "LANEFOLLOW"
