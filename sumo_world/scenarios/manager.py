"""Running a route's scenarios: build them, trigger them, step them, report them.

The runner asks :meth:`ScenarioManager.for_route` for the route's manager
(the matching of :mod:`sumo_world.scenarios.definitions`), then every tick
calls :meth:`ScenarioManager.update` with the world's snapshot and gets the
snapshot with the scenarios' visible actors and props merged in (walkers in
``pedestrians``, cyclists and vehicles in ``vehicles``, solid props in
``props``), so that the scene, the criteria and the pictures see them like any
other actor. :meth:`ScenarioManager.perturb` applies the control noise of a
running Scenario1. :meth:`ScenarioManager.records` says what ran.

Triggering follows leaderboard 1.0's ``ScenarioTriggerer``: a scenario starts
when the route point nearest the ego (its tracked point) lies within 1.5 m of
the trigger, measured in 3-D with the route's heights; each scenario runs once.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from driving.geometry import wrap_angle_deg
from sumo_world.scenarios.base import DONE, RUNNING, WAITING, RoutePath, Scenario, ScenarioTick
from sumo_world.scenarios.definitions import ScenarioFile, match_route

__all__ = ["ScenarioEnv", "ScenarioManager", "LaneSteps", "scenario_class", "route_heights",
           "SCENARIO_TRIGGER_DISTANCE_M"]

logger = logging.getLogger(__name__)

SCENARIO_TRIGGER_DISTANCE_M = 1.5  # route_scenario.py: scenario_trigger_distance
_DEFAULT_LANE_WIDTH_M = 3.5
_DRIVING_CLASS = "passenger"


def scenario_class(name: str) -> type[Scenario]:
    """The class that plays scenario ``name`` ("Scenario1" .. "Scenario10"), as NUMBER_CLASS_TRANSLATION."""
    from sumo_world.scenarios.control_loss import ControlLoss
    from sumo_world.scenarios.follow_leading_vehicle import FollowLeadingVehicle
    from sumo_world.scenarios.junction_crossing import NoSignalJunctionCrossingRoute, SignalJunctionCrossingRoute
    from sumo_world.scenarios.object_crossing import DynamicObjectCrossing
    from sumo_world.scenarios.opposite_obstacle import ManeuverOppositeDirection
    from sumo_world.scenarios.other_leading_vehicle import OtherLeadingVehicle
    from sumo_world.scenarios.turning_cyclist import VehicleTurningRoute

    table: dict[str, type[Scenario]] = {
        "Scenario1": ControlLoss, "Scenario2": FollowLeadingVehicle, "Scenario3": DynamicObjectCrossing,
        "Scenario4": VehicleTurningRoute, "Scenario5": OtherLeadingVehicle,
        "Scenario6": ManeuverOppositeDirection, "Scenario7": SignalJunctionCrossingRoute,
        "Scenario8": SignalJunctionCrossingRoute, "Scenario9": SignalJunctionCrossingRoute,
        "Scenario10": NoSignalJunctionCrossingRoute,
    }
    return table[name]


@dataclass(frozen=True)
class LaneSteps:
    """The walk from a lane to the road's right edge, as scenario_runner's ``get_right_lane`` loop.

    ``steps``: calls to ``get_right_lane`` until the sidewalk or nothing (the
    last included); ``driving_lanes_passed``: driving lanes stepped onto;
    ``offset_to_rightmost_m``: lateral distance from the lane's centre to the
    rightmost driving lane's; ``rightmost_width_m``: that lane's width.
    """

    steps: int
    driving_lanes_passed: int
    offset_to_rightmost_m: float
    rightmost_width_m: float


def route_heights(dense: Any, waypoints: Sequence[Sequence[float]] | None) -> np.ndarray:
    """Per dense point, the height (z, m) interpolated between the route file's waypoints.

    The embedded world is flat, but leaderboard 1.0 matches triggers in 3-D
    against a route at road height, and the public file's triggers sit 1 m up.
    """
    n = len(dense.points)
    indices = list(getattr(dense, "waypoint_indices", None) or [])
    if not waypoints or len(indices) != len(waypoints):
        return np.zeros(n)
    zs = [float(w[2]) for w in waypoints]
    return np.interp(np.arange(n), indices, zs)


class ScenarioEnv:
    """What scenarios place and move their actors with: the route, the network, the world, ids, a seeded RNG."""

    def __init__(self, path: RoutePath, network: Any = None, world: Any = None, seed: int = 0,
                 z: np.ndarray | None = None) -> None:
        self.path = path
        self.network = network
        self.world = world
        self.rng = np.random.RandomState(seed)
        self.z = np.zeros(len(path.points)) if z is None else np.asarray(z, dtype=float)
        self._next_id = 1_000_000  # far above SUMO's actor ids, which count from 1
        self.controls: list[Any] = []  # sumo_world.scene.builder.RouteControl of the route

    def new_id(self) -> int:
        """A fresh actor id for a scenario actor or prop."""
        self._next_id += 1
        return self._next_id

    def lane(self, lane_id: str) -> Any:
        """The sumolib lane ``lane_id`` (None when unknown or without a network)."""
        if self.network is None or not lane_id:
            return None
        try:
            return self.network.lane(lane_id)
        except KeyError:
            return None

    def lane_width(self, lane_id: str) -> float:
        """Width (m) of a SUMO lane (3.5 m when unknown)."""
        lane = self.lane(lane_id)
        return float(lane.getWidth()) if lane is not None else _DEFAULT_LANE_WIDTH_M

    def lanes_to_the_right(self, lane_id: str) -> LaneSteps:
        """Walk right from ``lane_id`` over driving lanes until a sidewalk or the road's edge."""
        lane = self.lane(lane_id)
        if lane is None:
            return LaneSteps(1, 0, 0.0, self.lane_width(lane_id))
        lanes = lane.getEdge().getLanes()  # index 0 is the rightmost (SUMO drives on the right)
        index = lane.getIndex()
        steps, passed, offset = 0, 0, 0.0
        current = lane
        while True:
            steps += 1
            index -= 1
            if index < 0:
                break
            right = lanes[index]
            if right.allows("pedestrian") and not right.allows(_DRIVING_CLASS):
                break  # the sidewalk
            if not right.allows(_DRIVING_CLASS):
                break  # a shoulder or bike lane: the road's edge for scenario_runner's walk
            offset += 0.5 * (float(current.getWidth()) + float(right.getWidth()))
            passed += 1
            current = right
        return LaneSteps(steps, passed, offset, float(current.getWidth()))


class ScenarioManager:
    """The scenarios of one route run (see the module)."""

    def __init__(self, scenarios: list[Scenario], env: ScenarioEnv) -> None:
        self.scenarios = scenarios
        self.env = env
        self._last_time_s: float | None = None

    @classmethod
    def for_route(cls, scenario_file: ScenarioFile, town: str, context: Any, dense: Any, network: Any = None,
                  world: Any = None, seed: int = 0,
                  waypoints: Sequence[Sequence[float]] | None = None) -> "ScenarioManager":
        """Match the file's scenarios of ``town`` to the planned route and build them.

        ``context`` is the run's :class:`sumo_world.scene.builder.RouteContext`,
        ``dense`` its :class:`sumo_world.routes.planner.DenseRoute`, ``waypoints``
        the route file's ``(x, y, z, yaw)`` (for heights).
        """
        z = route_heights(dense, waypoints)
        yaw = dense.yaw_deg
        definitions = match_route(scenario_file, town, context.points, yaw, context.commands, z)
        is_intersection = getattr(network, "is_intersection", None)
        path = RoutePath(context.points, context.lanes, context.commands, is_intersection)
        env = ScenarioEnv(path, network, world, seed, z)
        env.controls = list(getattr(context, "controls", []))  # the route's lights, for Scenario7-9
        built = []
        for definition in definitions:
            try:
                built.append(scenario_class(definition.name)(definition, env))
            except Exception as exc:  # the leaderboard skips a scenario it cannot set up, and says so
                logger.warning("route %s: skipping %s at (%.1f, %.1f): setup failed: %s", context.route_id,
                               definition.name, definition.trigger.x, definition.trigger.y, exc)
        return cls(built, env)

    def __len__(self) -> int:
        return len(self.scenarios)

    # ------------------------------------------------------------------ per tick
    def update(self, time_s: float, ego: Any, route_index: int, progress_m: float, snapshot: Any) -> Any:
        """Trigger and step the scenarios; returns ``snapshot`` with their visible actors merged in."""
        dt = 0.0 if self._last_time_s is None else max(0.0, time_s - self._last_time_s)
        self._last_time_s = time_s
        tick = ScenarioTick(time_s, dt, ego, int(route_index), float(progress_m),
                            bool(str(getattr(snapshot, "ego_lane_id", "")).startswith(":")))
        route_xy = self.env.path.points[tick.route_index]
        route_z = float(self.env.z[tick.route_index])
        for scenario in self.scenarios:
            if scenario.status == WAITING:
                t = scenario.definition.trigger
                distance = float(np.sqrt((route_xy[0] - t.x) ** 2 + (route_xy[1] - t.y) ** 2 + (route_z - t.z) ** 2))
                if distance < SCENARIO_TRIGGER_DISTANCE_M:
                    scenario.start(tick)
            if scenario.status == RUNNING:
                scenario.step(tick)
        return self.merge(snapshot)

    def perturb(self, control: Any) -> Any:
        """``control`` with the running scenarios' interference (Scenario1's noise) applied in place."""
        throttle, steer = float(control.throttle), float(control.steer)
        for scenario in self.scenarios:
            if scenario.status == RUNNING:
                throttle, steer = scenario.perturb_control(throttle, steer)
        control.throttle, control.steer = throttle, steer
        return control

    def merge(self, snapshot: Any) -> Any:
        """A copy of ``snapshot`` with the visible scenario actors and solid props added."""
        from dataclasses import replace

        from sumo_world.simulation.snapshot import ActorArrays

        groups: dict[str, list[Any]] = {"vehicles": [], "pedestrians": []}
        props = []
        for scenario in self.scenarios:
            groups_items = [a for a in scenario.actors if a.visible]
            for actor in groups_items:
                groups[actor.group].append(actor)
            props += [p for p in scenario.props if p.visible and p.solid]
        if not any(groups.values()) and not props:
            return snapshot

        def extended(arrays: Any, rows: list[tuple], ids: list[int], types: list[str]) -> Any:
            if not rows:
                return arrays
            data = np.asarray(rows, dtype=float)
            base = arrays if arrays is not None and len(arrays) else ActorArrays()
            return ActorArrays(
                ids=list(base.ids) + ids, sumo_ids=list(base.sumo_ids) + [f"scenario_{i}" for i in ids],
                types=list(base.types) + types,
                xy=np.vstack([base.xy.reshape(-1, 2), data[:, :2]]),
                yaw_deg=np.r_[base.yaw_deg, data[:, 2]], speed_mps=np.r_[base.speed_mps, data[:, 3]],
                half_length_m=np.r_[base.half_length_m, data[:, 4]],
                half_width_m=np.r_[base.half_width_m, data[:, 5]])

        def actor_rows(items: list[Any]) -> list[tuple]:
            return [(a.x, a.y, wrap_angle_deg(a.yaw_deg), a.speed_mps, a.half_length_m, a.half_width_m)
                    for a in items]

        changes: dict[str, Any] = {}
        for group, items in groups.items():
            if items:
                changes[group] = extended(getattr(snapshot, group), actor_rows(items),
                                          [a.actor_id for a in items], [a.actor_type for a in items])
        if props:
            rows = [(p.x, p.y, wrap_angle_deg(p.yaw_deg), 0.0, p.half_length_m, p.half_width_m)
                    for p in props]
            changes["props"] = extended(getattr(snapshot, "props", None), rows, [p.actor_id for p in props],
                                        [p.prop_type for p in props])
        return replace(snapshot, **changes)

    # ------------------------------------------------------------------ results
    def records(self, infractions: Sequence[Any], end_time_s: float) -> list[dict[str, Any]]:
        """What ran, for the route record's meta: type, trigger, start, end and outcome.

        ``outcome`` is "clean" (no infraction while it ran), "infraction"
        (``infractions`` lists their kinds), or "not reached" (never triggered).
        Times count from the route's start, as the infractions' do.
        """
        out = []
        for scenario in self.scenarios:
            d = scenario.definition
            record: dict[str, Any] = {
                "type": d.name, "class": scenario.name, "subtype": d.subtype, "trigger": d.trigger.as_dict(),
                "route_index": d.route_index, "started_at_s": scenario.started_at_s,
                "ended_at_s": scenario.ended_at_s,
                "actors": ([_actor_record(a, scenario.placement) for a in scenario.actors]
                           + [_prop_record(p) for p in scenario.props]),
            }
            if scenario.started_at_s is None:
                record["outcome"], record["infractions"] = "not reached", []
            else:
                end = scenario.ended_at_s if scenario.ended_at_s is not None else end_time_s
                kinds = [i.kind for i in infractions if scenario.started_at_s - 1e-9 <= i.time_s <= end + 1e-9]
                record["outcome"] = "infraction" if kinds else "clean"
                record["infractions"] = kinds
                if scenario.status != DONE:
                    record["ended_at_s"] = None
            out.append(record)
        return out


def _actor_record(actor: Any, placement: Mapping[int, tuple[float, float]]) -> dict[str, Any]:
    x, y = placement.get(actor.actor_id, (actor.x, actor.y))  # where it appeared (or waits, unstarted)
    return {"id": actor.actor_id, "kind": actor.actor_type, "x": round(x, 3), "y": round(y, 3)}


def _prop_record(prop: Any) -> dict[str, Any]:
    return {"id": prop.actor_id, "kind": prop.prop_type, "x": round(prop.x, 3), "y": round(prop.y, 3),
            "solid": prop.solid}
