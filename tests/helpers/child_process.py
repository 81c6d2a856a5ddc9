"""Run a function in a fresh child process: libsumo holds one simulation per process."""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable


def run_in_child(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` in a forkserver child (module-level functions only: they are pickled by name)."""
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *args).result(timeout=120)
