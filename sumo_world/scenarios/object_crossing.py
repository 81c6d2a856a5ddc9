"""Scenario3, dynamic object crossing (scenario_runner's ``DynamicObjectCrossing``, walker version,
as leaderboard 1.0 builds it).

Placement, from the lane of the trigger: walk to the right over driving lanes
to the sidewalk (``num_lane_changes`` starts at 1 and counts every step, the
last included; each driving lane passed adds 1.5 m to the start distance of
12 m); the walker stands ``start distance`` along the route from the trigger,
one lane width to the right of the rightmost driving lane's centre, facing
left across the road (yaw + 270). A vending machine
(``static.prop.vendingmachine``, a solid prop) stands at 0.9 of the way from
the trigger's lane centre to the walker, hiding it.

Behaviour: actors appear when the ego reaches the trigger. The walker starts
when the ego is within ``12 + num_lane_changes`` m along the route of it, at
``3 + 0.4 * num_lane_changes`` m/s; it walks ``0.5 * w`` (``w = lane_width *
(1 + 1.25 * num_lane_changes)``), then on until it walked ``w`` more or the ego
drove 5 m; then walker and prop are removed, and the scenario ends once the ego
drove 40 m more.

Differences to CARLA: the walker moves kinematically, as scenario_runner's
``KeepVelocity`` does with physics off; SUMO's traffic does not see it. The
vending machine's footprint (0.9 m x 1.2 m) is an approximation of the CARLA
prop's bounding box.
"""
from __future__ import annotations

from sumo_world.scenarios.base import Prop, Scenario, ScenarioTick, ScriptedActor, right_offset

__all__ = ["DynamicObjectCrossing"]

START_DISTANCE_M = 12.0
EXTRA_DISTANCE_PER_LANE_M = 1.5
BLOCKER_SHIFT = 0.9
WALKER_BASE_SPEED_MPS = 3.0
WALKER_SPEED_PER_LANE_MPS = 0.4
LANE_WIDTH_FACTOR = 1.25
EGO_PASS_DISTANCE_M = 5.0
END_DRIVE_DISTANCE_M = 40.0
TRIGGER_BASE_M = 12.0
WALKER_HALF_SIZE_M = 0.3
PROP_HALF_LENGTH_M = 0.45
PROP_HALF_WIDTH_M = 0.6


class DynamicObjectCrossing(Scenario):
    """A walker behind a vending machine crosses the road in front of the ego (see the module)."""

    name = "DynamicObjectCrossing"

    def __init__(self, definition, env) -> None:
        super().__init__(definition, env)
        path = env.path
        index = definition.route_index
        lanes = env.lanes_to_the_right(path.lanes[index])
        self.num_lane_changes = 1 + lanes.steps
        start_m = START_DISTANCE_M + EXTRA_DISTANCE_PER_LANE_M * lanes.driving_lanes_passed
        trigger_m = self.trigger_m
        reference_xy, reference_yaw = path.pose_at(trigger_m)
        base_xy, base_yaw = path.pose_at(trigger_m + start_m)
        lateral = lanes.offset_to_rightmost_m + lanes.rightmost_width_m
        walker_xy = right_offset(base_xy, base_yaw, lateral)
        walker_yaw = base_yaw + 270.0
        self.lane_width_m = env.lane_width(path.lanes[index])
        self.speed_mps = WALKER_BASE_SPEED_MPS + WALKER_SPEED_PER_LANE_MPS * self.num_lane_changes
        self.cross_m = self.lane_width_m * (1.0 + LANE_WIDTH_FACTOR * self.num_lane_changes)
        self.trigger_distance_m = TRIGGER_BASE_M + self.num_lane_changes
        self.walker = ScriptedActor(env.new_id(), "pedestrians", "pedestrian", float(walker_xy[0]),
                                    float(walker_xy[1]), walker_yaw, WALKER_HALF_SIZE_M, WALKER_HALF_SIZE_M)
        self.actors.append(self.walker)
        prop_xy = reference_xy + BLOCKER_SHIFT * (walker_xy - reference_xy)
        self.prop = Prop(env.new_id(), "static.prop.vendingmachine", float(prop_xy[0]), float(prop_xy[1]),
                         walker_yaw + 180.0, PROP_HALF_LENGTH_M, PROP_HALF_WIDTH_M)
        self.props.append(self.prop)
        self._walker_route_m = path.distance_of(walker_xy, index)
        self._phase = "wait"
        self._walked_m = 0.0
        self._mark_m = 0.0

    def step(self, tick: ScenarioTick) -> None:
        if self._phase == "wait":
            ahead = self._walker_route_m - tick.progress_m
            if 0.0 < ahead < self.trigger_distance_m or self._walker_route_m < 1.0:
                self._phase = "cross"
                self.walker.speed_mps = self.speed_mps
        elif self._phase == "cross":
            self._walked_m += self.walker.advance(tick.dt_s)
            if self._walked_m >= 0.5 * self.cross_m:
                self._phase = "cross_more"
                self._walked_m = 0.0
                self._mark_m = tick.progress_m
        elif self._phase == "cross_more":
            self._walked_m += self.walker.advance(tick.dt_s)
            if self._walked_m >= self.cross_m or tick.progress_m - self._mark_m >= EGO_PASS_DISTANCE_M:
                self.walker.speed_mps = 0.0
                self.walker.visible = False
                self.prop.visible = False
                self._phase = "end"
                self._mark_m = tick.progress_m
        elif tick.progress_m - self._mark_m >= END_DRIVE_DISTANCE_M:
            self.finish(tick)
