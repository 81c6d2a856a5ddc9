"""Does the driving objective predict the road? Spearman's rank correlation, before and after a revision.

Reads a pipeline work directory (``benchmarks/pipeline.py --keep``, ``langprop demo``): every
script that select-by-driving drove (``validate/<stage>/scripts``) with its validation driving
score, and the aggregate dataset. Each script is scored by each objective variant on the same
training records (thinned and infraction-weighted as training does), and the rank correlation
between objective and validation DS is printed per variant:

- ``plain``: the objective before issue 12 (``scene_costs=False``: imitation + the infraction term
  of rollouts);
- ``scene costs``: a miss of a red light, stop sign, lead vehicle or pedestrian scores like the
  infraction (``standstill_cost=0``);
- ``+standstill C, no waits``: and standing where the expert drives on scores ``-C`` whatever the
  scene holds;
- ``+standstill C, lights 50 m``: the same, except that stopping for a red light or a stop sign
  within 50 m is graded by imitation (about the first revision of issue 12);
- ``+standstill C``: the same, except where the scene gives a reason to wait (a red light within
  50 m, a stop sign whose zone the car is in, a car or walker close ahead in its path), whose
  stop scores ``wait_score`` (the default objective has C = 1).

    python benchmarks/objective_correlation.py WORK_DIR [--route-id 0 --route-id 1 ...] [--max-records 3000]
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run as a script from anywhere


def driven_scripts(work_dir: Path) -> dict[str, tuple[str, float]]:
    """{policy id: (source, mean validation DS)} of every script validated in ``work_dir``."""
    from sumo_world.scoring.results import load_results

    from langprop_driving.pipeline.rollouts import route_records_of

    out: dict[str, tuple[str, float]] = {}
    for script in sorted((work_dir / "validate").glob("*/scripts/*.py")):
        results = sorted((script.parent.parent / "results" / script.stem).glob("*.json"))
        scores = [float(r["scores"]["score_composed"]) for f in results for r in route_records_of(load_results(f))]
        if scores and script.stem not in out:
            out[script.stem] = (script.read_text(encoding="utf-8"), statistics.fmean(scores))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--route-id", dest="route_ids", action="append", default=None,
                        help="training routes whose records score the scripts (default: all)")
    parser.add_argument("--max-records", type=int, default=3000)
    parser.add_argument("--record-stride", type=int, default=5)
    parser.add_argument("--standstill-cost", dest="standstill_costs", type=float, action="append", default=None,
                        help="also score with scene costs and this standstill cost (repeatable; default 1, the objective's)")
    parser.add_argument("--expert-only", action="store_true", help="score on the expert's offline records only")
    args = parser.parse_args()

    from driving.dataset import SceneDataset
    from langprop_core.metrics import spearman
    from langprop_core.policy import Policy
    from langprop_core.sandbox import SandboxConfig
    from langprop_core.trainer import Trainer, TrainerConfig
    from langprop_core.llm.mutation import MutationOptimizer

    from langprop_driving.model.module import make_driving_module
    from langprop_driving.model.seed_policy import FUNCTION_NAME
    from langprop_driving.model.task import driving_task
    from langprop_driving.model.objective import DrivingObjective, infraction_weighted
    from langprop_driving.pipeline.train import select_records

    scripts = driven_scripts(args.work_dir)
    if len(scripts) < 3:
        raise SystemExit(f"{args.work_dir}: {len(scripts)} validated script(s); need 3 or more")
    dataset = SceneDataset(args.work_dir / "data")
    view = dataset.filter(route_ids=args.route_ids, labelled=True) if args.route_ids else dataset.filter(labelled=True)
    args.standstill_costs = args.standstill_costs or [DrivingObjective.standstill_cost]
    if args.expert_only:
        view = [r for r in view if r.meta.get("stage") == "collect"]
    base = DrivingObjective()
    records = select_records(view, args.record_stride, args.max_records, base.horizon_s)
    data = infraction_weighted(records, 3.0, base.horizon_s, 0, base.standstill_horizon_s)
    ids = sorted(scripts)
    ds = [scripts[i][1] for i in ids]
    variants = {"plain": DrivingObjective(scene_costs=False),
                "scene costs": DrivingObjective(scene_costs=True, standstill_cost=0.0)}
    never = -math.inf  # a reach no distance is within
    for cost in args.standstill_costs:
        variants[f"+standstill {cost:g}, no waits"] = DrivingObjective(
            standstill_cost=cost, early_stop_range_m=never, stop_zone_m=never, wait_range_m=never)
        variants[f"+standstill {cost:g}, lights 50 m"] = DrivingObjective(
            standstill_cost=cost, stop_zone_m=50.0, wait_range_m=never, wait_score=0.0)
        variants[f"+standstill {cost:g}"] = DrivingObjective(standstill_cost=cost)
    objective: dict[str, dict[str, float]] = {}
    for name, variant in variants.items():
        module = make_driving_module()
        module.load_population([Policy.from_source(scripts[i][0], FUNCTION_NAME) for i in ids])
        trainer = Trainer(MutationOptimizer(), TrainerConfig(progress=False, sandbox=SandboxConfig(mode="inprocess")),
                          run_dir=args.work_dir / "objective_correlation")
        task = driving_task(variant, exception_score=-max(1.0, variant.repeat_penalty))
        objective[name] = trainer.evaluate(module, task, data)
    print(f"{len(ids)} scripts driven on the validation routes; {len(data)} training records "
          f"({len(records)} distinct)")
    width = max(len(n) for n in variants)
    print(f"{'script':<18} {'val DS':>7} " + " ".join(f"{n:>{width}}" for n in variants))
    for i, score in zip(ids, ds):
        print(f"{i:<18} {score:>7.1f} " + " ".join(f"{objective[n][i]:>{width}.4f}" for n in variants))
    for name in variants:
        rho = spearman([objective[name][i] for i in ids], ds)
        print(f"Spearman(objective '{name}', validation DS) = {'n/a' if rho is None else f'{rho:.3f}'}")


if __name__ == "__main__":
    main()
