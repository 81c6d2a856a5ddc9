"""Fixtures of the team_code tests: CARLA's Town01 map and a waypoint on it."""
from __future__ import annotations

import pytest

# A straight lane of Town01 heading +y (yaw 90), about 31 m before a junction.
EGO_PROBE = (154.07, 16.0)


@pytest.fixture(scope="module")
def town01(shared_data):
    """Town01 as the carla wheel reads it from its OpenDRIVE file."""
    carla = pytest.importorskip("carla")
    return carla.Map("Town01", (shared_data / "carla_town01" / "Town01.xodr").read_text())


@pytest.fixture(scope="module")
def ego_wp(town01):
    """The waypoint at ``EGO_PROBE``: a straight lane heading +y, about 31 m before a junction."""
    carla = pytest.importorskip("carla")
    return town01.get_waypoint(carla.Location(x=EGO_PROBE[0], y=EGO_PROBE[1], z=0.0))
