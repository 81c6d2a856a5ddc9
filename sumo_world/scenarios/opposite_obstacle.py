"""Scenario6, an obstacle in the lane with oncoming traffic (scenario_runner's ``ManeuverOppositeDirection``).

Two street barriers (``static.prop.streetbarrier``, solid props) stand in
the ego's lane 50 m and 52 m after the trigger (scenario_runner's default
obstacle is the barrier; the second prop 2 m on). Oncoming cars appear 110 m
after the trigger in the lane to the left, driving towards the ego at
5.56 m/s, one every 40 m of gap. The scenario ends when the ego has driven
220 m (2 x 110 m).

Differences to CARLA: the oncoming cars drive against the ego's route one lane
width to its left (the opposite lane on a two-lane road) kinematically and are
removed 10 m behind the trigger (scenario_runner's sink); they do not brake
for the ego; SUMO's traffic sees none of them.
"""
from __future__ import annotations

from sumo_world.scenarios.base import Prop, Scenario, ScenarioTick, ScriptedActor, right_offset

__all__ = ["ManeuverOppositeDirection"]

FIRST_VEHICLE_LOCATION_M = 50.0
SECOND_VEHICLE_LOCATION_M = FIRST_VEHICLE_LOCATION_M + 60.0
EGO_DRIVE_DISTANCE_M = SECOND_VEHICLE_LOCATION_M * 2
OPPOSITE_SPEED_MPS = 5.56
SOURCE_GAP_M = 40.0
SECOND_PROP_GAP_M = 2.0
SINK_BEHIND_TRIGGER_M = 10.0
BARRIER_HALF_LENGTH_M = 0.3
BARRIER_HALF_WIDTH_M = 1.0


class ManeuverOppositeDirection(Scenario):
    """Pass a blocked lane through the oncoming one (see the module)."""

    name = "ManeuverOppositeDirection"

    def __init__(self, definition, env) -> None:
        super().__init__(definition, env)
        path = env.path
        self._start_m = self.trigger_m
        for d in (FIRST_VEHICLE_LOCATION_M, FIRST_VEHICLE_LOCATION_M + SECOND_PROP_GAP_M):
            xy, yaw = path.pose_at(self._start_m + d)
            self.props.append(Prop(env.new_id(), "static.prop.streetbarrier", float(xy[0]), float(xy[1]),
                                   yaw + 90.0, BARRIER_HALF_LENGTH_M, BARRIER_HALF_WIDTH_M))
        self._lateral_m = -env.lane_width(path.lanes[definition.route_index])
        self._oncoming: list[tuple[ScriptedActor, float]] = []  # (actor, distance along the route)
        self._source_m = self._start_m + SECOND_VEHICLE_LOCATION_M
        self._spawn()

    def _spawn(self) -> None:
        xy, yaw = self.env.path.pose_at(self._source_m)
        xy = right_offset(xy, yaw, self._lateral_m)
        actor = ScriptedActor(self.env.new_id(), "vehicles", "car", float(xy[0]), float(xy[1]), yaw + 180.0,
                              2.4, 1.0, speed_mps=OPPOSITE_SPEED_MPS, visible=self.status != "waiting")
        self.actors.append(actor)
        self._oncoming.append((actor, self._source_m))

    def step(self, tick: ScenarioTick) -> None:
        path = self.env.path
        moved = []
        for actor, s in self._oncoming:
            s -= OPPOSITE_SPEED_MPS * tick.dt_s
            if s < self._start_m - SINK_BEHIND_TRIGGER_M:
                actor.visible = False
                continue
            xy, yaw = path.pose_at(s)
            xy = right_offset(xy, yaw, self._lateral_m)
            actor.x, actor.y, actor.yaw_deg = float(xy[0]), float(xy[1]), yaw + 180.0
            moved.append((actor, s))
        self._oncoming = moved
        if not moved or self._source_m - moved[-1][1] >= SOURCE_GAP_M + 2 * 2.4:
            self._spawn()
        if tick.progress_m - self._start_m >= EGO_DRIVE_DISTANCE_M:
            self.finish(tick)
