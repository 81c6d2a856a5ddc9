"""A background vehicle locked still leaves after the jam time, not before; the standing ego is never moved."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.helpers.child_process import run_in_child
from tests.helpers.worlds import empty_world, generated_town, plain_edges


def _locked_run(towns_dir: Path, refill_away_m: float | None = None) -> dict:
    from sumo_world.ego.dynamics import EgoState
    from sumo_world.traffic.jams import JamRelease
    from sumo_world.traffic.refill import Refill
    from sumo_world.simulation.world import SENSE_RADIUS_M

    with empty_world(towns_dir, "jam", sense_radius_m=SENSE_RADIUS_M) as (world, network):
        edge = next(e for e in plain_edges(network)
                    if e.getLength() > 80.0 and any(lane.allows("passenger") for lane in e.getLanes()))
        sumo = world.sumo
        sumo.route.add("stay", [edge.getID()])
        sumo.vehicle.add("locked", "stay", typeID="DEFAULT_VEHTYPE", departPos="60.0", departSpeed="0")
        world.step()
        sumo.vehicle.setSpeed("locked", 0.0)  # a driver that never moves again
        lane_yaw = world.transform.sumo_angle_to_yaw(sumo.vehicle.getAngle("locked"))
        x, y = world.transform.to_carla(*sumo.vehicle.getPosition("locked"))
        back = math.radians(lane_yaw)
        ego = EgoState(x - 30.0 * math.cos(back), y - 30.0 * math.sin(back), lane_yaw, 0.0)
        world.add_ego(ego, [edge.getID()], clear_radius_m=0.0)
        refill = Refill(world, away_m=refill_away_m) if refill_away_m is not None else None
        jams = JamRelease(world, release_s=30.0, refill=refill)
        present_before = None
        for _ in range(int(35.0 / world.step_s)):
            world.move_ego(ego)  # the ego, 30 m behind it, stands as long
            world.step()
            jams.update(world.time_s)
            if present_before is None and world.time_s >= 25.0:
                present_before = "locked" in sumo.vehicle.getIDList()
        for _ in range(int(2.0 / world.step_s)):  # the replacement departs
            world.move_ego(ego)
            world.step()
        vehicles = list(sumo.vehicle.getIDList())
        ego_xy = sumo.vehicle.getPosition("ego") if "ego" in vehicles else None
        added = {v: {"type": sumo.vehicle.getTypeID(v), "to_ego_m": math.dist(sumo.vehicle.getPosition(v), ego_xy)}
                 for v in vehicles if v.startswith("locked+")}
        return {"released": jams.released, "present_before": present_before, "vehicles": vehicles, "added": added}


@pytest.fixture(scope="module")
def towns_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_town(tmp_path_factory, "jam", kind="grid", size=3, seed=0)


def test_a_vehicle_locked_near_the_ego_is_released_after_the_jam_time(towns_dir: Path) -> None:
    result = run_in_child(_locked_run, towns_dir)  # libsumo: one simulation per process
    assert result["present_before"], result  # not before its time
    assert result["released"] == ["locked"], result  # then it goes, and only it
    assert "ego" in result["vehicles"], result  # the ego stood as long, and is never released


def test_a_released_vehicle_is_replaced_by_one_of_its_type_out_of_the_egos_sight(towns_dir: Path) -> None:
    result = run_in_child(_locked_run, towns_dir, 60.0)
    assert result["released"] == ["locked"], result
    # the town keeps its count: one vehicle of the released one's type is back on the road, far from the ego
    assert list(result["added"]) == ["locked+1"], result
    assert result["added"]["locked+1"]["type"] == "DEFAULT_VEHTYPE", result
    assert result["added"]["locked+1"]["to_ego_m"] > 60.0, result
