"""Leaderboard agents in the embedded world: loading an agent class as the leaderboard does, and the built-in ones."""
