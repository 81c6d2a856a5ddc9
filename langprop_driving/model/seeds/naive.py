"""A deliberately naive seed policy: it nearly always MOVEs toward the route target.

It has the shape of a rule-based driver (red light, stop sign, an actor ahead)
but its distances are far too small (it would need 3 to 4 m to stop from 6 m/s),
so it runs red lights and stop signs and drives into other cars: training has
plenty to improve. The `mutation`
optimizer (no LLM) can only tune these numbers and comparisons; an LLM rewrites
the rules themselves. Any file with a `predict_speed_and_steering(scene)` can
replace this one (`--seed-script`).
"""
import math


def _ego_frame(scene, point):
    """(ahead, right) of a world point, metres, in the ego frame (positive right)."""
    ego_x, ego_y = scene["ego_location_world_coord"]
    fwd_x, fwd_y = scene["ego_orientation_unit_vector"]
    dx, dy = point[0] - ego_x, point[1] - ego_y
    return dx * fwd_x + dy * fwd_y, -dx * fwd_y + dy * fwd_x


def predict_speed_and_steering(scene):
    ahead, right = _ego_frame(scene, scene["ego_target_location_world_coord"])
    angle = math.degrees(math.atan2(right, ahead))
    red = scene["distance_to_red_light"]
    if red is not None and red < 1.0:
        return "STOP", angle
    stop = scene["distance_to_stop_sign"]
    if stop is not None and stop < 1.0:
        return "STOP", angle
    for group in ("vehicles", "pedestrians"):
        for actor in scene[group].values():
            a, r = _ego_frame(scene, actor["location_world_coord"])
            if 0.0 < a < 2.0 and abs(r) < 1.0:
                return "STOP", angle
    return "MOVE", angle
