"""How fast the embedded world runs: simulated seconds per wall-clock second.

One route on a generated 5x5 grid town with about 50 vehicles (bicycles
included) and 30 pedestrians, driven by the built-in ``follow`` agent (a
scene is built for it every tick), with every criterion evaluated every
tick, at 20 Hz. Runs in this process on one core. Prints the loop rate (ticks
only) and the whole-route rate (network loading, traffic generation, SUMO
start and warm-up included).

    python benchmarks/world_speed.py [--vehicles 45] [--bicycles 5] [--pedestrians 30] [--seed 0]

``--carla-town FILE`` runs the CARLA-town case instead: the town imported
from FILE (e.g. ``Town04.xodr``) with the ``leaderboard`` traffic preset
(200 vehicles in Town04, no walkers), a random 1-2 km route, and prints the
loop's real-time factor beside raw SUMO stepping of the same traffic (same
town, seed and vehicles, no ego, nothing read) in the same run. Target
(issue 8): >= 30x real time.

    python benchmarks/world_speed.py --carla-town ../shared/data/carla_towns/Town04.xodr
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _background_vehicles(world) -> int:
    """Every SUMO vehicle but the ego and its shadow (the scene sees only those within 100 m)."""
    from sumo_world.simulation.ego_presence import EGO_ID, SHADOW_ID

    return sum(1 for vid in world.sumo.vehicle.getIDList() if vid not in (EGO_ID, SHADOW_ID))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=45)
    parser.add_argument("--bicycles", type=int, default=5)
    parser.add_argument("--pedestrians", type=int, default=30)
    parser.add_argument("--size", type=int, default=5, help="grid junctions per side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--agent", default="builtin:follow")
    parser.add_argument("--carla-town", type=Path, default=None,
                        help="a CARLA town's .xodr or .net.xml: the leaderboard-preset case")
    args = parser.parse_args()
    if args.carla_town is not None:
        carla_town(args)
        return

    from sumo_world.roads.network import RoadNetwork
    from sumo_world.routes.random_routes import random_routes
    from sumo_world.run.runner import run_route
    from sumo_world.towns.store import TownStore
    from sumo_world.traffic.demand import TrafficConfig

    with tempfile.TemporaryDirectory(prefix="world_speed_") as tmp:
        town = TownStore(Path(tmp)).generate("bench", kind="grid", size=args.size, seed=args.seed)
        network = RoadNetwork.load(town.net_path)
        route = random_routes(network, 1, seed=args.seed, town="bench", min_length_m=500, max_length_m=700)[0]
        traffic = TrafficConfig(vehicles=args.vehicles, bicycles=args.bicycles, pedestrians=args.pedestrians,
                                seed=args.seed)
        ticks: list[float] = []
        counts: list[tuple[int, int]] = []

        cpu: list[float] = []

        def on_tick(info) -> None:
            ticks.append(time.perf_counter())
            cpu.append(time.process_time())
            if info.frame % 100 == 0:
                world = info.provider.world
                counts.append((_background_vehicles(world), world.sumo.person.getIDCount()))

        start = time.perf_counter()
        outcome = run_route(route, town, args.agent, seed=args.seed, traffic=traffic, network=network,
                            on_tick=on_tick)
        total_s = time.perf_counter() - start

    loop_wall = ticks[-1] - ticks[0]
    loop_sim = (len(ticks) - 1) * 0.05
    vehicles = sum(c[0] for c in counts) / max(1, len(counts))
    pedestrians = sum(c[1] for c in counts) / max(1, len(counts))
    print(f"route {route.route_id}: {outcome.route_length_m:.0f} m, status {outcome.status}, "
          f"completion {outcome.route_completion_percent:.1f}%")
    print(f"actors in the simulation (mean over sampled ticks): {vehicles:.1f} vehicles, "
          f"{pedestrians:.1f} pedestrians")
    print(f"ticks: {len(ticks)} ({loop_sim:.1f} simulated s)")
    print(f"loop only:   {loop_sim / loop_wall:6.1f} x real time ({1000 * loop_wall / max(1, len(ticks) - 1):.2f} "
          f"ms per tick)")
    # CPU time of this process: what an idle core gives (other load on the machine does not count).
    loop_cpu = cpu[-1] - cpu[0]
    print(f"loop, CPU:   {loop_sim / loop_cpu:6.1f} x real time per CPU second "
          f"({1000 * loop_cpu / max(1, len(ticks) - 1):.2f} ms CPU per tick)")
    print(f"whole route: {outcome.duration_game_s / total_s:6.1f} x real time ({total_s:.2f} s wall, "
          f"setup and warm-up included)")


def carla_town(args: argparse.Namespace) -> None:
    """A CARLA town with the leaderboard preset: the world's loop against raw SUMO stepping."""
    import libsumo

    from sumo_world.roads.network import RoadNetwork
    from sumo_world.routes.random_routes import random_routes
    from sumo_world.run.runner import run_route
    from sumo_world.towns.store import TownStore
    from sumo_world.traffic.demand import TrafficConfig
    from sumo_world.simulation.world import SENSE_RADIUS_M, SumoWorld

    with tempfile.TemporaryDirectory(prefix="world_speed_") as tmp:
        town = TownStore(Path(tmp)).import_file(args.carla_town)
        network = RoadNetwork.load(town.net_path)
        traffic = TrafficConfig.for_density("leaderboard", seed=args.seed, town=town.name, network=network)
        route = random_routes(network, 1, seed=args.seed, town=town.name, min_length_m=1000,
                              max_length_m=2000)[0]
        ticks: list[float] = []
        cpu: list[float] = []
        counts: list[int] = []

        def on_tick(info) -> None:
            ticks.append(time.perf_counter())
            cpu.append(time.process_time())
            if info.frame % 100 == 0:
                counts.append(_background_vehicles(info.provider.world))

        outcome = run_route(route, town, args.agent, seed=args.seed, traffic=traffic, network=network,
                            on_tick=on_tick)
        steps = len(ticks) - 1
        # Raw SUMO: the same town, traffic and seed, no ego, nothing read, as many steps.
        with SumoWorld(town, traffic, seed=args.seed, network=network, sense_radius_m=SENSE_RADIUS_M) as world:
            raw_start, raw_cpu = time.perf_counter(), time.process_time()
            for _ in range(steps):
                libsumo.simulationStep()
            raw_wall, raw_cpu = time.perf_counter() - raw_start, time.process_time() - raw_cpu
            raw_vehicles = libsumo.vehicle.getIDCount()
            del world

    sim = steps * 0.05
    loop_wall, loop_cpu = ticks[-1] - ticks[0], cpu[-1] - cpu[0]
    print(f"{town.name}: {traffic.total} background vehicles ({traffic.bicycles} bicycles, "
          f"{traffic.motorcycles} motorbikes), route {route.route_id} {outcome.route_length_m:.0f} m, "
          f"status {outcome.status}, completion {outcome.route_completion_percent:.1f}%")
    print(f"vehicles in the simulation: {sum(counts) / max(1, len(counts)):.0f} (mean over sampled ticks), "
          f"{raw_vehicles} at the end of the raw run; {steps} ticks ({sim:.0f} simulated s)")
    print(f"world loop (scene + criteria + agent every tick): {sim / loop_wall:6.1f} x real time wall, "
          f"{sim / loop_cpu:6.1f} x per CPU second ({1000 * loop_cpu / max(1, steps):.2f} ms CPU per tick)")
    print(f"raw SUMO stepping, same traffic:                 {sim / raw_wall:6.1f} x real time wall, "
          f"{sim / raw_cpu:6.1f} x per CPU second ({1000 * raw_cpu / max(1, steps):.2f} ms CPU per tick)")
    print("target: >= 30x real time (world loop)")


if __name__ == "__main__":
    main()
