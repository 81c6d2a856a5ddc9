"""CARLA's own towns as they come: stock imports, leaderboard-1.0 routes on them, levels, sidewalks."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import shapely
from click.testing import CliRunner

from langprop_driving.cli.world_cmd import routes as routes_group
from sumo_world.scoring.criteria import RouteCriteria
from sumo_world.ego.dynamics import EgoState
from sumo_world.roads.network import RoadNetwork
from sumo_world.routes.planner import SNAP_LIMIT_M, plan_route
from sumo_world.routes.files import read_routes
from sumo_world.run.runner import EvaluationConfig, evaluate
from sumo_world.scene.builder import RouteContext, actor_dicts
from sumo_world.towns.store import TownStore
from sumo_world.traffic.demand import TrafficConfig
from sumo_world.simulation.world import SumoWorld
from tests.helpers.child_process import run_in_child


# The stock import of each leaderboard-1.0 town here: its OpenDRIVE file, else its SUMO net.
STOCK = {"Town01": "carla_town01/Town01.xodr", "Town03": "carla_towns/Town03.net.xml",
         "Town04": "carla_towns/Town04.xodr", "Town06": "carla_towns/Town06.xodr"}


@pytest.fixture(scope="module")
def towns(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> TownStore:
    """The leaderboard-1.0 towns, imported as they come (Town03 from its sidewalk-less SUMO net)."""
    store = TownStore(tmp_path_factory.mktemp("carla_towns"))
    for name, relative in STOCK.items():
        store.import_file(shared_data / relative, name)
    return store


def test_every_leaderboard_route_plans_without_leaving_the_road(towns: TownStore, shared_data: Path) -> None:
    # Town04's cloverleaf junctions are where an import can leave gaps between lanes (see sumo_world/towns/store.py).
    routes = [*read_routes(shared_data / "leaderboard1" / "routes_training.xml"),
              *read_routes(shared_data / "leaderboard1" / "routes_devtest.xml")]
    assert len(routes) == 54 and {r.town for r in routes} == set(STOCK)
    for town in STOCK:
        network = RoadNetwork.load(towns.net_path(town))
        drivable = network.drivable_area
        shapely.prepare(drivable)
        for route in [r for r in routes if r.town == town]:
            dense = plan_route(network, route)
            inside = shapely.contains_xy(drivable, dense.points[:, 0], dense.points[:, 1])
            assert inside.all(), (town, route.route_id, dense.points[~inside][:3])
            # between the 1 m points too: the path's line never leaves the road surface
            outside = shapely.LineString(dense.points).difference(drivable).length
            assert outside < 0.05, (town, route.route_id, outside)
            assert dense.max_waypoint_lane_distance_m < SNAP_LIMIT_M


def test_every_light_on_the_training_routes_is_known_up_to_its_stop_line(towns: TownStore, shared_data: Path) -> None:
    """A route's light is in the scene until the car reaches its stop line, not until the route's points
    start to be matched to the junction's lanes (in Town03 up to 6 m earlier: the expert then ran reds)."""
    routes = read_routes(shared_data / "leaderboard1" / "routes_training.xml")
    lights = 0
    for town in STOCK:
        network = RoadNetwork.load(towns.net_path(town))
        for route in [r for r in routes if r.town == town]:
            context = RouteContext.from_dense_route(network, plan_route(network, route))
            for control in context.controls:
                along = int(np.searchsorted(context.cumulative_m, control.distance_m))
                gap = float(np.linalg.norm(context.points[min(along, len(context.points) - 1)] - control.xy))
                assert gap < 1.5, (town, route.route_id, control.kind, control.xy, gap)
                lights += control.kind == "light"
    assert lights > 100  # the training routes pass many lights


def test_net_import_guesses_sidewalks_and_keeps_the_offset(towns: TownStore, shared_data: Path) -> None:
    info = towns.get("Town03")
    assert info.meta["sidewalks"] == "guessed"
    assert info.meta["crossings"] > 50 and info.meta["sidewalk_lanes"] > 100
    # the offset of the original net is kept: CARLA's waypoints still land on the lanes
    assert info.meta["net_offset"] == pytest.approx([153.31, 198.86])
    network = RoadNetwork.load(info.net_path)
    assert not network.sidewalk_area.is_empty
    route = [r for r in read_routes(shared_data / "leaderboard1" / "routes_training.xml") if r.town == "Town03"][0]
    distances = plan_route(network, route).waypoint_lane_distances_m
    assert np.median(distances) < 0.1 and max(distances) < 2.0


def test_routes_show_prints_waypoint_distances_and_flags_unplannable(towns: TownStore, shared_data: Path,
                                                                   tmp_path: Path) -> None:
    routes_file = shared_data / "leaderboard1" / "routes_devtest.xml"
    result = CliRunner().invoke(routes_group, ["show", str(routes_file), "--town", "Town04",
                                               "--towns-dir", str(towns.root)])
    assert result.exit_code == 0, result.output
    assert "1 routes in Town04" in result.output and "waypoint-lane distance max" in result.output
    # Town03's routes in the Town04 net: the waypoints are far off its roads
    moved = tmp_path / "towns"
    store = TownStore(moved)
    store.import_net(towns.net_path("Town04"), "Town03")
    result = CliRunner().invoke(routes_group, ["show", str(routes_file), "--town", "Town03",
                                               "--towns-dir", str(moved)])
    assert result.exit_code == 1, result.output  # unplannable routes are bad input
    assert "NOT PLANNABLE: route" in result.output
    assert "Error: 1 of 1 routes of" in result.output and "cannot be planned" in result.output


def _point_on(network: RoadNetwork, lane_id: str, xy: tuple[float, float], ahead_m: float) -> tuple[float, float]:
    shape = shapely.LineString(network.lane_shape(lane_id))
    point = shape.interpolate(shape.project(shapely.Point(xy)) + ahead_m)
    return float(point.x), float(point.y)


def test_town04_overpass_crossing_is_no_collision(towns: TownStore) -> None:
    # Lane -39_1 passes 11 m above the lanes of road -47 in Town04 (CARLA x 15.5, y -6.1 on -47_1).
    network = RoadNetwork.load(towns.net_path("Town04"))
    lower, upper = "-47_1", "-39_1"
    crossing = shapely.LineString(network.lane_shape(lower)).intersection(
        shapely.LineString(network.lane_shape(upper)))
    assert crossing.geom_type == "Point"
    xy = (crossing.x, crossing.y)
    dense = plan_route(network, [(*_point_on(network, lower, xy, -30.0), 0.0, None),
                                 (*_point_on(network, lower, xy, 30.0), 0.0, None)])
    context = RouteContext.from_dense_route(network, dense)
    with SumoWorld(towns.get("Town04"), TrafficConfig(0, 0, 0), network=network, warmup_s=0.0) as world:
        offset = network.lane_position(lower, *xy)
        yaw = network.lane_heading_yaw(lower, offset)
        ego = EgoState(crossing.x, crossing.y, yaw, 5.0)
        world.add_ego(ego, dense.edges)
        sumo = world.sumo
        sumo.route.add("above", [network.lane(upper).getEdge().getID()])
        sumo.vehicle.add("above_car", "above", typeID="DEFAULT_VEHTYPE", depart="now")
        world.step()
        angle = world.transform.yaw_to_sumo_angle(network.lane_heading_yaw(upper, network.lane_position(upper, *xy)))
        front = _point_on(network, upper, xy, 2.0)  # SUMO places a vehicle by its front bumper
        sumo.vehicle.moveToXY("above_car", "", -1, *world.transform.to_sumo(*front), angle=angle, keepRoute=1)
        world.move_ego(ego)
        world.step()
        snap = world.snapshot()
    k = snap.vehicles.sumo_ids.index("above_car")
    assert float(np.linalg.norm(snap.vehicles.xy[k] - np.array(xy))) < 1.0  # right above the ego
    assert snap.vehicles.z_m[k] - snap.ego_z_m > 8.0  # heights from the net (OpenDRIVE elevation)
    criteria = RouteCriteria(context, network, world=None)
    criteria.update(ego, snap)
    assert not criteria.infractions
    assert actor_dicts(snap.vehicles, ego.xy, ego_z_m=snap.ego_z_m) == {}  # nor is it in the scene
    # the same footprint on the ego's level is a collision
    snap.vehicles.z_m[k] = snap.ego_z_m
    criteria = RouteCriteria(context, network, world=None)
    criteria.update(ego, snap)
    assert [i.kind for i in criteria.infractions] == ["collisions_vehicle"]
    assert math.isfinite(snap.ego_z_m)


def test_town_without_sidewalks_runs_default_traffic_without_pedestrians(shared_data: Path, tmp_path: Path) -> None:
    store = TownStore(tmp_path / "towns")
    info = store.import_net(shared_data / "carla_town01" / "Town01.net.xml", sidewalks=False)
    assert info.meta["sidewalks"] == "none"
    routes_file = shared_data / "carla_town01" / "routes_town01_training.xml"
    first = read_routes(routes_file)[0]
    config = EvaluationConfig(town="Town01", routes=routes_file, agent="builtin:follow", route_ids=[first.route_id],
                              results=tmp_path / "r.json", towns_dir=store.root, traffic="default", progress=False,
                              warmup_s=1.0, timeout_factor=0.02)
    record = evaluate(config)["_checkpoint"]["records"][0]
    assert record["status"] == "Failed - Agent timed out"  # it ran (cut short by the small timeout)
    (warning,) = record["meta"]["world_warnings"]
    assert "has no sidewalks" in warning and "20 background pedestrians are left out" in warning


def test_drivable_area_has_no_slits_between_lanes_and_junctions(towns: TownStore) -> None:
    # Where Town06's lane -59_1 meets junction 763 their outlines are centimetres apart: the expert's
    # centre there, 0.3 m off the route of training route 40, once counted as leaving the road.
    network = RoadNetwork.load(towns.net_path("Town06"))
    assert shapely.contains_xy(network.drivable_area, -154.946, 14.833)
    # closing the slits does not widen the road: 0.3 m beside a lane's outer edge is still off it
    lane = network.lane("-59_1")
    shape = shapely.LineString(network.lane_shape("-59_1"))
    middle = shape.interpolate(0.5, normalized=True)
    ahead = shape.interpolate(0.5 * shape.length + 1.0)
    dx, dy = ahead.x - middle.x, ahead.y - middle.y
    norm = math.hypot(dx, dy)
    outward = [(middle.x + side * (-dy / norm) * (lane.getWidth() / 2 + 0.3 + 3.5 * k),
                middle.y + side * (dx / norm) * (lane.getWidth() / 2 + 0.3 + 3.5 * k))
               for side in (1, -1) for k in range(6)]
    assert not all(shapely.contains_xy(network.drivable_area, x, y) for x, y in outward)


def _reachable(net, group: set[str], edge) -> set[str]:
    """Edges leaving ``group`` that ``edge`` (entering it) reaches, through the group's inner edges."""
    out, stack, seen = set(), [edge], set()
    while stack:
        current = stack.pop()
        for target in current.getOutgoing():
            if target.getID() in seen:
                continue
            seen.add(target.getID())
            if target.getToNode().getID() in group:
                stack.append(target)
            else:
                out.add(target.getID())
    return out


def test_junctions_inside_a_neighbour_are_joined_and_keep_every_turn(towns: TownStore, shared_data: Path) -> None:
    """Town03's roundabout has junctions 0.2 m apart, one inside the other: joined at import, and every
    road that entered the group still reaches every road it reached."""
    import sumolib

    groups = towns.get("Town03").meta["joined_junctions"]
    ring = next(g for g in groups if "1469" in g)
    assert "38.12" in ring
    before = sumolib.net.readNet(str(shared_data / STOCK["Town03"]))
    after = sumolib.net.readNet(str(towns.net_path("Town03")))
    after_ids = {n.getID() for n in after.getNodes()}
    assert not set(ring) & after_ids  # one junction now
    for group in map(set, groups):
        entering = [e for n in group for e in before.getNode(n).getIncoming() if e.getFromNode().getID() not in group]
        assert entering
        for edge in entering:
            if not any(lane.allows("passenger") for lane in edge.getLanes()):
                continue
            assert _reachable(after, set(), after.getEdge(edge.getID())) == _reachable(before, group, edge), edge.getID()


def _ring_run(net_path: str, cars: int) -> dict:
    import libsumo
    import sumolib

    net = sumolib.net.readNet(net_path)
    there, _ = net.getShortestPath(net.getEdge("-13"), net.getEdge("-10"))
    back, _ = net.getShortestPath(net.getEdge("-10"), net.getEdge("-13"))
    loop = [e.getID() for e in there] + [e.getID() for e in back[1:-1]]
    libsumo.start(["sumo", "-n", net_path, "--no-step-log", "true", "--no-warnings", "true",
                   "--step-length", "0.05", "--time-to-teleport", "-1"])
    try:
        libsumo.route.add("ring", loop * 40)
        for i in range(cars):
            libsumo.vehicle.add(f"ring{i}", "ring", depart="0", departLane="best", departSpeed="max")
        for _ in range(int(240 / 0.05)):
            libsumo.simulationStep()
        ids = libsumo.vehicle.getIDList()
        return {"cars": len(ids), "max_wait_s": max(libsumo.vehicle.getWaitingTime(v) for v in ids),
                "loop": loop}
    finally:
        libsumo.close()


def test_town03_roundabout_keeps_turning_when_full(towns: TownStore) -> None:
    """Before the join, five cars circling the ring locked it for good: the ring lane leaving junction 1469
    yielded to the ring lane entering it."""

    result = run_in_child(_ring_run, str(towns.net_path("Town03")), 24)
    assert result["cars"] >= 12, result  # the ring took a dozen cars or more
    assert result["max_wait_s"] < 10.0, result


def _merge_wait_run(towns_dir: str, use_yield: bool) -> dict:
    """Town03, junction 1352 (seen on route 10, default traffic): a car turning right into -47 has its body
    ahead of the ego, turning left into the same lane, and across the ego's path; SUMO makes it the ego's
    follower (the ego is nearer the merge by lane length), so it waits for the ego while the ego waits for it."""
    from sumo_world.ego.dynamics import EgoState
    from sumo_world.roads.network import RoadNetwork
    from sumo_world.traffic.yielding import TrafficYield
    from sumo_world.simulation.world import SENSE_RADIUS_M, SumoWorld

    town = TownStore(towns_dir).get("Town03")
    network = RoadNetwork.load(town.net_path)
    world = SumoWorld(town, route_files=[], seed=0, network=network, warmup_s=0.0, sense_radius_m=SENSE_RADIUS_M)
    world.start()
    try:
        ego = EgoState(225.5, 60.9, -158.0, 0.0)
        world.add_ego(ego, ["67", "-47"], clear_radius_m=0.0)
        sumo = world.sumo
        sumo.route.add("right_turn", ["-66", "-47"])
        sumo.vehicle.add("merger", "right_turn", typeID="DEFAULT_VEHTYPE", departLane="1", departSpeed="0")
        world.step()
        sumo.vehicle.moveTo("merger", ":1352_0_0", 25.0)
        world.step()
        leader_before = sumo.vehicle.getLeader("merger", 30.0)
        guard = TrafficYield(world)
        lanes = set()
        for _ in range(int(10.0 / world.step_s)):
            world.move_ego(ego)  # the ego stands: the car is in its path
            if use_yield:
                guard.update(ego, world.snapshot())
            world.step()
            if "merger" in sumo.vehicle.getIDList():
                lanes.add(sumo.vehicle.getLaneID("merger"))
        return {"leader_before": leader_before, "lanes": sorted(lanes), "waits_ended": guard.waits_ended}
    finally:
        world.close()


def test_a_car_ahead_of_the_standing_ego_does_not_wait_for_it(towns: TownStore) -> None:

    unguarded = run_in_child(_merge_wait_run, str(towns.root), False)
    assert unguarded["leader_before"][0] == "ego" and unguarded["lanes"] == [":1352_0_0"], unguarded  # locked
    guarded = run_in_child(_merge_wait_run, str(towns.root), True)
    assert guarded["waits_ended"] == 1 and "-47_2" in guarded["lanes"], guarded  # it drove on into -47
