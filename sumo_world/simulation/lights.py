"""Traffic lights held at one state (tests and scripted scenes), and reading a link's signal."""
from __future__ import annotations

from typing import Any

__all__ = ["ForcedLights"]


class ForcedLights:
    """Holds every traffic light of a running simulation at one state until released.

    SUMO's programs would switch the lights back at their next phase, so a held
    state is written again before every step (:meth:`apply`).
    """

    def __init__(self, sumo: Any) -> None:
        self._sumo = sumo
        self.state_char: str | None = None

    def force(self, state_char: str | None) -> None:
        """Hold every light at ``state_char`` ("r", "y", "G"); None returns to the programs."""
        self.state_char = state_char
        if state_char is None:
            tl = self._sumo.trafficlight
            for tls in tl.getIDList():
                programs = tl.getAllProgramLogics(tls)
                if programs:
                    tl.setProgram(tls, programs[0].programID)
        else:
            self.apply()

    def apply(self) -> None:
        """Write the held state again (before a step); nothing when none is held."""
        if self.state_char is None:
            return
        tl = self._sumo.trafficlight
        for tls in tl.getIDList():
            n = len(tl.getRedYellowGreenState(tls))
            tl.setRedYellowGreenState(tls, self.state_char * n)

    def light_state(self, tls_id: str, link_index: int) -> str:
        """SUMO's signal character of one link ('r', 'y', 'G', 'g', 'u', 'o', 's', ...)."""
        state = self._sumo.trafficlight.getRedYellowGreenState(tls_id)
        if 0 <= link_index < len(state):
            return state[link_index]
        return "o"
