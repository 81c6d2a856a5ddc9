"""The expert's constants: one frozen, documented bundle."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

__all__ = ["ExpertConfig"]


@dataclass(frozen=True)
class ExpertConfig:
    """Every number the expert uses, with its unit in the name.

    Speeds: the expert cruises at ``min(speed limit, cruise_speed_mps)``; 8 m/s
    (29 km/h) keeps the car inside Town01's 30 km/h limit and leaves time to
    react to the embedded world's pedestrians. Every stop is planned on a
    profile ``v = sqrt(2 * comfortable_decel_mps2 * distance)``, so the target
    speed falls smoothly to 0 at the stopping point.
    """

    # --- speed plan ----------------------------------------------------------------
    cruise_speed_mps: float = 8.0
    comfortable_decel_mps2: float = 2.5
    # Yellow light: stop only if it needs at most this deceleration, else drive on.
    yellow_max_decel_mps2: float = 3.5
    # Curves: keep lateral acceleration below this, never plan slower than min_turn_speed.
    max_lateral_accel_mps2: float = 2.0
    min_turn_speed_mps: float = 3.0
    curvature_window_m: float = 4.0
    # Stop lines: the front bumper stops this far before the line.
    stop_line_margin_m: float = 1.0
    # Within this distance of a stopping point the target is 0: stand still, never creep
    # centimetres (which also makes the paper's STOP label clean).
    stop_zone_m: float = 0.75
    # Outside the stop zone the target never drops below this: the controller brakes for
    # targets under 0.4 m/s, so a smaller target would park the car short of its stop point.
    creep_speed_mps: float = 1.0
    # --- lead vehicle (time gap) -------------------------------------------------------
    min_gap_m: float = 3.5
    # A pedestrian on the route corridor is kept further away than a car.
    pedestrian_min_gap_m: float = 5.0
    time_gap_s: float = 1.5
    corridor_margin_m: float = 0.5
    # A walker standing still (waiting at the kerb) blocks the corridor only within this of the
    # ego's flank: waiting for it would wait for ever. Once it walks, the collision sweep decides.
    standing_pedestrian_margin_m: float = 0.2
    lead_range_m: float = 50.0
    # A moving actor in the corridor is a lead only when its velocity points our way
    # (cosine with the route tangent at least this); others are left to the collision sweep.
    lead_min_heading_cos: float = 0.5
    # --- keeping a signalised junction's box clear (junction_box_constraint) --------------
    # A vehicle in the junction or in the ego's room past its exit moving slower than this along
    # the route is not making room: wait at the stop line.
    box_clear_speed_mps: float = 2.0
    # The light's stop line and the junction entry agree within this: the junction is the light's.
    box_light_match_m: float = 6.0
    # --- collision prediction -----------------------------------------------------------
    horizon_s: float = 3.0
    horizon_step_s: float = 0.25
    prediction_range_m: float = 35.0
    ego_accel_mps2: float = 2.0
    # An actor's path (where the ego should not wait) is its footprint swept this long; an
    # actor that reaches the ego within it after a hard stop (hard_decel) is not yielded to.
    stay_horizon_s: float = 4.0
    hard_decel_mps2: float = 4.0
    # Other drivers brake for a car standing in their path (CARLA's Traffic Manager does): a
    # vehicle that would reach the halted ego only after its own reaction and stopping time is
    # left to stop, and the ego halts for it. Walkers do not avoid cars.
    other_decel_mps2: float = 4.5
    other_reaction_s: float = 0.5
    # Footprint margins: (longitudinal, lateral) added to each half extent, metres.
    ego_margin_m: tuple[float, float] = (0.5, 0.25)
    vehicle_margin_m: tuple[float, float] = (0.3, 0.2)
    pedestrian_margin_m: tuple[float, float] = (0.6, 0.6)
    # Stop this far (ego travel) before a predicted contact.
    yield_margin_m: float = 1.5
    # Walkers change direction without warning (a pavement walker turns onto the crossing):
    # stop further short of them.
    pedestrian_yield_margin_m: float = 2.5
    # Vehicles slower than this are obstacles for the corridor check, not movers to predict.
    moving_speed_mps: float = 0.3
    # --- steering (pure pursuit) ---------------------------------------------------------
    lookahead_base_m: float = 3.0
    lookahead_gain_s: float = 0.6
    lookahead_min_m: float = 4.0
    lookahead_max_m: float = 10.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ExpertConfig":
        """Build from a mapping; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ExpertConfig keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)
