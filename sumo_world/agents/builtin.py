"""Built-in leaderboard-style agents for trying and testing the embedded world.

Each is a plain class with the leaderboard 1.0 agent API (``__init__(path_to_conf_file)``
calling ``setup``, ``sensors``, ``set_global_plan``, ``run_step``, ``destroy``)
plus ``set_scene_provider``; the embedded world's runner loads them as
``builtin:<name>``:

- ``follow``: follows the route at a constant speed (6 m/s, the paper's MOVE;
  ``speed=<m/s>`` in the config string changes it) with the shared
  :class:`driving.controllers.VehicleController`; obeys no rule at all;
- ``reckless``: full throttle along the route, ignoring everything;
- ``stopped``: always brakes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from driving.carla_compat import VehicleControl
from driving.clock import TICK_S
from driving.controllers import VehicleController
from driving.geometry import relative_angle_deg

__all__ = ["BUILTIN_AGENTS", "FollowAgent", "RecklessAgent", "StoppedAgent", "builtin_agent_class"]


class _BuiltinAgent:
    """Shared plumbing: config parsing, the global plan, the scene provider."""

    def __init__(self, path_to_conf_file: str | None = None) -> None:
        self.provider: Any = None
        self.global_plan_world: list = []
        self.options: dict[str, str] = {}
        self.setup(path_to_conf_file)

    def setup(self, path_to_conf_file: str | None) -> None:
        """Parse ``key=value[,key=value]`` options (the config string, not a file)."""
        self.options = {}
        for part in str(path_to_conf_file or "").replace(";", ",").split(","):
            if "=" in part:
                key, value = part.split("=", 1)
                self.options[key.strip()] = value.strip()

    def sensors(self) -> list[dict[str, Any]]:
        return [{"type": "sensor.speedometer", "id": "speed", "reading_frequency": 20}]

    def set_global_plan(self, global_plan_gps: list, global_plan_world_coord: list) -> None:
        self.global_plan_world = list(global_plan_world_coord)

    def set_scene_provider(self, provider: Any) -> None:
        self.provider = provider

    def destroy(self) -> None:
        self.provider = None

    def _steering_deg(self) -> tuple[float, float]:
        scene = self.provider.get_scene()
        angle = relative_angle_deg(scene["ego_location_world_coord"], scene["ego_orientation_unit_vector"],
                                   scene["ego_target_location_world_coord"])
        return float(angle), float(scene["ego_forward_speed"])

    def run_step(self, input_data: dict, timestamp: float) -> VehicleControl:  # pragma: no cover - abstract
        raise NotImplementedError


class FollowAgent(_BuiltinAgent):
    """Route follower at a constant target speed; no traffic rules."""

    def setup(self, path_to_conf_file: str | None) -> None:
        super().setup(path_to_conf_file)
        self.target_speed_mps = float(self.options.get("speed", 6.0))
        self.controller = VehicleController(dt=TICK_S)

    def run_step(self, input_data: dict, timestamp: float) -> VehicleControl:
        angle, speed = self._steering_deg()
        throttle, steer, brake = self.controller.control(speed, self.target_speed_mps, angle)
        return VehicleControl(throttle=float(throttle), steer=float(steer), brake=float(brake))


class RecklessAgent(_BuiltinAgent):
    """Full throttle, steering along the route: runs every light and hits whatever is ahead."""

    def run_step(self, input_data: dict, timestamp: float) -> VehicleControl:
        angle, _ = self._steering_deg()
        steer = float(np.clip(angle / 45.0, -1.0, 1.0))
        return VehicleControl(throttle=1.0, steer=steer, brake=0.0)


class StoppedAgent(_BuiltinAgent):
    """Never moves."""

    def run_step(self, input_data: dict, timestamp: float) -> VehicleControl:
        return VehicleControl(throttle=0.0, steer=0.0, brake=1.0)


BUILTIN_AGENTS: dict[str, type] = {"follow": FollowAgent, "reckless": RecklessAgent, "stopped": StoppedAgent}


def builtin_agent_class(name: str) -> type:
    """The class of ``builtin:<name>`` (ValueError listing the names otherwise)."""
    try:
        return BUILTIN_AGENTS[name]
    except KeyError:
        raise ValueError(f"unknown built-in agent {name!r}; expected one of: "
                         f"{', '.join('builtin:' + n for n in BUILTIN_AGENTS)}") from None
