"""The ego's presence in SUMO: a vehicle SUMO never moves, its shadow, and its re-insertion.

The ego is a SUMO vehicle placed every tick with ``moveToXY(..., keepRoute=2)``
at the pose the bicycle model (:mod:`sumo_world.ego.dynamics`) computed, so
SUMO's drivers see it as a leader and react to it; SUMO never moves it by
itself (speed mode 0, no lane changes).

Two workarounds keep it there:

- SUMO maps a vehicle to one lane; when the ego's footprint sticks into a
  neighbouring lane (changing lanes, waiting at an angle) a *shadow* vehicle
  (:class:`EgoShadow`), never reported, holds that lane beside it, so the
  drivers there brake for the part of the ego in their way, as CARLA's traffic
  brakes for the hero's bounding box. (SUMO's sublane model would do this too,
  at three times the cost of the whole simulation.)
- SUMO lets the ego arrive when it leaves its route's last edge, and loses its
  lane now and then (seen at a junction of Town03 after a move, after which it
  crashes): the ego is then inserted afresh where it is.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Sequence

from driving.geometry import wrap_angle_deg
from sumo_world.ego.dynamics import EgoParams, EgoState
from sumo_world.roads.transform import CarlaSumoTransform
from sumo_world.simulation.errors import WorldError
from sumo_world.simulation.snapshot import vehicle_vars

__all__ = ["EgoPresence", "EgoShadow", "EGO_ID", "SHADOW_ID", "OFF_LANE_REINSERT_TICKS"]

logger = logging.getLogger(__name__)

EGO_ID = "ego"
_EGO_TYPE = "langprop_ego"
SHADOW_ID = "ego_shadow"  # holds a neighbouring lane the ego's body sticks into; never reported
_SHADOW_TYPE = "langprop_ego_shadow"
# The ego covers a neighbouring lane when its footprint reaches this far past its own lane's edge.
_SHADOW_MIN_OVERLAP_M = 0.3
OFF_LANE_REINSERT_TICKS = 10  # an ego on no SUMO lane this many ticks in a row is inserted afresh
# moveToXY looks for lanes within this radius (SUMO default 100 m: much slower, and the ego is
# never meaningfully mapped to a lane farther than this).
_MATCH_RADIUS_M = 15.0


class EgoPresence:
    """The ego's SUMO vehicle in a running simulation (libsumo module ``sumo``).

    ``sense_radius_m`` set: the ego carries the context subscription a
    snapshot reads the vehicles around it from.
    """

    def __init__(self, sumo: Any, transform: CarlaSumoTransform, ego_params: EgoParams,
                 sense_radius_m: float | None) -> None:
        self._sumo = sumo
        self._transform = transform
        self._params = ego_params
        self._sense_radius_m = sense_radius_m
        self.added = False
        self._route: list[str] = []
        self.reinsertions = 0  # how often the ego was inserted afresh
        self._off_lane_ticks = 0  # consecutive ticks SUMO has had the ego on no lane
        self.shadow = EgoShadow(sumo, transform, ego_params)

    def add(self, state: EgoState, edges: Sequence[str], clear_radius_m: float) -> None:
        """Insert the ego at ``state`` with the SUMO route ``edges`` (normal edges of the planned route).

        Background vehicles and walkers within ``clear_radius_m`` of the start
        are removed, as the leaderboard spawns the hero on a free spot.
        """
        sumo = self._sumo
        p = self._params
        sumo.vehicletype.copy("DEFAULT_VEHTYPE", _EGO_TYPE)
        sumo.vehicletype.setLength(_EGO_TYPE, 2 * p.half_length_m)
        sumo.vehicletype.setWidth(_EGO_TYPE, 2 * p.half_width_m)
        sumo.vehicletype.setMinGap(_EGO_TYPE, 0.5)
        route = [e for i, e in enumerate(edges) if e and not e.startswith(":") and (i == 0 or e != edges[i - 1])]
        if not route:
            raise WorldError("the ego's route has no SUMO edges")
        self._route = route
        self._insert("langprop_ego_route")
        self._clear_around(state.x, state.y, clear_radius_m)
        self.added = True
        self.move(state)

    def _clear_around(self, x: float, y: float, radius_m: float) -> None:
        """Remove the actors within ``radius_m``, and the vehicles coming at the spot too fast to stop for it.

        CARLA's background vehicles start from rest with the hero; ours have been
        driving through the warm-up, and one arriving at 15 m/s from 20 m away
        would run into the car that has just appeared on its lane.
        """
        sx, sy = self._transform.to_sumo(x, y)
        sumo = self._sumo
        for vid in sumo.vehicle.getIDList():
            if vid in (EGO_ID, SHADOW_ID):
                continue
            px, py = sumo.vehicle.getPosition(vid)
            distance = math.hypot(px - sx, py - sy)
            reach = radius_m + sumo.vehicle.getLength(vid)
            speed = sumo.vehicle.getSpeed(vid)
            heading = math.radians(sumo.vehicle.getAngle(vid))  # SUMO: clockwise from north
            if speed > 0.0 and (sx - px) * math.sin(heading) + (sy - py) * math.cos(heading) > 0.0:
                # coming towards the spot: its reaction (1 s) and braking distance at its own deceleration
                reach += speed + speed * speed / (2.0 * max(0.1, sumo.vehicle.getDecel(vid)))
            if distance < reach:
                sumo.vehicle.unsubscribe(vid)
                sumo.vehicle.remove(vid)
        for pid in sumo.person.getIDList():
            px, py = sumo.person.getPosition(pid)
            if math.hypot(px - sx, py - sy) < radius_m:
                sumo.person.unsubscribe(pid)
                sumo.person.removeStages(pid)

    def move(self, state: EgoState) -> None:
        """Place the ego's SUMO vehicle at ``state`` (centre pose, CARLA frame), its shadow beside it if need be."""
        sumo = self._sumo
        half = self._params.half_length_m
        yaw = math.radians(state.yaw_deg)
        # SUMO positions a vehicle by its front bumper.
        fx, fy = state.x + half * math.cos(yaw), state.y + half * math.sin(yaw)
        sx, sy = self._transform.to_sumo(fx, fy)
        angle = self._transform.yaw_to_sumo_angle(state.yaw_deg)
        try:
            self._move_to(sx, sy, angle)
        except sumo.TraCIException:
            if EGO_ID in sumo.vehicle.getIDList():
                raise
            # SUMO let the ego arrive (it left its route's last edge) or teleported it: put it back.
            self._reinsert()
            self._move_to(sx, sy, angle)
        lane_id = sumo.vehicle.getLaneID(EGO_ID)
        if lane_id:
            self._off_lane_ticks = 0
        else:
            self._off_lane_ticks += 1
            if self._off_lane_ticks >= OFF_LANE_REINSERT_TICKS:
                # SUMO lost the ego's lane (seen at a junction of Town03 after a move) and crashes if it
                # stays so: insert it afresh where it is.
                logger.debug("the ego has had no SUMO lane for %d ticks: re-inserted", self._off_lane_ticks)
                sumo.vehicle.remove(EGO_ID)
                self._reinsert()
                self._move_to(sx, sy, angle)
                self._off_lane_ticks = 0
        speed = max(0.0, state.speed_mps)
        sumo.vehicle.setSpeed(EGO_ID, speed)
        self.shadow.place(state, lane_id, angle, speed)

    def _move_to(self, sx: float, sy: float, angle: float) -> None:
        """Place the ego's front bumper at SUMO (sx, sy) heading ``angle``, off its route if need be."""
        self._sumo.vehicle.moveToXY(EGO_ID, "", -1, sx, sy, angle=angle, keepRoute=2,
                                    matchThreshold=_MATCH_RADIUS_M)

    def _insert(self, route_id: str) -> None:
        """Add the ego's SUMO vehicle on its route (registered as ``route_id``); SUMO never moves it."""
        sumo = self._sumo
        sumo.route.add(route_id, self._route)
        sumo.vehicle.add(EGO_ID, route_id, typeID=_EGO_TYPE, depart="now", departSpeed="0")
        sumo.vehicle.setSpeedMode(EGO_ID, 0)
        sumo.vehicle.setLaneChangeMode(EGO_ID, 0)
        if self._sense_radius_m is not None:
            sumo.vehicle.subscribeContext(EGO_ID, sumo.constants.CMD_GET_VEHICLE_VARIABLE, self._sense_radius_m,
                                          vehicle_vars(sumo.constants))

    def _reinsert(self) -> None:
        self.reinsertions += 1
        self._insert(f"langprop_ego_route_{self.reinsertions}")

    def lane_id(self) -> str:
        """The SUMO lane the ego is mapped to ("" off the network or not inserted; ":..." inside a junction)."""
        try:
            return self._sumo.vehicle.getLaneID(EGO_ID)
        except Exception:  # not inserted yet
            return ""

    def z_m(self) -> float:
        """The height of the ego's SUMO position (NaN while it is out of the simulation)."""
        try:
            return float(self._sumo.vehicle.getPosition3D(EGO_ID)[2])
        except Exception:  # not in the simulation this tick (being re-inserted)
            return float("nan")


class EgoShadow:
    """The shadow vehicle: holds the neighbouring lane the ego's footprint sticks into (or frees it).

    SUMO treats a vehicle as a rectangle on one lane. An ego at an angle to
    its lane, or off its centre, covers a band reaching into the next lane:
    when it reaches :data:`_SHADOW_MIN_OVERLAP_M` past the lane's edge, the
    shadow (the ego's length, its speed) stands on that lane level with it.
    Inside junctions SUMO's right-of-way rules already see the ego.
    """

    def __init__(self, sumo: Any, transform: CarlaSumoTransform, ego_params: EgoParams) -> None:
        self._sumo = sumo
        self._transform = transform
        self._params = ego_params
        self.lane = ""  # the lane the shadow holds now ("" when it is out of the simulation)
        self._routes = 0
        self._lane_shapes: dict[str, list[tuple[float, float]]] = {}
        self._lane_widths: dict[str, float] = {}

    def place(self, state: EgoState, lane_id: str, angle: float, speed: float) -> None:
        """Put the shadow beside the ego on ``lane_id`` (the ego's lane) where its footprint needs it."""
        sumo = self._sumo
        vehicle = sumo.vehicle
        target = ""
        if lane_id and not lane_id.startswith(":"):
            target, tx, ty = self._target(state, lane_id, vehicle.getLanePosition(EGO_ID), angle)
        if not target:
            if self.lane:
                self._remove()
            return
        edge_id, index = target.rsplit("_", 1)
        if self.lane and SHADOW_ID not in vehicle.getIDList():
            self.lane = ""  # SUMO let it arrive: add it again
        if not self.lane:
            if _SHADOW_TYPE not in sumo.vehicletype.getIDList():
                sumo.vehicletype.copy(_EGO_TYPE, _SHADOW_TYPE)
            self._routes += 1
            route_id = f"langprop_shadow_route_{self._routes}"
            sumo.route.add(route_id, [edge_id])
            vehicle.add(SHADOW_ID, route_id, typeID=_SHADOW_TYPE, depart="now", departSpeed="0")
            vehicle.setSpeedMode(SHADOW_ID, 0)
            vehicle.setLaneChangeMode(SHADOW_ID, 0)
        vehicle.moveToXY(SHADOW_ID, edge_id, int(index), tx, ty, angle=angle, keepRoute=2,
                         matchThreshold=_MATCH_RADIUS_M)
        vehicle.setSpeed(SHADOW_ID, speed)
        self.lane = target

    def _remove(self) -> None:
        try:
            self._sumo.vehicle.remove(SHADOW_ID)
        except self._sumo.TraCIException:  # it had already left the simulation
            pass
        self.lane = ""

    def _target(self, state: EgoState, lane_id: str, pos_m: float, angle: float) -> tuple[str, float, float]:
        """The neighbouring lane the ego's footprint covers, and the shadow's front-bumper point (SUMO frame)."""
        p = self._params
        (x0, y0), (x1, y1) = self._lane_segment(lane_id, pos_m)
        seg = math.hypot(x1 - x0, y1 - y0) or 1.0
        ux, uy = (x1 - x0) / seg, (y1 - y0) / seg  # along the lane; its left is (-uy, ux)
        cx, cy = self._transform.to_sumo(state.x, state.y)
        offset = (cx - x0) * -uy + (cy - y0) * ux  # the footprint centre's distance left of the lane's centre
        lane_angle = math.degrees(math.atan2(ux, uy))
        rel = math.radians(wrap_angle_deg(lane_angle - angle))
        half_band = 0.5 * (2 * p.half_width_m * abs(math.cos(rel)) + 2 * p.half_length_m * abs(math.sin(rel)))
        half_lane = 0.5 * self._lane_width(lane_id)
        edge_id, index = lane_id.rsplit("_", 1)
        for side, reach in ((1, offset + half_band - half_lane), (-1, -offset + half_band - half_lane)):
            if reach < _SHADOW_MIN_OVERLAP_M:
                continue
            neighbour = f"{edge_id}_{int(index) + side}"
            if int(index) + side < 0 or not self._lane_exists(neighbour):
                continue
            # Level with the ego's front, on the neighbour lane's centre line.
            across = side * (half_lane + 0.5 * self._lane_width(neighbour))
            fx = cx + p.half_length_m * ux + (across - offset) * -uy
            fy = cy + p.half_length_m * uy + (across - offset) * ux
            return neighbour, fx, fy
        return "", 0.0, 0.0

    def _lane_exists(self, lane_id: str) -> bool:
        if lane_id in self._lane_widths:
            return self._lane_widths[lane_id] > 0.0
        lane = self._sumo.lane
        try:
            allowed = "passenger" in lane.getAllowed(lane_id) or not lane.getAllowed(lane_id)
            self._lane_widths[lane_id] = lane.getWidth(lane_id) if allowed else 0.0
        except self._sumo.TraCIException:
            self._lane_widths[lane_id] = 0.0
        return self._lane_widths[lane_id] > 0.0

    def _lane_width(self, lane_id: str) -> float:
        if lane_id not in self._lane_widths:
            self._lane_widths[lane_id] = self._sumo.lane.getWidth(lane_id)
        return self._lane_widths[lane_id] or 3.2

    def _lane_segment(self, lane_id: str, pos_m: float) -> tuple[tuple[float, float], tuple[float, float]]:
        """The segment of a lane's shape (SUMO frame) at ``pos_m`` along it."""
        shape = self._lane_shapes.get(lane_id)
        if shape is None:
            shape = self._lane_shapes[lane_id] = self._sumo.lane.getShape(lane_id)
        walked = 0.0
        for a, b in zip(shape[:-1], shape[1:]):
            walked += math.hypot(b[0] - a[0], b[1] - a[1])
            if walked >= pos_m:
                return a, b
        return shape[-2], shape[-1]
