"""Sensor data as the leaderboard hands it to ``run_step``: ``{sensor_id: (frame, data)}``.

The embedded world has no renderer, so only the privileged-agent sensors are
produced:

- ``sensor.speedometer``: ``{"speed": m/s}`` (forward speed);
- ``sensor.other.gnss``: ``np.array([lat, lon, alt])`` (CARLA's projection
  around the map's geo-reference, (0, 0) for our towns);
- ``sensor.other.imu``: ``np.array([acc_x, acc_y, acc_z, gyro_x, gyro_y,
  gyro_z, compass])`` in the body frame (compass in radians, 0 = north = -y).

Cameras, lidars, radars and the OpenDRIVE map are not simulated; an agent
asking for them gets no entry for them (a warning names them once).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from sumo_world.ego.dynamics import EgoState
from sumo_world.routes.planner import location_to_gps

__all__ = ["SensorSuite", "SUPPORTED_SENSORS", "gnss_of"]

logger = logging.getLogger(__name__)

SUPPORTED_SENSORS = ("sensor.speedometer", "sensor.other.gnss", "sensor.other.imu")
_GRAVITY = 9.81


def gnss_of(x: float, y: float, z: float = 0.0, lat_ref: float = 0.0, lon_ref: float = 0.0) -> np.ndarray:
    """CARLA world (x, y, z) -> ``[lat, lon, alt]`` with CARLA's Mercator projection."""
    gps = location_to_gps(x, y, z, lat_ref, lon_ref)
    return np.array([gps["lat"], gps["lon"], gps["z"]])


@dataclass(frozen=True)
class _Sensor:
    sensor_id: str
    sensor_type: str


class SensorSuite:
    """The supported part of an agent's ``sensors()`` list; :meth:`read` gives one tick's data."""

    def __init__(self, specs: Iterable[Mapping[str, Any]]) -> None:
        self.sensors: list[_Sensor] = []
        self.types: list[str] = []
        unsupported = []
        for spec in specs or []:
            sensor_type = str(spec.get("type", ""))
            sensor_id = str(spec.get("id", sensor_type))
            self.types.append(sensor_type)
            if sensor_type in SUPPORTED_SENSORS:
                self.sensors.append(_Sensor(sensor_id, sensor_type))
            else:
                unsupported.append(f"{sensor_id} ({sensor_type})")
        self.unsupported = unsupported
        if unsupported:
            logger.warning("the embedded world does not render these sensors; the agent gets no data "
                           "for them: %s", ", ".join(unsupported))

    def read(self, frame: int, ego: EgoState) -> dict[str, tuple[int, Any]]:
        """``{sensor_id: (frame, data)}`` for the ego's state now."""
        data: dict[str, tuple[int, Any]] = {}
        for sensor in self.sensors:
            if sensor.sensor_type == "sensor.speedometer":
                data[sensor.sensor_id] = (frame, {"speed": float(ego.speed_mps)})
            elif sensor.sensor_type == "sensor.other.gnss":
                data[sensor.sensor_id] = (frame, gnss_of(ego.x, ego.y))
            elif sensor.sensor_type == "sensor.other.imu":
                yaw_rate = math.radians(ego.yaw_rate_dps)
                lateral = ego.speed_mps * yaw_rate
                compass = (math.radians(ego.yaw_deg) + math.pi / 2.0) % (2.0 * math.pi)
                data[sensor.sensor_id] = (frame, np.array(
                    [ego.accel_mps2, lateral, _GRAVITY, 0.0, 0.0, yaw_rate, compass]))
        return data
