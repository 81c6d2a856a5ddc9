"""What every driving part shares: the scene contract, labels, geometry, units,
controllers, the leaderboard penalty table and the privileged-provider interface.

This package imports nothing from the rest of the project.
"""
