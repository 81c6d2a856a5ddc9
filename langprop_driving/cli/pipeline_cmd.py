"""``langprop collect | train | dagger | demo | import-rollout``.

Thin click layers over :mod:`langprop_driving.pipeline`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from langprop_driving.cli.options import (apply, backend_options, budget_values, llm_options, no_resume_option,
                                          optimizer_overrides, progress_enabled, progress_option, ray_options_of,
                                          scenarios_option, seed_option, towns_dir_option, traffic_option,
                                          workers_option)
from langprop_driving.model.objective import DrivingObjective
from langprop_driving.pipeline.config import DaggerConfig, TrainConfig, WorldConfig
from langprop_driving.pipeline.demo import DemoConfig
from langprop_driving.pipeline.validation import ValidationConfig

__all__ = ["collect_cmd", "train_cmd", "dagger_cmd", "demo_cmd", "import_rollout_cmd"]


# -- shared options (defaults come from the config dataclasses, so the two cannot drift apart) -------
def _world_options(fn: Callable) -> Callable:
    options = [
        click.option("--town", required=True, help="Town name in the towns directory (see `langprop town list`)."),
        towns_dir_option,
        traffic_option(),
        seed_option(WorldConfig.seed),
        workers_option(WorldConfig.workers),
        backend_options,
        scenarios_option,
        progress_option,
    ]
    return apply(options, fn)


def _train_options(fn: Callable) -> Callable:
    options = [
        click.option("--epochs", type=click.IntRange(1), default=TrainConfig.epochs, show_default=True,
                     help="Passes over the training records."),
        click.option("--batch-size", type=click.IntRange(1), default=TrainConfig.batch_size, show_default=True,
                     help="Records per update."),
        click.option("--n-responses", type=click.IntRange(1), default=None,
                     help="New scripts per parent and update [default: 2 with an LLM, 16 with the free "
                          "mutation optimizer]."),
        click.option("--top-k", type=click.IntRange(1), default=TrainConfig.top_k, show_default=True,
                     help="Scripts sent for rewriting."),
        click.option("--record-stride", type=click.IntRange(1), default=TrainConfig.record_stride,
                     show_default=True,
                     help="Use 1/n of the recorded ticks (records before infractions are always used)."),
        click.option("--max-records", type=click.IntRange(1), default=TrainConfig.max_records, show_default=True,
                     help="At most this many training records (those before infractions first)."),
        click.option("--infraction-weight", type=click.FloatRange(min=0), default=TrainConfig.infraction_weight,
                     show_default=True, help="How much more often records before an infraction are sampled."),
        click.option("--horizon", "horizon_s", type=click.FloatRange(min=0), default=DrivingObjective.horizon_s,
                     show_default=True,
                     help="Seconds before an infraction in which repeating the car's action is penalised."),
        click.option("--repeat-penalty", type=float, default=DrivingObjective.repeat_penalty, show_default=True,
                     help="Score of repeating the action that led to an infraction (negated)."),
        click.option("--sandbox", "sandbox_mode", type=click.Choice(["process", "strict", "inprocess"]),
                     default=TrainConfig.sandbox_mode, show_default=True,
                     help="Run scripts in contained worker processes (process), the same but refusing "
                          "to run without every protection (strict), or in this one, trusted (inprocess)."),
        llm_options,
    ]
    return apply(options, fn)


# -- settings: the config classes' defaults < a --config file's section < options given on the command line ----
_config_option = click.option(
    "--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
    help="YAML or JSON settings file with sections train (the objective under train.objective), dagger and world: "
         "every field of TrainConfig, DrivingObjective, DaggerConfig and WorldConfig. Options given on the "
         "command line win; an unknown key is an error naming it.")

# config key (dotted for nested configs) -> the command-line option's parameter name
_WORLD_KEYS = {"town": "town", "towns_dir": "towns_dir", "traffic": "traffic", "seed": "seed", "workers": "workers",
               "backend": "backend", "ray_address": "ray_address", "scenarios": "scenarios"}
_TRAIN_KEYS = {"epochs": "epochs", "batch_size": "batch_size", "n_responses": "n_responses", "top_k": "top_k",
               "record_stride": "record_stride", "max_records": "max_records",
               "infraction_weight": "infraction_weight", "objective.horizon_s": "horizon_s",
               "objective.repeat_penalty": "repeat_penalty", "sandbox_mode": "sandbox_mode", "seed": "seed",
               **{key: key for key in budget_values({})}}
_DAGGER_KEYS = {"iterations": "iterations", "beta": "beta", "beta_decay": "beta_decay",
                "expert_share": "expert_share"}


def _file_section(kw: dict[str, Any], section: str) -> dict[str, Any]:
    """The ``section`` of the ``--config`` file ({} without one); the whole file is checked first."""
    from langprop_common.config_files import ConfigError, read_sections

    path = kw.get("config_file")
    if path is None:
        return {}
    try:
        sections = read_sections(path, {"train": TrainConfig(), "dagger": DaggerConfig(),
                                        "world": WorldConfig(town="")})
    except ConfigError as exc:  # one line naming the file and key, before any world starts
        raise click.ClickException(str(exc)) from None
    return sections.get(section, {})


def _settings(cls: type, kw: dict[str, Any], keys: dict[str, str], section: str,
              computed: dict[str, Any] | None = None) -> Any:
    """``cls`` from the command's option values, with the ``--config`` file's ``section`` over their defaults.

    ``computed``: values derived from options (config key -> value), treated as given when any
    of their options was.
    """
    from click.core import ParameterSource

    from langprop_common.config_files import layered, load_config

    context = click.get_current_context()
    defaults: dict[str, Any] = {}
    given: dict[str, Any] = {}
    for key, param in keys.items():
        if param not in kw:
            continue
        source = context.get_parameter_source(param)
        explicit = source not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)
        value = (computed or {}).get(key, kw[param])
        *parents, leaf = key.split(".")
        target = given if explicit else defaults
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    file_values = _file_section(kw, section)
    source_name = str(kw["config_file"]) if file_values else "the command line"
    return load_config(cls, layered(defaults, file_values, given), source_name)


def _world(kw: dict[str, Any]) -> WorldConfig:
    keys = {**_WORLD_KEYS, "ray_resources": "ray_resources"}
    return _settings(WorldConfig, kw, keys, "world", computed={"ray_resources": ray_options_of(kw)})


def _train_config(kw: dict[str, Any]) -> TrainConfig:
    from dataclasses import replace

    try:
        config = _settings(TrainConfig, kw, _TRAIN_KEYS, "train")
        return replace(config, progress=config.progress and progress_enabled(kw["no_progress"]))
    except ValueError as exc:  # combinations of values (a cost budget without prices): a usage error too
        raise click.UsageError(str(exc)) from None


def _dagger_config(kw: dict[str, Any]) -> DaggerConfig:
    try:
        return _settings(DaggerConfig, kw, _DAGGER_KEYS, "dagger")
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _optimizer_config(kw: dict[str, Any]) -> Any:
    from langprop_core.llm.factory import OptimizerConfig

    return OptimizerConfig.from_env(**optimizer_overrides(kw))


def _announce_optimizer(optimizer_config: Any, seed_sources: list[str]) -> None:
    """The first line of a training command: which optimizer writes the scripts, and why."""
    from langprop_core.llm.factory import make_optimizer

    click.echo(f"optimizer: {make_optimizer(optimizer_config, seed_sources=seed_sources).describe()}")


def _seed_sources(paths: tuple[Path, ...]) -> list[str]:
    from langprop_driving.model.seed_policy import read_seed_source

    try:
        return [read_seed_source(p) for p in (paths or ("naive",))]
    except (ValueError, FileNotFoundError) as exc:
        raise click.BadParameter(str(exc), param_hint="--seed-script") from None


def _route_ids(routes: Path | None, given: tuple[str, ...]) -> list[str] | None:
    if given:
        return list(given)
    if routes is None:
        return None
    from langprop_driving.pipeline.collect import route_ids_of

    return route_ids_of(routes)


def _preflight_world(world: WorldConfig, routes: Path, route_ids: list[str] | None) -> None:
    """Towns, route planning and the scenario file, before any world starts (one line, exit 1)."""
    from langprop_driving.cli.errors import preflight
    from langprop_driving.pipeline.preflight import check_routes, check_scenarios

    preflight(check_routes, routes, world.town, world.towns_dir, route_ids)
    preflight(check_scenarios, world.scenarios)


_work_dir = click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/langprop"),
                         show_default=True, help="Pipeline work directory (data, rollouts, checkpoints; resumable).")


# -- commands -----------------------------------------------------------------------------------------
@click.command("collect")
@_world_options
@click.option("--routes", type=click.Path(dir_okay=False, exists=True, path_type=Path), required=True,
              help="Leaderboard route XML.")
@click.option("--route-id", "route_ids", multiple=True, help="Only these routes (repeatable).")
@_work_dir
@_config_option
def collect_cmd(**kw: Any) -> None:
    """Drive routes with the privileged expert and record scenes with labels (embedded world).

    With CARLA, use scripts/collect_data.sh instead; it writes the same dataset format.
    """
    from langprop_driving.pipeline.collect import collect
    from langprop_driving.pipeline.config import WorkDir

    work = WorkDir(kw["work_dir"])
    world = _world(kw)
    route_ids = list(kw["route_ids"]) or None
    _preflight_world(world, kw["routes"], route_ids)
    _announce_collect(work, kw["routes"], route_ids)
    results = collect(work, world, kw["routes"], route_ids, progress=progress_enabled(kw["no_progress"]))
    for r in results:
        score = f"{r.record['scores']['score_composed']:.1f}" if r.record else f"FAILED ({r.error})"
        click.echo(f"route {r.route_id}: driving score {score}, {r.n_records} scenes")
    if any(r.record is None for r in results):
        failed = ", ".join(r.route_id for r in results if r.record is None)
        raise click.ClickException(f"routes {failed} could not run (see above); the dataset {work.data} keeps "
                                   f"the others, and the same command runs only the failed ones again")
    click.echo(f"dataset: {work.data}")


def _announce_collect(work: Any, routes: Path, route_ids: list[str] | None) -> None:
    """The first line of ``collect``: a new dataset, or how many of the routes it already holds."""
    from driving.dataset import SceneDataset

    from langprop_driving.pipeline.train import OFFLINE_STAGE

    ids = route_ids or _route_ids(routes, ())
    runs = set(SceneDataset(work.data).runs()) if (work.data / "index.json").is_file() else set()
    done = sum(f"{OFFLINE_STAGE}-{route_id}" in runs for route_id in ids)
    if done:
        click.echo(f"collect: resuming {work.data}: {done} of {len(ids)} routes done, running the other "
                   f"{len(ids) - done}")
    else:
        click.echo(f"collect: new run: {len(ids)} routes into {work.data}")


@click.command("train")
@_work_dir
@click.option("--dataset", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Scene dataset (default: <work-dir>/data).")
@click.option("--routes", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Train on the records of these routes (default: all records).")
@click.option("--val-routes", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Validate on the records of these held-out routes.")
@click.option("--route-id", "route_ids", multiple=True, help="Training route ids (instead of --routes).")
@click.option("--val-route-id", "val_route_ids", multiple=True,
              help="Validation route ids; with a route file (--val-routes or --routes) the top scripts drive them "
                   "(each in its own town) and the best driver is deployed.")
@towns_dir_option
@traffic_option(WorldConfig.traffic)
@scenarios_option
@workers_option(WorldConfig.workers)
@click.option("--seed-script", "seed_scripts", multiple=True, type=click.Path(path_type=Path),
              help="Seed script(s): .py files with predict_speed_and_steering, or bundled 'naive'/'cautious'.")
@click.option("--name", default="offline", show_default=True, help="Run name (under <work-dir>/train/).")
@no_resume_option
@seed_option(0)
@_train_options
@progress_option
@_config_option
def train_cmd(**kw: Any) -> None:
    """Train predict_speed_and_steering scripts from a scene dataset; checkpoint in <work-dir>/train/<name>."""
    from driving.dataset import SceneDataset

    from langprop_driving.pipeline.config import WorkDir
    from langprop_driving.pipeline.train import train_stage

    from langprop_driving.cli.errors import preflight
    from langprop_driving.pipeline.preflight import check_dataset

    work = WorkDir(kw["work_dir"])
    train_config = _train_config(kw)
    optimizer_config = _optimizer_config(kw)
    seeds = _seed_sources(kw["seed_scripts"])
    preflight(check_dataset, kw["dataset"] or work.data)
    val_ids = _route_ids(kw["val_routes"], kw["val_route_ids"])
    selection = _selection(kw, kw["val_routes"] or kw["routes"], val_ids)
    _announce_optimizer(optimizer_config, seeds)
    dataset = SceneDataset(kw["dataset"] or work.data)
    outcome = train_stage(work, kw["name"], dataset, _route_ids(kw["routes"], kw["route_ids"]),
                          val_ids, optimizer_config, train_config, seeds, resume=not kw["no_resume"],
                          progress=train_config.progress, selection=selection)
    score = "n/a" if outcome.best_score is None else f"{outcome.best_score:.3f}"
    click.echo(f"best script {outcome.best_policy_id}: score {score}"
               + (f", validation {outcome.val_score:.3f}" if outcome.val_score is not None else ""))
    click.echo(f"checkpoint: {outcome.checkpoint}")
    click.echo(f"{outcome.policy_calls} policy calls in {outcome.wall_s:.1f} s ({outcome.calls_per_s:.0f}/s)")
    _echo_llm_usage(outcome)


def _selection(kw: dict[str, Any], routes: Path | None, route_ids: list[str] | None,
               top_k: int = ValidationConfig.top_k, min_gain: float = ValidationConfig.min_gain) -> Any:
    """Select by driving on ``route_ids`` of ``routes`` (each in its own town), or None without both."""
    if not route_ids:
        return None
    if routes is None:
        click.echo("validation routes without a route file: validating on their records only "
                   "(give --val-routes FILE to select by driving)", err=True)
        return None
    from dataclasses import replace

    from langprop_driving.pipeline.validation import route_towns

    # train has no world of its own: the validation world takes its shared options
    world = _world(kw) if "town" in kw else WorldConfig(
        town="?", towns_dir=kw["towns_dir"], traffic=kw["traffic"], seed=kw["seed"], workers=kw["workers"],
        scenarios=kw.get("scenarios"))
    config = ValidationConfig(world=world, routes=routes, route_ids=tuple(route_ids), top_k=top_k, min_gain=min_gain)
    try:
        towns = route_towns(config)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--val-route-id") from None
    _preflight_world(replace(world, town=""), routes, list(route_ids))  # each route in the town it names
    # each route runs in its own town (RoadValidator); the world's town is the first one's
    return replace(config, world=replace(world, town=towns[route_ids[0]]))


def _echo_llm_usage(outcome: Any) -> None:
    """The run's LLM spend and rejected replies (TrainOutcome.llm / .rejected)."""
    from langprop_core.llm.usage import LLMUsage

    if outcome.llm:
        click.echo("LLM: " + LLMUsage.from_dict(outcome.llm).describe())
    if outcome.rejected:
        click.echo("rejected replies: " + ", ".join(f"{k} {v}" for k, v in outcome.rejected.items()))
    if outcome.behaviours:
        occ = outcome.behaviours
        click.echo(f"population on the probe scenes: {occ['distinct']} distinct behaviours in {occ['n_niches']} "
                   f"niches; scripts per island {occ['islands']}")
    if outcome.deployed_dead_conditions:
        click.echo("the deployed script has dead conditions: " + "; ".join(outcome.deployed_dead_conditions))


@click.command("dagger")
@_world_options
@_work_dir
@click.option("--routes", type=click.Path(dir_okay=False, exists=True, path_type=Path), required=True,
              help="Routes the scripts drive (and train on).")
@click.option("--route-id", "route_ids", multiple=True, help="Only these routes of --routes.")
@click.option("--val-route-id", "val_route_ids", multiple=True,
              help="Held-out route ids of --routes (any town): after each iteration the top scripts drive them, "
                   "each in its own town, and the best driver is deployed; their collected records, if any, "
                   "validate training.")
@click.option("--checkpoint", required=True, type=click.Path(exists=True, path_type=Path),
              help="Where to start: a checkpoint (or training run) directory, or a .py script.")
@click.option("--iterations", type=click.IntRange(1), default=DaggerConfig.iterations, show_default=True,
              help="DAgger iterations (drive, relabel, aggregate, train).")
@click.option("--beta", type=click.FloatRange(0.0, 1.0), default=DaggerConfig.beta, show_default=True,
              help="DAgger mixing: probability per route that the expert drives (decays by --beta-decay).")
@click.option("--beta-decay", type=click.FloatRange(0.0, 1.0), default=DaggerConfig.beta_decay, show_default=True,
              help="Factor of --beta from one iteration to the next.")
@click.option("--expert-share", type=click.FloatRange(0.0, 1.0), default=None,
              help="Share of the expert's offline records beside the rollouts (default: as aggregated).")
@click.option("--select-route-id", "select_route_ids", multiple=True,
              help="Select by driving on these routes of --routes instead of --val-route-id (the incumbent stays "
                   "unless beaten by --select-min-gain, and is never traded for one worse on a town by more).")
@click.option("--select-top-k", type=click.IntRange(1), default=3, show_default=True,
              help="Scripts driven per selection.")
@click.option("--select-min-gain", type=click.FloatRange(min=0.0), default=ValidationConfig.min_gain,
              show_default=True, help="DS points by which a candidate must beat the deployed script.")
@_train_options
@_config_option
def dagger_cmd(**kw: Any) -> None:
    """DAgger: drive the current script, relabel with the expert, aggregate, train; N times."""
    from langprop_driving.pipeline.config import WorkDir
    from langprop_driving.pipeline.dagger import dagger

    from langprop_driving.cli.errors import preflight
    from langprop_driving.pipeline.preflight import check_checkpoint

    work = WorkDir(kw["work_dir"])
    world = _world(kw)
    train_config = _train_config(kw)
    optimizer_config = _optimizer_config(kw)
    route_ids = _route_ids(kw["routes"], kw["route_ids"])
    _preflight_world(world, kw["routes"], route_ids)
    preflight(check_checkpoint, kw["checkpoint"])
    selection = _selection(kw, kw["routes"], list(kw["select_route_ids"] or kw["val_route_ids"]),
                           kw["select_top_k"], kw["select_min_gain"])
    _announce_optimizer(optimizer_config, [])
    outcome = dagger(work, world, kw["routes"], route_ids,
                     list(kw["val_route_ids"]) or None, optimizer_config, train_config,
                     _dagger_config(kw),
                     kw["checkpoint"], selection=selection, progress=train_config.progress)
    for it in outcome.iterations:
        score = "n/a" if it.driving_score is None else f"{it.driving_score:.2f}"
        selected = "" if it.train.validation_ds is None else (
            f"; deployed {it.train.best_policy_id}, validation DS {it.train.validation_ds:.1f}"
            f"{' (incumbent stayed)' if it.train.kept_incumbent else ''}")
        click.echo(f"iteration {it.iteration} (beta {it.beta:.2f}): driven script scored {score} on the road; "
                   f"{it.n_new_records} new scenes; retrained: {it.train.checkpoint}{selected}")
        _echo_llm_usage(it.train)
    click.echo(f"final checkpoint: {outcome.final_checkpoint}")


@click.command("demo")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/demo"),
              show_default=True, help="Where everything goes; rerun to resume.")
@click.option("--fresh", is_flag=True, help="Delete the work directory first (start over).")
@workers_option(None, "min(4, cores)")
@click.option("--iterations", type=click.IntRange(0), default=DemoConfig.dagger_iterations, show_default=True,
              help="DAgger iterations.")
@llm_options
@click.option("--seed-script", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Start from this script instead of the bundled naive one.")
@seed_option(DemoConfig.seed)
@click.option("--scenarios/--no-scenarios", default=True, show_default=True,
              help="Run the leaderboard-1.0 scenarios of a scenario file generated for the demo town.")
@click.option("--select-top-k", type=click.IntRange(0), default=DemoConfig.select_top_k, show_default=True,
              help="Select by driving: this many top scripts per stage drive the held-out routes (0: off).")
@click.option("--expert-share", type=click.FloatRange(0.0, 1.0), default=None,
              help="DAgger: share of the expert's offline records beside the rollouts (default: as aggregated).")
@progress_option
def demo_cmd(**kw: Any) -> None:
    """The main job: town -> expert data -> offline training -> DAgger -> evaluation table and pictures.

    With no LLM configured it replays the LLM run recorded with the package (the mutation baseline where the
    recording has no reply); --optimizer mutation runs the no-LLM baseline.
    """
    import shutil
    from dataclasses import replace

    from langprop_driving.pipeline.demo import run_demo

    defaults = DemoConfig()
    try:
        train = replace(defaults.train, **budget_values(kw))
        llm_train = replace(defaults.llm_train, **budget_values(kw))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    optimizer_config = _optimizer_config(kw)
    if kw["fresh"] and kw["work_dir"].exists():
        shutil.rmtree(kw["work_dir"])
    config = DemoConfig(work_dir=kw["work_dir"], dagger_iterations=kw["iterations"], seed=kw["seed"],
                        seed_script=kw["seed_script"], scenarios=kw["scenarios"], select_top_k=kw["select_top_k"],
                        expert_share=kw["expert_share"], train=train, llm_train=llm_train,
                        **({"workers": kw["workers"]} if kw["workers"] is not None else {}))
    run_demo(config, optimizer_config, echo=click.echo, progress=progress_enabled(kw["no_progress"]))


@click.command("import-rollout")
@click.argument("record_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--results", type=click.Path(dir_okay=False, exists=True, path_type=Path), required=True,
              help="The leaderboard results JSON of the run that recorded RECORD_DIR (CHECKPOINT_ENDPOINT).")
@_work_dir
@click.option("--dataset", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Aggregate dataset to append to (default: <work-dir>/data).")
@click.option("--stage", default="rollout", show_default=True, help="Prefix of the imported run ids.")
@click.option("--no-relabel", is_flag=True, help="Keep the recorded labels (do not ask the expert).")
def import_rollout_cmd(**kw: Any) -> None:
    """Aggregate a recorded leaderboard run (e.g. from CARLA) into the dataset, for DAgger.

    The ticks are marked with the seconds to the run's next infraction (from the
    results JSON), relabelled by the expert, and appended; already imported runs
    are skipped, earlier data is never overwritten.
    """
    from driving.dataset import SceneDataset

    from langprop_driving.pipeline.config import WorkDir
    from langprop_driving.pipeline.rollouts import import_rollout

    dataset = SceneDataset(kw["dataset"] or WorkDir(kw["work_dir"]).data)
    imported = import_rollout(kw["record_dir"], kw["results"], dataset, kw["stage"], relabel=not kw["no_relabel"])
    for run_id, n in imported.items():
        click.echo(f"{run_id}: {n} ticks")
    click.echo(f"imported {len(imported)} run(s) into {dataset.root} ({len(dataset)} records in all)")
