"""Rollouts as DAgger records them (the policy drove, no label yet), made with the expert's scene builder."""
from __future__ import annotations

from driving.dataset import SceneRecord
from expert.scenarios import make_actor, make_scene


def unlabelled_rollout(n: int) -> list[SceneRecord]:
    """``n`` unlabelled ticks of a policy driving 6 m/s, a car standing at x = 14 m: for the expert to relabel."""
    records = []
    for i in range(n):
        scene = make_scene(speed_mps=6.0, ego_xy=(float(i), 0.0), vehicles={1: make_actor(14.0, 0.0)})
        records.append(SceneRecord(scene, None, {"route_id": "r0", "controller": "policy",
                                                 "action": {"target_speed_mps": 6.0, "steering_deg": 0.0}}))
    return records
