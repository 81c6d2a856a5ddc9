"""The Ray backend against the local one: wall time of the same route set, and Ray's overhead per task.

The demo's generated town and routes; the expert drives every route with light
traffic, once with the local backend (2 worker processes) and once on a local
Ray cluster with 2 CPUs (one task per route). Then ``--tasks`` no-op jobs go
through the route executor's ``submit_ray``/``gather_ray`` on the same cluster: their wall time per task is the
scheduling overhead a route pays on Ray. Prints the figures; the results of the
two runs are compared (they must be equal but for wall-clock fields).

    python benchmarks/ray_backend.py [--routes 6] [--tasks 100]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

_WALL = {"duration_system", "duration_system_s", "system_duration", "wall_s", "policy_slowest_call_s"}


def _drive_only(value):
    if isinstance(value, dict):
        return {k: _drive_only(v) for k, v in value.items() if k not in _WALL}
    if isinstance(value, list):
        return [_drive_only(v) for v in value]
    return value


def _on_ray(calls: list, submit_ray, gather_ray, options) -> None:
    """The calls as Ray tasks, submitted and gathered as the route executor does with routes."""
    session, refs = submit_ray(calls, options, 2)
    gather_ray(session, refs, [str(i) for i in range(len(calls))], options, lambda i, r: None, lambda i, t: None)


def _noop(i: int) -> int:
    return i


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=6, help="routes of the demo's route set to drive")
    parser.add_argument("--tasks", type=int, default=100, help="no-op tasks for the overhead figure")
    args = parser.parse_args()

    import ray

    from langprop_driving.pipeline.config import WorkDir, WorldConfig
    from langprop_driving.pipeline.demo import DemoConfig, prepare_town_and_routes
    from langprop_driving.pipeline.evaluate import evaluate_agent
    from langprop_driving.pipeline.parallel import RayOptions, gather_ray, submit_ray
    from sumo_world.routes.files import read_routes

    with tempfile.TemporaryDirectory(prefix="ray_bench_") as tmp:
        work = WorkDir(Path(tmp))
        towns_dir, routes, _, _ = prepare_town_and_routes(work, DemoConfig(work_dir=work.root))
        route_ids = [str(r.route_id) for r in read_routes(routes)][:args.routes]
        walls, docs = {}, {}
        started = time.perf_counter()
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        init_s = time.perf_counter() - started
        try:
            for backend in ("local", "ray"):
                world = WorldConfig(town=DemoConfig().town, towns_dir=towns_dir, traffic="light", seed=0,
                                    workers=2, backend=backend)
                started = time.perf_counter()
                docs[backend] = evaluate_agent("expert", world, routes, Path(tmp) / f"{backend}.json",
                                               route_ids=route_ids, progress=False)
                walls[backend] = time.perf_counter() - started
            _on_ray([(_noop, {"i": 0}, ())] * 4, submit_ray, gather_ray, RayOptions())
            started = time.perf_counter()
            _on_ray([(_noop, {"i": i}, ()) for i in range(args.tasks)], submit_ray, gather_ray, RayOptions())
            per_task_ms = (time.perf_counter() - started) / args.tasks * 1000
        finally:
            ray.shutdown()
    same = _drive_only(docs["local"]) == _drive_only(docs["ray"])
    n = len(route_ids)
    print(f"{n} routes, expert, light traffic, 2 workers:")
    print(f"  local backend (2 processes): {walls['local']:.1f} s")
    print(f"  Ray, local cluster (2 CPUs): {walls['ray']:.1f} s (cluster start {init_s:.1f} s not included); "
          f"{(walls['ray'] - walls['local']) / n * 1000:+.0f} ms per route against local")
    print(f"  Ray scheduling overhead: {per_task_ms:.1f} ms per task ({args.tasks} no-op tasks, 2 CPUs)")
    print(f"  results equal but for wall-clock fields: {same}")
    if not same:
        print(json.dumps({"local": _drive_only(docs["local"]), "ray": _drive_only(docs["ray"])})[:2000])


if __name__ == "__main__":
    main()
