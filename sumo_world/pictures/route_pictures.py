"""Bird's-eye pictures of route runs: a PNG per run (and a GIF with ``animation``), never fatal.

The drawing itself is :mod:`sumo_world.pictures.birdseye`'s; this module names the
files and keeps a failed drawing from costing a route's result.
"""
from __future__ import annotations

import logging
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sumo_world.scoring.records import RouteOutcome
    from sumo_world.towns.info import TownInfo

__all__ = ["draw_route_picture", "draw_pictures"]

logger = logging.getLogger(__name__)


def draw_route_picture(outcome: RouteOutcome, network: Any, folder: Path, animation: bool = False) -> None:
    """Draw ``outcome`` on ``network`` (a road network or a prepared road drawing) into ``folder``
    as ``route_<id>_rep<r>.png`` (and ``.gif``); a failure is logged, not raised."""
    try:
        from sumo_world.pictures.birdseye import render_route_animation, render_route_png

        folder.mkdir(parents=True, exist_ok=True)
        stem = f"route_{_safe(outcome.route_id)}_rep{outcome.meta.get('repetition', 0)}"
        render_route_png(outcome, network, folder / f"{stem}.png")
        if animation:
            render_route_animation(outcome, network, folder / f"{stem}.gif")
    except Exception:  # a picture must never cost the route's result
        logger.warning("route %s: drawing the picture failed:\n%s", outcome.route_id, traceback.format_exc())


def draw_pictures(pictures: list[tuple[RouteOutcome, TownInfo]], folder: Path, animation: bool = False) -> None:
    """Draw every ``(outcome, town)`` into ``folder``, each town's roads prepared once."""
    from sumo_world.pictures.road_drawing import road_drawing
    from sumo_world.roads.network import RoadNetwork

    drawings: dict[str, Any] = {}
    for outcome, town in pictures:
        try:
            if town.name not in drawings:  # loading a town's lanes costs more than drawing a route
                drawings[town.name] = road_drawing(RoadNetwork.load(town.net_path))
        except Exception:
            logger.warning("town %s: preparing the road drawing failed:\n%s", town.name, traceback.format_exc())
            return
        draw_route_picture(outcome, drawings[town.name], folder, animation)


def _safe(text: str) -> str:
    """``text`` as a file-name part: anything but letters, digits and ``-_.`` becomes ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text))
