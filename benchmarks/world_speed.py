"""How fast the embedded world runs: simulated seconds per wall-clock second.

One route on a generated 5x5 grid town with about 50 vehicles (bicycles
included) and 30 pedestrians, driven by the built-in ``follow`` agent (a
scene is built for it every tick), with every criterion evaluated every
tick, at 20 Hz. Runs in this process on one core. Prints the loop rate (ticks
only) and the whole-route rate (network loading, traffic generation, SUMO
start and warm-up included).

    python benchmarks/world_speed.py [--vehicles 45] [--bicycles 5] [--pedestrians 30] [--seed 0]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=45)
    parser.add_argument("--bicycles", type=int, default=5)
    parser.add_argument("--pedestrians", type=int, default=30)
    parser.add_argument("--size", type=int, default=5, help="grid junctions per side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--agent", default="builtin:follow")
    args = parser.parse_args()

    from sumo_world.road_network import RoadNetwork
    from sumo_world.route_planner import random_routes
    from sumo_world.runner import run_route
    from sumo_world.towns import TownStore
    from sumo_world.traffic import TrafficConfig

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
                snap = info.provider._snapshot  # what the world held at this tick
                counts.append((len(snap.vehicles), len(snap.pedestrians)))

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


if __name__ == "__main__":
    main()
