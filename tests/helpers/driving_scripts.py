"""Driving scripts of increasing quality, as an LLM might write them (``SCRIPTS[1]`` always moves)."""
from __future__ import annotations

_EGO_FRAME = '''
import math


def _ego_frame(scene, point):
    ego_x, ego_y = scene["ego_location_world_coord"]
    fwd_x, fwd_y = scene["ego_orientation_unit_vector"]
    dx, dy = point[0] - ego_x, point[1] - ego_y
    return dx * fwd_x + dy * fwd_y, -dx * fwd_y + dy * fwd_x
'''

# Scripts of increasing quality; the fake LLM answers a prompt showing quality N with quality N+1.
SCRIPTS = {
    1: "# quality 1: always moves\n" + _EGO_FRAME + '''

def predict_speed_and_steering(scene):
    ahead, right = _ego_frame(scene, scene["ego_target_location_world_coord"])
    return "MOVE", math.degrees(math.atan2(right, ahead))
''',
    2: "# quality 2: stops for red lights and stop signs\n" + _EGO_FRAME + '''

def predict_speed_and_steering(scene):
    ahead, right = _ego_frame(scene, scene["ego_target_location_world_coord"])
    angle = math.degrees(math.atan2(right, ahead))
    red = scene["distance_to_red_light"]
    if red is not None and -1.0 < red < 10.0:
        return "STOP", angle
    stop = scene["distance_to_stop_sign"]
    if stop is not None and stop < 8.0:
        return "STOP", angle
    return "MOVE", angle
''',
    3: "# quality 3: also keeps clear of actors ahead\n" + _EGO_FRAME + '''

def predict_speed_and_steering(scene):
    ahead, right = _ego_frame(scene, scene["ego_target_location_world_coord"])
    angle = math.degrees(math.atan2(right, ahead))
    brake_m = 4.0 + scene["ego_forward_speed"] ** 2 / 6.0
    red = scene["distance_to_red_light"]
    if red is not None and -1.0 < red < brake_m + 4.0:
        return "STOP", angle
    stop = scene["distance_to_stop_sign"]
    if stop is not None and stop < brake_m + 2.0:
        return "STOP", angle
    for group in ("vehicles", "pedestrians"):
        for actor in scene[group].values():
            a, r = _ego_frame(scene, actor["location_world_coord"])
            if 0.0 < a < brake_m + 6.0 and abs(r) < 2.5:
                return "STOP", angle
    return "MOVE", angle
''',
}
