"""Footprints of vehicles as shapely polygons, in the world frame (CARLA's yaw: clockwise, degrees)."""
from __future__ import annotations

import math

from shapely.geometry import Polygon


def box(x: float, y: float, yaw_deg: float, half_length: float, half_width: float) -> Polygon:
    """The rectangle centred at (x, y), its length along ``yaw_deg``."""
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    return Polygon([(x + a * half_length * c - b * half_width * s, y + a * half_length * s + b * half_width * c)
                    for a, b in ((1, 1), (1, -1), (-1, -1), (-1, 1))])
