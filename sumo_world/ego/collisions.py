"""What a crash does in the embedded world: CARLA's physics, simply.

In CARLA a car cannot drive through another one: at contact the hero's speed
is mostly gone, it is stopped or pushed back, and the car it hit is shoved and
its autopilot stands for a while. SUMO has no rigid bodies (the ego is placed
by us and SUMO's drivers only react to it), so without a model a crash costs
nothing: an agent drives through traffic and still completes its route.

The model (one tick = one bicycle-model step of the ego):

- **Contact ahead**: the first tick the ego's footprint touches a vehicle or
  walker that lies ahead of it (on its level, see
  :data:`sumo_world.simulation.snapshot.LEVEL_SEPARATION_M`), the ego keeps
  :data:`EGO_SPEED_KEPT_AT_CONTACT` of its speed (none: the crash stops it).
  Being hit from behind does not slow the ego.
- **No passing through**: while the ego touches a vehicle, a move that does not
  take its centre farther from that vehicle's is undone: the ego keeps its
  previous pose at zero speed. It can steer away, or wait for the other to go.
- **The other actor stops**: a SUMO vehicle or walker that the ego starts to
  touch is held at zero speed for :data:`OTHER_STOP_S` seconds, then released
  to its own driver model (even if the ego still touches it, so that two
  actors pressed together never stand for ever).

So an agent that drives into traffic loses time, can be blocked (a parked car
it keeps pushing against) or time out, and its route completion and driving
score fall as they would in CARLA.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from shapely.geometry import Polygon

from driving.geometry import box_corners
from sumo_world.ego.dynamics import EgoParams, EgoState
from sumo_world.simulation.snapshot import ActorArrays, WorldSnapshot

__all__ = ["CollisionResponse", "EGO_SPEED_KEPT_AT_CONTACT", "OTHER_STOP_S", "actor_polygon"]

logger = logging.getLogger(__name__)

# Share of its speed the ego keeps at the first tick of a contact with an actor ahead of it.
EGO_SPEED_KEPT_AT_CONTACT = 0.0
# How long (s) an actor the ego touched stands still after the last contact.
OTHER_STOP_S = 5.0
# A move counts as leaving a touched vehicle when its centre gets at least this much farther (m).
_SEPARATING_M = 1e-3


@dataclass
class _Held:
    group: str  # "vehicles" | "pedestrians"
    sumo_id: str
    until_s: float
    max_speed_mps: float = -1.0  # a walker's own maximum, restored on release


class CollisionResponse:
    """Applies the crash model to the ego's proposed move each tick, and holds the actors it hit."""

    def __init__(self, world: Any, ego_params: EgoParams | None = None) -> None:
        self.world = world
        self.ego_params = ego_params or getattr(world, "ego_params", None) or EgoParams()
        self._touching: set[tuple[str, int]] = set()
        self._held: dict[tuple[str, int], _Held] = {}
        self.contacts = 0  # contacts that cost the ego its speed

    def resolve(self, previous: EgoState, proposed: EgoState, snapshot: WorldSnapshot) -> EgoState:
        """The ego's state after the crash model, given its pose before and after this tick's control."""
        now = float(snapshot.time_s)
        state = proposed
        touching: set[tuple[str, int]] = set()
        new_polygon = old_polygon = None  # built when an actor is near enough to touch (rarely)
        for group in ("vehicles", "pedestrians"):
            actors: ActorArrays = getattr(snapshot, group)
            for k in self._near(actors, proposed, snapshot.ego_z_m):
                if new_polygon is None:
                    new_polygon, old_polygon = self._polygon(proposed), self._polygon(previous)
                other = actor_polygon(actors, k)
                if not new_polygon.intersects(other):
                    continue
                key = (group, int(actors.ids[k]))
                touching.add(key)
                if key not in self._touching:
                    self._hold(key, actors.sumo_ids[k], now)
                ahead = float(np.dot(actors.xy[k] - previous.xy, previous.forward)) > 0.0
                if key not in self._touching and ahead:
                    self.contacts += 1
                    state = replace(state, speed_mps=state.speed_mps * EGO_SPEED_KEPT_AT_CONTACT)
                if group == "vehicles" and old_polygon.intersects(other):
                    before = float(np.linalg.norm(actors.xy[k] - previous.xy))
                    after = float(np.linalg.norm(actors.xy[k] - proposed.xy))
                    if after < before + _SEPARATING_M:  # pushing into it: the other car does not give way
                        state = replace(previous, speed_mps=0.0, accel_mps2=0.0, yaw_rate_dps=0.0)
        self._touching = touching
        self._release(now)
        return state

    def _near(self, actors: ActorArrays, ego: EgoState, ego_z_m: float) -> np.ndarray:
        if not len(actors):
            return np.zeros(0, dtype=int)
        p = self.ego_params
        reach = math.hypot(p.half_length_m, p.half_width_m) + np.hypot(actors.half_length_m, actors.half_width_m)
        close = np.linalg.norm(actors.xy - ego.xy, axis=1) < reach
        return np.nonzero(close & actors.on_level(ego_z_m))[0]

    def _polygon(self, state: EgoState) -> Polygon:
        p = self.ego_params
        return Polygon(box_corners(state.xy, state.forward, p.half_length_m, p.half_width_m))

    def held_sumo_ids(self) -> set[str]:
        """SUMO ids of the actors the crash model holds still now."""
        return {held.sumo_id for held in self._held.values()}

    # ------------------------------------------------------------------ holding SUMO's actors
    def _hold(self, key: tuple[str, int], sumo_id: str, now: float) -> None:
        if key in self._held or sumo_id.startswith("static_"):
            return  # held already (from the start of this contact), or a scripted prop that never moves
        group = key[0]
        held = _Held(group, sumo_id, now + OTHER_STOP_S)
        sumo = self.world.sumo
        try:
            if group == "vehicles":
                sumo.vehicle.setSpeed(sumo_id, 0.0)
            else:
                held.max_speed_mps = float(sumo.person.getMaxSpeed(sumo_id))
                sumo.person.setMaxSpeed(sumo_id, 0.0)
        except sumo.TraCIException:  # it just left the simulation
            return
        self._held[key] = held

    def _release(self, now: float) -> None:
        sumo = self.world.sumo
        for key, held in list(self._held.items()):
            if held.until_s > now:
                continue
            del self._held[key]
            try:
                if held.group == "vehicles":
                    sumo.vehicle.setSpeed(held.sumo_id, -1.0)  # back to its own driver model
                else:
                    sumo.person.setMaxSpeed(held.sumo_id, held.max_speed_mps)
            except sumo.TraCIException:
                logger.debug("actor %s left before its release", held.sumo_id)


def actor_polygon(actors: ActorArrays, k: int) -> Polygon:
    """The footprint of actor ``k`` (an oriented box, CARLA frame)."""
    rad = math.radians(float(actors.yaw_deg[k]))
    forward = np.array([math.cos(rad), math.sin(rad)])
    return Polygon(box_corners(actors.xy[k], forward, float(actors.half_length_m[k]),
                               float(actors.half_width_m[k])))
