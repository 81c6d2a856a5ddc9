"""Scenario4, a cyclist crossing the road the ego turns into (scenario_runner's ``VehicleTurningRoute``).

Placement: the first route point after the next intersection from the
trigger, 8 m further along the route, then to the rightmost driving lane
(``num_lane_changes`` counts every step to the right, the last included), then
``num_lane_changes`` m further and one lane width to the right of that lane's
centre; the cyclist (``vehicle.diamondback.century``) faces left across the
road (yaw + 270).

Behaviour: it appears when the ego reaches the trigger and starts when the
ego is within ``13 + d`` m along the route of it (``d = lane_width * (1 +
1.1 * num_lane_changes)``); it rides at 10 m/s for ``0.3 d``, then ``0.7 d``,
then stands for 5 s and is removed (the scenario's end).

Differences to CARLA: the cyclist moves kinematically (scenario_runner turns
its physics off too); SUMO's traffic does not see it.
"""
from __future__ import annotations

from sumo_world.scenarios.base import Scenario, ScenarioTick, ScriptedActor, right_offset

__all__ = ["VehicleTurningRoute"]

CYCLIST_SPEED_MPS = 10.0
START_DISTANCE_M = 8.0
TRAVEL_FACTOR = 1.10
TRIGGER_BASE_M = 13.0
FIRST_SHARE = 0.30
END_WAIT_S = 5.0
CYCLIST_HALF_LENGTH_M = 0.9
CYCLIST_HALF_WIDTH_M = 0.3


class VehicleTurningRoute(Scenario):
    """A cyclist crosses the exit of the junction the ego turns through (see the module)."""

    name = "VehicleTurningRoute"

    def __init__(self, definition, env) -> None:
        super().__init__(definition, env)
        path = env.path
        index = definition.route_index
        junction = path.next_intersection(index)
        exit_index = junction[1] if junction is not None else index
        exit_m = float(path.cumulative_m[exit_index]) + START_DISTANCE_M
        lane = path.lanes[path.index_at(exit_m)]
        lanes = env.lanes_to_the_right(lane)
        self.num_lane_changes = lanes.steps
        base_xy, base_yaw = path.pose_at(exit_m + self.num_lane_changes)
        self.lane_width_m = env.lane_width(path.lanes[index])
        xy = right_offset(base_xy, base_yaw, lanes.offset_to_rightmost_m + lanes.rightmost_width_m)
        self.travel_m = self.lane_width_m + TRAVEL_FACTOR * self.lane_width_m * self.num_lane_changes
        self.trigger_distance_m = TRIGGER_BASE_M + self.travel_m
        self.cyclist = ScriptedActor(env.new_id(), "vehicles", "bicycle", float(xy[0]), float(xy[1]),
                                     base_yaw + 270.0, CYCLIST_HALF_LENGTH_M, CYCLIST_HALF_WIDTH_M)
        self.actors.append(self.cyclist)
        self._cyclist_route_m = path.distance_of(xy, exit_index)
        self._phase = "wait"
        self._ridden_m = 0.0
        self._stood_s = 0.0

    def step(self, tick: ScenarioTick) -> None:
        if self._phase == "wait":
            ahead = self._cyclist_route_m - tick.progress_m
            if 0.0 < ahead < self.trigger_distance_m or self._cyclist_route_m < 1.0:
                self._phase = "ride"
                self.cyclist.speed_mps = CYCLIST_SPEED_MPS
        elif self._phase == "ride":
            self._ridden_m += self.cyclist.advance(tick.dt_s)
            if self._ridden_m >= self.travel_m:  # 0.3 d then 0.7 d at the same speed
                self.cyclist.speed_mps = 0.0
                self._phase = "stand"
        else:
            self._stood_s += tick.dt_s
            if self._stood_s >= END_WAIT_S:
                self.finish(tick)
