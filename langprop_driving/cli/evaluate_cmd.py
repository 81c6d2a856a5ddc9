"""``langprop evaluate``: run an agent on leaderboard routes, in the embedded world (or print the CARLA way)."""
from __future__ import annotations

import shlex
from pathlib import Path

import click

__all__ = ["evaluate"]


@click.command("evaluate")
@click.option("--world", type=click.Choice(["embedded", "carla"]), default="embedded", show_default=True,
              help="embedded: SUMO in this process tree; carla: print the leaderboard command to use.")
@click.option("--town", default="", help="Town name (see `langprop town list`); default: each route's town.")
@click.option("--routes", "routes", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Leaderboard routes XML (1.0 or 2.0 format).")
@click.option("--agent", required=True,
              help="Agent .py file with get_entry_point(), or builtin:follow / builtin:reckless / builtin:stopped.")
@click.option("--agent-config", default=None, help="Passed to the agent's setup() (path_to_conf_file).")
@click.option("--results", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Results JSON (leaderboard format); default results/<routes name>_embedded.json.")
@click.option("--towns-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of stored towns (default: $LANGPROP_TOWNS or ./towns).")
@click.option("--traffic", type=click.Choice(["none", "light", "default", "busy"]), default="default",
              show_default=True, help="Background traffic density.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the traffic and SUMO.")
@click.option("--route-id", "route_ids", multiple=True, help="Run only these route ids (repeatable).")
@click.option("--repetitions", type=click.IntRange(1), default=1, show_default=True,
              help="Runs per route (repetition r uses seed + r).")
@click.option("--pictures", "pictures_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for a bird's-eye PNG per route.")
@click.option("--animation", is_flag=True, help="Also write a GIF of each run into --pictures.")
@click.option("--timeout-factor", type=float, default=1.0, show_default=True,
              help="Scale of the leaderboard's route timeout.")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Routes simulated in parallel (one process each).")
@click.option("--no-resume", is_flag=True, help="Start a new results file (the old one is kept as .bak).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def evaluate(world: str, town: str, routes: Path, agent: str, agent_config: str | None, results: Path | None,
             towns_dir: Path | None, traffic: str, seed: int, route_ids: tuple[str, ...], repetitions: int,
             pictures_dir: Path | None, animation: bool, timeout_factor: float, workers: int, no_resume: bool,
             no_progress: bool) -> None:
    """Evaluate AGENT on the routes of ROUTES and write leaderboard-format results."""
    if animation and pictures_dir is None:
        raise click.UsageError("--animation needs --pictures DIR")
    results = results or Path("results") / f"{routes.name.split('.')[0]}_embedded.json"
    if world == "carla":
        command = ["scripts/run_evaluation.sh", "--world", "carla"]
        env = [f"ROUTES={routes}", f"TEAM_AGENT={agent}", f"CHECKPOINT_ENDPOINT={results}"]
        if agent_config:
            env.append(f"TEAM_CONFIG={agent_config}")
        if not no_resume:
            env.append("RESUME=1")
        click.echo("The CARLA world runs under the leaderboard's own evaluator, with a CARLA server started by "
                   "scripts/start_carla.sh and CARLA_ROOT, LEADERBOARD_ROOT, SCENARIO_RUNNER_ROOT set. Run:\n  "
                   + " ".join(shlex.quote(part) for part in env + command))
        return

    from sumo_world.agent_loader import AgentLoadError
    from sumo_world.results import ResultsFileError
    from sumo_world.route_planner import RoutePlanningError
    from sumo_world.routes import RouteFileError
    from sumo_world.runner import EvaluationConfig, EvaluationError, evaluate as run_evaluation
    from sumo_world.summary import format_summary_table
    from sumo_world.towns import TownError

    config = EvaluationConfig(
        town=town, routes=routes, agent=agent, agent_config=agent_config, results=results, towns_dir=towns_dir,
        traffic=traffic, seed=seed, route_ids=list(route_ids) or None, repetitions=repetitions,
        resume=not no_resume, pictures_dir=pictures_dir, animation=animation, timeout_factor=timeout_factor,
        workers=workers, progress=not no_progress)
    try:
        data = run_evaluation(config)
    except (EvaluationError, RouteFileError, TownError, ResultsFileError, AgentLoadError,
            RoutePlanningError) as exc:
        raise click.ClickException(str(exc)) from exc
    records = data["_checkpoint"]["records"]
    click.echo(format_summary_table(records))
    failed = [r for r in records if "error" in (r.get("meta") or {})]
    for record in failed:
        click.echo(f"{record['route_id']}: {record['status']}: {record['meta']['error']}", err=True)
    click.echo(f"results: {results} (entry status: {data.get('entry_status', '')})")
    if pictures_dir is not None:
        click.echo(f"pictures: {pictures_dir}")
