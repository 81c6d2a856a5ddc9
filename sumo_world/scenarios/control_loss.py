"""Scenario1, control loss (scenario_runner's ``ControlLoss``).

Three flat debris props (``static.prop.dirtdebris01``) lie in the ego's lane
12, 46 and 72 m after the trigger (scenario_runner's 14, 48, 74 m less 2 m).
When the ego comes within 2 m of the first, noise is put on its control: a
steering offset ``min(0, -(|N(0, 0.01)| - 0.001))`` and a throttle offset
``min(|N(0, 0.01)| + 0.045, 1)`` (one draw, as ``ChangeNoiseParameters``
draws once), until the ego reaches the third (2 m) or comes within 10 m of the
next intersection; the scenario ends when the ego has driven 30 m after that.

Differences to CARLA: leaderboard 1.0's scenario manager never calls the
scenario's ``change_control``, so in CARLA the noise exists but does not reach
the hero; here it does (the embedded world is meant to test lane keeping under
it). The debris is a decal in CARLA; here it is a non-solid prop, drawn in the
pictures, not an obstacle, and not in the scene.
"""
from __future__ import annotations

import numpy as np

from sumo_world.scenarios.base import Prop, Scenario, ScenarioTick

__all__ = ["ControlLoss", "DEBRIS_DISTANCES_M"]

DEBRIS_DISTANCES_M = (12.0, 46.0, 72.0)  # scenario_runner: [14, 48, 74] minus 2 m
TRIGGER_DISTANCE_M = 2.0
END_DISTANCE_M = 30.0
ABORT_DISTANCE_TO_INTERSECTION_M = 10.0
NOISE_MEAN = 0.0
NOISE_STD = 0.01
DYNAMIC_MEAN_FOR_STEER = 0.001
DYNAMIC_MEAN_FOR_THROTTLE = 0.045


class ControlLoss(Scenario):
    """Noise on the ego's steering and throttle for a stretch of its lane (see the module)."""

    name = "ControlLoss"

    def __init__(self, definition, env) -> None:
        super().__init__(definition, env)
        path = env.path
        start = self._start_m = self.trigger_m
        self._debris_m = [start + d for d in DEBRIS_DISTANCES_M]
        for d in self._debris_m:
            xy, yaw = path.pose_at(d)
            self.props.append(Prop(env.new_id(), "static.prop.dirtdebris01", float(xy[0]), float(xy[1]), yaw,
                                   0.5, 0.5, solid=False))
        draw = abs(env.rng.normal(NOISE_MEAN, NOISE_STD))
        self.steer_noise = min(0.0, -(draw - DYNAMIC_MEAN_FOR_STEER))
        self.throttle_noise = min(draw + DYNAMIC_MEAN_FOR_THROTTLE, 1.0)
        self._phase = "approach"
        self._noise_on = False
        self._noise_end_progress_m = 0.0

    def _near(self, tick: ScenarioTick, k: int) -> bool:
        prop = self.props[k]
        return float(np.hypot(tick.ego.x - prop.x, tick.ego.y - prop.y)) < TRIGGER_DISTANCE_M

    def _near_intersection(self, tick: ScenarioTick) -> bool:
        found = self.env.path.next_intersection(tick.route_index)
        if found is None:
            return False
        return float(self.env.path.cumulative_m[found[0]]) - tick.progress_m < ABORT_DISTANCE_TO_INTERSECTION_M

    def step(self, tick: ScenarioTick) -> None:
        if self._phase == "approach":
            # The parallel of scenario_runner: the start condition, or the 30 m drive, whichever first.
            if self._near(tick, 0) or tick.progress_m - self._start_m > END_DISTANCE_M:
                self._noise_on = True
                self._phase = "jitter"
        elif self._phase == "jitter":
            if self._near(tick, 2) or self._near_intersection(tick) or tick.progress_m > self._debris_m[2]:
                self._phase = "settle"
                self._noise_end_progress_m = tick.progress_m
        elif self._phase == "settle":
            if tick.progress_m - self._noise_end_progress_m >= END_DISTANCE_M:
                self._noise_on = False
                self.finish(tick)

    def perturb_control(self, throttle: float, steer: float) -> tuple[float, float]:
        if not self._noise_on:
            return throttle, steer
        return (float(np.clip(throttle + self.throttle_noise, 0.0, 1.0)),
                float(np.clip(steer + self.steer_noise, -1.0, 1.0)))
