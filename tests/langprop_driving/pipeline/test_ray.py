"""The Ray backend on a real local Ray cluster (127.0.0.1, 2 CPUs): the same results as the local backend.

evaluate (two short routes) and one DAgger iteration run through Ray and
locally with the same seeds; the results files and the datasets must agree. A
task whose worker process dies is retried a bounded number of times, then its
route is a failure; a worker that cannot see the shared folder fails at once.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the Ray backend needs ray (in the test extra: pip install -e '.[test]')")

from click.testing import CliRunner  # noqa: E402

from driving.dataset import SceneDataset  # noqa: E402
from langprop_core.llm.factory import OptimizerConfig  # noqa: E402
from langprop_driving.cli import main  # noqa: E402
from langprop_driving.pipeline.config import DaggerConfig, TrainConfig, WorkDir, WorldConfig  # noqa: E402
from langprop_driving.pipeline.dagger import dagger  # noqa: E402
from langprop_driving.pipeline.demo import DemoConfig, prepare_town_and_routes  # noqa: E402
from langprop_driving.pipeline.parallel import RayOptions, SharedFilesystemError, gather_ray, submit_ray  # noqa: E402

pytestmark = pytest.mark.slow

ROUTES = ["1", "2"]
# fields that measure this machine's wall clock, not the drive
_WALL_CLOCK_KEYS = {"duration_system", "duration_system_s", "system_duration", "wall_s", "policy_slowest_call_s"}


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster on 127.0.0.1 with 2 CPUs and one CARLA server declared, shut down after the module."""
    ray.init(address="local", num_cpus=2, resources={"carla_server": 1}, include_dashboard=False,
             log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture
def ray_tasks(monkeypatch):
    """Counts the tasks the code under test submits to Ray."""
    from langprop_driving.pipeline import parallel

    submitted = []
    real = parallel.submit_ray

    def counting(calls, options, workers):
        submitted.extend(calls)
        return real(calls, options, workers)
    monkeypatch.setattr(parallel, "submit_ray", counting)
    return submitted


@pytest.fixture(scope="module")
def town(tmp_path_factory):
    work = WorkDir(tmp_path_factory.mktemp("town"))
    towns_dir, routes, _, _ = prepare_town_and_routes(work, DemoConfig(work_dir=work.root))
    return towns_dir, routes


def drive_only(value):
    """A results document without the wall-clock figures (which no two runs share)."""
    if isinstance(value, dict):
        return {k: drive_only(v) for k, v in value.items() if k not in _WALL_CLOCK_KEYS}
    if isinstance(value, list):
        return [drive_only(v) for v in value]
    return value


def dataset_digest(root: Path) -> str:
    """sha256 of every record (scene, label, meta) of the dataset, in order."""
    digest = hashlib.sha256()
    for record in SceneDataset(root):
        digest.update(json.dumps(drive_only(record.to_jsonable()), sort_keys=True).encode())
    return digest.hexdigest()


def test_evaluate_on_ray_writes_the_local_results(ray_cluster, ray_tasks, town, tmp_path):
    towns_dir, routes = town
    args = ["evaluate", "--town", DemoConfig().town, "--routes", str(routes), "--agent", "expert",
            "--towns-dir", str(towns_dir), "--traffic", "light", "--seed", "3", "--no-progress",
            "--route-id", ROUTES[0], "--route-id", ROUTES[1], "--workers", "2"]
    local = CliRunner().invoke(main, [*args, "--results", str(tmp_path / "local.json")])
    assert local.exit_code == 0, local.output
    on_ray = CliRunner().invoke(main, [*args, "--results", str(tmp_path / "ray.json"), "--backend", "ray"])
    assert on_ray.exit_code == 0, on_ray.output
    assert len(ray_tasks) == 2  # one task per route
    local_doc = json.loads((tmp_path / "local.json").read_text())
    ray_doc = json.loads((tmp_path / "ray.json").read_text())
    assert [r["route_id"] for r in ray_doc["_checkpoint"]["records"]] == \
        [r["route_id"] for r in local_doc["_checkpoint"]["records"]]
    assert drive_only(ray_doc) == drive_only(local_doc)


def test_one_dagger_iteration_on_ray_matches_local(ray_cluster, ray_tasks, town, tmp_path):
    towns_dir, routes = town
    seed = tmp_path / "seed.py"
    seed.write_text("def predict_speed_and_steering(scene):\n    return 'MOVE', 0.0\n")
    train = TrainConfig(epochs=1, batch_size=32, n_responses=1, top_k=1, record_stride=10, max_records=200,
                        progress=False, sandbox_mode="inprocess")
    outcomes, digests = {}, {}
    for backend in ("local", "ray"):
        world = WorldConfig(town=DemoConfig().town, towns_dir=towns_dir, traffic="light", seed=1, workers=2,
                            backend=backend, blocked_time_s=20.0)
        work = WorkDir(tmp_path / backend)
        outcomes[backend] = dagger(work, world, routes, ROUTES, None, OptimizerConfig(kind="mutation", seed=0),
                                   train, DaggerConfig(iterations=1), seed, progress=False)
        digests[backend] = dataset_digest(work.data)
    assert len(ray_tasks) == len(ROUTES)  # the ray run's rollouts, one task per route
    local, on_ray = outcomes["local"].iterations[0], outcomes["ray"].iterations[0]
    assert on_ray.n_new_records == local.n_new_records > 0
    assert digests["ray"] == digests["local"]
    assert drive_only(on_ray.route_records) == drive_only(local.route_records)
    assert on_ray.driving_score == local.driving_score


def run_on_ray(calls, options=RayOptions(), workers=2):
    """Each ``(fn, kwargs, paths)`` as a Ray task, as the route executor submits routes; results in call order
    (a failed task: ("failed", why))."""
    out = {}
    session, refs = submit_ray(calls, options, workers)
    gather_ray(session, refs, [str(i) for i in range(len(calls))], options, out.__setitem__,
               lambda i, text: out.__setitem__(i, ("failed", text)))
    return [out[i] for i in range(len(calls))]


def die_until(counter: str, deaths: int) -> str:
    """A job whose worker process dies on its first ``deaths`` attempts (counted in the file ``counter``)."""
    path = Path(counter)
    attempt = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(attempt))
    if attempt <= deaths:
        os._exit(1)  # the worker process itself goes away, as an OOM kill would take it
    return f"ok after {attempt} attempt(s)"


def test_a_dying_worker_is_retried_then_its_job_fails_alone(ray_cluster, tmp_path):
    calls = [(die_until, {"counter": str(tmp_path / "a"), "deaths": 1}, ()),
             (die_until, {"counter": str(tmp_path / "b"), "deaths": 99}, ()),
             (die_until, {"counter": str(tmp_path / "c"), "deaths": 0}, ())]
    results = run_on_ray(calls, RayOptions(max_retries=1))
    assert results[0] == "ok after 2 attempt(s)" and results[2] == "ok after 1 attempt(s)"
    assert results[1][0] == "failed" and "died 2 time(s)" in results[1][1]
    assert (tmp_path / "b").read_text() == "2"  # 1 try + 1 retry, no more


def test_a_worker_that_cannot_see_the_shared_folder_fails_at_once(ray_cluster, tmp_path):
    calls = [(die_until, {"counter": str(tmp_path / str(i)), "deaths": 0}, (str(tmp_path / "not-mounted-here"),))
             for i in range(3)]
    with pytest.raises(SharedFilesystemError, match=r"cannot see .*not-mounted-here.*every Ray node mounts"):
        run_on_ray(calls)


def test_tasks_take_the_declared_resource_and_an_undeclared_one_is_an_error(ray_cluster, tmp_path):
    calls = [(die_until, {"counter": str(tmp_path / str(i)), "deaths": 0}, ()) for i in range(2)]
    carla = RayOptions(resources=(("carla_server", 1.0),))  # one server: the two tasks run one after the other
    assert run_on_ray(calls, carla) == ["ok after 1 attempt(s)"] * 2
    with pytest.raises(ValueError, match=r"declares no resource 'tpu_server'.*ray start --resources"):
        run_on_ray(calls, RayOptions(resources=(("tpu_server", 1.0),)))
