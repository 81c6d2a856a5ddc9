"""The state of the embedded world's background traffic without the ego, per town and preset.

For every town of ``../shared/data`` (imported the stock way, as
``expert_score.py --carla-towns`` does) and a generated 4x4 grid town, and for
each traffic preset, runs the world with no ego for ``--sim-s`` simulated
seconds with the world's jam release (:class:`sumo_world.traffic.jams.JamRelease`),
sampling every second, and prints: vehicles in the simulation, the share of
them standing (below 0.1 m/s; mean over samples and the worst sample), their
mean speed, and jam releases per 10 simulated minutes.

    python benchmarks/traffic_state.py [--sim-s 600] [--presets default,leaderboard] [--towns Town01,Town10HD]

CARLA's Traffic Manager has no gridlock detector; a world whose traffic stands
most of the time is not the traffic CARLA's leaderboard drives in (issue 25).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

# The stock imports of the towns of ../shared/data (an OpenDRIVE file where there is one).
SHARED_TOWNS = {"Town01": "carla_town01/Town01.xodr", "Town03": "carla_towns/Town03.net.xml",
                "Town04": "carla_towns/Town04.xodr", "Town06": "carla_towns/Town06.xodr",
                "Town10HD": "carla_towns/Town10HD.xodr"}
GENERATED = "Grid4"
STANDING_MPS = 0.1


def _town(store, name: str, shared: Path):
    if name in store:
        return store.get(name)
    if name == GENERATED:
        return store.generate(name, kind="grid", size=4, seed=0)
    return store.import_file(shared / SHARED_TOWNS[name], name)


def measure(town, preset: str, sim_s: float, seed: int) -> dict[str, float]:
    """Run the town's traffic of ``preset`` without the ego for ``sim_s`` simulated seconds."""
    from sumo_world.traffic.jams import JamRelease
    from sumo_world.traffic.refill import Refill
    from sumo_world.roads.network import RoadNetwork
    from sumo_world.traffic.demand import TrafficConfig
    from sumo_world.simulation.world import SENSE_RADIUS_M, SumoWorld

    network = RoadNetwork.load(town.net_path)
    traffic = TrafficConfig.for_density(preset, seed=seed, town=town.name, network=network)
    standing: list[float] = []
    locked: list[float] = []
    speeds: list[float] = []
    counts: list[int] = []
    wall = time.perf_counter()
    # As the runner sets it up (no per-vehicle subscriptions: a released vehicle leaves none behind).
    with SumoWorld(town, traffic, seed=seed, network=network, warmup_s=0.0, sense_radius_m=SENSE_RADIUS_M) as world:
        jams = JamRelease(world, refill=Refill(world))
        vehicle = world.sumo.vehicle
        next_sample = world.time_s
        end = world.time_s + sim_s
        while world.time_s < end:
            world.step()
            jams.update(world.time_s)
            if world.time_s + 1e-9 >= next_sample:
                next_sample += 1.0
                ids = vehicle.getIDList()
                if not ids:
                    continue
                v = [vehicle.getSpeed(i) for i in ids]
                counts.append(len(ids))
                still = [i for i, x in zip(ids, v) if x < STANDING_MPS]
                standing.append(len(still) / len(v))
                locked.append(sum(1 for i in still if not JamRelease.queued_for_red(vehicle, i)) / len(v))
                speeds.append(sum(v) / len(v))
        releases = len(jams.released)
        asked = traffic.vehicles + traffic.bicycles + traffic.motorcycles
    n = max(1, len(standing))
    return {"asked": asked, "vehicles": sum(counts) / max(1, len(counts)),
            "standing": sum(standing) / n, "locked": sum(locked) / n, "worst": max(standing, default=0.0),
            "speed": sum(speeds) / max(1, len(speeds)), "releases_10min": releases * 600.0 / sim_s,
            "wall_s": time.perf_counter() - wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim-s", type=float, default=600.0, help="simulated seconds per town and preset")
    parser.add_argument("--presets", default="default,leaderboard")
    parser.add_argument("--towns", default=",".join([*SHARED_TOWNS, GENERATED]))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shared-data", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
    parser.add_argument("--towns-dir", type=Path, default=None, help="stored towns (default: a temporary folder)")
    args = parser.parse_args(argv)
    towns = [t for t in args.towns.split(",") if t]
    unknown = [t for t in towns if t not in SHARED_TOWNS and t != GENERATED]
    if unknown:
        parser.error(f"unknown towns {', '.join(unknown)} (known: {', '.join([*SHARED_TOWNS, GENERATED])})")
    if args.sim_s <= 0:
        parser.error("--sim-s must be > 0")

    from sumo_world.towns.store import TownStore

    with tempfile.TemporaryDirectory(prefix="traffic_state_") as tmp:
        store = TownStore(args.towns_dir or Path(tmp))
        print(f"{'town':<9} {'preset':<12} {'vehicles':>8} {'mean':>6} {'standing':>8} {'not red':>7} {'worst':>6} "
              f"{'speed':>6} {'rel/10min':>9} {'wall':>6}")
        for name in towns:
            town = _town(store, name, args.shared_data)
            for preset in [p for p in args.presets.split(",") if p]:
                r = measure(town, preset, args.sim_s, args.seed)
                print(f"{name:<9} {preset:<12} {r['asked']:>8.0f} {r['vehicles']:>6.1f} {100 * r['standing']:>7.1f}% {100 * r['locked']:>6.1f}% "
                      f"{100 * r['worst']:>5.0f}% {r['speed']:>6.2f} {r['releases_10min']:>9.1f} {r['wall_s']:>5.0f}s",
                      flush=True)
    print(f"standing = share of vehicles below {STANDING_MPS} m/s (mean over 1 s samples; worst = highest sample); "
          f"not red = of them, those not queued at a red (sumo_world.traffic.jams: what can be a lock); "
          f"speed = mean speed (m/s); rel/10min = jam releases per 10 simulated minutes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
