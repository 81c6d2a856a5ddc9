"""Leaderboard routes: their XML files, and dense routes planned on the SUMO lane graph."""
