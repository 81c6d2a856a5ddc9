"""The ego's presence in SUMO (sumo_world.simulation.ego_presence), on a tiny generated town.

The two workarounds that keep the ego in SUMO, checked one by one: the shadow
that holds the neighbouring lane the ego's body sticks into (and leaves it when
the ego is back inside its lane), and the re-insertion of an ego SUMO let go
(arrived) or lost (on no lane for OFF_LANE_REINSERT_TICKS ticks). Each runs in
a child process: libsumo runs one simulation per process and takes it down
when SUMO aborts.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from sumo_world.towns.store import TownStore
from tests.helpers.child_process import run_in_child

TOWN = "presence"


@pytest.fixture(scope="module")
def towns_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("presence") / "towns"
    TownStore(root).generate(TOWN, kind="grid", size=2, seed=0, lanes=2)
    return root


def _world_on_two_lanes(towns_dir: Path):
    """A started world with no traffic, a two-lane edge of it, and a function placing a pose on its right lane."""
    from sumo_world.ego.dynamics import EgoState
    from sumo_world.roads.network import RoadNetwork
    from sumo_world.simulation.world import SumoWorld
    from sumolib.geomhelper import positionAtShapeOffset

    town = TownStore(towns_dir).get(TOWN)
    network = RoadNetwork.load(town.net_path)
    edge = next(e for e in sorted(network.net.getEdges(withInternal=False), key=lambda e: e.getID())
                if len([lane for lane in e.getLanes() if lane.allows("passenger")]) == 2 and e.getLength() > 60.0)
    right = [lane for lane in edge.getLanes() if lane.allows("passenger")][0]
    world = SumoWorld(town, route_files=[], seed=0, network=network, warmup_s=0.0)
    world.start()
    t = world.transform

    def pose(along_m: float, left_m: float, turn_deg: float = 0.0) -> EgoState:
        (ax, ay), (bx, by) = (positionAtShapeOffset(right.getShape(), along_m - 1.0),
                              positionAtShapeOffset(right.getShape(), along_m + 1.0))
        lane_yaw = t.sumo_angle_to_yaw(math.degrees(math.atan2(bx - ax, by - ay)))
        cx, cy = t.to_carla((ax + bx) / 2.0, (ay + by) / 2.0)
        left_rad = math.radians(lane_yaw - 90.0)  # CARLA's yaw turns clockwise: left is -90 degrees
        return EgoState(cx + left_m * math.cos(left_rad), cy + left_m * math.sin(left_rad), lane_yaw + turn_deg, 0.0)

    return world, edge, pose


def _shadow_run(towns_dir: Path) -> dict:
    from sumo_world.simulation.ego_presence import EGO_ID, SHADOW_ID

    world, edge, pose = _world_on_two_lanes(towns_dir)
    try:
        world.add_ego(pose(30.0, 0.0), [edge.getID()], clear_radius_m=0.0)
        sumo, seen = world.sumo, {}
        for name, state in (("centred", pose(30.0, 0.0)), ("straddling", pose(31.0, 1.5)),
                            ("at_an_angle", pose(32.0, 0.6, turn_deg=25.0)), ("back", pose(33.0, 0.0))):
            for _ in range(3):  # SUMO applies a move at the next step: the shadow follows the lane a tick later
                world.move_ego(state)
                world.step()
            ids = sumo.vehicle.getIDList()
            seen[name] = {
                "ego_lane": sumo.vehicle.getLaneID(EGO_ID),
                "shadow_lane": sumo.vehicle.getLaneID(SHADOW_ID) if SHADOW_ID in ids else "",
                "shadow_behind_m": (sumo.vehicle.getLanePosition(EGO_ID) - sumo.vehicle.getLanePosition(SHADOW_ID)
                                    if SHADOW_ID in ids else math.nan),
                "reported": sorted(world.snapshot().vehicles.sumo_ids),
            }
        seen["lanes"] = [lane.getID() for lane in edge.getLanes() if lane.allows("passenger")]
        return seen
    finally:
        world.close()


def test_the_shadow_holds_the_neighbouring_lane_only_while_the_ego_sticks_into_it(towns_dir: Path) -> None:
    seen = run_in_child(_shadow_run, towns_dir)
    right, left = seen["lanes"]
    assert seen["centred"]["ego_lane"] == right and seen["centred"]["shadow_lane"] == "", seen
    for case in ("straddling", "at_an_angle"):
        assert seen[case]["ego_lane"] == right, seen
        assert seen[case]["shadow_lane"] == left, seen  # SUMO's drivers on the left lane now see the ego
        assert abs(seen[case]["shadow_behind_m"]) < 1.0, seen  # level with the ego, not somewhere down the lane
    assert seen["back"]["shadow_lane"] == "", seen  # freed once the body is back inside its lane
    for case in ("centred", "straddling", "at_an_angle", "back"):
        assert seen[case]["reported"] == [], seen  # neither the ego nor its shadow is another actor


def _arrival_run(towns_dir: Path) -> dict:
    from sumo_world.simulation.ego_presence import EGO_ID

    world, edge, pose = _world_on_two_lanes(towns_dir)
    try:
        world.add_ego(pose(30.0, 0.0), [edge.getID()], clear_radius_m=0.0)
        sumo = world.sumo
        sumo.vehicle.remove(EGO_ID, sumo.constants.REMOVE_ARRIVED)  # as SUMO does past its route's end
        world.step()
        gone = EGO_ID not in sumo.vehicle.getIDList()
        world.move_ego(pose(32.0, 0.0))
        world.step()
        return {"gone": gone, "back": EGO_ID in sumo.vehicle.getIDList(), "lane": world.ego_lane_id(),
                "reinsertions": world.ego.reinsertions,
                "right": next(lane.getID() for lane in edge.getLanes() if lane.allows("passenger"))}
    finally:
        world.close()


def test_an_ego_sumo_let_arrive_is_inserted_again_where_it_is(towns_dir: Path) -> None:
    result = run_in_child(_arrival_run, towns_dir)
    assert result["gone"], result
    assert result["back"] and result["reinsertions"] == 1, result
    assert result["lane"] == result["right"], result


def _off_lane_run(towns_dir: Path) -> dict:
    from sumo_world.simulation.ego_presence import EGO_ID, OFF_LANE_REINSERT_TICKS

    world, edge, pose = _world_on_two_lanes(towns_dir)
    try:
        world.add_ego(pose(30.0, 0.0), [edge.getID()], clear_radius_m=0.0)
        sumo = world.sumo
        for _ in range(3):  # on its lane first (SUMO applies a move at the next step)
            world.move_ego(pose(30.0, 0.0))
            world.step()
        away = pose(30.0, 60.0)  # 60 m off the road: no lane within moveToXY's match radius
        lanes, counts = [], []
        for _ in range(OFF_LANE_REINSERT_TICKS + 2):
            world.move_ego(away)
            world.step()
            lanes.append(sumo.vehicle.getLaneID(EGO_ID))
            counts.append(world.ego.reinsertions)
        world.move_ego(pose(34.0, 0.0))
        world.step()
        return {"lanes": lanes, "counts": counts, "ticks": OFF_LANE_REINSERT_TICKS, "lane_back": world.ego_lane_id()}
    finally:
        world.close()


def test_an_ego_on_no_lane_for_ten_ticks_is_inserted_afresh_once(towns_dir: Path) -> None:
    result = run_in_child(_off_lane_run, towns_dir)
    ticks = result["ticks"]
    assert set(result["lanes"]) == {""}, result  # SUMO holds it off the network
    assert result["counts"][:ticks - 1] == [0] * (ticks - 1), result  # a short excursion is left alone
    assert result["counts"][-1] == 1, result  # then one re-insertion, and the count starts again
    assert result["lane_back"], result  # and it drives on, on a lane


def test_a_world_not_started_refuses_to_place_or_read_the_ego(towns_dir: Path) -> None:
    from sumo_world.ego.dynamics import EgoState
    from sumo_world.simulation.errors import WorldError
    from sumo_world.simulation.world import SumoWorld

    world = SumoWorld(TownStore(towns_dir).get(TOWN), route_files=[], warmup_s=0.0)
    assert world.ego_lane_id() == ""  # what a scene asks before the start: no lane, no error
    state = EgoState(0.0, 0.0, 0.0, 0.0)
    calls = {"add_ego": lambda: world.add_ego(state, ["e"]), "move_ego": lambda: world.move_ego(state),
             "snapshot": world.snapshot, "step": world.step, "force_traffic_lights": world.force_traffic_lights}
    for name, call in calls.items():
        with pytest.raises(WorldError, match="not started"):
            call()
            pytest.fail(f"{name} ran on a world not started")
