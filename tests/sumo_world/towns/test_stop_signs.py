"""Stop signs of CARLA towns: type-206 signals, the CARLA exporter, the import, scene and criterion."""
from __future__ import annotations

import fnmatch
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from langprop_driving.cli.world_cmd import town as town_group
from sumo_world.roads.network import RoadNetwork
from sumo_world.routes.planner import plan_route
from sumo_world.scene.builder import RouteContext
from sumo_world.towns.stop_signs import STOP_AREA_LENGTH_M, from_opendrive
from sumo_world.towns.store import TownStore

REPO_ROOT = Path(__file__).resolve().parents[3]


def _exporter():
    spec = importlib.util.spec_from_file_location("export_carla_stops", REPO_ROOT / "scripts" / "export_carla_stops.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_town10hd_stop_signs_match_carla_landmarks(shared_data: Path, tmp_path: Path) -> None:
    import carla

    xodr = shared_data / "carla_towns" / "Town10HD.xodr"
    landmarks = carla.Map("Town10HD", xodr.read_text()).get_all_landmarks_of_type("206")
    assert len(landmarks) == 6  # 3 signs, each referenced from two junction roads
    ours = from_opendrive(xodr)
    assert len(ours) == len({landmark.id for landmark in landmarks})
    for landmark in landmarks:
        location = landmark.transform.location
        (sign,) = [s for s in ours if s.sign_id == f"206:{landmark.id}"]
        assert np.hypot(sign.x - location.x, sign.y - location.y) < 1.0
        assert abs((sign.yaw_deg - landmark.transform.rotation.yaw + 180) % 360 - 180) < 2.0

    # The import places them on the lanes they govern; their T-junction becomes an all-way stop.
    info = TownStore(tmp_path).import_opendrive(xodr)
    assert info.meta["stop_signs"] == {"count": 3, "governing": 3, "source": "opendrive type-206 signals"}
    assert info.meta["junctions"].get("allway_stop") == 1
    network = RoadNetwork.load(info.net_path)
    lanes = network.stop_sign_lanes
    assert len(lanes) == 3 and len(set(lanes.values())) == 1
    for sign in network.stop_signs:
        (lane_id,) = sign.lanes
        end = network.lane_shape(lane_id)[-1]
        assert np.hypot(*(end - (sign.x, sign.y))) < 10.0  # the sign stands by its stop line
        assert len(sign.area) == 1 and len(sign.area[0]) >= 4
    # A route over a governed lane meets the stop: the scene's stop-sign distance and the criterion use it.
    lane_id = sorted(lanes)[0]
    shape = network.lane_shape(lane_id)
    start = shape[0] + 0.2 * (shape[-1] - shape[0])
    after = [c.getToLane() for c in network.lane(lane_id).getOutgoing()][0]
    goal = network.lane_shape(after.getID())[-1]
    context = RouteContext.from_dense_route(network, plan_route(network, [(*start, 0.0, None), (*goal, 0.0, None)]))
    stops = [c for c in context.controls if c.kind == "stop"]
    assert len(stops) == 1 and np.allclose(stops[0].xy, shape[-1])


class _Actors(list):
    """Stand-in for ``carla.ActorList``: a list with ``filter`` by type-id pattern."""

    def filter(self, pattern: str) -> "_Actors":
        return _Actors(a for a in self if fnmatch.fnmatch(a.type_id, pattern))


class _Stop:
    """Stand-in for a ``traffic.stop`` actor, built of the carla wheel's real types."""

    type_id = "traffic.stop"

    def __init__(self, actor_id: int, transform, trigger_volume) -> None:
        self.id, self._transform, self.trigger_volume = actor_id, transform, trigger_volume

    def get_transform(self):
        return self._transform


class _Light(_Stop):
    type_id = "traffic.traffic_light"

    def __init__(self, actor_id: int, transform, waypoints) -> None:
        super().__init__(actor_id, transform, None)
        self._waypoints = waypoints

    def get_stop_waypoints(self):
        return self._waypoints


class _World:
    def __init__(self, carla_map, actors) -> None:
        self._map, self._actors = carla_map, _Actors(actors)

    def get_map(self):
        return self._map

    def get_actors(self):
        return self._actors


def test_exported_carla_stop_actors_become_the_towns_stop_signs(shared_data: Path, tmp_path: Path) -> None:
    import carla

    xodr = shared_data / "carla_town01" / "Town01.xodr"
    carla_map = carla.Map("Town01", xodr.read_text())
    store = TownStore(tmp_path / "towns")
    plain = store.import_opendrive(xodr, "Plain")
    assert plain.meta["stop_signs"]["count"] == 0 and "export the level's traffic.stop" in plain.meta["stop_signs_note"]
    network = RoadNetwork.load(plain.net_path)
    # A stop sign actor beside a lane 4 m before its junction, its trigger volume on the lane (as CARLA's are:
    # the volume's location is relative to the actor, turned with it).
    lane_id = next(l.getID() for l in network.driving_lanes() if l.getOutgoing() and l.getLength() > 30
                   and network.is_intersection(l.getEdge().getToNode().getID()))
    shape = network.lane_shape(lane_id)
    yaw = network.lane_heading_yaw(lane_id, network.lane(lane_id).getLength() - 4.0)
    direction = np.array([np.cos(np.radians(yaw)), np.sin(np.radians(yaw))])
    on_lane = shape[-1] - 4.0 * direction
    right = np.array([-direction[1], direction[0]])  # CARLA's frame: +90 degrees of yaw is to the right
    post = on_lane + 3.0 * right
    actor_transform = carla.Transform(carla.Location(x=float(post[0]), y=float(post[1]), z=0.0),
                                      carla.Rotation(yaw=float(yaw)))
    volume = carla.BoundingBox(carla.Location(x=0.0, y=-3.0, z=0.5), carla.Vector3D(x=2.0, y=1.5, z=1.0))
    stop = _Stop(71, actor_transform, volume)
    waypoint = carla_map.get_waypoint(carla.Location(x=float(on_lane[0]), y=float(on_lane[1]), z=0.0))
    light = _Light(72, waypoint.transform, [waypoint])
    exporter = _exporter()
    data = exporter.export_stops(_World(carla_map, [stop, light]))
    assert data["map"] == "Town01" and len(data["traffic_lights"]) == 1
    assert data["traffic_lights"][0]["stop_waypoints"][0]["road_id"] == waypoint.road_id
    (entry,) = data["stop_signs"]
    assert np.allclose(entry["trigger_center"][:2], on_lane, atol=1e-3)
    assert len(entry["trigger_corners"]) == 4
    export = tmp_path / "stops.json"
    export.write_text(json.dumps(data))

    result = CliRunner().invoke(town_group, ["import", str(xodr), "--name", "Stops", "--towns-dir",
                                             str(store.root), "--stop-signs", str(export)])
    assert result.exit_code == 0, result.output
    assert "1 stop signs from" in result.output and "1 placed on the lanes they govern" in result.output
    stops = RoadNetwork.load(store.net_path("Stops"))
    (sign,) = stops.stop_signs
    assert sign.source == "carla" and sign.sign_id == "actor:71" and lane_id in sign.lanes
    assert stops.stop_sign_lanes[lane_id] == network.lane(lane_id).getEdge().getToNode().getID()
    # SUMO's own traffic stops there: the junction got stop links
    junction = stops.net.getNode(stops.stop_sign_lanes[lane_id])
    assert junction.getType() in ("priority_stop", "allway_stop")
    states = {c.getState() for c in stops.lane(lane_id).getOutgoing()}
    assert states <= {"s", "w"}, states
    assert STOP_AREA_LENGTH_M == pytest.approx(8.0)
