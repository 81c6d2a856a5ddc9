"""Scoring: the leaderboard's criteria per tick, the records a run leaves, results files and their summaries."""
