"""Tiny worlds for the traffic tests: a generated town per test module, and an empty started world of it."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from sumo_world.towns.store import TownStore


def generated_town(tmp_path_factory: pytest.TempPathFactory, name: str, **options: Any) -> Path:
    """A towns folder holding one town ``name`` made by ``TownStore.generate(name, **options)``."""
    root = tmp_path_factory.mktemp(name) / "towns"
    TownStore(root).generate(name, **options)
    return root


@contextmanager
def empty_world(towns_dir: Path, name: str, **world_options: Any) -> Iterator[tuple[Any, Any]]:
    """A started :class:`SumoWorld` of town ``name`` with no traffic and no warm-up, and its
    :class:`RoadNetwork`; closed on leaving. Call it in the child process (libsumo: one simulation
    per process)."""
    from sumo_world.roads.network import RoadNetwork
    from sumo_world.simulation.world import SumoWorld

    town = TownStore(towns_dir).get(name)
    network = RoadNetwork.load(town.net_path)
    world = SumoWorld(town, route_files=[], seed=0, network=network, warmup_s=0.0, **world_options)
    world.start()
    try:
        yield world, network
    finally:
        world.close()


def plain_edges(network: Any) -> list[Any]:
    """The network's edges but the junctions' internal ones, in id order (tests pick the first that fits)."""
    return sorted(network.net.getEdges(withInternal=False), key=lambda e: e.getID())
