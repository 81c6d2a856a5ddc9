"""Background vehicles locked in a SUMO jam leave the simulation; the world never teleports.

SUMO's own jam release (``--time-to-teleport``) would move a standing vehicle on
only when it is first on its lane, leaves vehicles locked bumper to bumper
behind others (seen in Town03's roundabout and at Town04's merges under
leaderboard traffic) where they are, and teleports the ego too when it has
stood as long: libsumo then crashes on the next move of the ego. So the world
runs SUMO without teleports, and :class:`JamRelease` checks every
:data:`CHECK_PERIOD_S` each background vehicle: one that has stood still for
:data:`JAM_RELEASE_S` is removed, as SUMO's ``--time-to-teleport.remove``
would. A light's red phase (under a minute in the imported towns) is far
shorter; the ego (and its shadow) are never removed. CARLA's Traffic Manager
does not lock up this way, so an ego queued behind such a lock would
otherwise be "blocked" where it would not be in CARLA.
"""
from __future__ import annotations

import logging
from typing import Any, Collection

__all__ = ["JamRelease", "JAM_RELEASE_S", "CHECK_PERIOD_S"]

logger = logging.getLogger(__name__)

JAM_RELEASE_S = 90.0  # standing still this long: locked (half the leaderboard's blocked time)
CHECK_PERIOD_S = 1.0


class JamRelease:
    """Removes the background vehicles that have stood still for ``release_s`` (:data:`JAM_RELEASE_S`)."""

    def __init__(self, world: Any, release_s: float = JAM_RELEASE_S) -> None:
        self.world = world
        self.release_s = float(release_s)
        self.released: list[str] = []  # SUMO ids removed, in order
        self._next_check_s = 0.0

    def update(self, time_s: float, held: Collection[str] = ()) -> None:
        """Check every background vehicle at simulation time ``time_s`` (at most every :data:`CHECK_PERIOD_S`).

        ``held`` are ids another model keeps still on purpose (the crash model's).
        """
        from sumo_world.world import EGO_ID, SHADOW_ID

        if time_s < self._next_check_s:
            return
        self._next_check_s = time_s + CHECK_PERIOD_S
        vehicle = self.world.sumo.vehicle
        for sumo_id in vehicle.getIDList():
            if sumo_id in (EGO_ID, SHADOW_ID) or sumo_id in held:
                continue
            try:
                if vehicle.getWaitingTime(sumo_id) >= self.release_s:
                    vehicle.remove(sumo_id)
                    self.released.append(sumo_id)
                    logger.debug("t=%.1f s: %s stood %.0f s in a jam: removed", time_s, sumo_id, self.release_s)
            except self.world.sumo.TraCIException:  # it left this tick
                continue
