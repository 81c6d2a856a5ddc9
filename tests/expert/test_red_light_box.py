"""Red until the tail has passed, and a clear box: the scene of a tiny generated town and the expert.

The scenes come from the embedded world's own scene builder on a 3x3 grid town
(the route's real stop line, junction entry and exit); only the light's state
and the actors are set by hand, so each situation is exact.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from driving.scene import RED_LIGHT_TAIL_FRACTION, validate_scene
from expert import Expert
from expert.scenarios import make_actor
from sumo_world.ego.dynamics import EgoParams, EgoState
from sumo_world.roads.network import RoadNetwork
from sumo_world.routes.planner import plan_route
from sumo_world.routes.random_routes import random_routes
from sumo_world.scene.builder import RouteContext, SumoSceneProvider
from sumo_world.towns.store import TownStore
from sumo_world.simulation.snapshot import ActorArrays, WorldSnapshot

TOWN = "boxgrid"
HALF_LENGTH_M = EgoParams().half_length_m


class _Lights:
    """The world as the scene builder reads it: every light shows ``state`` (a SUMO link character)."""

    def __init__(self, state: str) -> None:
        self.state = state

    def light_state(self, tls_id: str, link_index: int) -> str:
        return self.state


@pytest.fixture(scope="module")
def light_route(tmp_path_factory: pytest.TempPathFactory) -> tuple[RoadNetwork, object]:
    """A route whose first control is a light 30-120 m in, with a junction exit known."""
    town = TownStore(tmp_path_factory.mktemp("box") / "towns").generate(TOWN, kind="grid", size=3, seed=0)
    network = RoadNetwork.load(town.net_path)
    for route in random_routes(network, 30, seed=5, town=TOWN, min_length_m=120, max_length_m=240):
        dense = plan_route(network, route)
        context = RouteContext.from_dense_route(network, dense)
        first = context.controls[0] if context.controls else None
        if first is not None and first.kind == "light" and 30.0 < first.distance_m < 120.0:
            return network, dense
    raise AssertionError("no route with a light in the generated town")


def _scene(network, dense, offset_m: float, speed_mps: float, light: str, vehicles=None) -> dict:
    """The scene with the ego's centre ``offset_m`` along the route past the first light's stop line."""
    context = RouteContext.from_dense_route(network, dense)
    line = context.controls[0]
    s = line.distance_m + offset_m
    cumulative = context.cumulative_m
    i = int(np.clip(np.searchsorted(cumulative, s) - 1, 0, len(cumulative) - 2))
    tangent = context.points[i + 1] - context.points[i]
    tangent = tangent / np.linalg.norm(tangent)
    xy = context.points[i] + tangent * (s - cumulative[i])
    for k in range(0, i + 1):  # drive the progress tracker up to the ego, as the criteria do each tick
        context.tracker.update(context.points[k])
    context.tracker.update(xy)
    provider = SumoSceneProvider(_Lights(light), context=context, ego_params=EgoParams())
    ego = EgoState(float(xy[0]), float(xy[1]), math.degrees(math.atan2(tangent[1], tangent[0])), speed_mps)
    provider.update(ego, WorldSnapshot(0.0, "", ActorArrays(), ActorArrays()))
    scene = provider.get_scene()
    scene["vehicles"] = dict(vehicles or {})
    validate_scene(scene, strict=True)
    return scene


def _point_along(network, dense, s_m: float) -> tuple[np.ndarray, float]:
    """(xy, yaw_deg) of the route at ``s_m`` past the first light's stop line."""
    context = RouteContext.from_dense_route(network, dense)
    s = context.controls[0].distance_m + s_m
    i = int(np.clip(np.searchsorted(context.cumulative_m, s) - 1, 0, len(context.points) - 2))
    tangent = context.points[i + 1] - context.points[i]
    tangent = tangent / np.linalg.norm(tangent)
    return context.points[i] + tangent * (s - context.cumulative_m[i]), math.degrees(math.atan2(tangent[1], tangent[0]))


# ----------------------------------------------------------------------------- red until the tail has passed


def test_scene_keeps_the_light_with_a_signed_distance_until_the_tail_has_passed(light_route) -> None:
    network, dense = light_route
    tail_m = RED_LIGHT_TAIL_FRACTION * HALF_LENGTH_M
    before = _scene(network, dense, -10.0, 0.0, "r")
    assert before["traffic_light_state"] == "red"
    assert before["distance_to_red_light"] == pytest.approx(before["distance_to_traffic_light_m"])
    assert before["distance_to_red_light"] == pytest.approx(10.0, abs=1.0)

    over = _scene(network, dense, tail_m - 0.8, 0.0, "r")  # centre past the line, tail 0.8 m short of it
    assert over["traffic_light_state"] == "red"
    assert -tail_m < over["distance_to_traffic_light_m"] < 0.0
    assert over["distance_to_red_light"] is None  # the paper's key: the centre has passed the line

    past = _scene(network, dense, tail_m + 1.2, 0.0, "r")  # the tail is over the line
    assert past["distance_to_traffic_light_m"] is None or past["distance_to_traffic_light_m"] > 0.0


def test_expert_holds_on_red_while_its_tail_is_short_of_the_line(light_route) -> None:
    network, dense = light_route
    expert = Expert()
    tail_m = RED_LIGHT_TAIL_FRACTION * HALF_LENGTH_M
    # Standing with the front over the line (the lead it followed has left): red holds it.
    label = expert.predict(_scene(network, dense, tail_m - 0.8, 0.0, "r"))
    assert label.target_speed_mps == 0.0 and label.reason == "red_light"
    # Front just over the line: still held.
    label = expert.predict(_scene(network, dense, -HALF_LENGTH_M + 0.5, 0.0, "r"))
    assert label.target_speed_mps == 0.0 and label.reason == "red_light"
    # Green: it goes.
    assert expert.predict(_scene(network, dense, tail_m - 0.8, 0.0, "G")).target_speed_mps > 1.0
    # Tail over the line: red is behind it.
    assert expert.predict(_scene(network, dense, tail_m + 1.2, 0.0, "r")).reason != "red_light"
    # Rolling at 8 m/s with the front over the line: it cannot stop before its tail crosses, so
    # braking would only leave it in the junction: it clears it.
    assert expert.predict(_scene(network, dense, 0.0, 8.0, "r")).reason != "red_light"


# ----------------------------------------------------------------------------- a clear box


def test_scene_tells_where_the_junction_ends(light_route) -> None:
    network, dense = light_route
    scene = _scene(network, dense, -10.0, 0.0, "G")
    entry, exit_m = scene["distance_to_junction_m"], scene["distance_to_junction_exit_m"]
    assert entry == pytest.approx(scene["distance_to_traffic_light_m"], abs=2.0)
    assert entry + 5.0 < exit_m < entry + 60.0
    inside = _scene(network, dense, 3.0, 0.0, "G")
    assert inside["distance_to_junction_exit_m"] == pytest.approx(exit_m - 13.0, abs=1.5)


def _junction_length_m(network, dense) -> float:
    scene = _scene(network, dense, -10.0, 0.0, "G")
    return scene["distance_to_junction_exit_m"] - scene["distance_to_junction_m"]


def test_expert_waits_at_the_line_while_the_lead_stands_in_the_junction_with_a_full_exit(light_route) -> None:
    network, dense = light_route
    expert = Expert()
    box_m = _junction_length_m(network, dense)
    # The lead stands in the junction; the car ahead of it stands just past the exit.
    lead_xy, lead_yaw = _point_along(network, dense, box_m - 2.0)
    exit_xy, exit_yaw = _point_along(network, dense, box_m + 5.0)
    full = {1: make_actor(*lead_xy, lead_yaw), 2: make_actor(*exit_xy, exit_yaw)}
    # The ego stands at its stop point before the line, the light green.
    at_line = -(HALF_LENGTH_M + 1.2)
    label = expert.predict(_scene(network, dense, at_line, 0.0, "G", full))
    assert label.target_speed_mps == 0.0 and label.reason == "lead_vehicle"
    # Coming in at 6 m/s from 10 m: it plans to stop at the line, short of following the lead's gap.
    approach = expert.predict(_scene(network, dense, -10.0, 6.0, "G", full))
    follow = Expert().predict({**_scene(network, dense, -10.0, 6.0, "G", full), "distance_to_junction_exit_m": None})
    assert approach.target_speed_mps < follow.target_speed_mps - 0.5

    # The exit has room (the cars ahead stand far enough past it): it follows into the junction.
    far_xy, far_yaw = _point_along(network, dense, box_m + 2.0 * HALF_LENGTH_M + 10.0)
    roomy = {2: make_actor(*far_xy, far_yaw)}
    assert expert.predict(_scene(network, dense, at_line, 0.0, "G", roomy)).target_speed_mps > 0.5
    # The lead drives on through the junction: no reason to wait.
    moving = {1: make_actor(*lead_xy, lead_yaw, speed_mps=6.0)}
    assert expert.predict(_scene(network, dense, at_line, 0.0, "G", moving)).target_speed_mps > 0.5
