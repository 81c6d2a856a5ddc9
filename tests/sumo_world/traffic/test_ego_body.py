"""Background traffic sees the ego where its body really is (SUMO's sublane model).

The ego changing lanes, or waiting at an angle to its lane, covers part of the
neighbouring lane. SUMO drivers in that lane must brake for it, as CARLA's
traffic brakes for the hero's bounding box, rather than drive into it.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.helpers.child_process import run_in_child
from tests.helpers.worlds import empty_world, generated_town, plain_edges
from tests.helpers.shapes import box


def _straddling_ego_run(towns_dir: Path, left_m: float, nose_right_deg: float) -> dict:
    """A stopped ego ``left_m`` left of the right lane's centre, its nose turned ``nose_right_deg``
    back to the right (its tail swung out into the left lane, as when it stops while changing back
    to the right lane); a car comes along the left lane at 13 m/s. Returns the closest approach and whether
    the two footprints ever overlapped."""
    from sumo_world.ego.dynamics import EgoState
    from sumolib.geomhelper import positionAtShapeOffset

    with empty_world(towns_dir, "lanes") as (world, network):
        edge = None
        for candidate in plain_edges(network):
            car_lanes = [lane for lane in candidate.getLanes() if lane.allows("passenger")]
            if len(car_lanes) >= 2 and candidate.getLength() > 80.0:
                edge = candidate
                break
        assert edge is not None, "the generated town has no two-lane edge"
        right, left = car_lanes[0], car_lanes[-1]
        t = world.transform
        along = edge.getLength() - 15.0
        (ax, ay), (bx, by) = (positionAtShapeOffset(right.getShape(), along - 1.0),
                              positionAtShapeOffset(right.getShape(), along + 1.0))
        lane_yaw = t.sumo_angle_to_yaw(math.degrees(math.atan2(bx - ax, by - ay)))
        cx, cy = t.to_carla((ax + bx) / 2.0, (ay + by) / 2.0)
        left_rad = math.radians(lane_yaw - 90.0)  # CARLA's yaw turns clockwise: left is -90 degrees
        state = EgoState(cx + left_m * math.cos(left_rad), cy + left_m * math.sin(left_rad),
                         lane_yaw + nose_right_deg, 0.0)
        world.add_ego(state, [edge.getID()], clear_radius_m=0.0)
        sumo = world.sumo
        sumo.route.add("left_route", [edge.getID()])
        sumo.vehicle.add("comer", "left_route", typeID="DEFAULT_VEHTYPE", departLane=str(left.getIndex()),
                         departPos=f"{max(0.0, along - 70.0):.1f}", departSpeed="13")
        sumo.vehicle.subscribe("comer", [sumo.constants.VAR_POSITION, sumo.constants.VAR_ANGLE,
                                         sumo.constants.VAR_SPEED, sumo.constants.VAR_TYPE])
        p = world.ego_params
        ego_box = box(state.x, state.y, state.yaw_deg, p.half_length_m, p.half_width_m)
        closest, overlapped, passed = math.inf, False, False
        for _ in range(240):  # 12 s
            world.move_ego(state)
            world.step()
            vehicles = world.snapshot().vehicles
            if len(vehicles) == 0:
                passed = True  # it left the edge: it went by
                break
            other = box(*vehicles.xy[0], vehicles.yaw_deg[0], vehicles.half_length_m[0], vehicles.half_width_m[0])
            closest = min(closest, ego_box.distance(other))
            overlapped |= ego_box.intersects(other)
        return {"closest": closest, "overlapped": overlapped, "passed": passed}


@pytest.fixture(scope="module")
def towns_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_town(tmp_path_factory, "lanes", kind="grid", size=3, seed=0)


def test_traffic_brakes_for_an_ego_sticking_into_its_lane(towns_dir: Path) -> None:
    result = run_in_child(_straddling_ego_run, towns_dir, 1.5, 11.5)
    assert not result["overlapped"], result  # it waited behind or squeezed by, never through
    assert result["closest"] < 3.0, result  # it did come up to the ego


def test_traffic_passes_an_ego_inside_its_own_lane(towns_dir: Path) -> None:
    result = run_in_child(_straddling_ego_run, towns_dir, 0.0, 0.0)
    assert not result["overlapped"], result
    assert result["passed"] or result["closest"] > 0.2, result
