"""The leaderboard's infraction table and driving-score arithmetic (leaderboard 1.0).

The one source of these numbers: the embedded world's scoring, the objective's
infraction term and the reports all read them from here.
"""
from __future__ import annotations

from typing import Mapping

__all__ = [
    "INFRACTION_TYPES", "PENALTY", "ROUTE_ENDING_INFRACTIONS",
    "infraction_penalty", "driving_score",
]

# The keys of ``infractions`` in a leaderboard-1.0 route record, in its order.
INFRACTION_TYPES: tuple[str, ...] = (
    "collisions_layout",
    "collisions_pedestrian",
    "collisions_vehicle",
    "outside_route_lanes",
    "red_light",
    "route_dev",
    "route_timeout",
    "stop_infraction",
    "vehicle_blocked",
)

# Multiplicative penalty per occurrence.
PENALTY: dict[str, float] = {
    "collisions_pedestrian": 0.50,
    "collisions_vehicle": 0.60,
    "collisions_layout": 0.65,
    "red_light": 0.70,
    "stop_infraction": 0.80,
}

# These end the route (no multiplicative penalty; they cut route completion).
ROUTE_ENDING_INFRACTIONS: tuple[str, ...] = ("route_dev", "vehicle_blocked", "route_timeout")

# Leaderboard thresholds.
ROUTE_DEVIATION_M = 30.0
BLOCKED_SPEED_MPS = 0.1
BLOCKED_TIME_S = 180.0
STOP_SPEED_MPS = 0.1  # a stop sign counts as completed below this speed
# ... with the ego's front this far before its stop line at most (or this far past it)
STOP_ZONE_BEFORE_M = 8.0
STOP_ZONE_AFTER_M = 2.0


def infraction_penalty(counts: Mapping[str, int], outside_route_lanes_percent: float = 0.0) -> float:
    """Product of the per-occurrence penalties, times (1 - % of route outside its lanes)."""
    penalty = 1.0
    for name, per_event in PENALTY.items():
        penalty *= per_event ** int(counts.get(name, 0))
    penalty *= max(0.0, 1.0 - outside_route_lanes_percent / 100.0)
    return penalty


def driving_score(route_completion_percent: float, penalty: float) -> float:
    """Driving score in percent: route completion times infraction penalty."""
    return max(0.0, min(100.0, route_completion_percent)) * penalty
