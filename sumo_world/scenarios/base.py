"""What every scenario of the embedded world is made of.

A scenario is a small class with one entry point, :meth:`Scenario.step`,
called every tick once the ego reached its trigger (the manager decides when,
by the leaderboard's rule). It owns its actors: :class:`ScriptedActor` walkers,
cyclists and vehicles that move kinematically (as scenario_runner moves its
physics-less actors with ``KeepVelocity``/``WaypointFollower``) and
:class:`Prop` static props. Actors are invisible until the scenario starts
(scenario_runner parks them 500 m under the map until then) and vanish when it
destroys them. SUMO's own traffic does not see scripted actors (the ego does,
through the scene, and the criteria do); that is the main difference to CARLA
and it is stated in each scenario's docstring where it matters.

:class:`RoutePath` is the along-route geometry the scenarios place their
actors with: scenario_runner walks lane waypoints from the trigger
(``get_waypoint_in_distance``, ``waypoint.next``); the dense route follows the
same lanes, so distances along it stand in for them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from sumo_world.scenarios.definitions import ScenarioDefinition

__all__ = ["ScriptedActor", "Prop", "ScenarioTick", "RoutePath", "Scenario",
           "WAITING", "RUNNING", "DONE"]

WAITING, RUNNING, DONE = "waiting", "running", "done"


@dataclass
class ScriptedActor:
    """A moving actor of a scenario (CARLA frame, centre pose, half extents)."""

    actor_id: int
    group: str  # "vehicles" | "pedestrians"
    actor_type: str  # a driving.scene ACTOR_TYPES name
    x: float
    y: float
    yaw_deg: float
    half_length_m: float
    half_width_m: float
    speed_mps: float = 0.0
    visible: bool = False

    def advance(self, dt_s: float) -> float:
        """Move ``speed_mps * dt_s`` along the heading; returns the distance moved (m)."""
        step = self.speed_mps * dt_s
        rad = math.radians(self.yaw_deg)
        self.x += step * math.cos(rad)
        self.y += step * math.sin(rad)
        return step

    @property
    def xy(self) -> np.ndarray:
        """The centre (x, y)."""
        return np.array([self.x, self.y])


@dataclass
class Prop:
    """A static prop of a scenario. ``solid`` props are obstacles (a static collision when hit);
    flat ones (debris decals) are only drawn."""

    actor_id: int
    prop_type: str  # CARLA blueprint id, e.g. "static.prop.vendingmachine"
    x: float
    y: float
    yaw_deg: float
    half_length_m: float
    half_width_m: float
    solid: bool = True
    visible: bool = False


@dataclass
class ScenarioTick:
    """What a scenario sees at one tick: time from the route start (s), the ego, its route progress."""

    time_s: float
    dt_s: float
    ego: Any  # sumo_world.ego.dynamics.EgoState
    route_index: int
    progress_m: float
    ego_in_junction: bool


class RoutePath:
    """The dense route as a path: points, distances along it, headings, lanes, commands."""

    def __init__(self, points: np.ndarray, lanes: list[str], commands: list[str],
                 is_intersection: Any = None) -> None:
        self.points = np.asarray(points, dtype=float).reshape(-1, 2)
        self.cumulative_m = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(self.points, axis=0), axis=1))]
        self.lanes = list(lanes)
        self.commands = list(commands)
        self._is_intersection = is_intersection

    @property
    def length_m(self) -> float:
        """The route's length (m)."""
        return float(self.cumulative_m[-1])

    def index_at(self, distance_m: float) -> int:
        """The index of the last point at or before ``distance_m`` along the route."""
        return int(np.clip(np.searchsorted(self.cumulative_m, distance_m, side="right") - 1,
                           0, len(self.points) - 1))

    def pose_at(self, distance_m: float) -> tuple[np.ndarray, float]:
        """(x, y) and CARLA yaw (deg) at ``distance_m`` along the route (clamped to its ends)."""
        d = float(np.clip(distance_m, 0.0, self.length_m))
        i = min(self.index_at(d), len(self.points) - 2)
        seg = self.points[i + 1] - self.points[i]
        length = float(np.hypot(*seg)) or 1.0
        xy = self.points[i] + seg * ((d - self.cumulative_m[i]) / length)
        return xy, math.degrees(math.atan2(seg[1], seg[0]))

    def distance_of(self, xy: np.ndarray, start_index: int = 0) -> float:
        """Distance along the route of the point nearest ``xy`` (from ``start_index`` on)."""
        d = np.linalg.norm(self.points[start_index:] - np.asarray(xy, dtype=float), axis=1)
        return float(self.cumulative_m[start_index + int(np.argmin(d))])

    def in_intersection(self, index: int) -> bool:
        """Whether point ``index`` lies on an internal lane of an intersection (not a mere road joint)."""
        lane = self.lanes[index] if 0 <= index < len(self.lanes) else ""
        if not lane.startswith(":"):
            return False
        junction = lane[1:].rsplit("_", 2)[0]
        if self._is_intersection is None:
            return True
        try:
            return bool(self._is_intersection(junction))
        except KeyError:
            return True

    def next_intersection(self, from_index: int) -> tuple[int, int] | None:
        """(entry, exit) indices of the first intersection at or after ``from_index``: the first point
        inside it and the first point after it (None when the route has no more)."""
        n = len(self.points)
        entry = next((i for i in range(from_index, n) if self.in_intersection(i)), None)
        if entry is None:
            return None
        exit_ = next((i for i in range(entry, n) if not self.in_intersection(i)), n - 1)
        return entry, exit_


def right_offset(xy: np.ndarray, yaw_deg: float, offset_m: float) -> np.ndarray:
    """``xy`` moved ``offset_m`` to the right of heading ``yaw_deg`` (CARLA's yaw + 90)."""
    rad = math.radians(yaw_deg + 90.0)
    return np.asarray(xy, dtype=float) + offset_m * np.array([math.cos(rad), math.sin(rad)])


class Scenario:
    """Base of the scenarios. Subclasses set :attr:`name`, build their actors in ``__init__``
    and implement :meth:`on_start` and :meth:`step`; they call :meth:`finish` at their end."""

    name: ClassVar[str] = ""

    def __init__(self, definition: ScenarioDefinition, env: Any) -> None:
        self.definition = definition
        self.env = env  # sumo_world.scenarios.manager.ScenarioEnv
        self.actors: list[ScriptedActor] = []
        self.props: list[Prop] = []
        self.status = WAITING
        self.started_at_s: float | None = None
        self.ended_at_s: float | None = None
        self.placement: dict[int, tuple[float, float]] = {}  # where each actor/prop was when it appeared

    @property
    def trigger_m(self) -> float:
        """Distance along the route of the trigger (its nearest route point: where scenario_runner's
        ``get_waypoint(trigger)`` lies on the lane), from the match position on."""
        t = self.definition.trigger
        start = max(0, self.definition.route_index - 3)
        return self.env.path.distance_of(np.array([t.x, t.y]), start)

    # ------------------------------------------------------------------ lifecycle (the manager's)
    def start(self, tick: ScenarioTick) -> None:
        """The ego reached the trigger: place the actors and begin."""
        self.status = RUNNING
        self.started_at_s = tick.time_s
        for item in [*self.actors, *self.props]:
            item.visible = True
        self.on_start(tick)
        self.placement = {item.actor_id: (item.x, item.y) for item in [*self.actors, *self.props]}

    def finish(self, tick: ScenarioTick) -> None:
        """The scenario's end condition held: remove its actors."""
        self.status = DONE
        self.ended_at_s = tick.time_s
        for item in [*self.actors, *self.props]:
            item.visible = False

    # ------------------------------------------------------------------ hooks
    def on_start(self, tick: ScenarioTick) -> None:
        """Called once when the scenario starts (default: nothing)."""

    def step(self, tick: ScenarioTick) -> None:
        """Advance one tick while running (move actors, test the end condition)."""
        raise NotImplementedError

    def perturb_control(self, throttle: float, steer: float) -> tuple[float, float]:
        """The ego's control after the scenario's interference (default: unchanged)."""
        return throttle, steer
