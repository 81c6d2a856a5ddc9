"""A simple rule-based seed: stop for red lights, stop signs and actors right ahead.

Better than the naive seed, still crude (fixed distances, no prediction); a
starting point that the optimizer can tune (its constants and comparisons are
what the `mutation` optimizer rewrites).
"""
import math


def _ego_frame(scene, point):
    ego_x, ego_y = scene["ego_location_world_coord"]
    fwd_x, fwd_y = scene["ego_orientation_unit_vector"]
    dx, dy = point[0] - ego_x, point[1] - ego_y
    return dx * fwd_x + dy * fwd_y, -dx * fwd_y + dy * fwd_x


def predict_speed_and_steering(scene):
    ahead, right = _ego_frame(scene, scene["ego_target_location_world_coord"])
    angle = math.degrees(math.atan2(right, ahead))
    red = scene.get("distance_to_red_light")
    if red is not None and 0.0 < red < 8.0:
        return "STOP", angle
    stop = scene.get("distance_to_stop_sign")
    if stop is not None and stop < 6.0:
        return "STOP", angle
    for group in ("vehicles", "pedestrians"):
        for actor in scene.get(group, {}).values():
            a, r = _ego_frame(scene, actor["location_world_coord"])
            if 0.0 < a < 10.0 and abs(r) < 2.5:
                return "STOP", angle
            if 0.0 < a < 16.0 and abs(r) < 3.0:
                return "SLOW", angle
    return "MOVE", angle
