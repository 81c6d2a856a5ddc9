"""Scenario5, a leading vehicle slows down in the ego's lane, another drives beside it
(scenario_runner's ``OtherLeadingVehicle``).

A car waits 35 m ahead of the trigger in the ego's lane and a second one 36 m
ahead in the lane to the left; on start they drive at 55 and 45 km/h
(scenario_runner's speeds, in km/h as its ``WaypointFollower`` was written for);
when the first comes within 55 m of the ego it slows to 55 / 3.2 km/h for the
rest. The scenario ends when the ego has driven 140 m (4 x 35 m).

Differences to CARLA: both cars follow the ego's route (the second one lane
width to the left, when the road has a lane there; otherwise there is no second
car) kinematically; SUMO's traffic does not see them.
"""
from __future__ import annotations

from sumo_world.scenarios.base import Scenario, ScenarioTick
from sumo_world.scenarios.follow_leading_vehicle import LeadOnRoute

__all__ = ["OtherLeadingVehicle"]

FIRST_VEHICLE_LOCATION_M = 35.0
SECOND_VEHICLE_LOCATION_M = FIRST_VEHICLE_LOCATION_M + 1.0
EGO_DRIVE_DISTANCE_M = FIRST_VEHICLE_LOCATION_M * 4
FIRST_VEHICLE_SPEED_MPS = 55.0 / 3.6
SECOND_VEHICLE_SPEED_MPS = 45.0 / 3.6
DECELERATE_SPEED_MPS = FIRST_VEHICLE_SPEED_MPS / 3.2
DECELERATE_TRIGGER_M = 55.0


class OtherLeadingVehicle(Scenario):
    """A lead car slows down while another blocks the left lane (see the module)."""

    name = "OtherLeadingVehicle"

    def __init__(self, definition, env) -> None:
        super().__init__(definition, env)
        path = env.path
        self._start_m = self.trigger_m
        self.first = LeadOnRoute(self, self._start_m + FIRST_VEHICLE_LOCATION_M)
        self.actors.append(self.first.actor)
        self.second = None
        lane = env.lane(path.lanes[definition.route_index])
        if lane is not None:
            lanes = lane.getEdge().getLanes()
            if lane.getIndex() + 1 < len(lanes) and lanes[lane.getIndex() + 1].allows("passenger"):
                self.second = LeadOnRoute(self, self._start_m + SECOND_VEHICLE_LOCATION_M,
                                          lateral_m=-env.lane_width(path.lanes[definition.route_index]))
                self.actors.append(self.second.actor)
        self._slow = False

    def step(self, tick: ScenarioTick) -> None:
        if self.first.s - tick.progress_m < DECELERATE_TRIGGER_M:
            self._slow = True
        self.first.drive(DECELERATE_SPEED_MPS if self._slow else FIRST_VEHICLE_SPEED_MPS, tick.dt_s)
        if self.second is not None:
            self.second.drive(SECOND_VEHICLE_SPEED_MPS, tick.dt_s)
        if tick.progress_m - self._start_m >= EGO_DRIVE_DISTANCE_M:
            self.finish(tick)
