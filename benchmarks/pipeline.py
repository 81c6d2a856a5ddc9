"""The LangProp driving pipeline: what an optimizer achieves, at what cost, how fast; several side by side.

Two sets:

``--set demo`` (default): the demo pipeline (generated town, expert collection,
offline training from the naive seed, DAgger with selection by driving on the
held-out routes, evaluation) in a temporary folder.

``--set leaderboard``: the shared leaderboard-1.0 data (``../shared/data`` or
$LANGPROP_SHARED_DATA), stock imports, trained as users are judged: the public
scenario file and leaderboard traffic in every stage (collect, train's
selection, DAgger, evaluation). Collect on the Town01 training routes, train
offline, DAgger, each stage selecting by driving on the first training routes
of two towns it never trains on (Town03 and Town04: a candidate is deployed
only if it is not worse on either town by more than the margin), then evaluate
the deployed script on the devtest routes and the next Town03 training routes,
none of which it trained or was selected on.

``--optimizers`` runs several on the same data, one after the other, and ends
with one line each: DS, LLM calls and tokens (in all, per admitted child, per
DS point gained over the seed script), training wall time. An LLM trains with
few large batches (two per stage); ``files`` is any capable model answering
through an exchange folder (``--llm-exchange``), ``recorded`` the demo's
shipped recording.

Both print, per stage, the objective and validation DS of the deployed script,
the objective-DS rank correlation (Spearman) over the scripts driven, wall
time and policy calls per second in training, the population's occupancy on the
probe scenes (distinct behaviours, niches, scripts per island) and any dead
condition of the deployed script; then the driving scores.

    python benchmarks/pipeline.py [--iterations 2] [--workers N] [--work-dir DIR] [--keep] \\
        [--optimizers mutation,files --llm-exchange DIR]
    python benchmarks/pipeline.py --set leaderboard [--train-routes 10] [--val-routes 3] \\
        [--val-towns Town03,Town04] [--test-routes 17] [--devtest-towns Town01,Town03,Town04,Town06] \\
        [--traffic leaderboard] [--town03-traffic PRESET] [--no-scenarios] [--iterations 3] [--select-top-k 3]

Targets (scenarios and leaderboard traffic): DS >= 60 on the routes it never saw with the mutation
optimizer, >= 90 with a capable LLM through the file exchange in at most 20 calls; the script deployed
after DAgger never worse there than the offline one; >= 4 distinct behaviours on the probe set at the
end of every stage; no deployed script with a dead condition.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run as a script from anywhere


def _shared_data() -> Path:
    env = os.environ.get("LANGPROP_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def _print_stages(trainings: list[Any]) -> None:
    print("per stage (deployed script; validation DS on the selection routes; Spearman over the scripts driven):")
    print(f"  {'stage':<10} {'deployed':<18} {'objective':>9} {'val DS':>7} {'kept':>5} {'Spearman':>8} "
          f"{'driven':>6} {'wall s':>7} {'calls/s':>8}")
    for t in trainings:
        val = "n/a" if t.validation_ds is None else f"{t.validation_ds:.1f}"
        rho = "n/a" if t.spearman is None else f"{t.spearman:.2f}"
        objective = "n/a" if t.best_score is None else f"{t.best_score:.3f}"
        print(f"  {t.name:<10} {t.best_policy_id:<18} {objective:>9} {val:>7} "
              f"{'yes' if t.kept_incumbent else 'no':>5} {rho:>8} {len(t.candidates or []):>6} "
              f"{t.wall_s:>7.1f} {t.calls_per_s:>8.0f}")
    print("per stage, the population on the probe scenes (distinct behaviours, occupied niches, scripts per island) "
          "and the deployed script's dead conditions:")
    for t in trainings:
        occ = t.behaviours or {}
        islands = "/".join(str(v) for _, v in sorted((occ.get("islands") or {}).items()))
        dead = "; ".join(t.deployed_dead_conditions or []) or "none"
        towns = ", ".join(f"{k} {v:.1f}" for k, v in (t.validation_towns or {}).items()) or "n/a"
        print(f"  {t.name:<10} distinct {occ.get('distinct', 'n/a')}, niches {occ.get('n_niches', 'n/a')}, "
              f"islands {islands or 'n/a'}; rejected {t.rejected or {}}; val DS per town: {towns}; "
              f"dead conditions: {dead}")
        for niche, count in (occ.get("niches") or {}).items():
            print(f"    {count} x {niche}")
    scored = [t.validation_ds for t in trainings if t.validation_ds is not None]
    if scored:
        never_falls = all(b >= a - 1e-9 for a, b in zip(scored, scored[1:]))
        print(f"  deployed validation DS never falls: {'yes' if never_falls else 'NO'} "
              f"({' -> '.join(f'{s:.1f}' for s in scored)})")
    pooled = [(r["objective"], r["validation"]) for t in trainings for r in (t.candidates or [])
              if r.get("objective") is not None]
    if len(pooled) >= 2:
        from langprop_core.metrics import spearman

        rho = spearman([p[0] for p in pooled], [p[1] for p in pooled])
        print(f"  rank correlation pooled over stages ({len(pooled)} scripts): "
              f"{'n/a' if rho is None else f'{rho:.2f}'}")


def demo_set(args: argparse.Namespace) -> None:
    from langprop_driving.pipeline.demo import DemoConfig, run_demo
    from sumo_world.scoring.summary import mean_scores

    optimizers = {name: _optimizer(name, args) for name in args.optimizers.split(",") if name}
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="langprop_pipeline_bench_"))
    comparison: list[dict[str, Any]] = []
    try:
        for opt_name, optimizer in optimizers.items():
            config = DemoConfig(work_dir=work_dir / opt_name, dagger_iterations=args.iterations, seed=args.seed,
                                select_top_k=args.select_top_k, **({"workers": args.workers} if args.workers else {}))
            start = time.perf_counter()
            result = run_demo(config, optimizer, echo=lambda _: None, progress=False)
            total = time.perf_counter() - start

            print(f"optimizer {opt_name}: {result.optimizer}")
            print(f"workers: {config.workers}; DAgger iterations: {config.dagger_iterations}; "
                  f"select by driving: top {config.select_top_k}")
            print()
            print(f"{'agent':<16} {'DS train routes':>16} {'DS held-out':>12}")
            ds: dict[str, dict[str, float]] = {}
            for label in result.rows_train:
                train_ds = mean_scores(result.rows_train[label])["score_composed"]
                val_ds = mean_scores(result.rows_val[label])["score_composed"]
                ds[label] = {"train routes": train_ds, "held-out": val_ds}
                print(f"{label:<16} {train_ds:>16.2f} {val_ds:>12.2f}")
            for it in result.dagger.iterations:
                score = "n/a" if it.driving_score is None else f"{it.driving_score:.2f}"
                print(f"DAgger iteration {it.iteration} (beta {it.beta:.2f}): the script that drove "
                      f"({it.driven_policy_id}) scored {score} on the training routes")
            print()
            _print_stages(result.trainings)
            print()
            print("wall time per stage (s):")
            for stage, seconds in result.stage_wall_s.items():
                print(f"  {stage:<28} {seconds:8.1f}")
            print(f"  {'total':<28} {total:8.1f}")
            print()
            train_s = sum(t.wall_s for t in result.trainings)
            comparison.append({"name": opt_name, "usage": _spend(result.trainings), "train_s": train_s,
                               "ds": ds["DAgger-trained"],
                               "gain": ds["DAgger-trained"]["held-out"] - ds["seed script"]["held-out"]})
    finally:
        if args.work_dir is None and not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)
    _print_comparison(comparison, ["train routes", "held-out"])


def _ids(spec: Any, town: str) -> list[str]:
    return [r.route_id for r in spec if r.town == town]


def _town(store: Any, name: str, data: Path) -> None:
    if name in store:
        return
    xodr = data / "carla_towns" / f"{name}.xodr"
    if name == "Town01":
        xodr = data / "carla_town01" / "Town01.xodr"
    started = time.perf_counter()
    if xodr.is_file():
        store.import_opendrive(xodr, name)
    else:  # Town03 ships as a SUMO net only (the import guesses its sidewalks)
        store.import_net(data / "carla_towns" / f"{name}.net.xml", name)
    print(f"imported {name} in {time.perf_counter() - started:.0f} s", flush=True)


def _traffic(spec: str) -> Any:
    """A preset name, or ``NAME:no-pedestrians`` (the preset without walkers)."""
    name, _, option = spec.partition(":")
    if not option:
        return name
    if option != "no-pedestrians":
        raise SystemExit(f"traffic {spec!r}: the only option is ':no-pedestrians'")
    from sumo_world.traffic.demand import TrafficConfig

    return TrafficConfig.for_density(name, pedestrians=0)


def _optimizer(name: str, args: argparse.Namespace) -> Any:
    """The optimizer config for ``name``: mutation, files (--llm-exchange), openai (the environment's
    endpoint) or recorded (the demo's shipped recording, the mutation baseline where it misses)."""
    from langprop_core.llm.factory import OptimizerConfig
    from langprop_driving.pipeline.recorded_run import replay_config, shipped_demo_recording

    if name == "mutation":
        return OptimizerConfig(kind="mutation", seed=args.seed)
    if name == "files":
        if args.llm_exchange is None:
            raise SystemExit("--optimizers files needs --llm-exchange DIR")
        return OptimizerConfig.from_env(kind="files", exchange_dir=args.llm_exchange / args.set)
    if name == "openai":
        return OptimizerConfig.from_env(kind="openai")
    if name == "recorded":
        recording = shipped_demo_recording()
        if recording is None:
            raise SystemExit("--optimizers recorded: this package ships no recorded run")
        return replay_config(recording, OptimizerConfig())
    raise SystemExit(f"--optimizers: unknown optimizer {name!r} (mutation, files, openai, recorded)")


def _spend(trainings: list[Any]) -> Any:
    from langprop_core.llm.usage import LLMUsage

    return LLMUsage.total([t.llm for t in trainings if t.llm])


def _print_comparison(rows: list[dict[str, Any]], sets: list[str]) -> None:
    """One line per optimizer: DS per evaluation set, LLM calls and tokens (in total, per admitted child,
    per DS point gained over the seed script on all unseen routes), training wall time."""
    print()
    print("optimizers side by side (DS of the deployed script; tokens estimated where the LLM answers "
          "through files):")
    head = f"{'optimizer':<10} " + " ".join(f"{name + ' DS':>16}" for name in sets)
    print(head + f" {'calls':>6} {'tokens in':>10} {'out':>8} {'in/child':>9} {'out/child':>9} "
                 f"{'tokens/DS pt':>12} {'train s':>8}")
    for row in rows:
        usage = row["usage"]
        each = usage.per_child()
        gain = row["gain"]
        per_point = f"{usage.tokens / gain:,.0f}" if usage.calls and gain > 0 else "n/a"
        cells = " ".join(f"{row['ds'].get(name, float('nan')):>16.1f}" for name in sets)
        print(f"{row['name']:<10} {cells} {usage.calls:>6} {usage.prompt_tokens:>10} {usage.completion_tokens:>8} "
              f"{_cell(each['prompt_tokens_per_child']):>9} {_cell(each['completion_tokens_per_child']):>9} "
              f"{per_point:>12} {row['train_s']:>8.0f}")


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def leaderboard_set(args: argparse.Namespace) -> None:
    from driving.dataset import SceneDataset
    from langprop_driving.model.seed_policy import read_seed_source, seed_path
    from langprop_driving.pipeline.collect import collect
    from langprop_driving.pipeline.config import DaggerConfig, TrainConfig, WorkDir, WorldConfig
    from langprop_driving.pipeline.dagger import dagger
    from langprop_driving.pipeline.evaluate import evaluate_agent
    from langprop_driving.pipeline.rollouts import raise_on_failed_routes, route_records_of
    from langprop_driving.pipeline.train import train_stage
    from langprop_driving.pipeline.validation import ValidationConfig
    from sumo_world.routes.files import read_routes
    from sumo_world.towns.store import TownStore

    data = args.data or _shared_data()
    training_routes = data / "leaderboard1" / "routes_training.xml"
    devtest_routes = data / "leaderboard1" / "routes_devtest.xml"
    training, devtest = read_routes(training_routes), read_routes(devtest_routes)
    train_ids = _ids(training, "Town01")[:args.train_routes]
    val_towns = [t for t in args.val_towns.split(",") if t]
    if "Town01" in val_towns or not val_towns:
        raise SystemExit(f"--val-towns {args.val_towns!r}: name towns other than the training town Town01")
    val_ids = [r for town in val_towns for r in _ids(training, town)[:args.val_routes]]
    town03 = _ids(training, "Town03")
    skip = args.val_routes if "Town03" in val_towns else 0
    test_ids = town03[skip:][:args.test_routes]
    devtest_towns = [t for t in args.devtest_towns.split(",") if t]
    scenarios = None if args.no_scenarios else (data / "leaderboard1" / "all_towns_traffic_scenarios_public.json")
    optimizers = {name: _optimizer(name, args) for name in args.optimizers.split(",") if name}
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="langprop_leaderboard_bench_"))
    collected_work = WorkDir(work_dir / "collect")
    towns_dir = work_dir / "towns"
    store = TownStore(towns_dir)
    for name in sorted({"Town01", "Town03", *val_towns, *devtest_towns}):
        _town(store, name, data)
    workers = args.workers or max(1, min(4, os.cpu_count() or 1))

    def world(town: str, traffic: str) -> WorldConfig:
        return WorldConfig(town=town, towns_dir=towns_dir, traffic=traffic, seed=args.seed, workers=workers,
                           timeout_factor=args.timeout_factor, blocked_time_s=args.blocked_time_s,
                           scenarios=scenarios)

    town03_traffic = _traffic(args.town03_traffic or args.traffic)
    train_world = world("Town01", _traffic(args.traffic))
    # the validator runs each route in its own town (RoadValidator)
    selection = ValidationConfig(world=world(val_towns[0], town03_traffic), routes=training_routes,
                                 route_ids=tuple(val_ids), top_k=args.select_top_k, min_gain=args.select_min_gain)
    print(f"work directory: {work_dir}")
    print(f"training: Town01 routes {','.join(train_ids)} ({args.traffic} traffic); selection: "
          f"{'/'.join(val_towns)} routes {','.join(val_ids)} ({town03_traffic} traffic), top {args.select_top_k}; "
          f"scenarios: {scenarios or 'none'}; test: devtest "
          f"{','.join(devtest_towns) or 'none'} and Town03 routes {','.join(test_ids) or 'none'}; "
          f"{args.iterations} DAgger iterations; workers {workers}; optimizers {', '.join(optimizers)}", flush=True)
    times: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        started = time.perf_counter()
        out = fn()
        times[name] = time.perf_counter() - started
        print(f"  {name} done in {times[name]:.0f} s", flush=True)
        return out

    # one collection for every optimizer: each trains on a copy (DAgger adds its rollouts to its own)
    collected = timed("collect", lambda: collect(collected_work, train_world, training_routes, train_ids,
                                                 progress=False))
    raise_on_failed_routes(collected, "collect")
    seed_file = seed_path("naive")
    sets: dict[str, dict[str, list[float]]] = {}
    evaluated: set[str] = set()

    def evaluate(label: str, agent: str, tag: str) -> None:
        for town in devtest_towns:
            ids = _ids(devtest, town)
            traffic = town03_traffic if town == "Town03" else _traffic(args.traffic)
            res = timed(f"evaluate {label} devtest {town}", lambda: evaluate_agent(
                agent, world(town, traffic), devtest_routes, work_dir / "eval" / tag / f"devtest_{town}.json",
                route_ids=ids, progress=False))
            sets.setdefault("devtest", {}).setdefault(label, []).extend(
                float(r["scores"]["score_composed"]) for r in route_records_of(res))
        if test_ids:
            res = timed(f"evaluate {label} Town03", lambda: evaluate_agent(
                agent, world("Town03", town03_traffic), training_routes,
                work_dir / "eval" / tag / "town03.json", route_ids=test_ids, progress=False))
            sets.setdefault("Town03 unseen", {}).setdefault(label, []).extend(
                float(r["scores"]["score_composed"]) for r in route_records_of(res))

    if "seed" in args.eval_agents.split(","):
        evaluate("seed script", str(seed_file), "seed")
    comparison: list[dict[str, Any]] = []
    for opt_name, optimizer in optimizers.items():
        work = WorkDir(work_dir / opt_name)
        if not work.data.exists():
            shutil.copytree(collected_work.data, work.data)
        llm = opt_name != "mutation"
        train_config = (TrainConfig(epochs=args.llm_epochs, batch_size=args.llm_batch_size, n_responses=1, top_k=2,
                                    max_records=args.llm_max_records, progress=False, seed=args.seed)
                        if llm else TrainConfig(epochs=args.epochs, max_records=args.max_records, progress=False,
                                                seed=args.seed))
        started = time.perf_counter()
        offline = timed(f"{opt_name}: train-offline", lambda: train_stage(
            work, "offline", SceneDataset(work.data), train_ids, None, optimizer, train_config,
            seed_sources=[read_seed_source(seed_file)], selection=selection, incumbent=str(seed_file),
            progress=False))
        outcome = timed(f"{opt_name}: dagger", lambda: dagger(
            work, train_world, training_routes, train_ids, None, optimizer, train_config,
            DaggerConfig(iterations=args.iterations, beta=args.beta, expert_share=args.expert_share),
            offline.checkpoint, progress=False, selection=selection))
        train_s = time.perf_counter() - started
        trainings = [offline] + [it.train for it in outcome.iterations]
        final = outcome.final_checkpoint or offline.checkpoint
        if "offline" in args.eval_agents.split(","):
            evaluate(f"{opt_name} offline", offline.checkpoint, f"{opt_name}_offline")
        evaluate(f"{opt_name} final", final, f"{opt_name}_final")
        evaluated.add(opt_name)
        print()
        print(f"optimizer {opt_name}: {offline.optimizer}")
        _print_stages(trainings)
        for it in outcome.iterations:
            score = "n/a" if it.driving_score is None else f"{it.driving_score:.1f}"
            print(f"  DAgger {it.iteration}: beta {it.beta:.2f}, expert drove {len(it.expert_routes)} route(s); "
                  f"the driving script scored {score} on the Town01 routes")
        comparison.append({"name": opt_name, "label": f"{opt_name} final", "usage": _spend(trainings),
                           "train_s": train_s})

    print()
    labels = [label for label in next(iter(sets.values()), {})]
    print(f"{'agent':<18} " + " ".join(f"{name + ' DS':>18}" for name in sets) + f" {'all unseen DS':>14}")
    pooled_of: dict[str, float] = {}
    for label in labels:
        row = [sets[name].get(label, []) for name in sets]
        pooled = [s for scores in row for s in scores]
        pooled_of[label] = statistics.fmean(pooled) if pooled else float("nan")
        print(f"{label:<18} " + " ".join(f"{statistics.fmean(s) if s else float('nan'):>18.1f}" for s in row)
              + f" {pooled_of[label]:>14.1f}")
    for opt_name in evaluated:
        off, fin = f"{opt_name} offline", f"{opt_name} final"
        worse = [name for name in sets if sets[name].get(fin) and sets[name].get(off)
                 and statistics.fmean(sets[name][fin]) < statistics.fmean(sets[name][off]) - 1e-9]
        if any(sets[name].get(off) for name in sets):
            print(f"{opt_name}: final never worse than offline on unseen routes: "
                  f"{'yes' if not worse else 'NO (' + ', '.join(worse) + ')'}")
    seed_ds = pooled_of.get("seed script", float("nan"))
    for row in comparison:
        row["ds"] = {name: statistics.fmean(sets[name][row["label"]]) for name in sets if sets[name].get(row["label"])}
        row["ds"]["all unseen"] = pooled_of[row["label"]]
        row["gain"] = pooled_of[row["label"]] - seed_ds if seed_ds == seed_ds else float("nan")
    _print_comparison(comparison, [*sets, "all unseen"])
    print()
    print("wall time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))
    if args.work_dir is None and not args.keep:
        shutil.rmtree(work_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("demo", "leaderboard"), default="demo")
    parser.add_argument("--iterations", type=int, default=None, help="DAgger iterations (demo 2, leaderboard 3)")
    parser.add_argument("--workers", type=int, default=None, help="routes in parallel (default: min(4, cores))")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep everything here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--select-top-k", type=int, default=None, help="scripts driven per stage (demo 2, "
                                                                       "leaderboard 3)")
    from langprop_driving.pipeline.validation import ValidationConfig

    parser.add_argument("--select-min-gain", type=float, default=ValidationConfig.min_gain,
                        help="DS points by which a candidate must beat the deployed script (leaderboard set)")
    lb = parser.add_argument_group("leaderboard set")
    lb.add_argument("--data", type=Path, default=None, help="shared data folder (default ../shared/data)")
    lb.add_argument("--train-routes", type=int, default=10, help="first N Town01 training routes")
    lb.add_argument("--val-routes", type=int, default=3,
                    help="the first N training routes of each --val-towns town select by driving")
    lb.add_argument("--val-towns", default="Town03,Town04",
                    help="towns (not Town01) whose training routes select by driving (comma-separated)")
    lb.add_argument("--no-scenarios", action="store_true",
                    help="drop the public scenario file (default: every stage runs its scenarios)")
    lb.add_argument("--test-routes", type=int, default=17, help="N of the remaining Town03 routes evaluate")
    lb.add_argument("--devtest-towns", default="Town01,Town03,Town04,Town06",
                    help="devtest routes of these towns evaluate (comma-separated; '' for none)")
    lb.add_argument("--traffic", default="leaderboard",
                    help="traffic preset (none, light, default, busy; NAME:no-pedestrians drops walkers)")
    lb.add_argument("--town03-traffic", default=None, help="Town03's traffic (default: --traffic)")
    lb.add_argument("--eval-agents", default="seed,offline,final",
                    help="which scripts evaluate on the unseen routes (comma-separated: seed, offline, final)")
    lb.add_argument("--epochs", type=int, default=2)
    lb.add_argument("--max-records", type=int, default=3000)
    lb.add_argument("--beta", type=float, default=0.0, help="DAgger: chance the expert drives a route")
    lb.add_argument("--expert-share", type=float, default=None, help="DAgger: share of expert offline records")
    lb.add_argument("--timeout-factor", type=float, default=None, help="route time limit factor")
    lb.add_argument("--blocked-time-s", type=float, default=None, help="seconds standing before 'blocked'")
    lb.add_argument("--llm-epochs", type=int, default=1, help="training epochs with an LLM optimizer")
    lb.add_argument("--llm-batch-size", type=int, default=500, help="batch size with an LLM optimizer")
    lb.add_argument("--llm-max-records", type=int, default=1000,
                    help="records per stage with an LLM optimizer (two batches: about 15 calls in all)")
    parser.add_argument("--optimizers", default="mutation",
                        help="comma-separated, run one after the other on the same data and printed side by side: "
                             "mutation, files (an LLM answering through --llm-exchange), openai (the endpoint of "
                             "the environment), recorded (the demo's shipped recording; demo set)")
    parser.add_argument("--llm-exchange", type=Path, default=None,
                        help="exchange folder of the files optimizer (a subfolder per set)")
    args = parser.parse_args()
    if args.set == "demo":
        args.iterations = 2 if args.iterations is None else args.iterations
        args.select_top_k = 2 if args.select_top_k is None else args.select_top_k
        demo_set(args)
    else:
        args.iterations = 3 if args.iterations is None else args.iterations
        args.select_top_k = 3 if args.select_top_k is None else args.select_top_k
        leaderboard_set(args)


if __name__ == "__main__":
    main()
