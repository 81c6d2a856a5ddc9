"""Towns: SUMO nets stored under a name, generated with netgenerate or imported from CARLA (signals, stop signs)."""
