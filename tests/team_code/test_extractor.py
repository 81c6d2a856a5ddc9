"""The CARLA privileged extractor against the real carla wheel and a real Town01 map.

Only actors, traffic lights and the world are test doubles (they cannot exist
without a server); maps, waypoints, transforms and boxes are CARLA's own.
"""
from __future__ import annotations

import sys
import types

import carla
import numpy as np
import pytest

from driving.geometry import to_ego_frame
from driving.scene import validate_scene
from team_code.carla_extractor import CarlaSceneProvider, actor_type_of
from tests.helpers.carla_doubles import (FakeActor, FakeWorld, along, dense_route, forward_distance, light_for,
                                         make_hero, stop_sign_for, vehicle_at, wp_xy)


# --- tests ----------------------------------------------------------------------------
def test_map_probe_is_a_straight_lane_heading_plus_y(ego_wp):
    # The geometry the other tests rely on.
    assert not ego_wp.is_junction
    assert abs(((ego_wp.transform.rotation.yaw - 90.0) + 180) % 360 - 180) < 1.0
    assert ego_wp.get_left_lane().lane_id == -ego_wp.lane_id


def test_ego_frame_actors_and_ids(town01, ego_wp):
    hero = make_hero(ego_wp, speed_mps=5.0)
    ahead = vehicle_at(10, along(ego_wp, 20.0), speed_mps=3.0)
    behind = vehicle_at(11, along(ego_wp, -4.0), speed_mps=4.0)
    far = vehicle_at(12, along(ego_wp, 20.0))
    far.transform = carla.Transform(carla.Location(ego_wp.transform.location.x + 30.0,
                                                   ego_wp.transform.location.y + 41.0, 0.0))  # 50.8 m away
    oncoming = vehicle_at(13, along(ego_wp, 15.0).get_left_lane(), speed_mps=6.0)
    walker_tf = carla.Transform(carla.Location(ego_wp.transform.location.x + 5.0, ego_wp.transform.location.y + 8.0, 0),
                                carla.Rotation(yaw=180.0))
    walker = FakeActor(id=20, type_id="walker.pedestrian.0001", transform=walker_tf,
                       bounding_box=carla.BoundingBox(carla.Location(0, 0, 0.9), carla.Vector3D(0.3, 0.3, 0.9)),
                       velocity=carla.Vector3D(-1.2, 0.0, 0.0))
    sensor = FakeActor(id=30, type_id="sensor.camera.rgb", transform=walker_tf,
                       bounding_box=carla.BoundingBox(carla.Location(), carla.Vector3D(0.1, 0.1, 0.1)))
    machine = FakeActor(id=40, type_id="static.prop.vendingmachine", transform=walker_tf,
                        bounding_box=carla.BoundingBox(carla.Location(0, 0, 1.0), carla.Vector3D(0.5, 0.6, 1.0)))
    world = FakeWorld([hero, ahead, behind, far, oncoming, walker, sensor, machine])
    provider = CarlaSceneProvider(world, town01, hero, dense_route(ego_wp))
    hero_box_before = (hero.bounding_box.location.x, hero.bounding_box.location.y)

    scene = provider.get_scene()
    validate_scene(scene, strict=True)

    # Ego: the box centre is 0.4 m ahead of the actor origin, heading +y.
    loc = ego_wp.transform.location
    assert scene["ego_orientation_unit_vector"] == pytest.approx([0.0, 1.0], abs=0.01)
    assert scene["ego_location_world_coord"] == pytest.approx([loc.x, loc.y + 0.4], abs=0.02)
    assert scene["ego_forward_speed"] == pytest.approx(5.0)
    assert scene["ego_length"] == pytest.approx(2.45) and scene["ego_width"] == pytest.approx(1.05)
    assert scene["ego_length_m"] == pytest.approx(4.9)
    assert scene["speed_limit_mps"] == pytest.approx(10.0)
    assert scene["timestamp_s"] == pytest.approx(12.5)
    # A scenario's prop is a static prop, not an actor.
    assert list(scene["static_props"]) == [40] and 40 not in scene["vehicles"] and 40 not in scene["pedestrians"]
    assert scene["static_props"][40]["prop_type"] == "static.prop.vendingmachine"
    assert scene["static_props"][40]["width_m"] == pytest.approx(1.2)
    # transform() works in place: the hero's own box must be untouched.
    assert (hero.bounding_box.location.x, hero.bounding_box.location.y) == hero_box_before

    # Actors: the hero, far ones and non-road actors are excluded; ids are ints.
    assert set(scene["vehicles"]) == {10, 11, 13}
    assert set(scene["pedestrians"]) == {20}
    assert forward_distance(scene, scene["vehicles"][10]["location_world_coord"]) == pytest.approx(20.2 - 0.4, abs=0.1)
    assert forward_distance(scene, scene["vehicles"][11]["location_world_coord"]) == pytest.approx(-4.2, abs=0.1)
    assert scene["vehicles"][11]["forward_speed"] == pytest.approx(4.0)
    oncoming_entry = scene["vehicles"][13]
    assert float(np.dot(oncoming_entry["orientation_unit_vector"], scene["ego_orientation_unit_vector"])) < -0.99
    # The oncoming lane is on the ego's left: negative in the (forward, right) frame.
    lateral = to_ego_frame(oncoming_entry["location_world_coord"], scene["ego_location_world_coord"],
                           scene["ego_orientation_unit_vector"])[1]
    assert -5.0 < lateral < -2.0
    ped = scene["pedestrians"][20]
    assert ped["location_world_coord"] == pytest.approx([loc.x + 5.0, loc.y + 8.0], abs=0.01)
    assert ped["forward_speed"] == pytest.approx(1.2)
    assert ped["orientation_unit_vector"] == pytest.approx([-1.0, 0.0], abs=1e-6)
    assert ped["actor_type"] == "pedestrian"
    assert ped["forward_length"] == pytest.approx(0.5)  # half extents are at least 0.5 m
    assert scene["vehicles"][10]["length_m"] == pytest.approx(3.7)


def test_route_target_and_junction(town01, ego_wp):
    hero = make_hero(ego_wp, box_offset_x=0.0)
    provider = CarlaSceneProvider(FakeWorld([hero]), town01, hero, dense_route(ego_wp))
    scene = provider.get_scene()
    ego_xy = scene["ego_location_world_coord"]
    target = scene["ego_target_location_world_coord"]
    # The first dense point more than 4 m away, ahead of the ego.
    assert 4.0 < np.linalg.norm(target - ego_xy) <= 5.1
    assert forward_distance(scene, target) > 4.0
    assert scene["route_command"] == "LANEFOLLOW"
    ahead = scene["route_ahead_world_coord"]
    assert 45 <= len(ahead) <= 52
    assert forward_distance(scene, ahead[0]) == pytest.approx(0.0, abs=0.6)
    assert np.linalg.norm(np.diff(ahead, axis=0), axis=1).sum() == pytest.approx(50.0, abs=1.5)
    assert scene["ego_in_junction"] is False
    assert scene["distance_to_junction_m"] == pytest.approx(31.0, abs=1.5)


def test_red_light_on_own_lane_and_other_lane_light_ignored(town01, ego_wp):
    hero = make_hero(ego_wp)
    own_stop = along(ego_wp, 25.0)
    other_stop = along(ego_wp, 15.0).get_left_lane()  # oncoming lane, closer
    own = light_for(100, own_stop, state=carla.TrafficLightState.Green)
    other = light_for(101, other_stop, state=carla.TrafficLightState.Red)
    world = FakeWorld([hero, own, other])
    provider = CarlaSceneProvider(world, town01, hero, dense_route(ego_wp))

    scene = provider.get_scene()
    validate_scene(scene, strict=True)
    expected = forward_distance(scene, wp_xy(own_stop))
    assert expected == pytest.approx(24.6, abs=0.1)
    assert scene["traffic_light_state"] == "green"
    assert scene["distance_to_traffic_light_m"] == pytest.approx(expected, abs=1e-6)
    assert scene["distance_to_red_light"] is None  # the red light is the other lane's

    own.state = carla.TrafficLightState.Yellow
    scene = provider.get_scene()
    assert scene["traffic_light_state"] == "yellow"
    assert scene["distance_to_red_light"] == pytest.approx(expected, abs=1e-6)

    own.state = carla.TrafficLightState.Red
    hero.transform = along(ego_wp, 10.0).transform  # drive 10 m on
    scene = provider.get_scene()
    assert scene["distance_to_red_light"] == pytest.approx(expected - 10.0, abs=0.1)


def test_only_other_lane_and_passed_lights(town01, ego_wp):
    hero = make_hero(ego_wp)
    other = light_for(101, along(ego_wp, 15.0).get_left_lane())
    passed = light_for(102, along(ego_wp, -5.0))  # own lane, behind the ego
    provider = CarlaSceneProvider(FakeWorld([hero, other, passed]), town01, hero, dense_route(ego_wp))
    scene = provider.get_scene()
    assert scene["distance_to_red_light"] is None
    assert scene["traffic_light_state"] is None
    assert scene["distance_to_traffic_light_m"] is None


def test_stop_sign_distance_completion_and_reset(town01, ego_wp):
    hero = make_hero(ego_wp, speed_mps=5.0, box_offset_x=0.0)
    stop_wp = along(ego_wp, 12.0)
    sign = stop_sign_for(200, stop_wp)
    other_sign = stop_sign_for(201, along(ego_wp, 8.0).get_left_lane())  # oncoming lane's sign
    provider = CarlaSceneProvider(FakeWorld([hero, sign, other_sign]), town01, hero, dense_route(ego_wp))

    scene = provider.get_scene()
    validate_scene(scene, strict=True)
    assert scene["distance_to_stop_sign"] == pytest.approx(12.0, abs=0.1)

    # Still moving inside the volume: not completed.
    hero.transform = along(ego_wp, 11.0).transform
    scene = provider.get_scene()
    assert scene["distance_to_stop_sign"] == pytest.approx(1.0, abs=0.1)
    assert 200 not in provider.completed_stop_signs

    # Stopped inside: completed, and it stays so while driving off through it.
    hero.velocity = carla.Vector3D(0.0, 0.05, 0.0)
    scene = provider.get_scene()
    assert scene["distance_to_stop_sign"] is None
    assert provider.completed_stop_signs == {200}
    hero.velocity = carla.Vector3D(0.0, 3.0, 0.0)
    hero.transform = along(ego_wp, 12.5).transform
    assert provider.get_scene()["distance_to_stop_sign"] is None

    # Left behind: the completion is forgotten.
    hero.transform = along(ego_wp, 20.0).transform
    assert provider.get_scene()["distance_to_stop_sign"] is None
    assert provider.completed_stop_signs == frozenset()


def test_stop_sign_beyond_30m_is_ignored(town01, ego_wp):
    hero = make_hero(ego_wp, box_offset_x=0.0)
    provider = CarlaSceneProvider(FakeWorld([hero, stop_sign_for(200, along(ego_wp, 30.5))]),
                                  town01, hero, dense_route(ego_wp))
    assert provider.get_scene()["distance_to_stop_sign"] is None
    hero.transform = along(ego_wp, 2.0).transform
    assert provider.get_scene()["distance_to_stop_sign"] == pytest.approx(28.5, abs=0.1)


def test_actor_types():
    box = carla.BoundingBox(carla.Location(), carla.Vector3D(1.0, 0.4, 0.8))
    tf = carla.Transform()
    assert actor_type_of(FakeActor(1, "vehicle.bh.crossbike", tf, box, attributes={"number_of_wheels": "2"})) == "bicycle"
    assert actor_type_of(FakeActor(1, "vehicle.yamaha.yzf", tf, box, attributes={"number_of_wheels": "2"})) == "motorcycle"
    assert actor_type_of(FakeActor(1, "vehicle.x", tf, box, attributes={"base_type": "Van"})) == "car"
    assert actor_type_of(FakeActor(1, "vehicle.x", tf, box, attributes={"base_type": "bus"})) == "bus"
    long_box = carla.BoundingBox(carla.Location(), carla.Vector3D(5.0, 1.3, 1.8))
    assert actor_type_of(FakeActor(1, "vehicle.carlamotors.firetruck", tf, long_box)) == "truck"


def test_from_data_provider(monkeypatch, town01, ego_wp):
    hero = make_hero(ego_wp)
    world = FakeWorld([hero, vehicle_at(10, along(ego_wp, 20.0))])
    provider_cls = type("CarlaDataProvider", (), {
        "get_world": staticmethod(lambda: world), "get_map": staticmethod(lambda world=None: town01),
        "get_hero_actor": staticmethod(lambda: hero), "get_all_actors": staticmethod(world.get_actors)})
    module = types.ModuleType("srunner.scenariomanager.carla_data_provider")
    module.CarlaDataProvider = provider_cls
    for name in ("srunner", "srunner.scenariomanager"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "srunner.scenariomanager.carla_data_provider", module)
    provider = CarlaSceneProvider.from_data_provider(dense_route(ego_wp))
    scene = provider.get_scene()
    assert set(scene["vehicles"]) == {10}

    # Older scenario_runner without get_hero_actor: the actor with role_name "hero".
    del provider_cls.get_hero_actor
    assert CarlaSceneProvider.from_data_provider(dense_route(ego_wp)).hero is hero

    provider_cls.get_hero_actor = staticmethod(lambda: None)
    with pytest.raises(RuntimeError, match="no hero"):
        CarlaSceneProvider.from_data_provider(dense_route(ego_wp))


def test_rejects_short_plan(town01, ego_wp):
    hero = make_hero(ego_wp)
    with pytest.raises(ValueError, match="at least 2"):
        CarlaSceneProvider(FakeWorld([hero]), town01, hero, dense_route(ego_wp)[:1])
