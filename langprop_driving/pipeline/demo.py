"""The main job: a small, complete LangProp driving pipeline on a generated town.

generate a town and routes -> collect expert data -> train offline from a naive
seed script -> DAgger with infraction penalties -> evaluate the expert, the
seed script and the trained scripts -> a comparison table, bird's-eye pictures
and training curves. Every stage resumes after a kill: run the same command
again.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from driving.dataset import SceneDataset

from langprop_driving.model.seed_policy import read_seed_source, seed_path
from langprop_driving.pipeline.collect import collect
from langprop_driving.pipeline.config import (
    DaggerConfig, TrainConfig, WorkDir, WorldConfig, atomic_write_json,
)
from langprop_driving.pipeline.dagger import DaggerOutcome, IterationOutcome, dagger
from langprop_driving.pipeline.evaluate import evaluate_agent
from langprop_driving.pipeline.rollouts import raise_on_failed_routes, route_records_of
from langprop_driving.pipeline.train import TrainOutcome, train_stage

__all__ = ["DemoConfig", "DemoResult", "demo_optimizer_config", "prepare_town_and_routes", "run_demo",
           "selection_table", "spend_lines"]

log = logging.getLogger(__name__)


def _default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _demo_train_config() -> TrainConfig:
    return TrainConfig(epochs=3, batch_size=96, n_responses=2, top_k=2, max_keep=6, record_stride=8,
                       max_records=800)


def _demo_llm_train_config() -> TrainConfig:
    # An LLM call costs what thousands of mutations do and writes a better child: few, large batches (two per
    # stage, about a dozen calls for the whole demo), one reply per parent.
    return replace(_demo_train_config(), epochs=1, batch_size=400, n_responses=1)


@dataclass(frozen=True)
class DemoConfig:
    """What the demo builds; the defaults run in about 3 minutes on 2 cores (the issue allows 15)."""

    work_dir: Path = Path("runs/demo")
    town: str = "demo_grid"
    town_kind: str = "grid"
    town_size: int = 3
    block_m: float = 80.0
    n_train_routes: int = 4
    n_val_routes: int = 2
    min_route_m: float = 120.0
    max_route_m: float = 220.0
    traffic: str = "light"
    seed: int = 0
    workers: int = field(default_factory=_default_workers)
    dagger_iterations: int = 2
    dagger_beta: float = 0.0
    # DAgger's share of expert offline records beside the rollouts (None: as aggregated)
    expert_share: float | None = None
    # select by driving: after each training stage this many top scripts drive the held-out routes
    # and the best driver is deployed, the incumbent kept unless beaten by ValidationConfig.min_gain
    # DS points (0: deploy the objective's best)
    select_top_k: int = 2
    seed_script: Path | None = None
    # training with the mutation baseline, and with an LLM (a live one, or the shipped recording)
    train: TrainConfig = field(default_factory=_demo_train_config)
    llm_train: TrainConfig = field(default_factory=_demo_llm_train_config)
    pictures: bool = True
    # the town's generated leaderboard-1.0 scenario file runs along the routes (sumo_world.scenarios)
    scenarios: bool = True


@dataclass
class DemoResult:
    """What the demo reports: the route records per agent (training and held-out routes), the stage wall
    times, the printed tables, the written files by name, the training runs and the DAgger iterations."""

    optimizer: str
    # the recorded LLM run the demo replayed (None: a live optimizer)
    recording: Any
    rows_train: dict[str, list[dict[str, Any]]]
    rows_val: dict[str, list[dict[str, Any]]]
    stage_wall_s: dict[str, float]
    tables: str
    outputs: dict[str, str]
    trainings: list[TrainOutcome]
    dagger: DaggerOutcome


def demo_optimizer_config(optimizer_config: Any) -> tuple[Any, Any]:
    """The optimizer config the demo runs with, and the recording it replays (or None).

    With nothing configured (``auto``, no endpoint, exchange folder or cache) the
    demo replays the LLM run shipped in the package (recorded through the file
    exchange), so that a machine with no LLM shows what the LLM path does.
    """
    from langprop_driving.pipeline.recorded_run import replay_config, shipped_demo_recording

    configured = (optimizer_config.kind != "auto" or optimizer_config.has_endpoint
                  or optimizer_config.exchange_dir is not None or optimizer_config.cache_dir is not None)
    recording = None if configured else shipped_demo_recording()
    if recording is None:
        return optimizer_config, None
    return replay_config(recording, optimizer_config), recording


def prepare_town_and_routes(work: WorkDir, config: DemoConfig) -> tuple[Path, Path, list[str], list[str]]:
    """Generate the town (into ``<work>/towns``) and random routes.

    Returns (towns dir, routes file, training route ids, held-out route ids).
    """
    from sumo_world.roads.network import RoadNetwork
    from sumo_world.routes.random_routes import random_routes
    from sumo_world.routes.files import read_routes, write_routes
    from sumo_world.towns.store import TownStore

    towns_dir = work.root / "towns"
    routes_path = work.root / "routes" / "routes.xml"
    done = work.done("prepare")
    if done is not None and routes_path.is_file():
        return towns_dir, routes_path, list(done["train"]), list(done["val"])
    store = TownStore(towns_dir)
    if config.town in store:
        info = store.get(config.town)
    else:
        info = store.generate(config.town, kind=config.town_kind, size=config.town_size, seed=config.seed,
                              block_m=config.block_m)
    network = RoadNetwork.load(info.net_path)
    n = config.n_train_routes + config.n_val_routes
    routes = random_routes(network, n, seed=config.seed, town=config.town, min_length_m=config.min_route_m,
                           max_length_m=config.max_route_m)
    routes_path.parent.mkdir(parents=True, exist_ok=True)
    write_routes(routes, routes_path)
    ids = [r.route_id for r in read_routes(routes_path)]
    train_ids, val_ids = ids[:config.n_train_routes], ids[config.n_train_routes:]
    work.mark_done("prepare", {"town": config.town, "routes": str(routes_path), "train": train_ids,
                               "val": val_ids})
    return towns_dir, routes_path, train_ids, val_ids


def scenario_file_of(work: WorkDir, config: DemoConfig) -> Path | None:
    """The demo town's scenario file (``<work>/routes/scenarios.json``, written once), or None without scenarios."""
    if not config.scenarios:
        return None
    from sumo_world.roads.network import RoadNetwork
    from sumo_world.scenarios.generate import write_scenario_file
    from sumo_world.towns.store import TownStore

    path = work.root / "routes" / "scenarios.json"
    if not path.is_file():
        info = TownStore(work.root / "towns").get(config.town)
        write_scenario_file(RoadNetwork.load(info.net_path), config.town, path)
    return path


def _records_by_route(records: Sequence[dict[str, Any]], route_ids: Sequence[str]) -> list[dict[str, Any]]:
    from sumo_world.scoring.leaderboard_statistics import route_config_id

    wanted = set(route_ids)
    return [r for r in records if route_config_id(r) in wanted]


class _Timer:
    """Wall time per stage, kept in ``<work>/stages/timings.json``.

    Times add up over resumed runs (a stage finished before a kill counts once,
    the rest of it when it resumes); a stage skipped as done adds nothing.
    """

    def __init__(self, work: WorkDir) -> None:
        self.path = work.root / "stages" / "timings.json"
        self.times: dict[str, float] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            elapsed = time.perf_counter() - start
            if elapsed > 0.5 or name not in self.times:
                self.times[name] = round(self.times.get(name, 0.0) + elapsed, 2)
                atomic_write_json(self.path, self.times)


def run_demo(config: DemoConfig, optimizer_config: Any, echo: Callable[[str], None] = print,
             progress: bool = True) -> DemoResult:
    """Run (or resume) the whole demo under ``config.work_dir``; returns the tables and outputs."""
    from langprop_core.llm.factory import make_optimizer
    from sumo_world.scoring.summary import format_comparison_table

    from langprop_core.llm.mutation import MutationOptimizer

    work = WorkDir(Path(config.work_dir))
    work.root.mkdir(parents=True, exist_ok=True)
    timer = _Timer(work)
    seed_file = Path(config.seed_script) if config.seed_script else seed_path("naive")
    seed_source = read_seed_source(seed_file)
    optimizer_config, recording = demo_optimizer_config(optimizer_config)
    optimizer = make_optimizer(optimizer_config, seed_sources=[seed_source])
    train_config = config.train if isinstance(optimizer, MutationOptimizer) else config.llm_train
    train_config = train_config if progress else replace(train_config, progress=False)
    optimizer_description = (f"replay of {recording.describe()}; where the prompts differ from the recorded ones, "
                             "the mutation baseline" if recording is not None else optimizer.describe())
    echo(f"optimizer: {optimizer_description}")
    echo(f"work directory: {work.root} (rerun the same command to resume)")

    echo("[1/6] town and routes")
    towns_dir, routes, train_ids, val_ids = timer.run(
        "prepare", lambda: prepare_town_and_routes(work, config))
    scenario_file = scenario_file_of(work, config)
    world = WorldConfig(town=config.town, towns_dir=towns_dir, traffic=config.traffic, seed=config.seed,
                        workers=config.workers, scenarios=scenario_file)
    echo(f"      town {config.town}; training routes {', '.join(train_ids)}; held-out {', '.join(val_ids)}")

    echo("[2/6] collect: the expert drives every route, recording scenes and labels")
    collected = timer.run("collect", lambda: collect(work, world, routes, train_ids + val_ids, progress=progress))
    raise_on_failed_routes(collected, "collect")
    echo(f"      {sum(r.n_records for r in collected)} scenes recorded")

    selection = None
    if config.select_top_k > 0 and val_ids:
        from langprop_driving.pipeline.validation import ValidationConfig

        selection = ValidationConfig(world=world, routes=routes, route_ids=tuple(val_ids),
                                     top_k=config.select_top_k)
    echo(f"[3/6] train offline from the seed script {seed_file.name}"
         + (f"; the top {config.select_top_k} by objective then drive the held-out routes, the best driver "
            f"is deployed" if selection else ""))
    offline = timer.run("train-offline", lambda: train_stage(
        work, "offline", SceneDataset(work.data), train_ids, val_ids, optimizer_config, train_config,
        seed_sources=[seed_source], selection=selection, incumbent=str(seed_file), progress=progress))
    echo(f"      deployed script {offline.best_policy_id}: train score {_num(offline.best_score)}, "
         f"held-out score {_num(offline.val_score)}" + _selection_text(offline)
         + f" ({offline.policy_calls} policy calls, {offline.calls_per_s:.0f}/s)")

    echo(f"[4/6] DAgger, {config.dagger_iterations} iterations: drive, relabel with the expert, aggregate, train")
    dagger_outcome = timer.run("dagger", lambda: dagger(
        work, world, routes, train_ids, val_ids, optimizer_config, train_config,
        DaggerConfig(iterations=config.dagger_iterations, beta=config.dagger_beta, expert_share=config.expert_share),
        offline.checkpoint, progress=progress, selection=selection))
    for it in dagger_outcome.iterations:
        echo(f"      iteration {it.iteration} (beta {it.beta:.2f}, expert drove {len(it.expert_routes)} route(s)): "
             f"the driven script scored {_num(it.driving_score, '.1f')} on the road, {it.n_new_records} new "
             f"scenes; deployed {it.train.best_policy_id} score {_num(it.train.best_score)}"
             + _selection_text(it.train))
    final_checkpoint = dagger_outcome.final_checkpoint or offline.checkpoint

    echo("[5/6] evaluate the seed script and the trained scripts on all routes")
    results: dict[str, list[dict[str, Any]]] = {
        "expert": [r.record for r in collected if r.record is not None]}

    def evaluate(label: str, agent: str, pictures: bool = False) -> None:
        slug = label.replace(" ", "_").lower()
        pictures_dir = work.eval(slug) / "pictures" if pictures and config.pictures else None
        data = timer.run(f"evaluate-{slug}", lambda: evaluate_agent(
            agent, world, routes, work.eval(slug) / "results.json", route_ids=train_ids + val_ids,
            pictures_dir=pictures_dir, progress=progress))
        results[label] = route_records_of(data)

    evaluate("seed script", str(seed_file))
    evaluate("offline-trained", offline.checkpoint)
    evaluate("DAgger-trained", final_checkpoint, pictures=True)
    # Selecting by driving already deploys the best driver; without it, DAgger's own pick (below).
    selected = None if selection else _dagger_selection(
        dagger_outcome, _records_by_route(results["DAgger-trained"], train_ids), config.dagger_beta)
    if selected is not None:
        echo(f"      DAgger's best script on the training routes drove in iteration {selected.iteration} "
             f"({selected.driven_policy_id}); evaluating it too")
        evaluate("DAgger-selected", selected.driven_checkpoint)

    echo("[6/6] summary")
    rows_train = {label: _records_by_route(records, train_ids) for label, records in results.items()}
    rows_val = {label: _records_by_route(records, val_ids) for label, records in results.items()}
    tables = (f"Training routes ({', '.join(train_ids)}):\n{format_comparison_table(rows_train)}\n\n"
              f"Held-out routes ({', '.join(val_ids)}):\n{format_comparison_table(rows_val)}")
    outputs = _write_outputs(work, offline, dagger_outcome, results, tables, optimizer_description, timer.times)
    echo(tables)
    echo("")
    echo(f"stage wall times (s): {_stage_times_text(timer.times)}")
    for name, path in outputs.items():
        echo(f"{name}: {path}")
    trainings = [offline] + [it.train for it in dagger_outcome.iterations]
    for line in spend_lines(trainings, rows_val):
        echo(line)
    return DemoResult(optimizer_description, recording, rows_train, rows_val, dict(timer.times), tables, outputs, trainings,
                      dagger_outcome)


def spend_lines(trainings: Sequence[TrainOutcome], rows_val: dict[str, list[dict[str, Any]]]) -> list[str]:
    """What the LLM cost, all trainings together: calls (replies replayed apart), tokens, per admitted child, and
    per driving-score point the deployed script gained over the seed script on the held-out routes."""
    from langprop_core.llm.usage import LLMUsage
    from sumo_world.scoring.summary import mean_scores

    spent = [t.llm for t in trainings if t.llm]
    if not spent:
        return []
    usage = LLMUsage.total(spent)
    lines = [f"LLM, all trainings: {usage.describe()}"]
    if not usage.calls:
        return lines
    seed, final = rows_val.get("seed script"), rows_val.get("DAgger-trained")
    if seed and final:
        gain = mean_scores(final)["score_composed"] - mean_scores(seed)["score_composed"]
        lines.append(f"LLM cost per held-out DS point: {usage.per_gain(gain, 'DS point')}")
    return lines


def _dagger_selection(outcome: DaggerOutcome, final_train_records: list[dict[str, Any]],
                      beta: float) -> IterationOutcome | None:
    """The DAgger iteration whose driven script beat the last script on the training routes, if any.

    DAgger returns the best of its policies, not the last (Ross et al., 2011);
    the scripts that drove were scored on the training routes by their
    rollouts. With expert mixing (beta > 0) those scores include expert-driven
    routes, so no selection is made.
    """
    from sumo_world.scoring.summary import mean_scores

    best = outcome.best_driven()
    if beta > 0 or best is None or not final_train_records:
        return None
    final_ds = mean_scores(final_train_records)["score_composed"]
    return best if best.driving_score > final_ds + 1e-9 else None


def _selection_text(outcome: TrainOutcome) -> str:
    """What selecting by driving did in a stage (empty without it)."""
    if outcome.validation_ds is None:
        return ""
    return (f", validation DS {outcome.validation_ds:.1f}"
            f"{' (the incumbent stayed)' if outcome.kept_incumbent else ''}, objective-DS rank correlation "
            f"{_num(outcome.spearman, '.2f')}")


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "n/a" if value is None else format(value, fmt)


def _stage_times_text(times: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in times.items())


def _write_outputs(work: WorkDir, offline: TrainOutcome, dagger_outcome: DaggerOutcome,
                   results: dict[str, list[dict[str, Any]]], tables: str, optimizer: str,
                   times: dict[str, float]) -> dict[str, str]:
    """The report folder: training curves, the scores chart, summary.md and dagger.json; the files by name."""
    from sumo_world.scoring.summary import render_scores_chart

    out_dir = work.root / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs: dict[str, str] = {}
    curves = [("offline", Path(offline.run_dir))] + [
        (f"dagger-{it.iteration}", Path(it.train.run_dir)) for it in dagger_outcome.iterations]
    for name, run_dir in curves:
        curve = run_dir / "training_curve.png"
        if curve.is_file():
            target = out_dir / f"training_curve_{name}.png"
            shutil.copyfile(curve, target)
            outputs[f"training curve ({name})"] = str(target)
    final = results.get("DAgger-trained") or []
    if final:
        outputs["scores chart (DAgger-trained)"] = str(render_scores_chart(
            final, out_dir / "scores_dagger_trained.png", title="DAgger-trained script"))
    pictures = work.eval("dagger-trained") / "pictures"
    if pictures.is_dir() and any(pictures.iterdir()):
        outputs["bird's-eye pictures"] = str(pictures)
    summary = out_dir / "summary.md"
    lines = ["# LangProp driving demo", "", f"optimizer: {optimizer}", "", "```", tables, "```", "",
             "DAgger iterations (driving score of the script that drove; beta: the chance the expert drove a "
             "route instead):", ""]
    for it in dagger_outcome.iterations:
        lines.append(f"- iteration {it.iteration}: beta {it.beta:.2f} (expert drove "
                     f"{', '.join(it.expert_routes) or 'no route'}): {_num(it.driving_score, '.2f')} "
                     f"(policy {it.driven_policy_id}, on its own routes {_num(it.policy_driving_score, '.2f')}); "
                     f"deployed {it.train.best_policy_id} score {_num(it.train.best_score)}")
    lines += ["", *selection_table([offline] + [it.train for it in dagger_outcome.iterations])]
    lines += ["", f"Stage wall times (s): {_stage_times_text(times)}", ""]
    summary.write_text("\n".join(lines))
    outputs["summary"] = str(summary)
    atomic_write_json(out_dir / "dagger.json", dagger_outcome.to_dict())
    return outputs


def selection_table(stages: Sequence[TrainOutcome]) -> list[str]:
    """Markdown lines: per stage the deployed script's objective and validation DS, whether the incumbent
    stayed, and the objective-DS rank correlation over the scripts driven (nothing without selection)."""
    rows = [t for t in stages if t.validation_ds is not None]
    if not rows:
        return []
    gains = {t.min_gain for t in rows if t.min_gain}
    margin = f"; a candidate replaces it only when more than {max(gains):g} DS points better" if gains else ""
    lines = ["Select by driving (validation DS on the held-out routes; the deployed script never drives "
             f"them worse than the one before it{margin}):", "",
             "| stage | deployed | objective | validation DS | incumbent stayed | Spearman (scripts driven) |",
             "|---|---|---|---|---|---|"]
    for t in rows:
        lines.append(f"| {t.name} | {t.best_policy_id} | {_num(t.best_score)} | {t.validation_ds:.1f} | "
                     f"{'yes' if t.kept_incumbent else 'no'} | {_num(t.spearman, '.2f')} ({len(t.candidates or [])}) |")
    return lines + [""]
