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
:data:`STANDING_MPS` and is not in the queue of a red light (a chain of
standing vehicles, none inside a junction, whose head stands at a stop line
showing red or yellow). Time in such a queue never counts (the count pauses
there and restarts only when the vehicle moves), so the release can be
quick: a car that has stood :data:`JAM_RELEASE_S` on green or behind a
vehicle that stands where no light holds it (its way ahead is full) is part
of a lock. Small, dense towns lock into loops of queues at the
leaderboard's vehicle counts (issue 25); a release after 90 s of standing
still, red included, freed one slot per 90 s. The ego (and its shadow) are
never removed. CARLA's Traffic Manager does not lock up this way, so an ego
queued behind such a lock would otherwise be "blocked" where it would not be
in CARLA. With a :class:`~sumo_world.traffic.refill.Refill` (as the route
runner sets it up), each released vehicle is replaced by one of its type out
of the ego's sight, so the town keeps the count CARLA keeps.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Collection

if TYPE_CHECKING:
    from sumo_world.traffic.refill import Refill

__all__ = ["JamRelease", "JAM_RELEASE_S", "CHECK_PERIOD_S", "STANDING_MPS"]

logger = logging.getLogger(__name__)

JAM_RELEASE_S = 45.0  # standing locked (not at a red) this long: released
CHECK_PERIOD_S = 1.0
STANDING_MPS = 0.1
# SUMO link states of a light a vehicle waits for (red, red-yellow, yellow).
_WAIT_STATES = frozenset("rRuyY")
# A queue's head stands within this of its light's stop line; queued cars within this of each other.
_HEAD_M = 10.0
_QUEUE_GAP_M = 10.0
_MAX_QUEUE = 40


class JamRelease:
    """Removes the background vehicles that have stood locked for ``release_s`` (:data:`JAM_RELEASE_S`)."""

    def __init__(self, world: Any, release_s: float = JAM_RELEASE_S, refill: "Refill | None" = None) -> None:
        self.world = world
        self.release_s = float(release_s)
        self.refill = refill
        self.released: list[str] = []  # SUMO ids removed, in order
        self._locked_s: dict[str, float] = {}  # time each standing vehicle has stood locked
        self._next_check_s = 0.0

    def update(self, time_s: float, held: Collection[str] = ()) -> None:
        """Check every background vehicle at simulation time ``time_s`` (at most every :data:`CHECK_PERIOD_S`).

        ``held`` are ids another model keeps still on purpose (the crash model's).
        """
        from sumo_world.simulation.ego_presence import EGO_ID, SHADOW_ID

        if time_s < self._next_check_s:
            return
        self._next_check_s = time_s + CHECK_PERIOD_S
        vehicle = self.world.sumo.vehicle
        locked: dict[str, float] = {}
        at_red: dict[str, bool] = {}  # queue membership, shared by a queue's vehicles within this check
        for sumo_id in vehicle.getIDList():
            if sumo_id in (EGO_ID, SHADOW_ID) or sumo_id in held:
                continue
            try:
                if vehicle.getSpeed(sumo_id) >= STANDING_MPS:
                    continue  # it moves: its count starts again from 0
                stood = self._locked_s.get(sumo_id, 0.0)
                if not self.queued_for_red(vehicle, sumo_id, at_red):
                    stood += CHECK_PERIOD_S
                if stood < self.release_s:
                    locked[sumo_id] = stood
                    continue
                type_id, vclass = vehicle.getTypeID(sumo_id), vehicle.getVehicleClass(sumo_id)
                vehicle.remove(sumo_id)
                self.released.append(sumo_id)
                logger.debug("t=%.1f s: %s stood locked %.0f s: removed", time_s, sumo_id, stood)
            except self.world.sumo.TraCIException:  # it left this tick
                continue
            if self.refill is not None:
                self.refill.replace(sumo_id, type_id, vclass)
        self._locked_s = locked

    @staticmethod
    def queued_for_red(vehicle: Any, sumo_id: str, cache: dict[str, bool] | None = None) -> bool:
        """Whether the standing vehicle is in the queue of a red (or yellow) light: following its
        standing leaders (each within :data:`_QUEUE_GAP_M`), the head stands within :data:`_HEAD_M`
        of a stop line showing it. A vehicle inside a junction waits for room, not for a light; a
        queue headed by a car that stands where no light holds it (a full exit, a locked merge) is a
        lock. A queue behind the standing ego (or its shadow) waits for the ego: whatever the
        agent waits for, it is not the world's to clear. ``cache`` keeps the answers of one check
        (a queue shares its head's)."""
        from sumo_world.simulation.ego_presence import EGO_ID, SHADOW_ID

        cache = {} if cache is None else cache
        chain: list[str] = []
        current = sumo_id
        answer = False
        for _ in range(_MAX_QUEUE):
            if current in cache:
                answer = cache[current]
                break
            chain.append(current)
            if vehicle.getLaneID(current).startswith(":"):
                break
            upcoming = vehicle.getNextTLS(current)
            if upcoming and float(upcoming[0][2]) <= _HEAD_M:
                answer = str(upcoming[0][3]) in _WAIT_STATES
                break
            leader = vehicle.getLeader(current, _QUEUE_GAP_M)
            if not leader or not leader[0] or vehicle.getSpeed(leader[0]) >= STANDING_MPS:
                break
            current = leader[0]
            if current in (EGO_ID, SHADOW_ID):
                answer = True
                break
        for member in chain:
            cache[member] = answer
        return answer
