"""SUMO's drivers stop for the ego's body across their path inside a junction (sumo_world.traffic.yielding).

SUMO sees the ego through lanes only; an ego standing across a junction (as it
does merging into a roundabout) is in no lane of a car going straight through,
and without :class:`TrafficYield` that car drives into it.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.child_process import run_in_child
from tests.helpers.worlds import empty_world, generated_town, plain_edges
from tests.helpers.shapes import box


def _movement(network, direction: str):
    """(incoming edge, its lane, the exit lane) of the first car movement through a junction in
    ``direction`` (SUMO's "s" straight, "r" right) from a road over 60 m long into one over 30 m."""
    for edge in plain_edges(network):
        for lane in edge.getLanes() if edge.getLength() > 60.0 else ():
            for connection in lane.getOutgoing() if lane.allows("passenger") else ():
                if connection.getDirection() == direction and connection.getToLane().getEdge().getLength() > 30.0:
                    return edge, lane, connection.getToLane()
    raise AssertionError(f"the generated town has no movement {direction!r} through a junction")


def _crossing_run(towns_dir: Path, use_yield: bool) -> dict:
    """A stopped ego across a junction, 4 m past a stop line; a car comes straight through at 13 m/s."""
    from sumo_world.ego.dynamics import EgoState
    from sumo_world.traffic.yielding import TrafficYield

    with empty_world(towns_dir, "junction") as (world, network):
        incoming, lane, exit_lane = _movement(network, "s")
        outgoing = exit_lane.getEdge()
        (x0, y0), (x1, y1) = lane.getShape()[-2:]
        norm = math.hypot(x1 - x0, y1 - y0)
        ux, uy = (x1 - x0) / norm, (y1 - y0) / norm
        t = world.transform
        cx, cy = t.to_carla(x1 + 4.0 * ux, y1 + 4.0 * uy)
        state = EgoState(cx, cy, t.sumo_angle_to_yaw(math.degrees(math.atan2(ux, uy))) + 90.0, 0.0)
        world.add_ego(state, [outgoing.getID()], clear_radius_m=0.0)
        sumo = world.sumo
        sumo.route.add("through", [incoming.getID(), outgoing.getID()])
        sumo.vehicle.add("comer", "through", typeID="DEFAULT_VEHTYPE", departLane=str(lane.getIndex()),
                         departPos=f"{incoming.getLength() - 60.0:.1f}", departSpeed="13")
        c = sumo.constants
        sumo.vehicle.subscribe("comer", [c.VAR_POSITION3D, c.VAR_ANGLE, c.VAR_SPEED, c.VAR_TYPE])
        guard = TrafficYield(world)
        p = world.ego_params
        ego_box = box(state.x, state.y, state.yaw_deg, p.half_length_m, p.half_width_m)
        closest, overlapped = math.inf, False
        for _ in range(200):  # 10 s
            world.move_ego(state)
            if use_yield:
                guard.update(state, world.snapshot())
            world.step()
            vehicles = world.snapshot().vehicles
            if not len(vehicles):
                break
            other = box(*vehicles.xy[0], vehicles.yaw_deg[0], vehicles.half_length_m[0], vehicles.half_width_m[0])
            closest = min(closest, ego_box.distance(other))
            overlapped |= ego_box.intersects(other)
        return {"closest": closest, "overlapped": overlapped, "interventions": guard.interventions,
                "ego_lane": world.ego_lane_id()}


@pytest.fixture(scope="module")
def towns_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_town(tmp_path_factory, "junction", kind="grid", size=3, seed=0)


def test_a_car_stops_short_of_an_ego_standing_across_its_path_in_a_junction(towns_dir: Path) -> None:
    guarded = run_in_child(_crossing_run, towns_dir, True)
    assert guarded["ego_lane"].startswith(":"), guarded  # the ego is inside the junction, off the car's lane
    assert not guarded["overlapped"] and guarded["interventions"] >= 1, guarded
    assert guarded["closest"] < 3.0, guarded  # it came up to the ego and waited
    # SUMO alone drives through it: the guard is what stops the car
    plain = run_in_child(_crossing_run, towns_dir, False)
    assert plain["overlapped"], plain


def _turning_run(towns_dir: Path, use_paths: bool) -> dict:
    """A body stands in the exit lane of a right turn, 3 m in, unseen by SUMO; a car makes the turn at 8 m/s."""
    from sumo_world.ego.dynamics import EgoState
    from sumo_world.traffic.yielding import TrafficYield

    with empty_world(towns_dir, "junction") as (world, network):
        incoming, lane, exit_lane = _movement(network, "r")
        shape = network.lane_shape(exit_lane.getID())
        d = shape[1] - shape[0]
        forward = d / np.linalg.norm(d)
        center = shape[0] + forward * (3.0 + world.ego_params.half_length_m)
        ego = EgoState(float(center[0]), float(center[1]), math.degrees(math.atan2(forward[1], forward[0])), 0.0)
        sumo = world.sumo
        sumo.route.add("turn", [incoming.getID(), exit_lane.getEdge().getID()])
        sumo.vehicle.add("turner", "turn", typeID="DEFAULT_VEHTYPE", departLane=str(lane.getIndex()),
                         departPos=f"{incoming.getLength() - 30.0:.1f}", departSpeed="8")
        c = sumo.constants
        sumo.vehicle.subscribe("turner", [c.VAR_POSITION3D, c.VAR_ANGLE, c.VAR_SPEED, c.VAR_TYPE])
        guard = TrafficYield(world)
        if not use_paths:
            guard._path_blocked = lambda *args: {}  # the straight boxes alone
        p = world.ego_params
        ego_box = box(ego.x, ego.y, ego.yaw_deg, p.half_length_m, p.half_width_m)
        closest, overlapped, lanes = math.inf, False, set()
        for _ in range(200):  # 10 s
            guard.update(ego, world.snapshot())
            world.step()
            vehicles = world.snapshot().vehicles
            if not len(vehicles):
                break
            lanes.add(sumo.vehicle.getLaneID("turner"))
            other = box(*vehicles.xy[0], vehicles.yaw_deg[0], vehicles.half_length_m[0], vehicles.half_width_m[0])
            closest = min(closest, ego_box.distance(other))
            overlapped |= ego_box.intersects(other)
        return {"closest": closest, "overlapped": overlapped, "turned": exit_lane.getID() in lanes}


def test_a_turning_car_stops_short_of_a_body_in_its_exit_lane(towns_dir: Path) -> None:
    """The straight box of a car in a turn points across the junction, past the body in its exit."""
    guarded = run_in_child(_turning_run, towns_dir, True)
    assert not guarded["overlapped"] and guarded["closest"] < 3.0, guarded  # it came up to it and waited
    plain = run_in_child(_turning_run, towns_dir, False)
    assert plain["overlapped"], plain


def _spawn_run(towns_dir: Path) -> dict:
    """The ego appears 25 m ahead of a car doing 15 m/s on its lane, and 25 m ahead of one standing."""
    from sumo_world.ego.dynamics import EgoState

    with empty_world(towns_dir, "junction") as (world, network):
        edge = max((e for e in network.net.getEdges(withInternal=False)
                    if len(e.getLanes()) >= 2 and all(lane.allows("passenger") for lane in e.getLanes()[-2:])),
                   key=lambda e: e.getLength())
        fast_lane, still_lane = edge.getLanes()[-1], edge.getLanes()[-2]
        sumo = world.sumo
        sumo.route.add("along", [edge.getID()])
        for vid, lane, speed in (("fast", fast_lane, "15"), ("still", still_lane, "0")):
            sumo.vehicle.add(vid, "along", typeID="DEFAULT_VEHTYPE", departLane=str(lane.getIndex()),
                             departPos="5", departSpeed=speed)
        world.step()
        for vid in ("fast", "still"):
            sumo.vehicle.setSpeed(vid, float(sumo.vehicle.getSpeed(vid)))
        shape = network.lane_shape(fast_lane.getID())
        d = shape[-1] - shape[0]
        forward = d / np.linalg.norm(d)
        x, y = world.transform.to_carla(*sumo.vehicle.getPosition("fast"))
        center = np.array([x, y]) + forward * 25.0
        ego = EgoState(float(center[0]), float(center[1]), math.degrees(math.atan2(forward[1], forward[0])), 0.0)
        world.add_ego(ego, [edge.getID()])
        return {"left": sorted(v for v in sumo.vehicle.getIDList() if v in ("fast", "still"))}


def test_the_ego_appears_where_no_car_is_coming_too_fast_to_stop(towns_dir: Path) -> None:
    """CARLA's traffic starts from rest with the hero; ours has driven through the warm-up."""
    result = run_in_child(_spawn_run, towns_dir)
    assert result["left"] == ["still"], result  # the one that could not stop in 25 m is gone
