"""What a finished (or aborted) route run leaves behind, before scoring.

The simulation produces a :class:`RouteOutcome`; the results writer turns it
into a leaderboard-format record, and the bird's-eye picture draws it. All
coordinates are CARLA world coordinates (metres).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Infraction", "TrajectorySample", "ActorSample", "RouteOutcome"]


@dataclass(frozen=True)
class Infraction:
    """One infraction event.

    ``kind`` is a key of :data:`driving.penalties.INFRACTION_TYPES`.
    ``message`` reads like the leaderboard's (e.g. "Agent collided against
    object with type=vehicle.car and id=12 at (x=.., y=.., z=..)").
    """

    kind: str
    time_s: float
    x: float
    y: float
    message: str
    actor_id: int | None = None


@dataclass(frozen=True)
class TrajectorySample:
    """The ego at one tick."""

    time_s: float
    x: float
    y: float
    yaw_deg: float
    speed_mps: float
    throttle: float = 0.0
    steer: float = 0.0
    brake: float = 0.0


@dataclass(frozen=True)
class ActorSample:
    """Another actor at one tick, for pictures (kept sparsely)."""

    time_s: float
    actor_id: int
    actor_type: str
    x: float
    y: float
    yaw_deg: float
    half_length_m: float
    half_width_m: float


@dataclass
class RouteOutcome:
    """Everything the scorer and the picture need about one route run.

    ``status`` is the leaderboard's: "Completed", "Failed - Agent got blocked",
    "Failed - Agent deviated from the route", "Failed - Agent timed out",
    "Failed - Simulation crashed", "Failed - Agent crashed".
    ``route_completion_percent`` is the share of the route length the ego
    covered, 0-100. ``outside_route_lanes_percent`` is the share of driven
    distance outside the route's lanes, 0-100.
    """

    route_id: str
    town: str
    status: str
    route_completion_percent: float
    route_length_m: float
    duration_game_s: float
    duration_system_s: float
    infractions: list[Infraction] = field(default_factory=list)
    outside_route_lanes_percent: float = 0.0
    trajectory: list[TrajectorySample] = field(default_factory=list)
    actors: list[ActorSample] = field(default_factory=list)
    route_xy: list[tuple[float, float]] = field(default_factory=list)
    agent_exceptions: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
