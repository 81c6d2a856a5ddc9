"""The Ray backend of the route scheduler: one Ray task per route run.

Route runs are scheduled in one place, :func:`sumo_world.run.runner.evaluate_all`
(evaluation, collection, validation and DAgger alike): locally by
:func:`sumo_world.run.runner.run_route_jobs` (a child process per route, libsumo
holding one simulation per process), or, with ``backend="ray"``, by the
route executor of this module (:func:`ray_route_executor`): every route job is
a Ray task with one CPU (plus any custom resource, e.g. ``carla_server``),
which is one embedded world (or one CARLA server) per worker. Ray is optional
and imported only when asked for. Its workers run each job from the driver's
folder and must see the same paths (a shared filesystem for the work directory
and the towns); one that does not fails the call at once, saying so. A task
whose worker process dies is retried ``RayOptions.max_retries`` times, then
its route is recorded as crashed, like any other route that could not run.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

__all__ = ["RayOptions", "SharedFilesystemError", "parse_resources", "ray_route_executor", "ensure_ray",
           "submit_ray", "gather_ray"]

log = logging.getLogger(__name__)


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


def ray_route_executor(options: RayOptions, workers: int, paths: Sequence[str] = ()) -> Callable[..., None]:
    """A ``route_executor`` for :func:`sumo_world.run.runner.evaluate_all`: one Ray task per route job.

    Outcomes are handed on in job order, as the local scheduler starts them,
    so the results files are the same; a route whose worker died
    ``max_retries + 1`` times is recorded as a crashed route.
    """
    def execute(jobs: list[Any], on_done: Callable[[Any, Any], None]) -> None:
        from sumo_world.run.runner import crashed_outcome, run_job

        outcomes: dict[int, Any] = {}
        next_up = [0]

        def deliver(i: int, outcome: Any) -> None:
            outcomes[i] = outcome
            while next_up[0] in outcomes:  # in job order: the results file lists runs as local ones do
                on_done(jobs[next_up[0]], outcomes.pop(next_up[0]))
                next_up[0] += 1

        # the task runs the route where it lands: without this executor (a closure) and the caller's announce
        shipped = [dataclasses.replace(job, config=dataclasses.replace(job.config, route_executor=None,
                                                                       announce=None)) for job in jobs]
        ray, refs = submit_ray([(run_job, {"job": job}, paths) for job in shipped], options, workers)
        gather_ray(ray, refs, [str(job.route.route_id) for job in jobs], options, deliver,
                   lambda i, text: deliver(i, crashed_outcome(jobs[i], text)))
    return execute
