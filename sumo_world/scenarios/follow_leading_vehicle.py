"""Scenario2, follow a leading vehicle that brakes (scenario_runner's ``FollowLeadingVehicle``).

A car (``vehicle.nissan.patrol``) waits 25 m ahead of the trigger in the ego's
lane; when the scenario starts it drives along the route at 10 m/s until it is
within 20 m of the next intersection, then stops with full brake; the scenario
ends when the ego is within 20 m of it and has stood still for 1 s (or has
passed it), and the car is removed.

Differences to CARLA: the car follows the ego's route (``WaypointFollower``
follows its lane, the same road up to the junction) kinematically, braking at
8 m/s^2; SUMO's traffic does not see it.
"""
from __future__ import annotations

import math

from sumo_world.scenarios.base import Scenario, ScenarioTick, ScriptedActor

__all__ = ["FollowLeadingVehicle", "LeadOnRoute"]

FIRST_VEHICLE_LOCATION_M = 25.0
FIRST_VEHICLE_SPEED_MPS = 10.0
STOP_BEFORE_INTERSECTION_M = 20.0
END_DISTANCE_M = 20.0
STAND_STILL_S = 1.0
BRAKE_DECEL_MPS2 = 8.0
CAR_HALF_LENGTH_M = 2.4
CAR_HALF_WIDTH_M = 1.0


class LeadOnRoute:
    """A scripted car that drives along the ego's route (distance ``s`` along it)."""

    def __init__(self, scenario: Scenario, distance_m: float, lateral_m: float = 0.0) -> None:
        self.path = scenario.env.path
        self.s = float(distance_m)
        self.lateral_m = lateral_m
        xy, yaw = self.path.pose_at(self.s)
        self.actor = ScriptedActor(scenario.env.new_id(), "vehicles", "car", float(xy[0]), float(xy[1]), yaw,
                                   CAR_HALF_LENGTH_M, CAR_HALF_WIDTH_M)
        self._place()

    def _place(self) -> None:
        from sumo_world.scenarios.base import right_offset

        xy, yaw = self.path.pose_at(self.s)
        xy = right_offset(xy, yaw, self.lateral_m) if self.lateral_m else xy
        self.actor.x, self.actor.y, self.actor.yaw_deg = float(xy[0]), float(xy[1]), yaw

    def drive(self, target_mps: float, dt_s: float, decel_mps2: float = BRAKE_DECEL_MPS2) -> None:
        """Move towards ``target_mps`` (instantly up, at ``decel_mps2`` down) for ``dt_s``."""
        speed = self.actor.speed_mps
        speed = target_mps if target_mps >= speed else max(target_mps, speed - decel_mps2 * dt_s)
        self.actor.speed_mps = speed
        self.s = min(self.s + speed * dt_s, self.path.length_m)
        self._place()


class FollowLeadingVehicle(Scenario):
    """A lead car drives ahead and brakes before the next intersection (see the module)."""

    name = "FollowLeadingVehicle"

    def __init__(self, definition, env) -> None:
        super().__init__(definition, env)
        start = self.trigger_m
        self.lead = LeadOnRoute(self, start + FIRST_VEHICLE_LOCATION_M)
        self.actors.append(self.lead.actor)
        self._phase = "drive"
        self._still_s = 0.0

    def _stop_line_m(self) -> float:
        found = self.env.path.next_intersection(self.env.path.index_at(self.lead.s))
        if found is None:
            return math.inf
        return float(self.env.path.cumulative_m[found[0]]) - STOP_BEFORE_INTERSECTION_M

    def step(self, tick: ScenarioTick) -> None:
        if self._phase == "drive":
            if self.lead.s >= self._stop_line_m():
                self._phase = "stop"
            else:
                self.lead.drive(FIRST_VEHICLE_SPEED_MPS, tick.dt_s)
                return
        self.lead.drive(0.0, tick.dt_s)
        gap = self.lead.s - tick.progress_m
        self._still_s = self._still_s + tick.dt_s if tick.ego.speed_mps < 0.1 else 0.0
        if (gap < END_DISTANCE_M and self._still_s >= STAND_STILL_S) or gap < 0.0:
            self.finish(tick)
