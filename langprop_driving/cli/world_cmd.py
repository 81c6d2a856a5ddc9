"""``langprop town ...`` and ``langprop routes ...``: towns and route files of the embedded world."""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from sumo_world.towns.store import TownStore

__all__ = ["town", "routes"]

_TOWNS_DIR_HELP = "Folder of stored towns (default: $LANGPROP_TOWNS or ./towns)."


def _store(towns_dir: Path | None) -> TownStore:
    # Imported here, not at the top: keeps `langprop --help` fast.
    from sumo_world.towns.store import TownStore

    return TownStore(towns_dir)


@click.group()
def town() -> None:
    """Generate, import and list the towns (SUMO road networks) of the embedded world."""


@town.command("generate")
@click.argument("name")
@click.option("--kind", type=click.Choice(["grid", "spider", "random"]), default="grid", show_default=True,
              help="Network layout.")
@click.option("--size", type=int, default=4, show_default=True,
              help="Junctions per side (grid), arms (spider) or growth steps / 5 (random).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed (layout of random towns, all-way stops).")
@click.option("--lanes", type=click.IntRange(1, 3), default=2, show_default=True, help="Lanes per direction.")
@click.option("--block", "block_m", type=float, default=100.0, show_default=True, help="Block length in metres.")
@click.option("--towns-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=_TOWNS_DIR_HELP)
@click.option("--overwrite", is_flag=True, help="Replace a town of the same name.")
@click.option("--scenarios", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a leaderboard-1.0 scenario file for the town here (for evaluate --scenarios).")
def town_generate(name: str, kind: str, size: int, seed: int, lanes: int, block_m: float,
                  towns_dir: Path | None, overwrite: bool, scenarios: Path | None) -> None:
    """Generate the town NAME with SUMO's netgenerate (traffic lights, sidewalks, crossings, all-way stops)."""
    from sumo_world.towns.info import TownError

    try:
        info = _store(towns_dir).generate(name, kind=kind, size=size, seed=seed, lanes=lanes, block_m=block_m,
                                          overwrite=overwrite)
    except TownError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"generated town {info.name}: {info.net_path} ({_describe(info.meta)}) "
               f"in {info.meta.get('generate_s', 0):.2f} s")
    if scenarios is not None:
        from sumo_world.roads.network import RoadNetwork
        from sumo_world.scenarios import read_scenario_file
        from sumo_world.scenarios.generate import write_scenario_file

        write_scenario_file(RoadNetwork.load(info.net_path), info.name, scenarios)
        events = read_scenario_file(scenarios).events(info.name)
        kinds = sorted({e.scenario for e in events}, key=lambda n: int(n[len("Scenario"):]))
        click.echo(f"scenario file {scenarios}: {len(events)} triggers ({', '.join(kinds) or 'none'})")


@town.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", default=None, help="Town name (default: the file name, e.g. Town01).")
@click.option("--towns-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=_TOWNS_DIR_HELP)
@click.option("--overwrite", is_flag=True, help="Replace a town of the same name.")
@click.option("--sidewalks/--no-sidewalks", default=True, show_default=True,
              help="Guess sidewalks and crossings (netconvert) where the town has none.")
@click.option("--stop-signs", "stop_signs", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Stop signs exported from a CARLA server by scripts/export_carla_stops.py "
                                 "(default: the OpenDRIVE file's type-206 signals).")
@click.option("--carla-signals", is_flag=True,
              help="Time the traffic lights as CARLA does (each approach alone: 10 s green, 3 s yellow, 2 s all "
                   "red) instead of keeping netconvert's plans.")
def town_import(file: Path, name: str | None, towns_dir: Path | None, overwrite: bool, sidewalks: bool,
                stop_signs: Path | None, carla_signals: bool) -> None:
    """Import a CARLA town from its OpenDRIVE FILE (.xodr), or store a SUMO net (.net.xml)."""
    from sumo_world.towns.info import TownError

    start = time.perf_counter()
    try:
        info = _store(towns_dir).import_file(file, name, sidewalks=sidewalks, stop_signs=stop_signs,
                                             overwrite=overwrite, carla_signals=carla_signals)
    except TownError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"imported town {info.name}: {info.net_path} ({_describe(info.meta)}) "
               f"in {time.perf_counter() - start:.2f} s")
    if info.meta.get("sidewalks") == "guessed":
        click.echo(f"  sidewalks and crossings were guessed by netconvert (--sidewalks.guess --crossings.guess): "
                   f"{info.meta.get('sidewalk_lanes', 0)} sidewalk lanes, {info.meta.get('crossings', 0)} crossings")
    elif info.meta.get("sidewalks") == "none":
        click.echo("  no sidewalks: background pedestrians will be left out of this town's runs")
    joined = info.meta.get("joined_junctions") or []
    if joined:
        click.echo(f"  joined {len(joined)} groups of junctions that lay inside a neighbour (SUMO would route a "
                   f"path through one junction twice): {'; '.join('+'.join(group) for group in joined)}")
    signs = info.meta.get("stop_signs") or {}
    if signs.get("count"):
        click.echo(f"  {signs['count']} stop signs from {signs.get('source')}, {signs.get('governing', 0)} placed "
                   f"on the lanes they govern")
    elif info.meta.get("stop_signs_note"):
        click.echo(f"  {info.meta['stop_signs_note']}")


@town.command("list")
@click.option("--towns-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=_TOWNS_DIR_HELP)
def town_list(towns_dir: Path | None) -> None:
    """List the stored towns."""
    store = _store(towns_dir)
    towns = store.list()
    if not towns:
        click.echo(f"no towns in {store.root}; create one with `langprop town generate NAME` or "
                   f"`langprop town import TownXX.xodr`")
        return
    width = max(len(t.name) for t in towns)
    for info in towns:
        click.echo(f"{info.name.ljust(width)}  {info.source:<10}  {_describe(info.meta)}")


def _describe(meta: dict) -> str:
    junctions = meta.get("junctions") or {}
    parts = [f"{meta['kind']} size {meta['size']} seed {meta['seed']}"] if meta.get("kind") else []
    parts.append(f"{junctions.get('traffic_light', 0)} traffic lights")
    parts.append(f"{junctions.get('allway_stop', 0) + junctions.get('priority_stop', 0)} stop junctions")
    parts.append(f"{meta.get('crossings', 0)} crossings")
    if "stop_signs" in meta:  # imported CARLA towns
        parts.append(f"{(meta.get('stop_signs') or {}).get('governing', 0)} stop signs")
    return ", ".join(parts)


@click.group()
def routes() -> None:
    """Make and inspect leaderboard route files."""


@routes.command("generate")
@click.option("--town", "town_name", required=True, help="A stored town (see `langprop town list`).")
@click.option("-n", "count", type=click.IntRange(min=1), default=10, show_default=True, help="Number of routes.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the routes drawn.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Routes XML to write.")
@click.option("--min-length", type=float, default=150.0, show_default=True, help="Minimum route length (m).")
@click.option("--max-length", type=float, default=600.0, show_default=True, help="Maximum route length (m).")
@click.option("--format", "version", type=click.Choice(["1.0", "2.0"]), default="1.0", show_default=True,
              help="Leaderboard route file format.")
@click.option("--towns-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=_TOWNS_DIR_HELP)
def routes_generate(town_name: str, count: int, seed: int, out: Path, min_length: float, max_length: float,
                    version: str, towns_dir: Path | None) -> None:
    """Write N random valid routes in a town as a leaderboard routes file."""
    from sumo_world.roads.network import RoadNetwork
    from sumo_world.routes.planner import RoutePlanningError
    from sumo_world.routes.random_routes import random_routes
    from sumo_world.routes.files import write_routes
    from sumo_world.towns.info import TownError

    try:
        info = _store(towns_dir).get(town_name)
        network = RoadNetwork.load(info.net_path)
        made = random_routes(network, count, seed=seed, town=info.name, min_length_m=min_length,
                             max_length_m=max_length)
    except (TownError, RoutePlanningError) as exc:
        raise click.ClickException(str(exc)) from exc
    write_routes(made, out, version=version)
    total = sum(r.extra.get("length_m", 0.0) for r in made)
    click.echo(f"wrote {len(made)} routes ({total / 1000:.1f} km) in {info.name} to {out}")


@routes.command("show")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--plan/--no-plan", default=True, show_default=True,
              help="Plan each route in its town (when the town is stored) and show the dense length.")
@click.option("--town", "town_name", default=None,
              help="Only the routes of this town (and plan them in the stored town of that name).")
@click.option("--towns-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=_TOWNS_DIR_HELP)
def routes_show(file: Path, plan: bool, town_name: str | None, towns_dir: Path | None) -> None:
    """List the routes of a leaderboard routes FILE (1.0 or 2.0).

    Planned routes show their length, junction turns and the largest distance
    from a sparse waypoint to the lane it snapped to; routes that cannot be
    planned are flagged with the reason, and the command then exits 1.
    """
    from sumo_world.roads.network import RoadNetwork
    from sumo_world.routes.planner import RoutePlanningError, plan_route
    from sumo_world.routes.files import RouteFileError, read_routes

    try:
        found = read_routes(file)
    except RouteFileError as exc:
        raise click.ClickException(str(exc)) from exc
    if town_name is not None:
        found = [route for route in found if route.town == town_name]
    store = _store(towns_dir)
    where = f" in {town_name}" if town_name else ""
    click.echo(f"{file}: {len(found)} routes{where}")
    unplannable = 0
    for route in found:
        line = (f"  route {route.route_id:>4}  town {route.town:<10} {len(route.waypoints):>3} waypoints "
                f"(format {route.extra.get('format')})")
        if plan and route.town in store:
            try:
                dense = plan_route(RoadNetwork.load(store.net_path(route.town)), route)
                # One junction manoeuvre per run of equal non-LANEFOLLOW commands.
                turns = Counter(c for i, c in enumerate(dense.commands) if c in ("LEFT", "RIGHT", "STRAIGHT")
                                and (i == 0 or dense.commands[i - 1] != c))
                line += (f"  planned {dense.length_m:.0f} m, {len(dense.points)} points, junctions: "
                         f"{turns.get('LEFT', 0)} left, {turns.get('RIGHT', 0)} right, "
                         f"{turns.get('STRAIGHT', 0)} straight, waypoint-lane distance max "
                         f"{dense.max_waypoint_lane_distance_m:.1f} m")
            except RoutePlanningError as exc:
                unplannable += 1
                line += f"  NOT PLANNABLE: {exc}"
        elif plan:
            line += "  (town not stored: not planned)"
        click.echo(line)
    if unplannable:
        raise click.ClickException(f"{unplannable} of {len(found)} routes of {file} cannot be planned (see above)")
