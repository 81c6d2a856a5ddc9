"""The small LangProp driving pipeline with the `mutation` optimizer (no LLM): what it achieves, how fast.

Runs the demo pipeline (generated town, expert collection, offline training
from the naive seed, DAgger, evaluation) in a temporary folder, then prints:

- the driving score of the seed script vs the trained scripts (training and held-out routes);
- the wall time of each stage;
- policy calls per second during training (scripts x records scored per second).

    python benchmarks/pipeline.py [--iterations 2] [--workers N] [--work-dir DIR] [--keep]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2, help="DAgger iterations")
    parser.add_argument("--workers", type=int, default=None, help="routes in parallel (default: min(4, cores))")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep everything here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work dir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from langprop_core.llm.factory import OptimizerConfig
    from langprop_driving.pipeline.demo import DemoConfig, run_demo
    from sumo_world.summary import mean_scores

    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="langprop_pipeline_bench_"))
    config = DemoConfig(work_dir=work_dir, dagger_iterations=args.iterations, seed=args.seed,
                        **({"workers": args.workers} if args.workers else {}))
    start = time.perf_counter()
    try:
        result = run_demo(config, OptimizerConfig(kind="mutation", seed=args.seed), echo=lambda _: None,
                          progress=False)
    finally:
        if args.work_dir is None and not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)
    total = time.perf_counter() - start

    print(f"optimizer: {result.optimizer}")
    print(f"workers: {config.workers}; DAgger iterations: {config.dagger_iterations}")
    print()
    print(f"{'agent':<16} {'DS train routes':>16} {'DS held-out':>12}")
    for label in result.rows_train:
        train_ds = mean_scores(result.rows_train[label])["score_composed"]
        val_ds = mean_scores(result.rows_val[label])["score_composed"]
        print(f"{label:<16} {train_ds:>16.2f} {val_ds:>12.2f}")
    for it in result.dagger.iterations:
        score = "n/a" if it.driving_score is None else f"{it.driving_score:.2f}"
        print(f"DAgger iteration {it.iteration}: the script that drove ({it.driven_policy_id}) scored {score} "
              f"on the training routes")
    print()
    print("wall time per stage (s):")
    for stage, seconds in result.stage_wall_s.items():
        print(f"  {stage:<28} {seconds:8.1f}")
    print(f"  {'total':<28} {total:8.1f}")
    print()
    print("training (policy calls = scripts x records scored):")
    for outcome in result.trainings:
        print(f"  {outcome.name:<10} {outcome.policy_calls:8d} calls in {outcome.wall_s:6.1f} s = "
              f"{outcome.calls_per_s:8.0f} calls/s; best score {outcome.best_score:.3f}")


if __name__ == "__main__":
    main()
