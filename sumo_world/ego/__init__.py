"""The ego car: its kinematic bicycle (throttle, steer, brake) and what a crash does to it."""
