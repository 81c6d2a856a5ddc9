"""Scenarios 7, 8, 9 (``SignalJunctionCrossingRoute``) and 10 (``NoSignalJunctionCrossingRoute``).

Leaderboard 1.0 makes no actors for these: background traffic provides the
crossing vehicles. For 7-9 scenario_runner's ``TrafficLightManipulator``
switches the lights of the next signalized junction on the route so that a
conflicting direction drives while the ego has green:

1. ego (and its whole approach) green, every other direction red;
2. when the ego is within 10 m of the junction: ego yellow;
3. 2 s later: ego red, the chosen direction green;
4. ``1.5 s + 0.04 s/m x`` (distance between the two stop lines) later: ego
   green too, the chosen direction still green, so its traffic runs into the
   junction against the ego;
5. when the ego has entered and left the junction: the lights' own programs
   again; the scenario ends after the ego drove 20 m more.

The chosen direction is the first of the subtype's list that the junction
has (``S7left``: left, opposite, right; ``S7right``: left, opposite;
``S7opposite``: right, left, opposite; ``S8left``: opposite; ``S9right``:
left, opposite). Directions are classified by the heading of each incoming
lane against the ego's: from the left, from the right, opposite, or the ego's
own approach. If the route has no signalized junction ahead the scenario ends
at once, as the manipulator gives up.

Scenario10 waits until the ego has entered and left the next intersection,
then ends after 20 m.

Differences to CARLA: SUMO sets the link states of the junction's one
traffic-light program (CARLA freezes separate light actors); SUMO's drivers on
a green link still yield where the junction's right-of-way says so, so they
run the ego's green less blindly than CARLA's autopilot.
"""
from __future__ import annotations

import math

import numpy as np

from sumo_world.scenarios.base import Scenario, ScenarioTick

__all__ = ["SignalJunctionCrossingRoute", "NoSignalJunctionCrossingRoute", "classify_direction"]

YELLOW_TIME_S = 2.0
RED_TIME_S = 1.5
TRIGGER_DISTANCE_M = 10.0
DIST_TO_WAITING_TIME_S_PER_M = 0.04
EGO_DISTANCE_TO_DRIVE_M = 20.0
SUBTYPE_DIRECTIONS = {
    "S7left": ("left", "opposite", "right"),
    "S7right": ("left", "opposite"),
    "S7opposite": ("right", "left", "opposite"),
    "S8left": ("opposite",),
    "S9right": ("left", "opposite"),
}


def classify_direction(ego_yaw_deg: float, other_yaw_deg: float) -> str:
    """Where traffic with heading ``other_yaw_deg`` comes from, seen by an ego heading ``ego_yaw_deg``:
    "ref" (the ego's own approach), "left", "right" or "opposite" (CARLA yaw, clockwise)."""
    rel = (other_yaw_deg - ego_yaw_deg) % 360.0
    if rel < 45.0 or rel > 315.0:
        return "ref"
    if rel < 135.0:
        return "left"  # moving to the ego's right: it comes from the ego's left
    if rel <= 225.0:
        return "opposite"
    return "right"


def _end_heading(network, lane_id: str) -> float:
    shape = network.lane_shape(lane_id)
    dx, dy = shape[-1] - shape[-2]
    return math.degrees(math.atan2(dy, dx))


class _WaitJunction:
    """Scenario_runner's WaitEndIntersection: true once the ego entered and left an intersection."""

    def __init__(self) -> None:
        self.inside = False

    def passed(self, tick: ScenarioTick, path) -> bool:
        inside = path.in_intersection(tick.route_index)
        if inside:
            self.inside = True
            return False
        return self.inside


class SignalJunctionCrossingRoute(Scenario):
    """Red-light runners at the next signalized junction (see the module)."""

    name = "SignalJunctionCrossingRoute"

    def __init__(self, definition, env) -> None:
        super().__init__(definition, env)
        self._light = None
        self._program = None
        self._groups: dict[str, list[int]] = {}
        self._direction: str | None = None
        self._step = 1
        self._timer_s = 0.0
        self._waiting_s = RED_TIME_S
        self._junction = _WaitJunction()
        self._end_from_m: float | None = None

    def _sumo(self):
        world = self.env.world
        return getattr(world, "sumo", None) if world is not None else None

    def _setup(self, tick: ScenarioTick) -> bool:
        controls = [c for c in getattr(self.env, "controls", []) if c.kind == "light"
                    and c.distance_m > tick.progress_m]
        sumo = self._sumo()
        network = self.env.network
        if not controls or sumo is None or network is None:
            return False
        light = controls[0]
        links = sumo.trafficlight.getControlledLinks(light.tls_id)
        ego_lane = self.env.path.lanes[light.index]
        ego_yaw = _end_heading(network, ego_lane)
        groups: dict[str, list[int]] = {}
        stop_xy: dict[str, np.ndarray] = {}
        for k, link in enumerate(links):
            if not link:
                continue
            in_lane = link[0][0]
            try:
                direction = classify_direction(ego_yaw, _end_heading(network, in_lane))
            except (KeyError, IndexError):
                continue
            groups.setdefault(direction, []).append(k)
            stop_xy.setdefault(direction, np.asarray(network.lane_shape(in_lane)[-1], dtype=float))
        for direction in SUBTYPE_DIRECTIONS.get(self.definition.subtype, ()):
            if groups.get(direction):
                self._direction = direction
                break
        if self._direction is None or "ref" not in groups:
            return False
        self._light = light
        self._groups = groups
        self._program = sumo.trafficlight.getProgram(light.tls_id)
        self._n_links = len(links)
        distance = float(np.linalg.norm(stop_xy[self._direction] - stop_xy["ref"]))
        self._waiting_s = RED_TIME_S + distance * DIST_TO_WAITING_TIME_S_PER_M
        return True

    def _set(self, ego: str, chosen: str) -> None:
        state = ["r"] * self._n_links
        for k in self._groups.get("ref", []):
            state[k] = ego
        for k in self._groups.get(self._direction or "", []):
            state[k] = chosen
        self._sumo().trafficlight.setRedYellowGreenState(self._light.tls_id, "".join(state))

    def _restore(self) -> None:
        if self._light is not None and self._program is not None:
            try:
                self._sumo().trafficlight.setProgram(self._light.tls_id, self._program)
            except Exception:  # the simulation may be closing
                pass
            self._program = None

    def step(self, tick: ScenarioTick) -> None:
        if self._step == 1:
            if not self._setup(tick):
                self._step = 6
            else:
                self._set("G", "r")
                self._step = 2
        elif self._step == 2:
            to_junction = self._light.distance_m - tick.progress_m
            if to_junction < TRIGGER_DISTANCE_M:
                self._set("y", "r")
                self._step, self._timer_s = 3, 0.0
        elif self._step in (3, 4):
            self._timer_s += tick.dt_s
            if self._step == 3 and self._timer_s >= YELLOW_TIME_S:
                self._set("r", "G")
                self._step, self._timer_s = 4, 0.0
            elif self._step == 4 and self._timer_s >= self._waiting_s:
                self._set("G", "G")
                self._step = 5
        elif self._step == 5:
            if self._junction.passed(tick, self.env.path):
                self._step = 6
        if self._step == 6:
            self._restore()
            if self._end_from_m is None:
                self._end_from_m = tick.progress_m
            if tick.progress_m - self._end_from_m >= EGO_DISTANCE_TO_DRIVE_M:
                self.finish(tick)

    def finish(self, tick: ScenarioTick) -> None:
        self._restore()
        super().finish(tick)


class NoSignalJunctionCrossingRoute(Scenario):
    """Cross the next unsignalized intersection with its traffic (see the module)."""

    name = "NoSignalJunctionCrossingRoute"

    def __init__(self, definition, env) -> None:
        super().__init__(definition, env)
        self._junction = _WaitJunction()
        self._end_from_m: float | None = None

    def step(self, tick: ScenarioTick) -> None:
        if self._end_from_m is None:
            if self._junction.passed(tick, self.env.path):
                self._end_from_m = tick.progress_m
            return
        if tick.progress_m - self._end_from_m >= EGO_DISTANCE_TO_DRIVE_M:
            self.finish(tick)
