"""Steering: pure pursuit on the route ahead."""
from __future__ import annotations

import numpy as np

from driving.geometry import relative_angle_deg
from expert.config import ExpertConfig
from expert.path import RoutePath

__all__ = ["lookahead_m", "pure_pursuit_steering_deg"]


def lookahead_m(speed_mps: float, config: ExpertConfig) -> float:
    """Lookahead distance: grows with speed, so the car cuts fewer corners slowly and
    does not weave fast."""
    value = config.lookahead_base_m + config.lookahead_gain_s * max(0.0, speed_mps)
    return float(np.clip(value, config.lookahead_min_m, config.lookahead_max_m))


def pure_pursuit_steering_deg(path: RoutePath, ego_xy: np.ndarray, ego_forward: np.ndarray,
                              ego_s_m: float, speed_mps: float, config: ExpertConfig) -> float:
    """The angle (degrees, positive right, the paper's convention) from the ego's heading to
    the route point one lookahead distance ahead of the ego's projection on the route."""
    point, _ = path.interpolate(np.array(ego_s_m + lookahead_m(speed_mps, config)))
    return relative_angle_deg(ego_xy, ego_forward, point)
