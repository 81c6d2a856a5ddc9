"""``langprop evaluate``: run an agent on leaderboard routes, in the embedded world (or print the CARLA way)."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import click

from langprop_driving.cli.options import (backend_options, no_resume_option, progress_enabled, progress_option,
                                          scenarios_option, seed_option, towns_dir_option, traffic_option,
                                          workers_option)

if TYPE_CHECKING:
    from langprop_driving.pipeline.evaluate import AgentSpec

__all__ = ["evaluate", "default_results_path"]


@click.command("evaluate")
@click.option("--world", type=click.Choice(["embedded", "carla"]), default="embedded", show_default=True,
              help="embedded: SUMO in this process tree; carla: print the leaderboard command to use.")
@click.option("--town", default="", help="Town name (see `langprop town list`); default: each route's town.")
@click.option("--routes", "routes", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Leaderboard routes XML (1.0 or 2.0 format).")
@click.option("--agent", required=True,
              help="'expert' (the privileged expert); a LangProp checkpoint directory or a .py script defining "
                   "predict_speed_and_steering(scene) (run by the LangProp agent); a leaderboard agent .py file "
                   "with get_entry_point(); or builtin:follow / builtin:reckless / builtin:stopped.")
@click.option("--agent-config", default=None,
              help="Passed to the agent's setup() (path_to_conf_file); for a checkpoint or script --agent, a "
                   "LangProp agent config (JSON or 'key: value' lines, see team_code/config.py) whose "
                   "checkpoint the --agent sets.")
@click.option("--results", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Results JSON (leaderboard format); default results/<routes name>_<agent>_embedded.json. "
                   "It resumes only a run of the same agent, checkpoint, routes, traffic, seed and scenarios.")
@towns_dir_option
@traffic_option()
@seed_option(0)
@click.option("--route-id", "route_ids", multiple=True, help="Run only these route ids (repeatable).")
@click.option("--repetitions", type=click.IntRange(1), default=1, show_default=True,
              help="Runs per route (repetition r uses seed + r).")
@click.option("--pictures", "pictures_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for a bird's-eye PNG per route.")
@click.option("--animation", is_flag=True, help="Also write a GIF of each run into --pictures.")
@scenarios_option
@click.option("--timeout-factor", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Scale of the leaderboard's route timeout (> 0).")
@workers_option(1)
@backend_options
@no_resume_option
@progress_option
def evaluate(world: str, town: str, routes: Path, agent: str, agent_config: str | None, results: Path | None,
             towns_dir: Path | None, traffic: str, seed: int, route_ids: tuple[str, ...], repetitions: int,
             pictures_dir: Path | None, animation: bool, scenarios: Path | None, timeout_factor: float,
             workers: int, no_resume: bool, no_progress: bool, **backend: str | None) -> None:
    """Evaluate AGENT on the routes of ROUTES and write leaderboard-format results."""
    if animation and pictures_dir is None:
        raise click.UsageError("--animation needs --pictures DIR")
    results = results or default_results_path(routes, agent)
    if world == "carla" and not agent.startswith("builtin:") and agent != "expert" and not Path(agent).exists():
        # the command may be meant for the machine that runs CARLA: name the agent as given
        from langprop_driving.pipeline.evaluate import AgentSpec

        spec = AgentSpec(agent, agent_config, f"agent {agent}")
    else:
        spec = _resolve(agent, agent_config, results)
    agent_config = spec.agent_config
    if world == "carla":
        command = ["scripts/run_evaluation.sh", "--world", "carla"]
        env = [f"ROUTES={routes}", f"TEAM_AGENT={spec.agent}", f"CHECKPOINT_ENDPOINT={results}"]
        if agent_config:
            env.append(f"TEAM_CONFIG={agent_config}")
        if scenarios is not None:
            env.append(f"SCENARIOS={scenarios}")
        if not no_resume:
            env.append("RESUME=1")
        click.echo("The CARLA world runs under the leaderboard's own evaluator, with a CARLA server started by "
                   "scripts/start_carla.sh and CARLA_ROOT, LEADERBOARD_ROOT, SCENARIO_RUNNER_ROOT set. Run:\n  "
                   + " ".join(shlex.quote(part) for part in env + command))
        return

    from sumo_world.agents.loader import AgentLoadError
    from sumo_world.scoring.results import RETRY_STATUSES, ResultsFileError
    from sumo_world.routes.planner import RoutePlanningError
    from sumo_world.routes.files import RouteFileError
    from sumo_world.scenarios import ScenarioFileError
    from sumo_world.run.runner import EvaluationError, evaluate as run_evaluation
    from sumo_world.scoring.summary import format_summary_table
    from sumo_world.towns.info import TownError

    from langprop_driving.cli.errors import preflight
    from langprop_driving.cli.options import ray_options_of
    from langprop_driving.pipeline.config import WorldConfig
    from langprop_driving.pipeline.preflight import check_agent, check_routes, check_scenarios

    preflight(check_routes, routes, town, towns_dir, list(route_ids) or None)
    preflight(check_scenarios, scenarios)
    preflight(check_agent, spec.agent, agent_config)
    # the world's one mapping to route runs (WorldConfig.evaluation), as every pipeline stage uses
    world_config = WorldConfig(town=town, towns_dir=towns_dir, traffic=traffic, seed=seed, workers=workers,
                               backend=backend.get("backend") or "local", ray_address=backend.get("ray_address"),
                               ray_resources=ray_options_of(backend), timeout_factor=timeout_factor,
                               scenarios=scenarios)
    config = world_config.evaluation(
        routes, spec.agent, agent_config, results, route_ids=list(route_ids) or None, pictures_dir=pictures_dir,
        progress=progress_enabled(no_progress), agent_label=spec.label, repetitions=repetitions,
        resume=not no_resume, animation=animation,
        announce=lambda line: click.echo(f"{spec.description}: {line}", err=True))
    try:
        data = run_evaluation(config)
    except (EvaluationError, RouteFileError, TownError, ResultsFileError, AgentLoadError,
            RoutePlanningError, ScenarioFileError) as exc:
        raise click.ClickException(str(exc)) from exc
    records = data["_checkpoint"]["records"]
    click.echo(format_summary_table(records))
    failed = [r for r in records if r["status"] in RETRY_STATUSES]
    for record in failed:
        click.echo(f"{record['route_id']}: {record['status']}: {(record.get('meta') or {}).get('error', '')}",
                   err=True)
    for record in records:
        meta = record.get("meta") or {}
        for warning in dict.fromkeys(meta.get("world_warnings") or ()):
            click.echo(f"{record['route_id']}: warning: {warning}", err=True)
        if meta.get("policy_timeouts"):
            click.echo(f"{record['route_id']}: the policy timed out {meta['policy_timeouts']} time(s) (limit "
                       f"{meta.get('policy_timeout_s', '?')} s; the car braked on those ticks)", err=True)
    click.echo(f"results: {results} (entry status: {data.get('entry_status', '')})")
    if pictures_dir is not None:
        click.echo(f"pictures: {pictures_dir}")
    if failed:
        # A route that could not run (agent set-up, an agent that crashed, a simulation crash) is not a
        # driving result: scripts and CI must see it, as the leaderboard marks such entries invalid.
        which = ", ".join(f"{r['route_id']} ({r['status']})" for r in failed)
        raise click.ClickException(f"{len(failed)} of {len(records)} routes could not run: {which}; the same "
                                   f"command runs them again once the cause is fixed")


def default_results_path(routes: Path, agent: str) -> Path:
    """``results/<routes name>_<agent>_embedded.json``: each agent (and checkpoint) has its own file.

    The agent part is ``expert``, ``builtin-<name>``, or for a path its name (a
    training run's name for the checkpoint inside it) and a digest of its
    absolute path (two checkpoints called ``offline`` differ).
    """
    import hashlib
    import re

    if agent == "expert" or agent.startswith("builtin:"):
        slug = agent.replace(":", "-")
    else:
        path = Path(agent).expanduser().resolve()
        tag = hashlib.sha256(str(path).encode()).hexdigest()[:8]
        name = path.parent.parent.name if path.parent.name == "checkpoints" else path.stem or path.name
        slug = f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}-{tag}"
    return Path("results") / f"{routes.name.split('.')[0]}_{slug}_embedded.json"


def _resolve(agent: str, agent_config: str | None, results: Path) -> "AgentSpec":
    """The runner's agent file and config for ``--agent`` (and ``--agent-config``); usage errors name the problem.

    A checkpoint or script agent runs as the LangProp agent with that policy;
    with ``--agent-config`` too, the policy is added to a copy of that config
    written beside the results (``<results stem>_agent_config.json``), so that
    its other keys (sandbox, timeout_s, ...) apply.
    """
    from langprop_driving.pipeline.evaluate import AgentSpec, resolve_agent

    try:
        spec = resolve_agent(agent)
    except ValueError as exc:  # CheckpointError is one too
        raise click.BadParameter(str(exc), param_hint="--agent") from exc
    if agent_config is None:
        return spec
    if spec.agent_config is None:
        return AgentSpec(spec.agent, agent_config, spec.description, spec.label)
    target = results.parent / f"{results.stem}_agent_config.json"
    return AgentSpec(spec.agent, str(_config_with_checkpoint(Path(agent_config), spec.agent_config, target)),
                     spec.description, spec.label)


def _config_with_checkpoint(config_path: Path, checkpoint: str, target: Path) -> Path:
    """Write ``target``: the keys of the LangProp agent config at ``config_path``, with ``checkpoint`` set.

    Only the keys the file sets are copied (the others still come from LANGPROP_*
    variables); relative paths are resolved as the agent would resolve them.
    """
    import json
    from dataclasses import fields

    from langprop_common.config_files import read_config_file
    from team_code.config import ConfigError, load_agent_config

    if config_path.is_dir() or config_path.suffix == ".py" or not config_path.is_file():
        raise click.BadParameter(f"{config_path}: expected a LangProp agent config file (JSON or 'key: value' "
                                 f"lines) to go with a checkpoint or script --agent", param_hint="--agent-config")
    try:
        config = load_agent_config(config_path, environ={})  # validates keys and values
        raw = read_config_file(config_path)  # the keys the file sets
    except (ConfigError, ValueError) as exc:
        raise click.BadParameter(f"{config_path}: {exc}", param_hint="--agent-config") from exc
    known = {f.name for f in fields(config)}
    values = {key: getattr(config, key) for key in raw if key in known and raw[key] not in ("", None)}
    values["checkpoint"] = checkpoint
    values = {key: (str(value) if isinstance(value, Path) else value) for key, value in values.items()}
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(values, indent=2) + "\n", encoding="utf-8")
    return target
