"""SUMO's drivers brake for the ego's body in their path, as CARLA's Traffic Manager does.

SUMO's drivers see the ego through lanes: as the leader on their lane, as a foe
at a junction link, and (through the world's shadow vehicle) on a neighbouring
lane its body sticks into. A body across lanes inside a junction (merging into
a roundabout, turning across a lane) is seen by none of these, and SUMO's
drivers would drive into it. CARLA's Traffic Manager checks the path ahead of
each vehicle against the bounding boxes of the others, the hero's included,
and stops for them (its collision stage). :class:`TrafficYield` does the same
each tick: a SUMO vehicle near the ego whose *braking box* (its footprint
stretched ahead by its stopping distance, :data:`MARGIN_M` more) overlaps the
ego's footprint is slowed to the speed that stops it short of the ego, and is
handed back to its own driver model once its path is clear and it is more than
:data:`MARGIN_M` from the ego (a car that turns or changes lanes close to the ego
swings its box away from it before its body has passed).

The box is straight ahead of the vehicle: on a curve it reaches a little off
the lane (about ``L**2 / (2 R)``: 1.6 m for an 8 m box on a 20 m radius), so a
vehicle may brake briefly for an ego beside its lane, as CARLA's do. A vehicle
that turns or merges (in a junction, or within its stopping distance of one)
swings into the ego from the side, where no straight box reaches: for those its
path ahead along its own lanes (SUMO's route through the junction) is checked
too, as chained boxes, and it stops short of the first one the ego's body
touches (Town04: cars turning into the exit lane the standing ego's tail was in).

The other way round, a SUMO driver never waits for an ego that is behind it.
SUMO's leader is a matter of lanes, not of bodies: where two junction lanes
merge, the vehicle nearer the merge point by its lane's length leads, and a car
whose body is already ahead of the ego, half across the ego's lane, may wait
for the ego while the ego (whose path that body blocks) waits for it; nothing
ends that. Every :data:`WAIT_CHECK_S` a vehicle near the ego whose SUMO leader
is the ego, while every corner of the ego is behind its front bumper, is told
to ignore the ego at junctions (SUMO's ``junctionModel.ignoreIDs``) until the
ego is no longer behind it or it has driven :data:`RANGE_M` away.
"""
from __future__ import annotations

import math
from typing import Any, Collection

import numpy as np

from driving.geometry import Boxes, box_corners, boxes_overlap
from sumo_world.ego.dynamics import EgoParams, EgoState
from sumo_world.simulation.ego_presence import EGO_ID, SHADOW_ID
from sumo_world.traffic.walker_yield import WalkerYield

__all__ = ["TrafficYield", "DECEL_MPS2", "MARGIN_M", "RANGE_M", "WAIT_CHECK_S"]

DECEL_MPS2 = 4.5  # the background car's comfortable deceleration (sumo_world.traffic.demand's car vType)
MARGIN_M = 1.0  # the distance kept to the ego's body, and the box's reach at standstill
_SIDE_MARGIN_M = 0.2  # the box is this much wider than the vehicle on each side
RANGE_M = 30.0  # vehicles farther from the ego than this cannot reach it within their stopping distance
WAIT_CHECK_S = 0.5  # how often vehicles waiting for an ego behind them are looked for
_IGNORE_PARAM = "junctionModel.ignoreIDs"  # SUMO's per-vehicle list of vehicles it ignores at junctions


def _stopping_speed(gap_m: float) -> float:
    """The speed from which a car stops :data:`MARGIN_M` short of something ``gap_m`` ahead."""
    return math.sqrt(2.0 * DECEL_MPS2 * max(0.0, gap_m - MARGIN_M))


def _cut(shape: np.ndarray, start_m: float, length_m: float, lane_length_m: float) -> np.ndarray:
    """The points of polyline ``shape`` from ``start_m`` to ``start_m + length_m`` along it (SUMO's lane
    positions are scaled to the drawn shape, whose length may differ from the lane's)."""
    step = np.linalg.norm(np.diff(shape, axis=0), axis=1)
    along = np.concatenate([[0.0], np.cumsum(step)])
    scale = along[-1] / lane_length_m if lane_length_m > 0 else 1.0
    a, b = start_m * scale, min(along[-1], (start_m + max(0.0, length_m)) * scale)
    inner = shape[(along > a) & (along < b)]
    ends = np.stack([np.interp([a, b], along, shape[:, 0]), np.interp([a, b], along, shape[:, 1])], axis=1)
    return np.concatenate([ends[:1], inner, ends[1:]])


class TrafficYield:
    """Slows the SUMO vehicles whose path ahead the ego's footprint blocks (see the module docstring)."""

    def __init__(self, world: Any, ego_params: EgoParams | None = None) -> None:
        self.world = world
        self.ego_params = ego_params or getattr(world, "ego_params", None) or EgoParams()
        self._slowed: set[str] = set()
        self._routes: dict[str, tuple[str, ...]] = {}  # background routes never change
        self._ignoring: set[str] = set()  # vehicles told to ignore the ego behind them
        self._next_wait_check = 0.0
        self.interventions = 0  # vehicles slowed for the ego (counted once per approach)
        self.waits_ended = 0  # vehicles that waited for the ego behind them, told to go
        self.walkers = WalkerYield(world, self.ego_params)  # SUMO's walkers stop short of the ego too

    def update(self, ego: EgoState, snapshot: Any, held: Collection[str] = ()) -> None:
        """Slow the vehicles of ``snapshot`` about to drive into ``ego``; release the others.

        ``held`` are SUMO ids another model controls this tick (the crash model's
        stopped vehicles): neither slowed nor released here.
        """
        vehicle = self.world.sumo.vehicle
        actors = snapshot.vehicles
        slow: dict[str, float] = {}
        if len(actors):
            slow = self._blocked(ego, actors, snapshot.ego_z_m)
        for sumo_id, speed in slow.items():
            if sumo_id in held:
                continue
            if sumo_id not in self._slowed:
                self.interventions += 1
            self._command(vehicle, sumo_id, speed)
        for sumo_id in self._slowed - set(slow):
            if sumo_id not in held:
                self._command(vehicle, sumo_id, -1.0)  # back to its own driver model
        self._slowed = {s for s in slow if s not in held}
        if snapshot.time_s + 1e-9 >= self._next_wait_check:
            self._next_wait_check = snapshot.time_s + WAIT_CHECK_S
            self._end_waits_for_ego_behind(ego, actors)
        self.walkers.update(ego, snapshot)

    def _end_waits_for_ego_behind(self, ego: EgoState, actors: Any) -> None:
        """Vehicles whose SUMO leader is the ego behind them ignore it at junctions (module docstring)."""
        sumo = self.world.sumo
        p = self.ego_params
        ignoring: set[str] = set()
        if len(actors):
            corners = box_corners(ego.xy, ego.forward, p.half_length_m, p.half_width_m)
            near = np.nonzero(np.linalg.norm(actors.xy - ego.xy, axis=1) < RANGE_M)[0]
            for k in near:
                sumo_id = actors.sumo_ids[k]
                if sumo_id.startswith("static_"):
                    continue
                rad = math.radians(float(actors.yaw_deg[k]))
                forward = np.array([math.cos(rad), math.sin(rad)])
                front = actors.xy[k] + forward * float(actors.half_length_m[k])
                if float(np.max((corners - front) @ forward)) >= 0.0:
                    continue  # some of the ego is level with it or ahead: SUMO's rules hold
                if sumo_id not in self._ignoring:
                    try:
                        leader = sumo.vehicle.getLeader(sumo_id, RANGE_M)
                    except sumo.TraCIException:  # it left the simulation this tick
                        continue
                    if not leader or leader[0] not in (EGO_ID, SHADOW_ID):
                        continue
                    self._set_ignore(sumo_id, f"{EGO_ID} {SHADOW_ID}")
                    self.waits_ended += 1
                ignoring.add(sumo_id)
        for sumo_id in self._ignoring - ignoring:
            self._set_ignore(sumo_id, "")
        self._ignoring = ignoring

    def _set_ignore(self, sumo_id: str, ids: str) -> None:
        try:
            self.world.sumo.vehicle.setParameter(sumo_id, _IGNORE_PARAM, ids)
        except self.world.sumo.TraCIException:  # it left the simulation
            pass

    def _command(self, vehicle: Any, sumo_id: str, speed: float) -> None:
        try:
            vehicle.setSpeed(sumo_id, speed)
        except self.world.sumo.TraCIException:  # it left the simulation this tick
            pass

    def _blocked(self, ego: EgoState, actors: Any, ego_z_m: float) -> dict[str, float]:
        """{SUMO id: the speed that stops it short of the ego} for each vehicle whose braking box meets the ego."""
        p = self.ego_params
        # Only a vehicle whose box can reach the ego at all is looked at closely (most ticks: none).
        speed_all = actors.speed_mps
        reach_all = speed_all * speed_all / (2.0 * DECEL_MPS2) + MARGIN_M
        bound = (math.hypot(p.half_length_m, p.half_width_m) + 2.0 * actors.half_length_m
                 + actors.half_width_m + reach_all + MARGIN_M)
        near = np.linalg.norm(actors.xy - ego.xy, axis=1) < np.minimum(bound, RANGE_M)
        if not near.any():
            return {}
        near &= actors.on_level(ego_z_m)
        index = np.array([k for k in np.nonzero(near)[0] if not actors.sumo_ids[k].startswith("static_")], dtype=int)
        if not len(index):
            return {}
        rad = np.radians(actors.yaw_deg[index])
        forward = np.stack([np.cos(rad), np.sin(rad)], axis=1)
        # ... and whose box, or body, can touch the ego: the ego within its reach ahead and its width
        ego_r = math.hypot(p.half_length_m, p.half_width_m)
        rel = ego.xy - actors.xy[index]
        ahead = np.sum(rel * forward, axis=1)
        side = np.abs(rel[:, 0] * forward[:, 1] - rel[:, 1] * forward[:, 0])
        lengths = actors.half_length_m[index]
        in_reach = (ahead > -(lengths + ego_r + MARGIN_M)) & (ahead < lengths + reach_all[index] + ego_r)
        keep = in_reach & (side < actors.half_width_m[index] + ego_r + MARGIN_M)
        beside = index[in_reach & ~keep]  # out of its straight box's width: only its lane path can reach the ego
        if not keep.any():
            return self._path_blocked(ego, actors, beside, reach_all)
        index, forward = index[keep], forward[keep]
        speed = speed_all[index]
        reach = reach_all[index]
        half_length = actors.half_length_m[index]
        fronts = actors.xy[index] + forward * half_length[:, None]
        boxes = Boxes(fronts + forward * (reach / 2.0)[:, None], forward, reach / 2.0,
                      actors.half_width_m[index] + _SIDE_MARGIN_M)
        ego_box = Boxes(ego.xy, ego.forward, np.float64(p.half_length_m), np.float64(p.half_width_m))
        hit = boxes_overlap(ego_box, boxes)
        # a vehicle slowed already stays slowed while its body is within the margin of the ego's
        slowed = np.array([actors.sumo_ids[k] in self._slowed for k in index], dtype=bool)
        close = np.zeros(len(index), dtype=bool)
        if slowed.any():
            close = boxes_overlap(ego_box, Boxes(actors.xy[index], forward, half_length + MARGIN_M,
                                                 actors.half_width_m[index] + MARGIN_M)) & slowed
            hit |= close
        corners = box_corners(ego.xy, ego.forward, p.half_length_m, p.half_width_m)
        out = self._path_blocked(ego, actors, np.concatenate([beside, index[~hit]]), reach_all)
        for j in np.nonzero(hit)[0]:
            gap = float(np.min((corners - fronts[j]) @ forward[j]))
            if gap < -half_length[j] and not close[j]:
                continue  # the ego is behind it: nothing to stop for
            out[actors.sumo_ids[index[j]]] = min(float(speed[j]), _stopping_speed(gap))
        return out

    def _path_blocked(self, ego: EgoState, actors: Any, index: np.ndarray, reach: np.ndarray) -> dict[str, float]:
        """The speeds that stop turning or merging vehicles of ``index`` short of the ego on their lane path."""
        out: dict[str, float] = {}
        if not len(index):
            return out
        p = self.ego_params
        ego_box = Boxes(ego.xy, ego.forward, np.float64(p.half_length_m), np.float64(p.half_width_m))
        for k in index:
            sumo_id = actors.sumo_ids[k]
            path = self._path_ahead(sumo_id, float(reach[k]))
            if path is None or len(path) < 2:
                continue
            step = np.diff(path, axis=0)
            lengths = np.linalg.norm(step, axis=1)
            ok = lengths > 1e-6
            if not ok.any():
                continue
            starts = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])[ok]
            forward = step[ok] / lengths[ok, None]
            boxes = Boxes((path[:-1][ok] + path[1:][ok]) / 2.0, forward, lengths[ok] / 2.0,
                          np.full(int(ok.sum()), float(actors.half_width_m[k]) + _SIDE_MARGIN_M))
            hit = boxes_overlap(ego_box, boxes)
            if hit.any():
                first = int(np.argmax(hit))
                out[sumo_id] = min(float(actors.speed_mps[k]), _stopping_speed(float(starts[first])))
        return out

    def _path_ahead(self, sumo_id: str, ahead_m: float) -> np.ndarray | None:
        """(N, 2) CARLA-frame points of the lanes the vehicle will drive, ``ahead_m`` from its front bumper,
        or None when it neither is in a junction nor reaches one within ``ahead_m``."""
        sumo = self.world.sumo
        try:
            lane = sumo.vehicle.getLaneID(sumo_id)
            position = sumo.vehicle.getLanePosition(sumo_id)
            network = self.world.network
            if not lane or (not lane.startswith(":") and network.lane(lane).getLength() - position > ahead_m):
                return None  # on a plain lane to the end of its reach: the straight box covers it
            route = self._routes.get(sumo_id)
            if route is None:
                route = self._routes[sumo_id] = tuple(sumo.vehicle.getRoute(sumo_id))
            edge_index = sumo.vehicle.getRouteIndex(sumo_id)
        except sumo.TraCIException:  # it left the simulation this tick
            return None
        target = edge_index + 1  # the next edge of its route (on an internal lane: the edge it heads for)
        pieces, budget = [], ahead_m
        for _ in range(4):  # its lane, a junction's internal lanes (split in two at most), the next lane
            length = network.lane(lane).getLength()
            pieces.append(_cut(network.lane_shape(lane), position, budget, length))
            budget -= length - position
            if budget <= 0.0 or target >= len(route):
                break
            lane = self._next_lane(lane, route[target])
            if not lane:
                break
            if not lane.startswith(":"):
                target += 1
            position = 0.0
        return np.concatenate(pieces) if pieces else None

    def _next_lane(self, lane: str, next_edge: str) -> str:
        """The lane (internal lane first) that leads from ``lane`` towards ``next_edge`` ("" if none)."""
        for connection in self.world.network.lane(lane).getOutgoing():
            if connection.getToLane().getEdge().getID() == next_edge:
                return connection.getViaLaneID() or connection.getToLane().getID()
        return ""
