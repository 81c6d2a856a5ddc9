"""Bird's-eye pictures of a finished route on a generated town."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sumo_world.pictures.birdseye import render_route_animation, render_route_png
from sumo_world.pictures.road_drawing import road_drawing
from sumo_world.scoring.records import ActorSample, Infraction, RouteOutcome, TrajectorySample
from sumo_world.roads.network import RoadNetwork
from sumo_world.routes.planner import plan_route
from sumo_world.routes.random_routes import random_routes
from sumo_world.towns.store import TownStore


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory):
    return TownStore(tmp_path_factory.mktemp("towns")).generate("Pic", size=3, seed=1)


@pytest.fixture(scope="module")
def outcome(town) -> RouteOutcome:
    network = RoadNetwork.load(town.net_path)
    dense = plan_route(network, random_routes(network, 1, seed=3, min_length_m=100.0, max_length_m=400.0)[0])
    points = dense.points[: len(dense.points) // 2]
    yaw = dense.yaw_deg
    trajectory = [TrajectorySample(time_s=i * 0.2, x=float(x), y=float(y), yaw_deg=float(yaw[i]),
                                   speed_mps=min(i * 0.2, 6.0)) for i, (x, y) in enumerate(points)]
    mid = trajectory[len(trajectory) // 2]
    return RouteOutcome(
        route_id="0", town=town.name, status="Failed - Agent deviated from the route",
        route_completion_percent=50.0, route_length_m=dense.length_m, duration_game_s=trajectory[-1].time_s,
        duration_system_s=1.0, trajectory=trajectory,
        route_xy=[(float(x), float(y)) for x, y in dense.points],
        actors=[ActorSample(mid.time_s, 5, "vehicle.car", mid.x + 8.0, mid.y, mid.yaw_deg, 2.3, 0.95)],
        infractions=[Infraction("collisions_vehicle", mid.time_s, mid.x, mid.y, "collision", 5)])


def test_png_has_the_requested_size(town, outcome: RouteOutcome, tmp_path: Path) -> None:
    import imageio.v3 as iio

    path = render_route_png(outcome, town, tmp_path / "route.png", size_px=(640, 480))
    image = iio.imread(path)
    assert image.shape[:2] == (480, 640)
    # something besides the background is drawn (roads, route, path)
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 20


def test_road_drawing_is_in_carla_frame(town) -> None:
    network = RoadNetwork.load(town.net_path)
    drawing = road_drawing(network)
    assert drawing.road_polygons and drawing.sidewalk_polygons and drawing.lane_centres
    x_min, y_min, x_max, y_max = drawing.bounds
    bx_min, by_min, bx_max, by_max = network.bounds
    # generated nets have y >= 0 in SUMO, so CARLA y (negated) is <= 0
    assert y_max <= 15.0 and by_max <= 15.0
    assert abs(x_min - bx_min) < 10.0 and abs(y_min - by_min) < 10.0


def test_gif_animation(town, outcome: RouteOutcome, tmp_path: Path) -> None:
    import imageio.v3 as iio

    path = render_route_animation(outcome, town, tmp_path / "run.gif", every_n_ticks=40, size_px=(200, 160),
                                  max_frames=5)
    frames = iio.imread(path, index=None)
    assert 2 <= frames.shape[0] <= 5 and frames.shape[1:3] == (160, 200)
