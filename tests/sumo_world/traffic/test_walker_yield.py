"""SUMO's walkers stop short of the ego's body in their way (sumo_world.traffic.walker_yield).

SUMO's walkers do not look at cars: one whose walk runs through the ego's
footprint (a walking area reaching into the lane the ego stands in) walks into
it. Here the ego's footprint stands on a sidewalk, 15 m along a walker's way.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.child_process import run_in_child
from tests.helpers.worlds import empty_world, generated_town, plain_edges
from tests.helpers.shapes import box


def _sidewalk_run(towns_dir: Path, use_yield: bool, leave_at_s: float | None, ticks: int) -> dict:
    """A walker walks along a sidewalk towards a footprint standing on it; the footprint leaves at ``leave_at_s``."""
    from sumo_world.ego.dynamics import EgoState
    from sumo_world.traffic.walker_yield import WalkerYield

    with empty_world(towns_dir, "walk") as (world, network):
        sidewalk = next(lane for edge in plain_edges(network)
                        for lane in edge.getLanes()
                        if lane.allows("pedestrian") and not lane.allows("passenger") and edge.getLength() > 60.0)
        shape = network.lane_shape(sidewalk.getID())
        forward = (shape[-1] - shape[0]) / np.linalg.norm(shape[-1] - shape[0])
        start = shape[0] + forward * 10.0
        centre = start + forward * (15.0 + world.ego_params.half_length_m)
        ego = EgoState(float(centre[0]), float(centre[1]), math.degrees(math.atan2(forward[1], forward[0])), 0.0)
        away = EgoState(ego.x + 200.0, ego.y + 200.0, ego.yaw_deg, 0.0)
        sumo = world.sumo
        edge_id = sidewalk.getEdge().getID()
        sumo.person.add("walker", edge_id, 10.0)
        sumo.person.appendWalkingStage("walker", [edge_id], sidewalk.getEdge().getLength() - 5.0)
        guard = WalkerYield(world)
        p = world.ego_params
        ego_box = box(ego.x, ego.y, ego.yaw_deg, p.half_length_m, p.half_width_m)
        closest, overlapped, walked_past = math.inf, False, False
        world.step()
        for tick in range(ticks):
            here = ego if leave_at_s is None or tick * world.step_s < leave_at_s else away
            if use_yield:
                guard.update(here, world.snapshot())
            world.step()
            walkers = world.snapshot().pedestrians
            if not len(walkers):
                break
            walker = box(*walkers.xy[0], walkers.yaw_deg[0], 0.3, 0.3)
            if here is ego:
                closest = min(closest, ego_box.distance(walker))
                overlapped |= ego_box.intersects(walker)
            walked_past |= float((walkers.xy[0] - centre) @ forward) > p.half_length_m + 1.0
        return {"closest": closest, "overlapped": overlapped, "holds": guard.holds, "gave_up": guard.gave_up,
                "walked_past": walked_past, "left": "walker" not in sumo.person.getIDList()}


@pytest.fixture(scope="module")
def towns_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_town(tmp_path_factory, "walk", kind="grid", size=2, seed=0)


def test_a_walker_stops_short_of_the_ego_and_walks_on_when_it_has_left(towns_dir: Path) -> None:
    held = run_in_child(_sidewalk_run, towns_dir, True, 25.0, 800)
    assert held["holds"] == 1 and not held["overlapped"], held
    assert held["closest"] < 1.5, held  # it walked up to the ego and waited there
    assert held["walked_past"] and held["gave_up"] == 0, held  # and went on once the ego had gone
    # SUMO alone walks into it: the guard is what stops the walker
    plain = run_in_child(_sidewalk_run, towns_dir, False, None, 600)
    assert plain["overlapped"], plain


def test_a_walker_held_for_good_ends_its_walk(towns_dir: Path) -> None:
    held = run_in_child(_sidewalk_run, towns_dir, True, None, 800)
    assert held["gave_up"] == 1 and held["left"] and not held["overlapped"], held
