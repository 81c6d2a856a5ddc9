"""Collisions are counted as leaderboard 1.0's CollisionTest counts its sensor's events.

Each tick of contact is an event; none counts with the actor of the last counted
collision within 5 s, nor within 3 m of a spot where one was counted (forgotten
once the ego is 5 m away). A car standing against the ego is one collision, not
one every few seconds.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from sumo_world.scoring.criteria import RouteCriteria
from sumo_world.ego.dynamics import EgoState
from sumo_world.roads.network import RoadNetwork
from sumo_world.routes.planner import plan_route
from sumo_world.scene.builder import RouteContext
from sumo_world.towns.store import TownStore
from sumo_world.simulation.snapshot import ActorArrays, WorldSnapshot

STEP_S = 0.05


@pytest.fixture(scope="module")
def road(tmp_path_factory: pytest.TempPathFactory) -> tuple[RoadNetwork, RouteContext]:
    store = TownStore(tmp_path_factory.mktemp("criteria") / "towns")
    store.generate("criteria", kind="grid", size=3, seed=0)
    network = RoadNetwork.load(store.net_path("criteria"))
    lane = max((lane for edge in network.net.getEdges(withInternal=False) for lane in edge.getLanes()
                if lane.allows("passenger")), key=lambda lane: lane.getLength())
    shape = network.lane_shape(lane.getID())
    dense = plan_route(network, [(*shape[0], 0.0, None), (*shape[-1], 0.0, None)])
    return network, RouteContext.from_dense_route(network, dense)


def _ego(context: RouteContext, s_m: float) -> EgoState:
    i = int(np.searchsorted(context.cumulative_m, s_m))
    d = context.points[i + 1] - context.points[i]
    return EgoState(float(context.points[i][0]), float(context.points[i][1]), math.degrees(math.atan2(d[1], d[0])))


def _touching(ego: EgoState, actor_id: int) -> ActorArrays:
    """One car with its rear 0.5 m into the ego's front."""
    xy = ego.xy + ego.forward * 4.3
    return ActorArrays(ids=[actor_id], sumo_ids=[f"car{actor_id}"], types=["car"], xy=xy[None, :],
                       yaw_deg=np.array([ego.yaw_deg]), speed_mps=np.zeros(1), half_length_m=np.array([2.4]),
                       half_width_m=np.array([1.0]), z_m=np.array([np.nan]))


def _collisions(criteria: RouteCriteria) -> list[str]:
    return [i.message for i in criteria.infractions if i.kind == "collisions_vehicle"]


def test_contacts_count_as_the_leaderboard_counts_them(road) -> None:
    network, context = road
    criteria = RouteCriteria(context, network, world=None)
    t = 0.0
    ego = _ego(context, 20.0)

    def tick(state: EgoState, actor_id: int | None) -> None:
        nonlocal t
        vehicles = _touching(state, actor_id) if actor_id is not None else ActorArrays()
        criteria.update(state, WorldSnapshot(t, "", vehicles, ActorArrays()))
        t += STEP_S

    for _ in range(int(12.0 / STEP_S)):  # a car stands against the standing ego for 12 s
        tick(ego, 7)
    assert len(_collisions(criteria)) == 1
    for _ in range(int(2.0 / STEP_S)):  # another car touches it on the same spot
        tick(ego, 8)
    assert len(_collisions(criteria)) == 1
    moved = _ego(context, 27.0)  # 7 m on: the spot is forgotten
    tick(moved, None)
    tick(moved, 8)
    assert len(_collisions(criteria)) == 2 and "id=8" in _collisions(criteria)[-1]
    further = _ego(context, 34.0)  # the car of the last collision, 7 m on but within 5 s: ignored
    tick(further, None)
    tick(further, 8)
    assert len(_collisions(criteria)) == 2
    for _ in range(int(5.5 / STEP_S)):
        tick(further, None)
    tick(further, 8)  # after 5 s it counts again
    assert len(_collisions(criteria)) == 3
