"""Progress along a dense route, shared by every scene producer.

The leaderboard hands an agent a dense route (about 1 m apart). The scene's
``ego_target_location_world_coord`` is the first route point more than 4 m
ahead of the ego, and ``route_ahead_world_coord`` the points after the ego's
progress; :class:`RouteTracker` keeps that progress monotone, so a route that
crosses itself is followed in order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["RouteTracker", "TARGET_MIN_DISTANCE_M"]

TARGET_MIN_DISTANCE_M = 4.0


@dataclass
class RouteTracker:
    """Tracks the ego's index along ``points`` (N, 2), CARLA frame, metres.

    ``commands`` optionally holds one RoadOption name per point.
    ``search_window`` bounds how far ahead (in points) progress may jump in one
    update, which keeps a self-crossing route in order.
    """

    points: np.ndarray
    commands: list[str] | None = None
    search_window: int = 50
    index: int = 0
    _cumulative_m: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=float).reshape(-1, 2)
        if len(self.points) < 2:
            raise ValueError(f"a route needs at least 2 points, got {len(self.points)}")
        if self.commands is not None and len(self.commands) != len(self.points):
            raise ValueError(f"{len(self.commands)} commands for {len(self.points)} route points")
        steps = np.linalg.norm(np.diff(self.points, axis=0), axis=1)
        self._cumulative_m = np.concatenate([[0.0], np.cumsum(steps)])

    @property
    def cumulative_m(self) -> np.ndarray:
        """Route length (N,) from the first point to each point."""
        return self._cumulative_m

    @property
    def length_m(self) -> float:
        """The whole route's length."""
        return float(self._cumulative_m[-1])

    @property
    def progress_m(self) -> float:
        """Route length up to the ego's current point."""
        return float(self._cumulative_m[self.index])

    def update(self, ego_xy: np.ndarray) -> int:
        """Advance to the route point nearest the ego within the search window."""
        end = min(len(self.points), self.index + self.search_window + 1)
        window = self.points[self.index:end]
        nearest = int(np.argmin(np.linalg.norm(window - np.asarray(ego_xy, dtype=float), axis=1)))
        self.index += nearest
        return self.index

    def target_index(self, ego_xy: np.ndarray, min_distance_m: float = TARGET_MIN_DISTANCE_M) -> int:
        """Index of the first point after the ego's progress more than ``min_distance_m`` away."""
        ahead = self.points[self.index:]
        far = np.nonzero(np.linalg.norm(ahead - np.asarray(ego_xy, dtype=float), axis=1) > min_distance_m)[0]
        return self.index + int(far[0]) if len(far) else len(self.points) - 1

    def target(self, ego_xy: np.ndarray, min_distance_m: float = TARGET_MIN_DISTANCE_M) -> np.ndarray:
        """A copy of the point at :meth:`target_index`."""
        return self.points[self.target_index(ego_xy, min_distance_m)].copy()

    def command_at(self, index: int) -> str:
        """The RoadOption name of point ``index`` (LANEFOLLOW when the route has none)."""
        return self.commands[index] if self.commands is not None else "LANEFOLLOW"

    def indices_ahead(self, max_distance_m: float = 50.0) -> range:
        """Indices of the route points from the current progress up to ``max_distance_m``
        along the route (at least the current point)."""
        limit = self._cumulative_m[self.index] + max_distance_m
        end = int(np.searchsorted(self._cumulative_m, limit, side="right"))
        return range(self.index, max(end, self.index + 1))

    def points_ahead(self, max_distance_m: float = 50.0) -> np.ndarray:
        """Route points from the current progress up to ``max_distance_m`` along the route."""
        ahead = self.indices_ahead(max_distance_m)
        return self.points[ahead.start:ahead.stop].copy()

    def remaining_m(self) -> float:
        """Route length still ahead of the ego's current point."""
        return self.length_m - self.progress_m
