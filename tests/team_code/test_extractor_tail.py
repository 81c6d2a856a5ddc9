"""The CARLA side keeps the governing light until the ego's tail is over its line, and says where the junction ends.

The same meaning as the embedded world (tests/expert/test_red_light_box.py), on
CARLA's real Town01 map with the test doubles of tests/helpers/carla_doubles.py.
"""
from __future__ import annotations

import numpy as np
import pytest

carla = pytest.importorskip("carla")

from driving.scene import RED_LIGHT_TAIL_FRACTION, validate_scene  # noqa: E402
from team_code.carla_extractor import CarlaSceneProvider  # noqa: E402
from tests.helpers.carla_doubles import FakeWorld, along, dense_route, light_for, make_hero  # noqa: E402

HALF_LENGTH_M = 2.45  # make_hero's bounding-box extent


def _scene(town01, ego_wp, line_behind_m: float, state=None) -> dict:
    hero = make_hero(ego_wp, box_offset_x=0.0)
    light = light_for(100, along(ego_wp, -line_behind_m), state=state or carla.TrafficLightState.Red)
    provider = CarlaSceneProvider(FakeWorld([hero, light]), town01, hero, dense_route(ego_wp))
    scene = provider.get_scene()
    validate_scene(scene, strict=True)
    return scene


def test_a_light_behind_the_centre_governs_until_the_tail_has_passed(town01, ego_wp):
    tail_m = RED_LIGHT_TAIL_FRACTION * HALF_LENGTH_M
    over = _scene(town01, ego_wp, line_behind_m=tail_m - 0.8)  # centre past the line, tail 0.8 m short
    assert over["traffic_light_state"] == "red"
    assert over["distance_to_traffic_light_m"] == pytest.approx(-(tail_m - 0.8), abs=0.1)
    assert over["distance_to_red_light"] is None  # the paper's key: only lines ahead of the centre
    past = _scene(town01, ego_wp, line_behind_m=tail_m + 1.0)
    assert past["traffic_light_state"] is None and past["distance_to_traffic_light_m"] is None


def test_the_junction_exit_is_past_its_entry(town01, ego_wp):
    hero = make_hero(ego_wp, box_offset_x=0.0)
    provider = CarlaSceneProvider(FakeWorld([hero]), town01, hero, dense_route(ego_wp))
    hero.transform = along(ego_wp, 10.0).transform  # the junction 21 m ahead, its far side within 50 m
    scene = provider.get_scene()
    entry, exit_m = scene["distance_to_junction_m"], scene["distance_to_junction_exit_m"]
    assert entry == pytest.approx(21.0, abs=1.5)
    assert entry + 5.0 < exit_m < entry + 30.0
    # Inside the junction the exit is what is left of it.
    hero.transform = along(ego_wp, 10.0 + entry + 2.0).transform
    scene = provider.get_scene()
    assert scene["ego_in_junction"] is True
    assert scene["distance_to_junction_exit_m"] == pytest.approx(exit_m - entry - 2.0, abs=1.5)
