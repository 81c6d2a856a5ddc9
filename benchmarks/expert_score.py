"""How well the privileged expert drives, in the embedded world.

Runs ``team_code/expert_agent.py`` on (1) random routes of generated towns with
the given traffic density and (2) CARLA Town01's leaderboard-1.0 training routes
(``../shared/data/carla_town01``), and prints mean driving score, route
completion, infraction penalty and infraction counts per route set; then the
expert's own speed in milliseconds per scene, measured on the scenes it recorded.

    .venv/bin/python benchmarks/expert_score.py                      # full
    .venv/bin/python benchmarks/expert_score.py --quick              # 1 town x 2 routes, 2 Town01 routes
    .venv/bin/python benchmarks/expert_score.py --leaderboard --traffic leaderboard   # issue 9

Target (issue 4): driving score >= 90 with route completion >= 95 % on both.

``--leaderboard`` (issue 9) runs instead the leaderboard-1.0 training routes
(``leaderboard1/routes_training.xml``: Town01, 03, 04, 06) with the public
scenario file, for the expert, ``builtin:follow`` and the naive seed script,
and prints per town and agent: DS, RC, scenarios triggered/matched and the
infractions inside them. ``--lb-towns`` and ``--lb-routes-per-town`` run a
subset; ``--traffic`` takes any preset name of ``sumo_world.traffic.demand``. Target:
the expert DS >= 90 in every town, the other two clearly worse.

``--carla-towns`` (issue 8) runs the CARLA-towns set instead: the expert on the 50
leaderboard-1.0 training routes (Town01, 03, 04, 06 of ``../shared/data``,
each town imported the stock way: ``langprop town import`` of the OpenDRIVE
file where there is one, else of the SUMO net), once per traffic preset of
``--presets`` (default ``leaderboard,default``), and prints per town DS, RC,
infraction penalty, infractions per km, crashed routes and the real-time
factor (simulated over wall-clock seconds of the route processes).
``--per-town N`` runs only the first N routes of each town.

    .venv/bin/python benchmarks/expert_score.py --carla-towns [--per-town 2] [--presets leaderboard]

Target (issue 8): DS >= 95 and RC >= 98 % in every town, no crashed route.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run as a script from anywhere

from driving.dataset import SceneDataset  # noqa: E402
from expert import Expert  # noqa: E402

AGENT = str(REPO_ROOT / "team_code" / "expert_agent.py")


def _default_shared_data() -> Path:
    env = os.environ.get("LANGPROP_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def _evaluate(town: str, routes: Path, towns_dir: Path, results: Path, args: argparse.Namespace,
              route_ids: list[str] | None = None, agent: str = AGENT, agent_config: str | None = None,
              scenarios: Path | None = None) -> dict:
    from sumo_world.run.runner import EvaluationConfig, evaluate

    config = EvaluationConfig(town=town, routes=routes, agent=agent, agent_config=agent_config, results=results,
                              towns_dir=towns_dir, traffic=args.traffic, seed=args.seed, route_ids=route_ids,
                              resume=False, workers=args.workers, progress=not args.no_progress,
                              pictures_dir=(results.parent / "pictures" / results.stem) if args.pictures else None,
                              scenarios=scenarios)
    return evaluate(config)


def _records(results: dict) -> list[dict]:
    return list(results["_checkpoint"]["records"])


def _print_set(name: str, records: list[dict]) -> dict[str, float]:
    from sumo_world.scoring.summary import format_summary_table, mean_scores

    print(f"\n== {name}: {len(records)} routes")
    print(format_summary_table(records))
    means = mean_scores(records)
    print(f"mean driving score {means['score_composed']:.1f}   route completion {means['score_route']:.1f} %   "
          f"penalty {means['score_penalty']:.3f}")
    return means


def generated_towns(args: argparse.Namespace, towns_dir: Path, work: Path) -> list[dict]:
    """Route records of the expert on random routes of ``args.towns`` generated 4x4 grids."""
    from sumo_world.roads.network import RoadNetwork
    from sumo_world.routes.random_routes import random_routes
    from sumo_world.routes.files import write_routes
    from sumo_world.towns.store import TownStore

    store = TownStore(towns_dir)
    records: list[dict] = []
    for i in range(args.towns):
        name = f"bench_grid_{args.seed + i}"
        town = store.get(name) if name in store else store.generate(name, kind="grid", size=4, seed=args.seed + i)
        network = RoadNetwork.load(town.net_path)
        routes = random_routes(network, args.routes_per_town, seed=args.seed + i, town=name,
                               min_length_m=args.min_length_m, max_length_m=args.max_length_m)
        routes_file = write_routes(routes, work / f"{name}_routes.xml")
        started = time.perf_counter()
        results = _evaluate(name, routes_file, towns_dir, work / f"{name}_results.json", args)
        print(f"{name}: {len(routes)} routes in {time.perf_counter() - started:.0f} s")
        records += _records(results)
    return records


def town01(args: argparse.Namespace, towns_dir: Path, work: Path) -> list[dict]:
    """Route records of the expert on Town01's leaderboard training routes."""
    from sumo_world.routes.files import read_routes
    from sumo_world.towns.store import TownStore

    data = Path(args.shared_data) / "carla_town01"
    store = TownStore(towns_dir)
    if "Town01" not in store:
        # The shipped .net.xml has no sidewalks; the OpenDRIVE import adds them for pedestrians.
        store.import_opendrive(data / "Town01.xodr", "Town01")
    routes_file = data / "routes_town01_training.xml"
    ids = [str(r.route_id) for r in read_routes(routes_file)]
    if args.town01_routes:
        ids = ids[:args.town01_routes]
    started = time.perf_counter()
    results = _evaluate("Town01", routes_file, towns_dir, work / "town01_results.json", args, route_ids=ids)
    print(f"Town01: {len(ids)} routes in {time.perf_counter() - started:.0f} s")
    return _records(results)


# The stock import of each leaderboard-1.0 training town from ../shared/data: the OpenDRIVE file
# where there is one (Town03 has only a SUMO net; its import guesses sidewalks and crossings).
STOCK_TOWNS = {"Town01": "carla_town01/Town01.xodr", "Town03": "carla_towns/Town03.net.xml",
               "Town04": "carla_towns/Town04.xodr", "Town06": "carla_towns/Town06.xodr"}


def _stock_town(store, name: str, shared: Path):
    """Town ``name`` of the store, imported the stock way (``STOCK_TOWNS``) when missing."""
    if name not in store:
        store.import_file(shared / STOCK_TOWNS[name], name)
    return store.get(name)


def leaderboard(args: argparse.Namespace, towns_dir: Path, work: Path) -> dict[str, dict[str, list[dict]]]:
    """{town: {agent label: route records}} of the leaderboard-1.0 training routes with scenarios."""
    from langprop_driving.model.seed_policy import seed_path
    from langprop_driving.pipeline.evaluate import resolve_agent
    from sumo_world.routes.files import read_routes, write_routes
    from sumo_world.towns.store import TownStore

    shared = Path(args.shared_data)
    routes = read_routes(shared / "leaderboard1" / "routes_training.xml")
    scenarios = Path(args.scenarios) if args.scenarios else \
        shared / "leaderboard1" / "all_towns_traffic_scenarios_public.json"
    agents = {"expert": "expert", "builtin:follow": "builtin:follow", "naive seed": str(seed_path("naive"))}
    agents = {label: name for label, name in agents.items() if not args.expert_only or label == "expert"}
    store = TownStore(towns_dir)
    out: dict[str, dict[str, list[dict]]] = {}
    for town in args.lb_towns.split(","):
        chosen = [r for r in routes if r.town == town]
        if args.lb_routes_per_town:
            chosen = chosen[:args.lb_routes_per_town]
        if not chosen:
            continue
        _stock_town(store, town, shared)
        routes_file = write_routes(chosen, work / f"{town}_training.xml")
        out[town] = {}
        for label, name in agents.items():
            spec = resolve_agent(name)
            started = time.perf_counter()
            results = _evaluate(town, routes_file, towns_dir, work / f"{town}_{label.replace(' ', '_')}.json",
                                args, agent=spec.agent, agent_config=spec.agent_config, scenarios=scenarios)
            print(f"{town} {label}: {len(chosen)} routes in {time.perf_counter() - started:.0f} s", flush=True)
            out[town][label] = _records(results)
    return out


def print_leaderboard(sets: dict[str, dict[str, list[dict]]]) -> None:
    """Per town and agent: routes, DS, RC, scenarios triggered/matched, infractions inside scenarios."""
    from sumo_world.scoring.summary import format_comparison_table, mean_scores, scenario_cells

    for town, by_agent in sets.items():
        print(f"\n== {town}")
        print(format_comparison_table(by_agent))
    print("\n== leaderboard-1.0 training routes with the public scenarios")
    print(f"{'town':8s} {'agent':16s} {'routes':>6s} {'DS':>6s} {'RC':>6s} {'scen':>8s} {'scen_inf':>8s}")
    for town, by_agent in sets.items():
        for label, records in by_agent.items():
            means = mean_scores(records)
            started, infractions = scenario_cells(records) or ("-", "-")
            print(f"{town:8s} {label:16s} {len(records):6d} {means['score_composed']:6.1f} "
                  f"{means['score_route']:6.1f} {started:>8s} {infractions:>8s}")
        expert = mean_scores(by_agent.get("expert", []))["score_composed"]
        print(f"{town:8s} expert {'meets' if expert >= 90.0 else 'misses'} the target DS >= 90")

def carla_towns(args: argparse.Namespace, towns_dir: Path, work: Path) -> dict[str, dict[str, list[dict]]]:
    """Route records of the expert on the leaderboard-1.0 training routes: preset -> town -> records."""
    from sumo_world.routes.files import read_routes, write_routes
    from sumo_world.towns.store import TownStore

    store = TownStore(towns_dir)
    for name in STOCK_TOWNS:
        _stock_town(store, name, Path(args.shared_data))
    routes = read_routes(Path(args.shared_data) / "leaderboard1" / "routes_training.xml")
    chosen = []
    for name in STOCK_TOWNS:
        if name not in args.lb_towns.split(","):
            continue
        of_town = [r for r in routes if r.town == name]
        chosen += of_town[:args.per_town] if args.per_town else of_town
    routes_file = write_routes(chosen, work / "leaderboard_training_routes.xml")
    out: dict[str, dict[str, list[dict]]] = {}
    for preset in args.presets.split(","):
        config_args = argparse.Namespace(**{**vars(args), "traffic": preset})
        started = time.perf_counter()
        results = _evaluate("", routes_file, towns_dir, work / f"leaderboard_{preset}.json", config_args)
        print(f"{preset} traffic: {len(chosen)} routes in {time.perf_counter() - started:.0f} s")
        by_town: dict[str, list[dict]] = {}
        for record in _records(results):
            by_town.setdefault(record["meta"].get("town", "?"), []).append(record)
        out[preset] = by_town
    return out


def print_town_table(preset: str, by_town: dict[str, list[dict]]) -> list[str]:
    """Per town: DS, RC, penalty, infractions per km, crashed routes, real-time factor; returns towns missing
    the target."""
    from sumo_world.scoring.summary import infraction_counts, mean_scores

    print(f"\n== leaderboard-1.0 training routes, {preset} traffic")
    print(f"{'town':8s} {'routes':>6s} {'DS':>6s} {'RC':>6s} {'penalty':>7s} {'inf/km':>6s} {'crashed':>7s} "
          f"{'RTF':>5s}  infractions per km")
    missing = []
    for town, records in sorted(by_town.items()):
        means = mean_scores(records)
        km = sum(float(r["meta"].get("route_length", 0.0)) * float(r["scores"]["score_route"]) / 100.0
                 for r in records) / 1000.0
        totals: dict[str, int] = {}
        for record in records:
            for kind, count in infraction_counts(record).items():
                if kind != "outside_route_lanes":
                    totals[kind] = totals.get(kind, 0) + count
        crashed = sum(1 for r in records if "error" in (r.get("meta") or {}))
        game = sum(float(r["meta"].get("duration_game", 0.0)) for r in records)
        wall = sum(float(r["meta"].get("duration_system", 0.0)) for r in records)
        per_km = {kind: count / km for kind, count in totals.items() if count} if km > 0 else {}
        detail = ", ".join(f"{kind} {value:.2f}" for kind, value in sorted(per_km.items())) or "none"
        print(f"{town:8s} {len(records):6d} {means['score_composed']:6.1f} {means['score_route']:6.1f} "
              f"{means['score_penalty']:7.3f} {sum(per_km.values()):6.2f} {crashed:7d} "
              f"{game / wall if wall else 0.0:5.1f}  {detail}")
        if means["score_composed"] < 95.0 or means["score_route"] < 98.0 or crashed:
            missing.append(town)
    return missing


def expert_speed(record_dir: Path, max_scenes: int = 5000) -> None:
    """Milliseconds per scene of Expert.predict on recorded scenes (median and 99th percentile)."""
    if not (record_dir / "index.json").is_file():
        print("\nno recorded scenes: expert speed not measured")
        return
    scenes = []
    for record in SceneDataset(record_dir):
        scenes.append(record.scene)
        if len(scenes) >= max_scenes:
            break
    expert = Expert()
    times = []
    for scene in scenes:
        start = time.perf_counter()
        expert.predict(scene)
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    actors = statistics.fmean(len(s["vehicles"]) + len(s["pedestrians"]) for s in scenes)
    print(f"\nexpert speed on {len(scenes)} recorded scenes (mean {actors:.1f} actors within 50 m): "
          f"median {times[len(times) // 2]:.3f} ms, mean {statistics.fmean(times):.3f} ms, "
          f"p99 {times[int(len(times) * 0.99)]:.3f} ms per scene")


def main(argv: list[str] | None = None) -> int:
    """Run the route sets, print their scores against the target, then the expert's speed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--towns", type=int, default=2, help="generated towns (4x4 grids)")
    parser.add_argument("--routes-per-town", type=int, default=5)
    parser.add_argument("--min-length-m", type=float, default=200.0)
    parser.add_argument("--max-length-m", type=float, default=600.0)
    parser.add_argument("--town01-routes", type=int, default=0, help="first N Town01 routes (0 = all ten)")
    parser.add_argument("--no-town01", action="store_true")
    parser.add_argument("--no-generated", action="store_true")
    parser.add_argument("--traffic", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--towns-dir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: temporary)")
    parser.add_argument("--shared-data", type=Path, default=_default_shared_data())
    parser.add_argument("--pictures", action="store_true", help="bird's-eye pictures under --out/pictures")
    parser.add_argument("--no-record", action="store_true", help="do not record scenes (no expert timing)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--quick", action="store_true", help="1 town x 2 routes and 2 Town01 routes")
    parser.add_argument("--leaderboard", action="store_true",
                        help="the leaderboard-1.0 training routes with scenarios, for the expert, builtin:follow "
                             "and the naive seed (instead of the other sets)")
    parser.add_argument("--scenarios", type=Path, default=None,
                        help="scenario file for --leaderboard (default: the public one in --shared-data)")
    parser.add_argument("--lb-towns", default="Town01,Town03,Town04,Town06",
                        help="towns of --leaderboard and --carla-towns")
    parser.add_argument("--lb-routes-per-town", type=int, default=0, help="first N routes per town (0 = all)")
    parser.add_argument("--expert-only", action="store_true",
                        help="--leaderboard: the expert alone (a third of the time)")
    parser.add_argument("--carla-towns", action="store_true",
                        help="the leaderboard-1.0 training routes on the stock CARLA town imports instead")
    parser.add_argument("--presets", default="leaderboard,default", help="traffic presets of --carla-towns")
    parser.add_argument("--per-town", type=int, default=0, help="--carla-towns: first N routes per town (0 = all)")
    args = parser.parse_args(argv)
    if args.quick:
        args.towns, args.routes_per_town, args.town01_routes = 1, 2, 2
    if args.leaderboard:
        args.no_record = True  # three agents: no scene recording, no expert timing

    with tempfile.TemporaryDirectory(prefix="expert_score_") as tmp:
        work = args.out or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        towns_dir = args.towns_dir or (work / "towns")
        record_dir = work / "scenes"
        if not args.no_record:
            os.environ["LANGPROP_RECORD_DIR"] = str(record_dir)
        started = time.perf_counter()
        if args.leaderboard:
            print_leaderboard(leaderboard(args, towns_dir, work))
            print(f"wall time {time.perf_counter() - started:.0f} s")
            return 0
        if args.carla_towns:
            missing = []
            for preset, by_town in carla_towns(args, towns_dir, work).items():
                missing += [f"{town} ({preset})" for town in print_town_table(preset, by_town)]
            print(f"\ntarget DS >= 95, RC >= 98 %, no crashed route: "
                  f"{'met in every town' if not missing else 'missed in ' + ', '.join(missing)}")
            print(f"wall time {time.perf_counter() - started:.0f} s")
            if not args.no_record:
                expert_speed(record_dir)
            return 0
        sets: dict[str, dict[str, float]] = {}
        if not args.no_generated and args.towns > 0:
            records = generated_towns(args, towns_dir, work)
            sets[f"generated towns ({args.traffic} traffic)"] = _print_set("generated towns", records)
        if not args.no_town01:
            sets["Town01 leaderboard routes"] = _print_set("Town01 leaderboard routes", town01(args, towns_dir, work))
        print("\n== summary")
        for name, means in sets.items():
            ok = means["score_composed"] >= 90.0 and means["score_route"] >= 95.0
            print(f"{name:40s} DS {means['score_composed']:6.1f}  RC {means['score_route']:6.1f} %  "
                  f"{'meets' if ok else 'misses'} the target (DS >= 90, RC >= 95 %)")
        print(f"wall time {time.perf_counter() - started:.0f} s")
        if not args.no_record:
            expert_speed(record_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
