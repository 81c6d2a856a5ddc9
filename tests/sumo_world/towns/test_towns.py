"""Transform, town generation and town import of the embedded world."""
from __future__ import annotations

import json

import numpy as np
import pytest

from driving.geometry import wrap_angle_deg
from sumo_world.roads.network import RoadNetwork
from sumo_world.routes.planner import plan_route
from sumo_world.routes.random_routes import random_routes
from sumo_world.towns.info import TownError, TownNotFoundError
from sumo_world.towns.store import TownStore
from sumo_world.roads.transform import CarlaSumoTransform


def test_transform_round_trip_scalars_and_arrays() -> None:
    transform = CarlaSumoTransform(12.5, -3.0)
    assert transform.to_sumo(10.0, 20.0) == (22.5, -23.0)
    x, y = transform.to_carla(*transform.to_sumo(10.0, 20.0))
    assert (x, y) == pytest.approx((10.0, 20.0))
    points = np.array([[0.0, 0.0], [5.0, -7.0], [100.0, 250.0]])
    back = transform.points_to_carla(transform.points_to_sumo(points))
    np.testing.assert_allclose(back, points)
    sx, sy = transform.to_carla(np.array([12.5]), np.array([-3.0]))
    np.testing.assert_allclose([sx[0], sy[0]], [0.0, 0.0])


@pytest.mark.parametrize("yaw, angle", [(0.0, 90.0), (90.0, 180.0), (180.0, 270.0), (-90.0, 0.0), (270.0, 0.0)])
def test_yaw_maps_to_sumo_heading(yaw: float, angle: float) -> None:
    assert CarlaSumoTransform.yaw_to_sumo_angle(yaw) == pytest.approx(angle)
    back = CarlaSumoTransform.sumo_angle_to_yaw(angle)
    assert wrap_angle_deg(back - yaw) == pytest.approx(0.0, abs=1e-9)


def test_yaw_direction_agrees_with_positions() -> None:
    # A car heading along CARLA yaw moves to (cos, sin) * d; in SUMO the same move has the mapped heading.
    transform = CarlaSumoTransform(3.0, 4.0)
    for yaw in (10.0, 100.0, -135.0):
        dx, dy = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
        (sx0, sy0), (sx1, sy1) = transform.to_sumo(0.0, 0.0), transform.to_sumo(dx, dy)
        compass = np.degrees(np.arctan2(sx1 - sx0, sy1 - sy0)) % 360.0  # clockwise from north
        assert CarlaSumoTransform.yaw_to_sumo_angle(yaw) == pytest.approx(compass)
        assert CarlaSumoTransform.sumo_direction_to_yaw(sx1 - sx0, sy1 - sy0) == pytest.approx(yaw)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> TownStore:
    return TownStore(tmp_path_factory.mktemp("towns"))


def test_generated_grid_has_lights_stops_sidewalks_crossings(store: TownStore) -> None:
    info = store.generate("Grid4", kind="grid", size=4, seed=3)
    assert info.net_path.is_file() and info.source == "generated"
    meta = json.loads((info.net_path.parent / "town.json").read_text())
    assert meta["junctions"]["traffic_light"] >= 4
    assert meta["junctions"]["allway_stop"] == len(meta["allway_stops"]) >= 1
    assert meta["crossings"] > 0 and meta["sidewalk_lanes"] > 0
    network = RoadNetwork.load(info.net_path)
    assert set(network.stop_sign_junctions) == set(meta["allway_stops"])
    assert network.traffic_light_junctions()
    # two driving lanes per direction on a grid street
    edge = network.driving_edges()[0]
    assert sum(lane.allows("passenger") for lane in edge.getLanes()) == 2
    assert network.sidewalk_area.area > 0
    assert network.drivable_area.area > 0
    # the lanes' polygons are inside the drivable area
    lane_id = network.driving_lanes()[0].getID()
    assert network.drivable_area.buffer(0.01).contains(network.lane_polygon(lane_id))


def test_generation_is_deterministic_per_seed(store: TownStore) -> None:
    a = store.generate("SeedA", seed=7)
    b = store.generate("SeedB", seed=7)
    c = store.generate("SeedC", seed=8, size=5)
    assert a.meta["allway_stops"] == b.meta["allway_stops"]
    assert a.net_path.read_text().split("-->", 1)[1] == b.net_path.read_text().split("-->", 1)[1]
    assert c.meta["junctions"] != a.meta["junctions"]


@pytest.mark.parametrize("kind", ["spider", "random"])
def test_other_kinds_generate(store: TownStore, kind: str) -> None:
    info = store.generate(f"K_{kind}", kind=kind, size=4, seed=1)
    network = RoadNetwork.load(info.net_path)
    assert len(network.driving_edges()) > 10
    assert info.meta["crossings"] > 0
    # these nets are shifted (non-zero netOffset): planning and lane lookups still agree in CARLA's frame
    assert network.transform == CarlaSumoTransform(*info.meta["net_offset"])
    route = random_routes(network, 1, seed=0, min_length_m=100.0)[0]
    dense = plan_route(network, route)
    on_lanes = [network.nearest_lane(x, y, 3.0, internal=True) for (x, y), command
                in zip(dense.points, dense.commands) if not command.startswith("CHANGELANE")]
    assert all(found is not None and found[1] < 0.5 for found in on_lanes)


def test_bad_generate_arguments_are_named(store: TownStore) -> None:
    with pytest.raises(TownError, match="unknown town kind 'hex'"):
        store.generate("X", kind="hex")
    with pytest.raises(TownError, match="invalid town name"):
        store.generate("../evil")
    with pytest.raises(TownError, match="already exists"):
        store.generate("Grid4", seed=3)


def test_missing_town_error_lists_known_and_command(store: TownStore) -> None:
    with pytest.raises(TownNotFoundError) as info:
        store.get("Town99")
    message = str(info.value)
    assert "Town99" in message and "Grid4" in message and "langprop town import" in message


def test_import_opendrive_keeps_carla_coordinates(store: TownStore, shared_data) -> None:
    info = store.import_opendrive(shared_data / "carla_town01" / "Town01.xodr")
    assert info.name == "Town01" and info.source == "opendrive"
    assert info.meta["net_offset"] == [0.0, 0.0]
    assert info.meta["junctions"]["traffic_light"] > 0
    network = RoadNetwork.load(info.net_path)
    assert network.transform == CarlaSumoTransform(0.0, 0.0)
    # CARLA Town01 spans about x 0..400, y 0..330 in CARLA coordinates (y not negated)
    x_min, y_min, x_max, y_max = network.bounds
    assert -10 < x_min < 10 and 390 < x_max < 410 and -10 < y_min < 10 and 320 < y_max < 340
    assert [t.name for t in store.list()].count("Town01") == 1


def test_import_net_and_by_suffix(store: TownStore, shared_data, tmp_path) -> None:
    info = store.import_file(shared_data / "carla_town01" / "Town01.net.xml", name="Town01net")
    assert info.source == "net" and "Town01net" in store
    bad = tmp_path / "map.osm"
    bad.write_text("<osm/>")
    with pytest.raises(TownError, match="expected an OpenDRIVE .xodr or a SUMO .net.xml"):
        store.import_file(bad)
