"""Hand-written seed scripts for ``predict_speed_and_steering`` (plain .py files)."""
