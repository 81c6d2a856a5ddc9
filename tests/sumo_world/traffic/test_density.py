"""Traffic that flows on small, dense towns: the density cap, jam release of real locks only, CARLA's signal timing."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sumo_world.roads.network import RoadNetwork
from sumo_world.towns.signal_plans import CARLA_TIMING, apply_carla_plans, carla_phases
from sumo_world.towns.store import TownStore
from sumo_world.traffic.demand import MIN_LANE_M_PER_VEHICLE, TrafficConfig, driving_lane_m, fit_to_town
from tests.helpers.child_process import run_in_child
from tests.helpers.worlds import empty_world, generated_town, plain_edges


@pytest.fixture(scope="module")
def towns_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_town(tmp_path_factory, "dense", kind="grid", size=3, seed=0)


# ----------------------------------------------------------------------------- the cap


def test_a_town_gets_no_more_vehicles_than_its_lanes_hold(towns_dir: Path) -> None:
    network = RoadNetwork.load(TownStore(towns_dir).get("dense").net_path)
    lane_m = driving_lane_m(network)
    cap = int(lane_m // MIN_LANE_M_PER_VEHICLE)
    asked = TrafficConfig(vehicles=cap * 2, bicycles=cap // 2, motorcycles=cap // 2, pedestrians=7)
    fitted, notes = fit_to_town(network, asked)
    assert fitted.vehicles + fitted.bicycles + fitted.motorcycles == cap
    assert fitted.bicycles == round(asked.bicycles * cap / (3 * cap)) and fitted.pedestrians == 7
    assert len(notes) == 1 and f"{cap} vehicles run instead" in notes[0]
    # A town that holds the count keeps it, without a note.
    small = TrafficConfig(vehicles=cap - 2, bicycles=1, motorcycles=1, pedestrians=7)
    assert fit_to_town(network, small) == (small, [])


# ----------------------------------------------------------------------------- jam release


def _queued_at_red(towns_dir: Path) -> dict:
    from sumo_world.traffic.jams import JamRelease
    from sumo_world.simulation.world import SENSE_RADIUS_M

    with empty_world(towns_dir, "dense", sense_radius_m=SENSE_RADIUS_M) as (world, network):
        # An edge into a light: a car driving it stands at the red stop line.
        edge = next(e for e in plain_edges(network)
                    if e.getLength() > 60.0 and e.getToNode().getType() == "traffic_light"
                    and any(lane.allows("passenger") for lane in e.getLanes()))
        sumo = world.sumo
        after = sorted(e.getID() for e in edge.getOutgoing() if not e.getID().startswith(":"))[0]
        sumo.route.add("in", [edge.getID(), after])  # through the light, so it must wait there
        sumo.vehicle.add("queued", "in", typeID="DEFAULT_VEHTYPE", departPos=str(edge.getLength() - 30.0))
        world.force_traffic_lights("r")
        jams = JamRelease(world, release_s=10.0)
        stood_s = 0.0
        for _ in range(int(40.0 / world.step_s)):
            world.step()
            jams.update(world.time_s)
            if "queued" in sumo.vehicle.getIDList() and sumo.vehicle.getSpeed("queued") < 0.1:
                stood_s += world.step_s
        return {"released": list(jams.released), "stood_s": stood_s}


def test_a_vehicle_waiting_at_a_red_is_never_released(towns_dir: Path) -> None:
    result = run_in_child(_queued_at_red, towns_dir)  # libsumo: one simulation per process
    assert result["stood_s"] > 25.0, result  # it stood at the red far longer than the release time
    assert result["released"] == [], result


# ----------------------------------------------------------------------------- CARLA's signal timing


def test_carla_phases_give_one_approach_at_a_time() -> None:
    phases = carla_phases([[0, 1], [2], [3, 4]], crossings=[5], n_links=6)
    assert [d for d, _ in phases] == [10.0, 3.0, 2.0] * 3
    assert [s for _, s in phases] == ["ggrrrG", "yyrrrG", "rrrrrG", "rrgrrG", "rryrrG", "rrrrrG",
                                      "rrrggG", "rrryyG", "rrrrrG"]


def test_imported_plans_move_one_approach_and_sumo_runs_them(towns_dir: Path, tmp_path: Path) -> None:
    net = TownStore(towns_dir).get("dense").net_path
    out = tmp_path / "carla.net.xml"
    changed = apply_carla_plans(net, out)
    root = ET.parse(out).getroot()
    logics = root.findall("tlLogic")
    assert changed == len(logics) > 0
    approach_of: dict[tuple[str, int], str] = {}
    for conn in root.iter("connection"):
        if conn.get("tl") and not conn.get("from", "").startswith(":"):
            approach_of[(conn.get("tl"), int(conn.get("linkIndex")))] = conn.get("from")
    for logic in logics:
        phases = logic.findall("phase")
        durations = sorted({float(p.get("duration")) for p in phases})
        assert durations == sorted({CARLA_TIMING.green_s, CARLA_TIMING.yellow_s, CARLA_TIMING.all_red_s})
        for phase in phases:
            moving = {approach_of[(logic.get("id"), k)] for k, c in enumerate(phase.get("state"))
                      if c in "gGyY" and (logic.get("id"), k) in approach_of}
            assert len(moving) <= 1, (logic.get("id"), phase.get("state"))
    # SUMO loads the rewritten net and its traffic moves.
    assert run_in_child(_drive, out) > 0


def _drive(net: Path) -> int:
    import libsumo

    libsumo.start(["sumo", "--net-file", str(net), "--no-step-log", "true", "--no-warnings", "true"])
    try:
        for _ in range(100):
            libsumo.simulationStep()
        return len(libsumo.trafficlight.getIDList())
    finally:
        libsumo.close()


def _queued_behind_ego(towns_dir: Path) -> dict:
    from sumo_world.ego.dynamics import EgoState
    from sumo_world.traffic.jams import JamRelease
    from sumo_world.simulation.ego_presence import EGO_ID
    from sumo_world.simulation.world import SENSE_RADIUS_M

    with empty_world(towns_dir, "dense", sense_radius_m=SENSE_RADIUS_M) as (world, network):
        edge = next(e for e in plain_edges(network)
                    if e.getLength() > 80.0 and any(lane.allows("passenger") for lane in e.getLanes()))
        sumo = world.sumo
        sumo.route.add("stay", [edge.getID()])
        sumo.vehicle.add("probe", "stay", typeID="DEFAULT_VEHTYPE", departPos="60.0", departSpeed="0")
        world.step()
        lane_yaw = world.transform.sumo_angle_to_yaw(sumo.vehicle.getAngle("probe"))
        x, y = world.transform.to_carla(*sumo.vehicle.getPosition("probe"))
        sumo.vehicle.remove("probe")
        ego = EgoState(x, y, lane_yaw, 0.0)  # the ego stands mid-edge, no light ahead
        world.add_ego(ego, [edge.getID()], clear_radius_m=0.0)
        world.move_ego(ego)
        world.step()
        lane = sumo.vehicle.getLaneIndex(EGO_ID)
        sumo.vehicle.add("behind", "stay", typeID="DEFAULT_VEHTYPE", departPos="20.0", departSpeed="0",
                         departLane=str(lane))
        sumo.vehicle.setLaneChangeMode("behind", 0)  # it queues behind the ego, not around it
        jams = JamRelease(world, release_s=10.0)
        stood_s = 0.0
        for _ in range(int(40.0 / world.step_s)):
            world.move_ego(ego)
            world.step()
            jams.update(world.time_s)
            if "behind" in sumo.vehicle.getIDList() and sumo.vehicle.getSpeed("behind") < 0.1:
                stood_s += world.step_s
        return {"released": list(jams.released), "stood_s": stood_s}


def test_a_vehicle_queued_behind_the_standing_ego_is_never_released(towns_dir: Path) -> None:
    result = run_in_child(_queued_behind_ego, towns_dir)
    assert result["stood_s"] > 20.0, result  # it stood behind the ego far longer than the release time
    assert result["released"] == [], result
