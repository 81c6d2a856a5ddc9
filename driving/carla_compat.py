"""CARLA data types, the real ones when the ``carla`` wheel is installed.

The embedded world and the agents exchange route plans and controls in CARLA's
types. Without the wheel (it is an optional extra), small stand-ins with the
same attribute names are used, so the agents run unchanged in both; they keep
their floats in single precision as CARLA does, so the world computes the same
numbers either way.
"""
from __future__ import annotations

import enum
import numbers
import struct
from dataclasses import dataclass

__all__ = ["HAVE_CARLA", "Location", "Rotation", "Transform", "VehicleControl", "RoadOption"]

try:  # pragma: no cover - depends on the environment
    import carla as _carla

    HAVE_CARLA = True
except ImportError:  # pragma: no cover
    _carla = None
    HAVE_CARLA = False


class _RoadOption(enum.IntEnum):
    """The values of CARLA's ``agents.navigation.local_planner.RoadOption``."""

    VOID = -1
    LEFT = 1
    RIGHT = 2
    STRAIGHT = 3
    LANEFOLLOW = 4
    CHANGELANELEFT = 5
    CHANGELANERIGHT = 6


# The leaderboard's route downsampling compares plan entries against CARLA's own
# enum (a plain Enum, so equal values of another class do not match): use it
# when ``$CARLA_ROOT/PythonAPI/carla`` is on the path.
try:  # pragma: no cover - depends on the environment
    from agents.navigation.local_planner import RoadOption  # type: ignore[import-not-found]
except ImportError:
    RoadOption = _RoadOption  # type: ignore[misc]


def _float32(value: float) -> float:
    """``value`` as CARLA stores it: a C++ float (single precision)."""
    return struct.unpack("f", struct.pack("f", value))[0]


class _SinglePrecision:
    """Stores its float fields in single precision, as CARLA's types do, so that the world computes the same
    numbers with the stand-ins as with the wheel (a recorded LLM run's prompts match to the last digit)."""

    _FLOAT_FIELDS: tuple[str, ...] = ()

    def __setattr__(self, name: str, value: object) -> None:
        if name in self._FLOAT_FIELDS and isinstance(value, numbers.Real) and not isinstance(value, bool):
            value = _float32(float(value))
        super().__setattr__(name, value)


if HAVE_CARLA:
    Location = _carla.Location
    Rotation = _carla.Rotation
    Transform = _carla.Transform
    VehicleControl = _carla.VehicleControl
else:

    @dataclass
    class Location(_SinglePrecision):  # type: ignore[no-redef]
        _FLOAT_FIELDS = ("x", "y", "z")
        x: float = 0.0
        y: float = 0.0
        z: float = 0.0

    @dataclass
    class Rotation(_SinglePrecision):  # type: ignore[no-redef]
        _FLOAT_FIELDS = ("pitch", "yaw", "roll")
        pitch: float = 0.0
        yaw: float = 0.0
        roll: float = 0.0

    @dataclass
    class Transform:  # type: ignore[no-redef]
        location: Location = None  # type: ignore[assignment]
        rotation: Rotation = None  # type: ignore[assignment]

        def __post_init__(self) -> None:
            self.location = self.location if self.location is not None else Location()
            self.rotation = self.rotation if self.rotation is not None else Rotation()

    @dataclass
    class VehicleControl(_SinglePrecision):  # type: ignore[no-redef]
        _FLOAT_FIELDS = ("throttle", "steer", "brake")
        throttle: float = 0.0
        steer: float = 0.0
        brake: float = 0.0
        hand_brake: bool = False
        reverse: bool = False
        manual_gear_shift: bool = False
        gear: int = 0
