"""What the sandbox is told (:class:`SandboxConfig`) and what it answers (:class:`CallResult`, errors)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ScriptError", "ScriptTimeout", "WorkerKilled", "SandboxUnavailable", "CallResult", "SandboxConfig",
           "TIMEOUT_PREFIX", "WORKER_DIED_PREFIX", "UNSAFE_PREFIX"]

# Every timeout message starts with this (in-worker alarm or a killed worker).
TIMEOUT_PREFIX = "Timeout: "
WORKER_DIED_PREFIX = "WorkerDied: "
UNSAFE_PREFIX = "UnsafeOutput: "


class ScriptError(Exception):
    """A script call failed (raised, timed out, killed its worker); the message says how."""


class ScriptTimeout(ScriptError):
    """A script call ran past its time limit."""


class WorkerKilled(ScriptError):
    """A script call ended its worker process (``os._exit``, a crash, the memory limit)."""


class SandboxUnavailable(RuntimeError):
    """``strict`` was asked for and the machine lacks a protection; the message names it."""


@dataclass(slots=True)
class CallResult:
    """The outcome of one call. ``exception`` is None when the call returned."""

    output: Any
    exception: str | None
    traceback: str | None
    stdout: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.exception is None

    @property
    def timed_out(self) -> bool:
        return self.exception is not None and self.exception.startswith(TIMEOUT_PREFIX)

    @property
    def killed_worker(self) -> bool:
        """The call ended its worker (``os._exit``, a crash, the memory limit) or was killed for time."""
        return self.exception is not None and (self.exception.startswith(WORKER_DIED_PREFIX)
                                               or "(worker killed)" in self.exception)


def _default_workers() -> int:
    # One more than the CPUs: a worker's template and its job process take turns on every
    # call (the template hands over each input), so one worker per CPU leaves CPUs idle at
    # each hand-over (measured on 2 CPUs: 48k calls/s with 2 workers, 77k with 3, 71k with 4).
    return (os.cpu_count() or 1) + 1


@dataclass(frozen=True)
class SandboxConfig:
    """How scripts run.

    ``mode="process"``: worker processes boxed in by the kernel (see
    :mod:`langprop_core.sandbox`); ``strict`` refuses to run when the machine
    lacks any protection. ``mode="inprocess"`` trusts the scripts: no time or
    memory limit, no containment at all (``os._exit`` ends the caller).
    ``max_result_bytes`` and ``max_result_depth`` bound each returned value;
    ``max_file_mb`` bounds each file a worker writes in its scratch directory.
    """

    mode: str = "process"
    workers: int = field(default_factory=_default_workers)
    timeout_s: float = 1.0
    memory_mb: int = 1024
    max_stdout_chars: int = 2000
    strict: bool = False
    max_result_bytes: int = 1 << 20
    max_result_depth: int = 32
    max_file_mb: int = 16

    def __post_init__(self) -> None:
        if self.mode not in ("process", "inprocess"):
            raise ValueError(f"SandboxConfig.mode must be 'process' or 'inprocess', not {self.mode!r}")
        if self.workers < 1:
            raise ValueError(f"SandboxConfig.workers must be >= 1, not {self.workers}")
        if not self.timeout_s > 0:
            raise ValueError(f"SandboxConfig.timeout_s must be > 0, not {self.timeout_s}")
        if self.strict and self.mode != "process":
            raise ValueError("SandboxConfig.strict needs mode='process' (in-process contains nothing)")
        for name in ("max_result_bytes", "max_result_depth", "max_file_mb"):
            if getattr(self, name) < 1:
                raise ValueError(f"SandboxConfig.{name} must be >= 1, not {getattr(self, name)}")
