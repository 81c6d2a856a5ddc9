"""The leaderboard's agent base class, or a stand-in with the same API.

Leaderboard and scenario_runner are git checkouts put on ``PYTHONPATH``, not
packages. When they are importable the agents subclass the real
``leaderboard.autoagents.autonomous_agent.AutonomousAgent`` (1.0 or 2.0); when
not (tests, the embedded world), :class:`FallbackAutonomousAgent` stands in.

The two leaderboard versions differ in construction order:

- 1.0: ``Agent(path_to_conf_file)``; the constructor calls ``setup`` before the
  world and the hero exist, then the evaluator calls ``set_global_plan``.
- 2.0: ``Agent(host, port, debug)``; the evaluator calls ``set_global_plan``,
  then ``setup(path_to_conf_file)``, and asks the class for ``get_ros_version()``.

Forks call the same hooks with more arguments (carla_garage:
``Agent(config, route_date_string)``, ``setup(config, route, traffic_manager)``,
``run_step(input_data, timestamp, sensors)``; Bench2Drive: ``setup(config +
"+" + save_name)``); :class:`team_code.privileged_agent.PrivilegedAgent` takes
them. A leaderboard that is on the path but fails to import is a warning that
carries the error, not a silent switch to the stand-in.

The stand-in follows 1.0 (config path in the constructor) and keeps the dense
plan in ``set_global_plan``; agents must do their world work lazily in the first
``run_step`` and must not assume ``setup`` ran before ``set_global_plan``.
"""
from __future__ import annotations

import enum
import importlib.util
import inspect
import logging
import warnings
from typing import Any

from driving.carla_compat import VehicleControl

__all__ = [
    "AutonomousAgent",
    "Track",
    "HAVE_LEADERBOARD",
    "LEADERBOARD_VERSION",
    "FallbackAutonomousAgent",
    "FallbackTrack",
    "track_from_name",
]

log = logging.getLogger(__name__)


class FallbackTrack(enum.Enum):
    """The leaderboard's ``Track`` values (2.0 adds the qualifier tracks)."""

    SENSORS = "SENSORS"
    MAP = "MAP"
    SENSORS_QUALIFIER = "SENSORS_QUALIFIER"
    MAP_QUALIFIER = "MAP_QUALIFIER"


class FallbackAutonomousAgent:
    """Stand-in for the leaderboard base class when ``leaderboard`` is absent.

    Same attributes and hooks as the real one; the constructor is 1.0-style
    (it takes the config path and calls :meth:`setup`); ``set_global_plan``
    keeps the full dense plan instead of a downsampled copy.
    """

    def __init__(self, path_to_conf_file: str | None = None) -> None:
        self.track = FallbackTrack.SENSORS
        self._global_plan: list | None = None
        self._global_plan_world_coord: list | None = None
        self.wallclock_t0 = None
        self.setup(path_to_conf_file)

    def setup(self, path_to_conf_file: str | None) -> None:
        """Initialise the agent from its config file; nothing by default."""

    def sensors(self) -> list[dict[str, Any]]:
        """The sensor suite, in the leaderboard's list-of-dicts format."""
        return []

    def run_step(self, input_data: dict, timestamp: float) -> Any:
        """One tick: return a ``carla.VehicleControl``; coasts by default."""
        return VehicleControl(throttle=0.0, steer=0.0, brake=0.0)

    def destroy(self) -> None:
        """Release resources at the end of a route."""

    def __call__(self, input_data: dict | None = None, timestamp: float = 0.0) -> Any:
        # The real base reads sensors and game time from the simulator; here the
        # caller passes them.
        control = self.run_step(input_data or {}, timestamp)
        control.manual_gear_shift = False
        return control

    @staticmethod
    def get_ros_version() -> int:
        """Leaderboard 2.0 asks the agent class this; -1 means no ROS."""
        return -1

    def set_global_plan(self, global_plan_gps: list, global_plan_world_coord: list) -> None:
        """Keep the route: (gps, RoadOption) and (carla.Transform, RoadOption) pairs."""
        self._global_plan = list(global_plan_gps)
        self._global_plan_world_coord = list(global_plan_world_coord)


def _import_leaderboard_base() -> tuple[type, type, bool]:
    """The leaderboard's ``AutonomousAgent`` and ``Track``, or the stand-ins.

    Absent (``leaderboard`` not on the path): the stand-ins, silently, as off
    CARLA. Present but failing to import (a broken ``carla`` egg, a missing
    ``srunner``): the stand-ins too, but with a warning that carries the error,
    because an agent that silently lost its real base fails later, and far
    from the cause.
    """
    try:
        present = importlib.util.find_spec("leaderboard") is not None
    except (ImportError, ValueError):  # a half-initialised or blocked package counts as absent
        present = False
    if not present:
        log.debug("leaderboard not on the path; using the stand-in agent base")
        return FallbackAutonomousAgent, FallbackTrack, False
    try:
        from leaderboard.autoagents.autonomous_agent import AutonomousAgent as base, Track as track  # type: ignore
    except Exception as error:  # any failure of its imports: say which, then stand in
        message = (f"leaderboard is on the path but leaderboard.autoagents.autonomous_agent failed to import "
                   f"({type(error).__name__}: {error}); the agents use the stand-in base class instead")
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        log.warning(message)
        return FallbackAutonomousAgent, FallbackTrack, False
    return base, track, True


AutonomousAgent, Track, HAVE_LEADERBOARD = _import_leaderboard_base()


def _leaderboard_version(base: type) -> int:
    """2 when the base constructor takes (host, port, debug), else 1."""
    params = inspect.signature(base.__init__).parameters
    return 2 if "carla_host" in params or "host" in params else 1


LEADERBOARD_VERSION = _leaderboard_version(AutonomousAgent)


def track_from_name(name: str) -> Any:
    """The ``Track`` member named ``name`` (case-insensitive), with a clear error."""
    key = name.strip().upper()
    try:
        return Track[key]
    except KeyError:
        known = ", ".join(member.name for member in Track)
        raise ValueError(f"unknown leaderboard track {name!r}; expected one of {known}") from None
