"""Background traffic route files."""
from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sumo_world.roads.network import RoadNetwork
from sumo_world.towns.store import TownStore
from sumo_world.towns.sumo_tools import sumo_binary, sumo_env
from sumo_world.traffic.demand import DENSITIES, TrafficConfig, write_traffic_routes


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> RoadNetwork:
    store = TownStore(tmp_path_factory.mktemp("towns"))
    return RoadNetwork.load(store.generate("Grid", size=4, seed=0).net_path)


def test_density_presets_and_validation() -> None:
    assert TrafficConfig.for_density("none").total == 0
    light, busy = TrafficConfig.for_density("light"), TrafficConfig.for_density("busy", seed=4)
    assert light.vehicles < TrafficConfig().vehicles < busy.vehicles and busy.seed == 4
    assert set(DENSITIES) == {"none", "light", "default", "busy"}
    with pytest.raises(ValueError, match="unknown traffic density 'rush'"):
        TrafficConfig.for_density("rush")
    with pytest.raises(ValueError, match="vehicles must be >= 0"):
        TrafficConfig(vehicles=-1)


def test_traffic_files_are_seeded_and_valid_for_sumo(grid: RoadNetwork, tmp_path: Path) -> None:
    config = TrafficConfig(vehicles=12, bicycles=3, pedestrians=8, seed=1)
    first = write_traffic_routes(grid, config, tmp_path / "a", avoid_edges=[grid.driving_edges()[0].getID()])
    second = write_traffic_routes(grid, config, tmp_path / "b", avoid_edges=[grid.driving_edges()[0].getID()])
    other = write_traffic_routes(grid, TrafficConfig(12, 3, 8, seed=2), tmp_path / "c")
    assert [p.read_text() for p in first] == [p.read_text() for p in second]
    assert first[0].read_text() != other[0].read_text()

    vehicles = ET.parse(first[0]).getroot()
    kinds = [v.get("type") for v in vehicles.iter("vehicle")]
    assert kinds.count("car") == 12 and kinds.count("bicycle") == 3
    for vehicle in vehicles.iter("vehicle"):
        edges = vehicle.find("route").get("edges").split()
        assert edges[0] != grid.driving_edges()[0].getID()
        for a, b in zip(edges, edges[1:]):  # consecutive edges are connected
            assert grid.net.getEdge(b) in grid.net.getEdge(a).getOutgoing()
    persons = list(ET.parse(first[1]).getroot().iter("person"))
    assert len(persons) == 8 and all(p.findall("personTrip") for p in persons)

    # SUMO itself accepts the files: every actor is inserted, pedestrians included
    result = subprocess.run(
        [str(sumo_binary("sumo")), "-n", str(grid.net_path), "-r", ",".join(map(str, first)),
         "--end", "20", "--no-step-log", "true", "--duration-log.statistics", "true"],
        capture_output=True, text=True, env=sumo_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Inserted: 15" in result.stdout and "Inserted: 8" in result.stdout


def test_no_traffic_writes_empty_files(grid: RoadNetwork, tmp_path: Path) -> None:
    paths = write_traffic_routes(grid, TrafficConfig.for_density("none"), tmp_path)
    assert [p.name for p in paths] == ["vehicles.rou.xml", "pedestrians.rou.xml"]
    assert not list(ET.parse(paths[0]).getroot().iter("vehicle"))
    assert not list(ET.parse(paths[1]).getroot().iter("person"))


def test_pedestrians_walk_over_crossings(grid: RoadNetwork, tmp_path: Path) -> None:
    files = write_traffic_routes(grid, TrafficConfig(vehicles=0, bicycles=0, pedestrians=20, seed=3), tmp_path)
    fcd = tmp_path / "fcd.xml"
    result = subprocess.run(
        [str(sumo_binary("sumo")), "-n", str(grid.net_path), "-r", str(files[1]), "--end", "90",
         "--no-step-log", "true", "--fcd-output", str(fcd)], capture_output=True, text=True, env=sumo_env(),
        timeout=60)
    assert result.returncode == 0, result.stderr
    crossings = {edge.getID() for edge in grid.net.getEdges(withInternal=True) if edge.getFunction() == "crossing"}
    used = {person.get("edge") for person in ET.parse(fcd).getroot().iter("person")}
    assert used & crossings, "no pedestrian used a crossing"
    sidewalks = {edge.getID() for edge in grid.net.getEdges(withInternal=False)
                 if edge.getFunction() in ("", "normal")}
    assert used & sidewalks


def test_leaderboard_preset_is_vehicles_only_per_town(grid: RoadNetwork, tmp_path: Path) -> None:
    town04 = TrafficConfig.for_density("leaderboard", seed=3, town="Town04")
    assert town04.total == 200 and town04.pedestrians == 0 and town04.seed == 3
    assert town04.bicycles > 0 and town04.motorcycles > 0 and town04.vehicles > town04.bicycles
    assert TrafficConfig.for_density("leaderboard", town="Town09").total == 300
    with pytest.raises(ValueError, match="no vehicle count for town 'Grid'"):
        TrafficConfig.for_density("leaderboard", town="Grid")
    # a town the leaderboard does not know gets Town01's density per metre of road
    scaled = TrafficConfig.for_density("leaderboard", town="Grid", network=grid)
    road_m = sum(edge.getLength() for edge in grid.driving_edges())
    assert scaled.total == pytest.approx(road_m / 40.0, abs=1) and scaled.pedestrians == 0
    paths = write_traffic_routes(grid, scaled, tmp_path)
    kinds = [v.get("type") for v in ET.parse(paths[0]).getroot().iter("vehicle")]
    assert kinds.count("motorcycle") == scaled.motorcycles > 0 and kinds.count("bicycle") == scaled.bicycles
    assert not list(ET.parse(paths[1]).getroot().iter("person"))
