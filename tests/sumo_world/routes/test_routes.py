"""Leaderboard route files, route planning on the lane graph and random routes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sumo_world.roads.network import RoadNetwork
from sumo_world.routes.planner import RoutePlanningError, plan_route
from sumo_world.routes.random_routes import random_routes
from sumo_world.routes.files import RouteFileError, RouteSpec, read_routes, write_routes
from sumo_world.towns.store import TownStore


@pytest.fixture(scope="module")
def towns(tmp_path_factory: pytest.TempPathFactory) -> TownStore:
    return TownStore(tmp_path_factory.mktemp("towns"))


@pytest.fixture(scope="module")
def town01(towns: TownStore, shared_data: Path) -> RoadNetwork:
    return RoadNetwork.load(towns.import_opendrive(shared_data / "carla_town01" / "Town01.xodr").net_path)


@pytest.fixture(scope="module")
def grid(towns: TownStore) -> RoadNetwork:
    return RoadNetwork.load(towns.generate("Grid", size=4, seed=0).net_path)


# ----------------------------------------------------------------------------- reading and writing


def test_read_leaderboard_1_0_routes(shared_data: Path) -> None:
    routes = read_routes(shared_data / "carla_town01" / "routes_town01_training.xml")
    assert [r.route_id for r in routes] == [str(i) for i in range(10)]
    first = routes[0]
    assert first.town == "Town01" and first.extra["format"] == "1.0"
    assert first.waypoints[0] == pytest.approx((338.7027893066406, 226.75003051757812, 0.0, 269.9790954589844))
    assert first.extra["weathers"][0]["sun_altitude_angle"] == "70"


def test_read_leaderboard_2_0_routes_and_round_trip(shared_data: Path, tmp_path: Path) -> None:
    routes = read_routes(shared_data / "leaderboard2_routes_devtest_sample.xml")
    assert len(routes) == 2 and routes[0].town == "Town12" and routes[0].extra["format"] == "2.0"
    assert routes[0].waypoints[0] == (983.5, 5382.2, 371.0, None)
    assert len(routes[0].extra["weathers"]) == 2 and routes[0].extra["scenarios"]
    out = write_routes(routes, tmp_path / "copy.xml", version="2.0")
    again = read_routes(out)
    assert [r.waypoints for r in again] == [r.waypoints for r in routes]
    assert again[0].extra["scenarios"] == routes[0].extra["scenarios"]
    as_1_0 = read_routes(write_routes(routes, tmp_path / "v1.xml", version="1.0"))
    assert as_1_0[1].extra["format"] == "1.0"
    assert [w[:3] for w in as_1_0[1].waypoints] == [w[:3] for w in routes[1].waypoints]


def test_write_1_0_keeps_waypoints(tmp_path: Path) -> None:
    route = RouteSpec("7", "TownX", [(1.5, 2.25, 0.0, 90.0), (10.0, -4.0, 0.5, 180.0)])
    text = write_routes([route], tmp_path / "r.xml").read_text()
    assert '<route id="7" town="TownX">' in text and 'yaw="90.0"' in text
    assert read_routes(tmp_path / "r.xml")[0].waypoints == route.waypoints


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "bad.xml"
    path.write_text(body)
    return path


def test_malformed_xml_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, '<routes>\n  <route id="0" town="T">\n    <waypoint x="1" y="2"\n</routes>\n')
    with pytest.raises(RouteFileError) as info:
        read_routes(path)
    assert str(path) in str(info.value) and "line 4" in str(info.value) and "malformed XML" in str(info.value)


def test_missing_attribute_names_line_and_key(tmp_path: Path) -> None:
    path = _write(tmp_path, '<routes>\n<route id="0" town="T">\n<waypoint x="1" y="2"/>\n'
                            '<waypoint x="3"/>\n</route>\n</routes>\n')
    with pytest.raises(RouteFileError, match=r"bad\.xml, line 4: <waypoint> is missing the attribute 'y'"):
        read_routes(path)
    path = _write(tmp_path, '<routes>\n<route id="0">\n<waypoint x="1" y="2"/><waypoint x="1" y="5"/>\n'
                            '</route>\n</routes>\n')
    with pytest.raises(RouteFileError, match="line 2: .*missing the attribute 'town'"):
        read_routes(path)
    path = _write(tmp_path, '<routes><route id="0" town="T"><waypoint x="a" y="2"/>'
                            '<waypoint x="1" y="2"/></route></routes>')
    with pytest.raises(RouteFileError, match="x='a' is not a number"):
        read_routes(path)
    with pytest.raises(RouteFileError, match="cannot read"):
        read_routes(tmp_path / "absent.xml")


# ----------------------------------------------------------------------------- planning


def _lane_distances(network: RoadNetwork, points: np.ndarray) -> np.ndarray:
    return np.array([(network.nearest_lane(x, y, 10.0, internal=True) or ("", 99.0))[1] for x, y in points])


def test_first_three_town01_routes_plan_densely_on_lanes(town01: RoadNetwork, shared_data: Path) -> None:
    routes = read_routes(shared_data / "carla_town01" / "routes_town01_training.xml")[:3]
    for route in routes:
        dense = plan_route(town01, route)
        steps = np.hypot(*np.diff(dense.points, axis=0).T)
        assert steps.max() <= 1.0 + 1e-6 and steps.min() > 0.5, route.route_id
        assert len(dense.commands) == len(dense.lanes) == len(dense.points)
        assert _lane_distances(town01, dense.points[::2]).max() < 1.0
        sparse = np.array(route.xy)
        straight = np.hypot(*np.diff(sparse, axis=0).T).sum()
        # the lane path is a bit longer than the chords between waypoints, never shorter
        assert straight <= dense.length_m <= 1.15 * straight
        # it passes every sparse waypoint within a metre of the lane they were snapped to
        gaps = [np.hypot(*(dense.points[i] - np.array(w[:2]))) for i, w in
                zip(dense.waypoint_indices, route.waypoints)]
        assert max(gaps) < 1.5
        assert dense.commands[0] == "LANEFOLLOW"
        assert set(dense.commands) <= {"LANEFOLLOW", "LEFT", "RIGHT", "STRAIGHT"}


def test_town01_route_0_turns(town01: RoadNetwork, shared_data: Path) -> None:
    route = read_routes(shared_data / "carla_town01" / "routes_town01_training.xml")[0]
    dense = plan_route(town01, route)
    # route 0 heads -y (yaw 270) then -x (yaw 180): a left turn in CARLA's frame (yaw decreasing)
    first_turn = next(c for c in dense.commands if c != "LANEFOLLOW")
    assert first_turn == "LEFT"
    yaw = dense.yaw_deg
    i = dense.commands.index("LEFT")
    before, after = yaw[max(i - 3, 0)], yaw[min(i + 30, len(yaw) - 1)]
    assert ((after - before + 180) % 360 - 180) == pytest.approx(-90.0, abs=10.0)
    plan = dense.world_plan()
    assert len(plan) == len(dense.points) and plan[0][1].name == "LANEFOLLOW"
    assert plan[5][0].location.x == pytest.approx(dense.points[5, 0])


def test_off_road_waypoint_is_named(town01: RoadNetwork) -> None:
    with pytest.raises(RoutePlanningError) as info:
        plan_route(town01, [(338.70, 226.75, 0.0, 270.0), (200.0, 100.0, 0.0, 0.0)], route_id="r1")
    message = str(info.value)
    assert "route 'r1' waypoint 1 (x=200.00, y=100.00)" in message and "15 m" in message


def test_waypoint_heading_picks_the_lane_direction(grid: RoadNetwork) -> None:
    lane = grid.driving_lanes()[0]
    shape = grid.lane_shape(lane.getID())
    start, end = shape[0] + 0.3 * (shape[-1] - shape[0]), shape[0] + 0.8 * (shape[-1] - shape[0])
    yaw = float(np.degrees(np.arctan2(*(end - start)[::-1])))
    dense = plan_route(grid, [(*start, 0.0, yaw), (*end, 0.0, yaw)])
    assert dense.edges == [lane.getEdge().getID()]
    assert dense.length_m == pytest.approx(np.hypot(*(end - start)), abs=1.0)


def test_random_routes_plan_and_are_seeded(grid: RoadNetwork, tmp_path: Path) -> None:
    routes = random_routes(grid, 4, seed=5, town="Grid")
    assert routes == random_routes(grid, 4, seed=5, town="Grid")
    assert routes != random_routes(grid, 4, seed=6, town="Grid")
    again = read_routes(write_routes(routes, tmp_path / "random.xml"))
    for route in again:
        assert route.town == "Grid"
        gaps = np.hypot(*np.diff(np.array(route.xy), axis=0).T)
        assert gaps.max() < 80.0
        dense = plan_route(grid, route)
        assert 150.0 * 0.9 <= dense.length_m <= 600.0 * 1.1
        following = np.array([not c.startswith("CHANGELANE") for c in dense.commands])
        assert _lane_distances(grid, dense.points[following][::3]).max() < 1.0
        # lane changes blend between two lanes of the road: still on the road
        assert _lane_distances(grid, dense.points[~following]).max(initial=0.0) <= 1.7


def _normal_lane_changes(lanes: list[str]) -> list[tuple[str, str]]:
    normal = [lane for lane in lanes if not lane.startswith(":")]
    return [(a, b) for a, b in zip(normal, normal[1:]) if a != b]


def test_dense_lanes_follow_connections(town01: RoadNetwork, grid: RoadNetwork, shared_data: Path) -> None:
    # Consumers find the junction connections (lights, stop signs) from consecutive lanes of the plan.
    plans = [(town01, plan_route(town01, r))
             for r in read_routes(shared_data / "carla_town01" / "routes_town01_training.xml")[:3]]
    plans += [(grid, plan_route(grid, r)) for r in random_routes(grid, 3, seed=2)]
    for network, dense in plans:
        changes = _normal_lane_changes(dense.lanes)
        assert changes
        for a, b in changes:
            lane_a, lane_b = network.lane(a), network.lane(b)
            if lane_a.getEdge() is lane_b.getEdge():
                continue  # a lane change within a road
            assert any(c.getToLane() is lane_b for c in lane_a.getOutgoing()), (a, b)
        assert [e for e in dense.edges] == list(dict.fromkeys(
            network.lane(lane).getEdge().getID() for lane in dense.lanes if not lane.startswith(":")))


def test_town01_plan_matches_carla_lane_centres(town01: RoadNetwork, shared_data: Path) -> None:
    # CARLA's own map (parsed client-side by the carla wheel) is the reference for the lane centres.
    # Junction lanes are SUMO's own curves between the lane ends (the import leaves out
    # --opendrive.internal-shapes, which leaves gaps in Town04's junctions): within 1.5 m of CARLA's.
    import carla

    carla_map = carla.Map("Town01", (shared_data / "carla_town01" / "Town01.xodr").read_text())
    for route in read_routes(shared_data / "carla_town01" / "routes_town01_training.xml")[:3]:
        dense = plan_route(town01, route)
        gaps = {True: [0.0], False: [0.0]}
        for (x, y), lane in list(zip(dense.points, dense.lanes))[::2]:
            waypoint = carla_map.get_waypoint(carla.Location(x=float(x), y=float(y), z=0.0), project_to_road=True)
            gap = np.hypot(waypoint.transform.location.x - x, waypoint.transform.location.y - y)
            gaps[lane.startswith(":")].append(gap)
        assert max(gaps[False]) < 0.5, route.route_id
        assert max(gaps[True]) < 1.5, route.route_id


def test_goal_behind_start_goes_round_the_block(grid: RoadNetwork) -> None:
    lane = grid.driving_lanes()[0]
    shape = grid.lane_shape(lane.getID())
    ahead, behind = shape[0] + 0.7 * (shape[-1] - shape[0]), shape[0] + 0.3 * (shape[-1] - shape[0])
    yaw = float(np.degrees(np.arctan2(*(shape[-1] - shape[0])[::-1])))
    dense = plan_route(grid, [(*ahead, 0.0, yaw), (*behind, 0.0, yaw), (*ahead, 0.0, yaw)])
    gap = float(np.hypot(*(ahead - behind)))
    assert dense.edges[0] == dense.edges[-1] == lane.getEdge().getID() and len(dense.edges) >= 4
    assert dense.length_m > 3 * gap
    # the waypoints are passed in order, the last one at the end of the plan
    first, middle, last = dense.waypoint_indices
    assert first == 0 < middle < last == len(dense.points) - 1
