"""Leaderboard-1.0 scenarios in the embedded world.

:mod:`~sumo_world.scenarios.definitions` reads the scenario file (the
leaderboard's ``--scenarios``) and matches it to routes as the leaderboard
does; :mod:`~sumo_world.scenarios.manager` runs a route's scenarios; one module
per scenario class plays it (Scenario1 :mod:`control_loss`, 2
:mod:`follow_leading_vehicle`, 3 :mod:`object_crossing`, 4
:mod:`turning_cyclist`, 5 :mod:`other_leading_vehicle`, 6
:mod:`opposite_obstacle`, 7-10 :mod:`junction_crossing`).
"""
from sumo_world.scenarios.definitions import (
    ScenarioDefinition, ScenarioFile, ScenarioFileError, match_route, read_scenario_file,
)
from sumo_world.scenarios.manager import ScenarioManager, scenario_class

__all__ = ["ScenarioDefinition", "ScenarioFile", "ScenarioFileError", "ScenarioManager",
           "match_route", "read_scenario_file", "scenario_class"]
