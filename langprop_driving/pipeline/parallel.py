"""Run independent jobs (route rollouts) in parallel: local processes, or a Ray cluster.

A job is a module-level function and its keyword arguments, so it can travel to
another process or machine. Local runs use threads: a job's heavy work (a
route) already runs in a child process of the embedded world's runner (libsumo
holds one simulation per process), so a thread only waits on it, and nothing
needs pickling or a ``__main__`` guard. With ``backend="ray"`` every job is a
Ray task with one CPU (plus any custom resource, e.g. ``carla_server``), which
is one embedded world (or one CARLA server) per worker. Ray is optional and
imported only when asked for. Its workers run each job from the driver's
folder and must see the same paths (a shared filesystem for the work directory
and the towns); one that does not fails the call at once, saying so. A task
whose worker process dies is retried ``RayOptions.max_retries`` times, then
its job fails like any other.

Results come back in job order. A job that raises does not stop the others;
its exception is returned in its place (the caller decides what a failed route
means).
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

__all__ = ["Job", "JobFailed", "run_jobs", "RayOptions", "SharedFilesystemError", "parse_resources",
           "ray_route_executor", "ensure_ray"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """``fn(**kwargs)``; ``name`` labels it in progress output and errors."""

    name: str
    fn: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: paths (relative to the current folder, or absolute) the job reads or writes; a Ray worker checks
    #: it sees them before it runs the job
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobFailed:
    """What a failed job returns in its place."""

    name: str
    error: str


def _call(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    return fn(**kwargs)


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="job", disable=not enabled, leave=False)


def _run_local(jobs: Sequence[Job], workers: int, desc: str, progress: bool) -> list[Any]:
    results: list[Any] = [None] * len(jobs)
    if workers <= 1 or len(jobs) <= 1:
        # in this process: simpler to debug, and the runner already isolates each world
        with _progress(len(jobs), desc, progress) as bar:
            for i, job in enumerate(jobs):
                try:
                    results[i] = job.fn(**job.kwargs)
                except Exception as exc:  # a failed route must not stop the others
                    log.exception("job %s failed", job.name)
                    results[i] = JobFailed(job.name, f"{type(exc).__name__}: {exc}")
                bar.update(1)
        return results
    with ThreadPoolExecutor(max_workers=min(workers, len(jobs)), thread_name_prefix="langprop-job") as pool, \
            _progress(len(jobs), desc, progress) as bar:
        futures = {pool.submit(_call, job.fn, job.kwargs): i for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            i = futures[future]
            try:
                results[i] = future.result()
            except Exception as exc:
                log.error("job %s failed: %s", jobs[i].name, exc)
                results[i] = JobFailed(jobs[i].name, f"{type(exc).__name__}: {exc}")
            bar.update(1)
    return results


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RuntimeError("backend 'ray' needs Ray: pip install 'langprop-driver[ray]' (or pip install ray), "
                           "or use the default local backend") from None
    return ray


class SharedFilesystemError(RuntimeError):
    """A Ray worker cannot see a path the job needs: the cluster has no shared filesystem there."""


@dataclass(frozen=True)
class RayOptions:
    """Where and how jobs run on Ray.

    ``address``: a cluster (``ray://host:10001`` or ``host:6379``); None uses
    ``$RAY_ADDRESS``, else starts a local cluster with ``workers`` CPUs.
    ``resources``: custom resources each task needs besides one CPU, e.g.
    ``(("carla_server", 1.0),)`` when each node declares its CARLA servers
    (``ray start --resources='{"carla_server": 1}'``). ``max_retries``: how often a
    task whose worker process died is run again before its job counts as failed.
    """

    address: str | None = None
    resources: tuple[tuple[str, float], ...] = ()
    max_retries: int = 2

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")


def parse_resources(specs: Sequence[str]) -> tuple[tuple[str, float], ...]:
    """``["carla_server=1", ...]`` -> ``(("carla_server", 1.0), ...)``; errors name the bad spec."""
    out = []
    for spec in specs:
        name, sep, amount = spec.partition("=")
        try:
            value = float(amount) if sep else 1.0
        except ValueError:
            raise ValueError(f"Ray resource {spec!r}: expected NAME=AMOUNT, e.g. carla_server=1") from None
        if not name.strip() or value <= 0:
            raise ValueError(f"Ray resource {spec!r}: expected NAME=AMOUNT with AMOUNT > 0")
        out.append((name.strip(), value))
    return tuple(out)


def ensure_ray(options: RayOptions, workers: int) -> Any:
    """Ray, connected: to the running session, ``options.address``, ``$RAY_ADDRESS``, or a new local cluster."""
    ray = _import_ray()
    if not ray.is_initialized():
        address = options.address or os.environ.get("RAY_ADDRESS") or None
        env = {k: v for k, v in os.environ.items() if k.startswith("LANGPROP_")}
        kwargs: dict[str, Any] = {"log_to_driver": False, "ignore_reinit_error": True}
        if env:  # a remote worker does not inherit this shell's settings
            kwargs["runtime_env"] = {"env_vars": env}
        if address is None:
            kwargs.update(address="local", num_cpus=max(1, workers), include_dashboard=False)
        else:
            kwargs["address"] = address
        ray.init(**kwargs)
    return ray


def _in_shared_folder(fn: Callable[..., Any], kwargs: dict[str, Any], cwd: str, paths: Sequence[str]) -> Any:
    """On the worker: check the driver's folder and ``paths`` are visible, run ``fn`` from that folder."""
    import socket

    host = socket.gethostname()
    hint = ("the work directory and the towns must be on a filesystem that every Ray node mounts at the same "
            "path (NFS, a cluster filesystem), or run with the local backend")
    if not os.path.isdir(cwd):
        raise SharedFilesystemError(f"Ray worker on {host} cannot see the driver's folder {cwd}: {hint}")
    missing = [p for p in paths if not os.path.exists(os.path.join(cwd, p))]
    if missing:
        raise SharedFilesystemError(f"Ray worker on {host} cannot see {', '.join(missing)}: {hint}")
    before = os.getcwd()
    os.chdir(cwd)  # relative paths mean what they mean on the driver
    try:
        return fn(**kwargs)
    finally:
        os.chdir(before)


def _failure_text(exc: BaseException, retries: int) -> str:
    ray_exceptions = _import_ray().exceptions
    if isinstance(exc, (ray_exceptions.WorkerCrashedError, ray_exceptions.NodeDiedError)):
        return f"the Ray worker running it died {retries + 1} time(s) ({type(exc).__name__})"
    cause = getattr(exc, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    return f"{type(exc).__name__}: {exc}"


def _shared_fs_error(exc: BaseException) -> SharedFilesystemError | None:
    if isinstance(exc, SharedFilesystemError):
        cause = getattr(exc, "cause", None)
        return cause if isinstance(cause, SharedFilesystemError) else SharedFilesystemError(str(exc))
    return None


def submit_ray(calls: Sequence[tuple[Callable[..., Any], dict[str, Any], Sequence[str]]], options: RayOptions,
               workers: int) -> tuple[Any, list[Any]]:
    """Submit ``(fn, kwargs, paths)`` calls as Ray tasks (one CPU each, plus ``options.resources``); (ray, refs)."""
    ray = ensure_ray(options, workers)
    declared = ray.cluster_resources()
    missing = [name for name, _ in options.resources if name not in declared]
    if missing:  # tasks would wait forever for a resource no node has
        raise ValueError(f"the Ray cluster declares no resource {', '.join(map(repr, missing))}: start its nodes "
                         f"with e.g. ray start --resources '{{\"{missing[0]}\": 1}}' (declared: "
                         f"{', '.join(sorted(declared)) or 'none'})")
    task_options: dict[str, Any] = {"num_cpus": 1, "max_retries": options.max_retries, "retry_exceptions": False}
    if options.resources:
        task_options["resources"] = dict(options.resources)
    remote = ray.remote(**task_options)(_in_shared_folder)
    cwd = os.getcwd()
    return ray, [remote.remote(fn, kwargs, cwd, list(paths)) for fn, kwargs, paths in calls]


def gather_ray(ray: Any, refs: Sequence[Any], names: Sequence[str], options: RayOptions,
               on_result: Callable[[int, Any], None], on_failure: Callable[[int, str], None]) -> None:
    """Wait for ``refs``; results and failures go to the callbacks as they arrive.

    A worker that cannot see the shared folder fails the whole call at once
    (every task would): the other tasks are cancelled and
    :class:`SharedFilesystemError` is raised.
    """
    index = {ref: i for i, ref in enumerate(refs)}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        i = index[done[0]]
        try:
            result = ray.get(done[0])
        except Exception as exc:  # a failed task must not stop the others
            shared = _shared_fs_error(exc)
            if shared is not None:
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise shared from None
            text = _failure_text(exc, options.max_retries)
            log.error("job %s failed on ray: %s", names[i], text)
            on_failure(i, text)
            continue
        on_result(i, result)


def _run_ray(jobs: Sequence[Job], workers: int, options: RayOptions, desc: str, progress: bool) -> list[Any]:
    results: list[Any] = [None] * len(jobs)
    ray, refs = submit_ray([(job.fn, job.kwargs, job.paths) for job in jobs], options, workers)
    with _progress(len(jobs), desc, progress) as bar:
        def on_result(i: int, value: Any) -> None:
            results[i] = value
            bar.update(1)

        def on_failure(i: int, text: str) -> None:
            results[i] = JobFailed(jobs[i].name, text)
            bar.update(1)

        gather_ray(ray, refs, [job.name for job in jobs], options, on_result, on_failure)
    return results


def ray_route_executor(options: RayOptions, workers: int, paths: Sequence[str] = ()) -> Callable[..., None]:
    """A ``route_executor`` for ``sumo_world.run.runner.EvaluationConfig``: one Ray task per route run.

    Outcomes are handed to the runner in job order, as the local runner would
    add them, so the results file is the same; a route whose worker died
    ``max_retries + 1`` times is recorded as a crashed route.
    """
    def execute(jobs: list[Any], config: Any, on_done: Callable[[Any, Any], None]) -> None:
        from sumo_world.run.runner import crashed_outcome, run_job

        outcomes: dict[int, Any] = {}
        next_up = [0]

        def deliver(i: int, outcome: Any) -> None:
            outcomes[i] = outcome
            while next_up[0] in outcomes:  # in job order: the results file lists runs as local ones do
                on_done(jobs[next_up[0]], outcomes.pop(next_up[0]))
                next_up[0] += 1

        import dataclasses

        config = dataclasses.replace(config, route_executor=None, announce=None)  # the task runs the route where it lands
        ray, refs = submit_ray([(run_job, {"job": job, "config": config}, paths) for job in jobs], options, workers)
        gather_ray(ray, refs, [str(job.route.route_id) for job in jobs], options, deliver,
                   lambda i, text: deliver(i, crashed_outcome(jobs[i], text)))
    return execute


def run_jobs(jobs: Sequence[Job], workers: int = 1, backend: str = "local", desc: str = "jobs",
             progress: bool = True, ray_options: RayOptions | None = None) -> list[Any]:
    """Run ``jobs``; results (or :class:`JobFailed`) in job order.

    On Ray (``backend="ray"``), ``ray_options`` say where (default
    ``RayOptions()``: ``$RAY_ADDRESS``, else a local cluster); a worker that
    cannot see a job's ``paths`` raises :class:`SharedFilesystemError` for the
    whole call.
    """
    if backend == "local":
        return _run_local(jobs, workers, desc, progress)
    if backend == "ray":
        return _run_ray(jobs, workers, ray_options or RayOptions(), desc, progress)
    raise ValueError(f"unknown backend {backend!r} (expected 'local' or 'ray')")
