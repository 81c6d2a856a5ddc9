"""The LangProp module of the driving model: prompts, function name and seeds."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from driving.clock import TICKS_PER_SECOND
from driving.labels import MAX_TARGET_SPEED_MPS, SPEED_LEVEL_MPS
from driving.penalties import STOP_ZONE_BEFORE_M
from driving.scene import describe_scene_contract
from langprop_core.module import Module

from langprop_driving.model.objective import DrivingObjective
from langprop_driving.model.seed_policy import FUNCTION_NAME

__all__ = ["TEMPLATE_DIR", "driving_template_vars", "make_driving_module"]

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


def driving_template_vars(function_name: str = FUNCTION_NAME) -> dict:
    """The variables the setup and update prompts use; the scene contract is generated, never copied."""
    return {
        "function_name": function_name,
        "scene_contract": describe_scene_contract(),
        "speed_levels": dict(SPEED_LEVEL_MPS),
        "max_speed_mps": MAX_TARGET_SPEED_MPS,
        "ticks_per_second": TICKS_PER_SECOND,
        "stop_zone_m": STOP_ZONE_BEFORE_M,
        # the same zone as the scene's distance_to_stop_sign measures it (from the ego's centre)
        "stop_sign_distance_m": DrivingObjective.stop_zone_m,
    }


def make_driving_module(name: str = FUNCTION_NAME, seed_sources: Sequence[str] = (), max_keep: int = 16,
                        priority_decay: float = 0.9, template_dir: Path | None = None) -> Module:
    """The ``predict_speed_and_steering`` module, optionally seeded with scripts (sources, not paths)."""
    return Module(name=name, function_name=FUNCTION_NAME, template_dir=template_dir or TEMPLATE_DIR,
                  max_keep=max_keep, priority_decay=priority_decay, seed_sources=list(seed_sources),
                  template_vars=driving_template_vars())
