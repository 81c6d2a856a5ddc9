"""The leaderboard's route criteria, evaluated on the embedded world every tick.

Rules (leaderboard 1.0 where it has one; our choice, stated, where SUMO
differs from CARLA):

- **Collisions** with vehicles and pedestrians: the ego's footprint (an
  oriented box, shapely) intersects the actor's. Each tick of contact is a
  collision event, filtered as 1.0's ``CollisionTest`` filters its sensor's
  events: none counts with the actor of the last counted one within 5 s of it,
  nor with the ego within 3 m of where one was counted (a spot is forgotten
  once the ego is 5 m from it), so a car pushing against the standing ego is
  one collision. Actors more than 3 m above or below the ego (bridges,
  overpasses; heights from the net's lanes, which keep OpenDRIVE's elevation)
  are on another level and never collide.
- **Static props** of scenarios (vending machine, barriers): touching one is a
  layout collision (``collisions_layout``, 0.65), counted like an actor contact.
- **Layout collisions**: SUMO towns have no kerbs or props, so hitting the
  static layout is modelled as the ego's *centre leaving the drivable area*
  (lanes and junction areas), i.e. more than half of the car off the road. One
  event per excursion; the ego must come back on the road before another counts
  (and the spot rule of collisions applies).
- **Red light**: the ego's rear (0.8 x its half length behind the centre, as 1.0
  uses) crosses the stop line of a route light while it is red (red-yellow
  counts as red, yellow does not).
- **Stop sign**: the ego's front must be in the stop zone (from 8 m before the
  stop line to 2 m past it: the stop area of :mod:`sumo_world.towns.stop_signs`, like
  CARLA's trigger volume) at a speed below 0.1 m/s at some tick; leaving the
  zone otherwise is an infraction. A completed stop hides the sign from the
  scene. The stops are the town's stop signs (imported CARLA towns) or its
  stop junctions (generated towns).
- **Outside route lanes**: driven route distance while the ego is off the
  drivable area or on a lane of an edge that is not on the route (the opposite
  direction included); junction interiors never count. Reported as a
  percentage of the completed route distance.
- **Route deviation**: more than 30 m from the route ends the run.
- **Agent blocked**: below 0.1 m/s for ``blocked_time_s`` (180 s) ends the run.
- **Route timeout**: leaderboard 1.0 gives ``0.8 s per metre of route + 5 s``
  of simulated time (times ``timeout_factor``).
- **Completion**: the share of the route length up to the ego's progress point;
  the route is completed above 99 % within 10 m of its end (1.0's rule).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import Polygon

from driving.geometry import box_corners
from driving.penalties import (BLOCKED_SPEED_MPS, BLOCKED_TIME_S, ROUTE_DEVIATION_M, STOP_SPEED_MPS,
                               STOP_ZONE_AFTER_M, STOP_ZONE_BEFORE_M)
from driving.scene import RED_LIGHT_TAIL_FRACTION
from sumo_world.ego.collisions import actor_polygon
from sumo_world.ego.dynamics import EgoParams, EgoState
from sumo_world.scoring.records import Infraction
from sumo_world.roads.network import lane_edge_id
from sumo_world.scene.builder import RouteContext
from sumo_world.simulation.snapshot import ActorArrays, WorldSnapshot

__all__ = ["CriteriaConfig", "RouteCriteria", "route_timeout_s",
           "SECONDS_PER_METRE", "INITIAL_SECONDS_DELAY"]

SECONDS_PER_METRE = 0.8
INITIAL_SECONDS_DELAY = 5.0
# Leaderboard 1.0's CollisionTest: MAX_ID_TIME, MIN_AREA_OF_COLLISION, MAX_AREA_OF_COLLISION.
_SAME_ACTOR_S = 5.0
_SAME_SPOT_M = 3.0
_FORGET_SPOT_M = 5.0
_COMPLETION_PERCENT = 99.0
_COMPLETION_DISTANCE_M = 10.0

STATUS_COMPLETED = "Completed"
STATUS_BLOCKED = "Failed - Agent got blocked"
STATUS_DEVIATED = "Failed - Agent deviated from the route"
STATUS_TIMEOUT = "Failed - Agent timed out"


def route_timeout_s(route_length_m: float, timeout_factor: float = 1.0) -> float:
    """Leaderboard 1.0's route timeout (simulated seconds), scaled by ``timeout_factor``."""
    return float(int(SECONDS_PER_METRE * route_length_m + INITIAL_SECONDS_DELAY)) * float(timeout_factor)


@dataclass(frozen=True)
class CriteriaConfig:
    """Thresholds (the leaderboard's by default; tests shorten ``blocked_time_s``)."""

    blocked_time_s: float = BLOCKED_TIME_S
    blocked_speed_mps: float = BLOCKED_SPEED_MPS
    deviation_m: float = ROUTE_DEVIATION_M
    timeout_factor: float = 1.0
    timeout_s: float | None = None  # overrides the length-based timeout


def _where(x: float, y: float) -> str:
    return f"(x={x:.3f}, y={y:.3f}, z=0.000)"


class RouteCriteria:
    """Tracks one route run: infractions, completion, and whether the run is over."""

    def __init__(self, context: RouteContext, network: object, config: CriteriaConfig | None = None,
                 ego_params: EgoParams | None = None, start_time_s: float = 0.0,
                 world: object = None) -> None:
        self.context = context
        self.world = world  # reads light states; None treats every light as green
        self.config = config or CriteriaConfig()
        self.ego_params = ego_params or EgoParams()
        self.start_time_s = float(start_time_s)
        self.timeout_s = (self.config.timeout_s if self.config.timeout_s is not None
                          else route_timeout_s(context.length_m, self.config.timeout_factor))
        self.infractions: list[Infraction] = []
        self.status: str | None = None
        self._drivable = getattr(network, "drivable_area", None)
        if self._drivable is not None:
            shapely.prepare(self._drivable)
        self._last_actor: tuple[int, float] | None = None  # (id, time) of the last counted collision
        self._spots: list[tuple[float, float]] = []  # where collisions were counted, until the ego leaves
        self._off_road = False
        self._lights_checked: set[int] = set()
        self._stops_checked: set[int] = set()
        self._slow_since: float | None = None
        self._last_progress_m = 0.0
        self._route_driven_m = 0.0
        self._outside_m = 0.0
        self.max_progress_m = 0.0

    # ---------------------------------------------------------------- results
    @property
    def done(self) -> bool:
        """Whether a criterion (or :meth:`finish`) ended the run."""
        return self.status is not None

    @property
    def route_completion_percent(self) -> float:
        """The share of the route length up to the farthest progress point, 0-100 (100 once completed)."""
        if self.status == STATUS_COMPLETED:
            return 100.0
        length = self.context.length_m
        return 100.0 * self.max_progress_m / length if length > 0 else 0.0

    @property
    def outside_route_lanes_percent(self) -> float:
        """The share of the driven route distance outside the route's lanes, 0-100."""
        if self._route_driven_m <= 0:
            return 0.0
        return 100.0 * min(1.0, self._outside_m / self._route_driven_m)

    def finish(self, status: str | None = None) -> str:
        """The final status (the run ended without a criterion deciding: ``status`` or failed-timeout)."""
        if self.status is None:
            self.status = status or STATUS_TIMEOUT
        return self.status

    def _add(self, kind: str, time_s: float, x: float, y: float, message: str,
             actor_id: int | None = None) -> None:
        self.infractions.append(Infraction(kind, round(time_s - self.start_time_s, 4), float(x), float(y),
                                           message, actor_id))

    # ---------------------------------------------------------------- per tick
    def update(self, ego: EgoState, snapshot: WorldSnapshot) -> None:
        """Evaluate every criterion at the current tick (call once per tick, before the agent acts)."""
        if self.done:
            return
        ctx = self.context
        t = snapshot.time_s
        elapsed = t - self.start_time_s
        ctx.tracker.update(ego.xy)
        progress = ctx.progress_m
        delta = max(0.0, progress - self._last_progress_m)
        self._last_progress_m = max(self._last_progress_m, progress)
        self.max_progress_m = max(self.max_progress_m, progress)

        on_road = self._on_road(ego)
        self._forget_collisions(ego, t)
        self._check_collisions(ego, snapshot, t)
        self._check_layout(ego, on_road, t)
        self._check_outside_lanes(snapshot, on_road, delta)
        self._check_lights(ego, progress, t)
        self._check_stops(ego, progress, t)

        # Route-ending criteria, in the leaderboard's order of precedence.
        end_xy = ctx.points[-1]
        if (100.0 * progress / max(ctx.length_m, 1e-9) > _COMPLETION_PERCENT
                and float(np.linalg.norm(ego.xy - end_xy)) < _COMPLETION_DISTANCE_M):
            self.status = STATUS_COMPLETED
            return
        if self._deviation_m(ego) > self.config.deviation_m:
            self._add("route_dev", t, ego.x, ego.y,
                      f"Agent deviated from the route at {_where(ego.x, ego.y)}")
            self.status = STATUS_DEVIATED
            return
        if ego.speed_mps < self.config.blocked_speed_mps:
            if self._slow_since is None:
                self._slow_since = t
            elif t - self._slow_since >= self.config.blocked_time_s - 1e-9:
                self._add("vehicle_blocked", t, ego.x, ego.y, f"Agent got blocked at {_where(ego.x, ego.y)}")
                self.status = STATUS_BLOCKED
                return
        else:
            self._slow_since = None
        if elapsed >= self.timeout_s - 1e-9:
            self._add("route_timeout", t, ego.x, ego.y, "Route timeout.")
            self.status = STATUS_TIMEOUT

    # ---------------------------------------------------------------- criteria
    def _on_road(self, ego: EgoState) -> bool:
        if self._drivable is None:
            return True
        return bool(shapely.contains_xy(self._drivable, ego.x, ego.y))

    def _ego_polygon(self, ego: EgoState) -> Polygon:
        p = self.ego_params
        return Polygon(box_corners(ego.xy, ego.forward, p.half_length_m, p.half_width_m))

    def _forget_collisions(self, ego: EgoState, t: float) -> None:
        self._spots = [s for s in self._spots if math.hypot(ego.x - s[0], ego.y - s[1]) <= _FORGET_SPOT_M]
        if self._last_actor is not None and t - self._last_actor[1] > _SAME_ACTOR_S:
            self._last_actor = None

    def _near_counted_spot(self, ego: EgoState) -> bool:
        return any(math.hypot(ego.x - s[0], ego.y - s[1]) <= _SAME_SPOT_M for s in self._spots)

    def _check_collisions(self, ego: EgoState, snapshot: WorldSnapshot, t: float) -> None:
        p = self.ego_params
        ego_radius = math.hypot(p.half_length_m, p.half_width_m)
        ego_poly = None
        for kind, actors in (("collisions_vehicle", snapshot.vehicles),
                             ("collisions_pedestrian", snapshot.pedestrians),
                             # a scenario's prop (vending machine, barrier) is a static obstacle
                             ("collisions_layout", getattr(snapshot, "props", None) or ActorArrays())):
            if not len(actors):
                continue
            reach = ego_radius + np.hypot(actors.half_length_m, actors.half_width_m)
            # Footprints on different levels (a bridge over a road) never touch.
            near = np.nonzero((np.linalg.norm(actors.xy - ego.xy, axis=1) < reach)
                              & actors.on_level(snapshot.ego_z_m))[0]
            for k in near:
                if ego_poly is None:
                    ego_poly = self._ego_polygon(ego)
                if not ego_poly.intersects(actor_polygon(actors, int(k))):
                    continue
                actor_id = int(actors.ids[k])
                if self._last_actor is not None and self._last_actor[0] == actor_id:
                    continue
                if self._near_counted_spot(ego):
                    continue
                self._last_actor = (actor_id, t)
                self._spots.append((ego.x, ego.y))
                type_id = ("walker.pedestrian" if kind == "collisions_pedestrian" else actors.types[k]
                           if kind == "collisions_layout" else f"vehicle.{actors.types[k]}")
                self._add(kind, t, ego.x, ego.y,
                          f"Agent collided against object with type={type_id} and id={actor_id} at "
                          f"{_where(ego.x, ego.y)}", actor_id)

    def _check_layout(self, ego: EgoState, on_road: bool, t: float) -> None:
        if not on_road and not self._off_road and not self._near_counted_spot(ego):
            self._spots.append((ego.x, ego.y))
            self._add("collisions_layout", t, ego.x, ego.y,
                      f"Agent collided against object with type=static.layout (left the drivable area) at "
                      f"{_where(ego.x, ego.y)}")
        self._off_road = not on_road

    def _check_outside_lanes(self, snapshot: WorldSnapshot, on_road: bool, delta_m: float) -> None:
        lane = snapshot.ego_lane_id
        if lane.startswith(":"):
            outside = not on_road
        else:
            outside = (not on_road) or (not lane) or (lane_edge_id(lane) not in self.context.edges)
        self._route_driven_m += delta_m
        if outside:
            self._outside_m += delta_m

    def _check_lights(self, ego: EgoState, progress_m: float, t: float) -> None:
        tail_m = progress_m - RED_LIGHT_TAIL_FRACTION * self.ego_params.half_length_m
        for i, control in enumerate(self.context.controls):
            if control.kind != "light" or i in self._lights_checked or control.distance_m > tail_m:
                continue
            self._lights_checked.add(i)
            if progress_m - control.distance_m > 10.0:
                continue  # skipped past it (progress jumped): not a crossing we saw
            state = self._world_light_state(control)
            if state in ("r", "u"):
                self._add("red_light", t, ego.x, ego.y,
                          f"Agent ran a red light {control.tls_id} at {_where(ego.x, ego.y)}")

    def _world_light_state(self, control) -> str:
        world = self.world
        return world.light_state(control.tls_id, control.link_index) if world is not None else "G"

    def _check_stops(self, ego: EgoState, progress_m: float, t: float) -> None:
        front = progress_m + self.ego_params.half_length_m
        for i, control in enumerate(self.context.controls):
            if control.kind != "stop" or i in self._stops_checked:
                continue
            in_zone = control.distance_m - STOP_ZONE_BEFORE_M <= front <= control.distance_m + STOP_ZONE_AFTER_M
            if in_zone and ego.speed_mps < STOP_SPEED_MPS:
                control.completed = True
            if front > control.distance_m + STOP_ZONE_AFTER_M:
                self._stops_checked.add(i)
                if not control.completed and front - control.distance_m < 20.0:
                    self._add("stop_infraction", t, ego.x, ego.y,
                              f"Agent ran a stop with id={control.junction_id} at {_where(ego.x, ego.y)}")

    def _deviation_m(self, ego: EgoState) -> float:
        points = self.context.points
        index = self.context.tracker.index
        window = points[max(0, index - 50): index + 200]
        return float(np.min(np.linalg.norm(window - ego.xy, axis=1)))
