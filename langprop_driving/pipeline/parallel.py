"""Run independent jobs (route rollouts) in parallel: local processes, or a Ray cluster.

A job is a module-level function and its keyword arguments, so it can travel to
another process or machine. Local runs use threads: a job's heavy work (a
route) already runs in a child process of the embedded world's runner (libsumo
holds one simulation per process), so a thread only waits on it, and nothing
needs pickling or a ``__main__`` guard. With ``backend="ray"`` every job is a
Ray task with one CPU, which is one embedded world (or one CARLA server) per
worker. Ray is optional and imported only when asked for; its workers must see
the same paths (a shared filesystem for the work directory and the towns).

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

__all__ = ["Job", "JobFailed", "run_jobs"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """``fn(**kwargs)``; ``name`` labels it in progress output and errors."""

    name: str
    fn: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)


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


def _run_ray(jobs: Sequence[Job], address: str | None, desc: str, progress: bool) -> list[Any]:
    ray = _import_ray()
    if not ray.is_initialized():
        ray.init(address=address or os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True,
                 log_to_driver=False)
    remote_call = ray.remote(num_cpus=1)(_call)
    refs = [remote_call.remote(job.fn, job.kwargs) for job in jobs]
    index = {ref: i for i, ref in enumerate(refs)}
    results: list[Any] = [None] * len(jobs)
    pending = list(refs)
    with _progress(len(jobs), desc, progress) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            i = index[done[0]]
            try:
                results[i] = ray.get(done[0])
            except Exception as exc:
                log.error("job %s failed on ray: %s", jobs[i].name, exc)
                results[i] = JobFailed(jobs[i].name, f"{type(exc).__name__}: {exc}")
            bar.update(1)
    return results


def run_jobs(jobs: Sequence[Job], workers: int = 1, backend: str = "local", ray_address: str | None = None,
             desc: str = "jobs", progress: bool = True) -> list[Any]:
    """Run ``jobs``; results (or :class:`JobFailed`) in job order."""
    if backend == "local":
        return _run_local(jobs, workers, desc, progress)
    if backend == "ray":
        return _run_ray(jobs, ray_address, desc, progress)
    raise ValueError(f"unknown backend {backend!r} (expected 'local' or 'ray')")
