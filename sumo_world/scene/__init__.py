"""What an agent sees: the scene dict of the contract and the leaderboard's sensor data, built from SUMO state."""
