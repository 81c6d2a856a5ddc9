"""Background vehicles locked in a SUMO jam leave the simulation; the world never teleports.

SUMO's own jam release (``--time-to-teleport``) would move a standing vehicle on
only when it is first on its lane, leaves vehicles locked bumper to bumper
behind others (seen in Town03's roundabout and at Town04's merges under
leaderboard traffic) where they are, and teleports the ego too when it has
stood as long: libsumo then crashes on the next move of the ego. So the world
runs SUMO without teleports, and :class:`JamRelease` checks every
:data:`CHECK_PERIOD_S` each background vehicle: one that has stood *locked*
for :data:`JAM_RELEASE_S` is removed, as SUMO's ``--time-to-teleport.remove``
would.

Only real locks count: a vehicle stands locked while it is below
:data:`STANDING_MPS` and is not waiting for a red light (the next light on its
way shows red or yellow, and it is not inside a junction). Waiting in the
queue of a red, however long the queue, never counts, so the release can be
quick: a car that stands on green for :data:`JAM_RELEASE_S` (its way ahead is
full) is part of a lock. Small, dense towns lock into loops of queues at the
leaderboard's vehicle counts (issue 25); a release after 90 s of standing
still, red included, freed one slot per 90 s. The ego (and its shadow) are
never removed. CARLA's Traffic Manager does not lock up this way, so an ego
queued behind such a lock would otherwise be "blocked" where it would not be
in CARLA.
"""
from __future__ import annotations

import logging
from typing import Any, Collection

__all__ = ["JamRelease", "JAM_RELEASE_S", "CHECK_PERIOD_S", "STANDING_MPS"]

logger = logging.getLogger(__name__)

JAM_RELEASE_S = 45.0  # standing locked (not at a red) this long: released
CHECK_PERIOD_S = 1.0
STANDING_MPS = 0.1
# SUMO link states of a light a vehicle waits for (red, red-yellow, yellow).
_WAIT_STATES = frozenset("rRuyY")


class JamRelease:
    """Removes the background vehicles that have stood locked for ``release_s`` (:data:`JAM_RELEASE_S`)."""

    def __init__(self, world: Any, release_s: float = JAM_RELEASE_S) -> None:
        self.world = world
        self.release_s = float(release_s)
        self.released: list[str] = []  # SUMO ids removed, in order
        self._locked_s: dict[str, float] = {}  # time each standing vehicle has stood locked
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
        locked: dict[str, float] = {}
        for sumo_id in vehicle.getIDList():
            if sumo_id in (EGO_ID, SHADOW_ID) or sumo_id in held:
                continue
            try:
                if vehicle.getSpeed(sumo_id) >= STANDING_MPS or self.waits_for_red(vehicle, sumo_id):
                    continue
                stood = self._locked_s.get(sumo_id, 0.0) + CHECK_PERIOD_S
                if stood < self.release_s:
                    locked[sumo_id] = stood
                    continue
                vehicle.remove(sumo_id)
                self.released.append(sumo_id)
                logger.debug("t=%.1f s: %s stood locked %.0f s: removed", time_s, sumo_id, stood)
            except self.world.sumo.TraCIException:  # it left this tick
                continue
        self._locked_s = locked  # a vehicle that moved (or waits for a red) starts again from 0

    @staticmethod
    def waits_for_red(vehicle: Any, sumo_id: str) -> bool:
        """Whether the vehicle stands in the queue of a red (or yellow) light: the next light on its
        way shows it, and the vehicle is not inside a junction (a car standing in the box waits for
        room, not for the light)."""
        if vehicle.getLaneID(sumo_id).startswith(":"):
            return False
        upcoming = vehicle.getNextTLS(sumo_id)
        return bool(upcoming) and str(upcoming[0][3]) in _WAIT_STATES
