"""SUMO's programs (``netgenerate``, ``netconvert``, ``sumo``) from the installed ``eclipse-sumo`` wheel."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from sumo_world.towns.info import TownError

__all__ = ["sumo_home", "sumo_binary", "sumo_env", "run_tool"]


def sumo_home() -> Path:
    """SUMO_HOME of the installed ``eclipse-sumo`` wheel (or the environment's)."""
    try:
        import sumo

        return Path(sumo.SUMO_HOME)
    except ImportError:
        env = os.environ.get("SUMO_HOME")
        if env:
            return Path(env)
        raise TownError("SUMO is not installed: `pip install eclipse-sumo` (or set SUMO_HOME)") from None


def sumo_binary(name: str) -> Path:
    """Path of a SUMO program (``netgenerate``, ``netconvert``, ``sumo``...)."""
    for candidate in (sumo_home() / "bin" / name, sumo_home() / "bin" / f"{name}.exe"):
        if candidate.is_file():
            return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise TownError(f"SUMO program {name!r} not found under {sumo_home() / 'bin'}")


def sumo_env() -> dict[str, str]:
    """Environment for SUMO subprocesses (SUMO_HOME set, so XML validation is configured)."""
    env = dict(os.environ)
    env["SUMO_HOME"] = str(sumo_home())
    return env


def run_tool(command: list[str], what: str) -> float:
    """Run a SUMO program; returns its wall time (s); :class:`TownError` with its output when it fails."""
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=sumo_env())
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()[-2000:]
        raise TownError(f"{what} failed (exit {proc.returncode}): {' '.join(command)}\n{detail}")
    return time.perf_counter() - start
