"""Background vehicles locked in a SUMO jam near the ego leave the simulation.

SUMO's own jam release (``--time-to-teleport``) moves a vehicle on only when it
stands first on its lane and cannot enter the next one. Vehicles locked
bumper to bumper behind another one (seen in Town03's roundabout and at
Town04's merges under leaderboard traffic) stand there for good, and an ego
queued behind them is "blocked" after 180 s, a verdict CARLA's Traffic Manager,
which does not lock up that way, would rarely give. So every
:data:`CHECK_PERIOD_S`, a background vehicle of the snapshot (within the
world's sense radius of the ego) that has stood still for
:data:`JAM_RELEASE_S` is removed, as SUMO's ``--time-to-teleport.remove``
would. A light's red phase (under a minute in the imported towns) is far
shorter; the ego itself is never removed.
"""
from __future__ import annotations

import logging
from typing import Any

__all__ = ["JamRelease", "JAM_RELEASE_S", "CHECK_PERIOD_S"]

logger = logging.getLogger(__name__)

JAM_RELEASE_S = 90.0  # standing still this long near the ego: locked (half the leaderboard's blocked time)
CHECK_PERIOD_S = 1.0


class JamRelease:
    """Removes the SUMO vehicles near the ego that have stood still for ``release_s`` (:data:`JAM_RELEASE_S`)."""

    def __init__(self, world: Any, release_s: float = JAM_RELEASE_S) -> None:
        self.world = world
        self.release_s = float(release_s)
        self.released: list[str] = []  # SUMO ids removed, in order
        self._next_check_s = 0.0

    def update(self, snapshot: Any, held: set[str] | frozenset[str] = frozenset()) -> None:
        """Check the standing vehicles of ``snapshot`` (at most every :data:`CHECK_PERIOD_S`).

        ``held`` are ids another model keeps still on purpose (the crash model's).
        """
        now = float(snapshot.time_s)
        if now < self._next_check_s:
            return
        self._next_check_s = now + CHECK_PERIOD_S
        actors = snapshot.vehicles
        vehicle = self.world.sumo.vehicle
        for k in range(len(actors)):
            sumo_id = actors.sumo_ids[k]
            if actors.speed_mps[k] >= 0.1 or sumo_id in held or sumo_id.startswith("static_"):
                continue
            try:
                if vehicle.getWaitingTime(sumo_id) >= self.release_s:
                    vehicle.remove(sumo_id)
                    self.released.append(sumo_id)
                    logger.debug("t=%.1f s: %s stood %.0f s in a jam near the ego: removed", now, sumo_id,
                                 self.release_s)
            except self.world.sumo.TraCIException:  # it left this tick
                continue
