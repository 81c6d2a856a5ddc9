"""Bird's-eye pictures of a finished route: a PNG, and a GIF or MP4 of the run.

Everything is drawn in CARLA world metres with the y axis pointing **down**
(CARLA's left-handed frame seen from above), so a picture lines up with
CARLA's own top view and with the leaderboard's route coordinates. The road
network comes from the town's SUMO net, converted to CARLA coordinates by
:mod:`sumo_world.roads.transform` (the one place that knows the mapping).

Loading and buffering the lanes of a town takes longer than drawing a route:
build a :class:`~sumo_world.pictures.road_drawing.RoadDrawing` once with
:func:`~sumo_world.pictures.road_drawing.road_drawing` and pass it to every
call.
"""
from __future__ import annotations

import bisect
import importlib.util
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from driving.geometry import box_corners
from sumo_world.ego.dynamics import EgoParams
from sumo_world.pictures.road_drawing import RoadDrawing, road_drawing
from sumo_world.scoring.records import ActorSample, RouteOutcome, TrajectorySample

__all__ = [
    "render_route_png", "render_route_animation", "INFRACTION_STYLES",
]

logger = logging.getLogger(__name__)

# kind -> (marker, colour, legend label)
INFRACTION_STYLES: dict[str, tuple[str, str, str]] = {
    "collisions_pedestrian": ("X", "#d62728", "pedestrian collision"),
    "collisions_vehicle": ("X", "#ff7f0e", "vehicle collision"),
    "collisions_layout": ("X", "#8c564b", "layout collision"),
    "red_light": ("o", "#e41a1c", "red light"),
    "stop_infraction": ("s", "#984ea3", "stop sign"),
    "outside_route_lanes": ("D", "#17becf", "outside route lanes"),
    "route_dev": ("^", "#1f77b4", "route deviation"),
    "route_timeout": ("v", "#7f7f7f", "route timeout"),
    "vehicle_blocked": ("P", "#bcbd22", "agent blocked"),
}
_ROAD_COLOUR = "#d9d9d9"
_SIDEWALK_COLOUR = "#efefef"
_ROUTE_COLOUR = "#3a7bd5"
_ACTOR_COLOURS = {"vehicle": "#444444", "walker": "#2ca02c", "bicycle": "#9467bd"}
_SPEED_CMAP = "plasma"
# The ego is drawn with the embedded world's default size (CARLA's default hero).
_EGO_HALF_LENGTH_M = EgoParams.half_length_m
_EGO_HALF_WIDTH_M = EgoParams.half_width_m


# ----------------------------------------------------------------------------- drawing helpers


def _box(x: float, y: float, yaw_deg: float, half_length_m: float, half_width_m: float) -> np.ndarray:
    # In CARLA's frame the forward vector is (cos yaw, sin yaw); drawn with y down it looks right.
    yaw = math.radians(yaw_deg)
    return box_corners(np.array([x, y]), np.array([math.cos(yaw), math.sin(yaw)]), half_length_m, half_width_m)


def _actor_colour(actor_type: str) -> str:
    for prefix, colour in _ACTOR_COLOURS.items():
        if prefix in actor_type:
            return colour
    return _ACTOR_COLOURS["vehicle"]


def _view_limits(outcome: RouteOutcome, drawing: RoadDrawing, margin_m: float) -> tuple[float, float, float, float]:
    points = [(p[0], p[1]) for p in outcome.route_xy]
    points += [(s.x, s.y) for s in outcome.trajectory]
    points += [(i.x, i.y) for i in outcome.infractions]
    if not points:
        x_min, y_min, x_max, y_max = drawing.bounds
    else:
        array = np.asarray(points, dtype=float)
        x_min, y_min = array.min(axis=0)
        x_max, y_max = array.max(axis=0)
    return (float(x_min) - margin_m, float(y_min) - margin_m, float(x_max) + margin_m, float(y_max) + margin_m)


def _overlaps(ring: np.ndarray, limits: tuple[float, float, float, float]) -> bool:
    x_min, y_min, x_max, y_max = limits
    return not (ring[:, 0].max() < x_min or ring[:, 0].min() > x_max
                or ring[:, 1].max() < y_min or ring[:, 1].min() > y_max)


def _new_figure(size_px: tuple[int, int], dpi: int) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width_px, height_px = size_px
    if width_px < 64 or height_px < 64:
        raise ValueError(f"size_px must be at least 64x64, got {size_px}")
    # A bare Figure with its own Agg canvas: no pyplot state, works headless.
    figure = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def _draw_background(ax: Any, outcome: RouteOutcome, drawing: RoadDrawing,
                     limits: tuple[float, float, float, float]) -> None:
    from matplotlib.collections import LineCollection, PolyCollection

    sidewalks = [ring for ring in drawing.sidewalk_polygons if _overlaps(ring, limits)]
    roads = [ring for ring in drawing.road_polygons if _overlaps(ring, limits)]
    centres = [line for line in drawing.lane_centres if _overlaps(line, limits)]
    ax.add_collection(PolyCollection(sidewalks, facecolors=_SIDEWALK_COLOUR, edgecolors="none", zorder=0))
    ax.add_collection(PolyCollection(roads, facecolors=_ROAD_COLOUR, edgecolors="none", zorder=1))
    ax.add_collection(LineCollection(centres, colors="white", linewidths=0.6, linestyles=(0, (4, 4)),
                                     zorder=2))
    stops = [ring for ring in drawing.stop_areas if _overlaps(ring, limits)]
    if stops:
        ax.add_collection(PolyCollection(stops, facecolors="#e41a1c", alpha=0.35, edgecolors="#b30000",
                                         linewidths=0.8, zorder=2))
    if len(outcome.route_xy) >= 2:
        route = np.asarray(outcome.route_xy, dtype=float)
        ax.plot(route[:, 0], route[:, 1], color=_ROUTE_COLOUR, linewidth=5, alpha=0.35,
                solid_capstyle="round", zorder=3, label="planned route")
        ax.plot(*route[0], marker="o", color=_ROUTE_COLOUR, markersize=7, zorder=6, linestyle="none")
        ax.plot(*route[-1], marker="*", color=_ROUTE_COLOUR, markersize=12, zorder=6, linestyle="none")
    x_min, y_min, x_max, y_max = limits
    ax.set_xlim(x_min, x_max)
    ax.set_ylim(y_max, y_min)  # y down: CARLA's top view
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("x (m, CARLA)")
    ax.set_ylabel("y (m, CARLA, pointing down)")
    ax.set_facecolor("#f7f7f2")


def _speed_segments(samples: Sequence[TrajectorySample]) -> tuple[np.ndarray, np.ndarray]:
    xy = np.array([(s.x, s.y) for s in samples], dtype=float).reshape(-1, 2)
    speed = np.array([s.speed_mps for s in samples], dtype=float)
    if len(xy) < 2:
        return np.zeros((0, 2, 2)), np.zeros(0)
    segments = np.stack([xy[:-1], xy[1:]], axis=1)
    return segments, (speed[:-1] + speed[1:]) / 2.0


def _draw_infractions(ax: Any, outcome: RouteOutcome, until_s: float = math.inf) -> None:
    for kind, (marker, colour, label) in INFRACTION_STYLES.items():
        events = [i for i in outcome.infractions if i.kind == kind and i.time_s <= until_s]
        if events:
            ax.scatter([e.x for e in events], [e.y for e in events], marker=marker, s=110, c=colour,
                       edgecolors="black", linewidths=0.8, zorder=8, label=f"{label} ({len(events)})")


def _draw_scenarios(ax: Any, outcome: RouteOutcome) -> None:
    """Triggers of the route's scenarios (labelled by number, red when an infraction happened inside)
    and where their actors appeared: walkers and cyclists as circles, props as squares."""
    entries = outcome.meta.get("scenarios") or []
    if not entries:
        return
    for entry in entries:
        t = entry.get("trigger") or {}
        if "x" not in t:
            continue
        colour = {"infraction": "#d62728", "clean": "#2ca02c"}.get(entry.get("outcome"), "#7f7f7f")
        ax.scatter([t["x"]], [t["y"]], marker="v", s=90, c=colour, edgecolors="black", linewidths=0.6, zorder=7)
        ax.annotate(str(entry.get("type", "")).replace("Scenario", "S"), (t["x"], t["y"]), fontsize="x-small",
                    xytext=(4, 4), textcoords="offset points", zorder=9)
        for actor in entry.get("actors") or []:
            kind = str(actor.get("kind", ""))
            prop = kind.startswith("static.")
            ax.scatter([actor["x"]], [actor["y"]], marker="s" if prop else "o", s=30 if prop else 24,
                       c="#8c564b" if prop else "#9467bd", alpha=0.4 if prop and not actor.get("solid", True)
                       else 0.9, edgecolors="black", linewidths=0.4, zorder=7)
    ax.scatter([], [], marker="v", c="#2ca02c", edgecolors="black", label="scenario trigger (red: infraction)")
    ax.scatter([], [], marker="o", c="#9467bd", edgecolors="black", label="scenario walker/cyclist/vehicle")
    ax.scatter([], [], marker="s", c="#8c564b", edgecolors="black", label="scenario prop")


def _title(outcome: RouteOutcome) -> str:
    from sumo_world.scoring.leaderboard_statistics import route_scores

    scores = route_scores(outcome)
    return (f"route {outcome.route_id} ({outcome.town}): DS {scores['score_composed']:.1f}, "
            f"RC {scores['score_route']:.1f}%, penalty {scores['score_penalty']:.2f}\n{outcome.status}")


def _speed_norm(outcome: RouteOutcome) -> Any:
    from matplotlib.colors import Normalize

    top = max((s.speed_mps for s in outcome.trajectory), default=1.0)
    return Normalize(vmin=0.0, vmax=max(top, 1.0))


# ----------------------------------------------------------------------------- public API


def render_route_png(outcome: RouteOutcome, network: Any, path: str | Path, *,
                     size_px: tuple[int, int] = (1000, 1000), dpi: int = 100, margin_m: float = 25.0,
                     show_actors: bool = True) -> Path:
    """Draw one finished route as a PNG of exactly ``size_px`` pixels; returns the path.

    Shows the road network, the planned route (start dot, goal star), the
    driven path coloured by speed (colour bar in m/s), other actors' sampled
    boxes, and infraction markers with a legend by kind. ``network`` is
    anything :func:`road_drawing` accepts; pass a prebuilt :class:`RoadDrawing`
    when drawing several routes of one town.
    """
    from matplotlib.collections import LineCollection, PolyCollection

    drawing = road_drawing(network)
    figure = _new_figure(size_px, dpi)
    ax = figure.add_axes((0.1, 0.08, 0.72, 0.82))
    colour_ax = figure.add_axes((0.85, 0.08, 0.025, 0.82))
    limits = _view_limits(outcome, drawing, margin_m)
    _draw_background(ax, outcome, drawing, limits)

    if show_actors and outcome.actors:
        boxes = [_box(a.x, a.y, a.yaw_deg, a.half_length_m, a.half_width_m) for a in outcome.actors]
        colours = [_actor_colour(a.actor_type) for a in outcome.actors]
        ax.add_collection(PolyCollection(boxes, facecolors="none", edgecolors=colours, linewidths=0.6,
                                         alpha=0.35, zorder=4))
        ax.plot([], [], color=_ACTOR_COLOURS["vehicle"], linewidth=1, alpha=0.6, label="other actors")

    norm = _speed_norm(outcome)
    segments, speeds = _speed_segments(outcome.trajectory)
    path_lines = LineCollection(segments, cmap=_SPEED_CMAP, norm=norm, linewidths=2.5, zorder=5)
    path_lines.set_array(speeds)
    ax.add_collection(path_lines)
    figure.colorbar(path_lines, cax=colour_ax, label="ego speed (m/s)")
    if outcome.trajectory:
        last = outcome.trajectory[-1]
        ax.add_patch(_ego_patch(last))
    _draw_infractions(ax, outcome)
    _draw_scenarios(ax, outcome)
    ax.legend(loc="upper left", fontsize="x-small", framealpha=0.85)
    ax.set_title(_title(outcome), fontsize="medium")

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, format="png")
    return path


def _ego_patch(sample: TrajectorySample) -> Any:
    from matplotlib.patches import Polygon as PolygonPatch

    return PolygonPatch(_box(sample.x, sample.y, sample.yaw_deg, _EGO_HALF_LENGTH_M, _EGO_HALF_WIDTH_M),
                        closed=True, facecolor="#e8000b", edgecolor="black", linewidth=0.8, zorder=7)


def _actors_by_time(actors: Sequence[ActorSample]) -> tuple[list[float], list[list[ActorSample]]]:
    grouped: dict[float, list[ActorSample]] = {}
    for actor in actors:
        grouped.setdefault(actor.time_s, []).append(actor)
    times = sorted(grouped)
    return times, [grouped[t] for t in times]


def _frame_writer(path: Path, fps: float) -> Any:
    suffix = path.suffix.lower()
    if suffix == ".gif":
        import imageio.v3 as iio

        writer = iio.imopen(path, "w", plugin="pillow")
        options = {"duration": 1000.0 / fps, "loop": 0, "bits": 8}  # bits: quantise each frame as it comes
        return _Writer(lambda frame: writer.write(frame, **options), writer.close)
    if suffix in (".mp4", ".m4v", ".mov"):
        if importlib.util.find_spec("imageio_ffmpeg") is None:
            raise RuntimeError(f"cannot write {path}: MP4 needs an ffmpeg writer, which is not installed. "
                               f"Install it with `pip install imageio-ffmpeg`, or write a .gif instead.")
        import imageio.v2 as iio2

        writer = iio2.get_writer(path, fps=fps, macro_block_size=16)
        return _Writer(writer.append_data, writer.close)
    raise ValueError(f"cannot write {path}: animation format {suffix or '(none)'} is not supported; "
                     f"use .gif or .mp4")


@dataclass
class _Writer:
    append: Any
    close: Any


def render_route_animation(outcome: RouteOutcome, network: Any, path: str | Path, *,
                           every_n_ticks: int = 10, fps: float = 10.0, max_frames: int = 150,
                           size_px: tuple[int, int] = (512, 512), dpi: int = 80,
                           margin_m: float = 25.0) -> Path:
    """Write a GIF (or an MP4, when imageio-ffmpeg is installed) of the run; returns the path.

    One frame every ``every_n_ticks`` trajectory samples, at most
    ``max_frames`` frames (the stride grows to fit) of ``size_px`` pixels.
    Each frame shows the ego box, its path so far coloured by speed, the
    actors of the latest sample at or before that time, and the infractions
    so far. Raises RuntimeError with the fix when MP4 is asked for and no
    ffmpeg writer is installed.
    """
    from matplotlib.collections import LineCollection, PolyCollection

    if every_n_ticks < 1 or max_frames < 1:
        raise ValueError(f"every_n_ticks and max_frames must be >= 1, got {every_n_ticks}, {max_frames}")
    if not outcome.trajectory:
        raise ValueError(f"route {outcome.route_id!r}: no trajectory samples to animate")
    path = Path(path)
    stride = max(every_n_ticks, math.ceil(len(outcome.trajectory) / max_frames))
    frame_indices = list(range(0, len(outcome.trajectory), stride))
    if frame_indices[-1] != len(outcome.trajectory) - 1 and len(frame_indices) < max_frames:
        frame_indices.append(len(outcome.trajectory) - 1)  # always end on the final state

    drawing = road_drawing(network)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = _frame_writer(path, fps)
    try:
        figure = _new_figure(size_px, dpi)
        ax = figure.add_axes((0.12, 0.1, 0.7, 0.78))
        colour_ax = figure.add_axes((0.85, 0.1, 0.03, 0.78))
        _draw_background(ax, outcome, drawing, _view_limits(outcome, drawing, margin_m))
        norm = _speed_norm(outcome)
        segments, speeds = _speed_segments(outcome.trajectory)
        trail = LineCollection([], cmap=_SPEED_CMAP, norm=norm, linewidths=2.5, zorder=5)
        trail.set_array(np.zeros(0))
        ax.add_collection(trail)
        figure.colorbar(trail, cax=colour_ax, label="ego speed (m/s)")
        actors = PolyCollection([], facecolors="#777777", edgecolors="black", linewidths=0.4, zorder=4)
        ax.add_collection(actors)
        ego = _ego_patch(outcome.trajectory[0])
        ax.add_patch(ego)
        infraction_artists: list[Any] = []
        actor_times, actor_groups = _actors_by_time(outcome.actors)
        base_title = _title(outcome).split("\n")[0]

        for index in frame_indices:
            sample = outcome.trajectory[index]
            trail.set_segments(segments[:index])
            trail.set_array(speeds[:index])
            ego.set_xy(_box(sample.x, sample.y, sample.yaw_deg, _EGO_HALF_LENGTH_M, _EGO_HALF_WIDTH_M))
            position = bisect.bisect_right(actor_times, sample.time_s) - 1
            group = actor_groups[position] if position >= 0 else []
            actors.set_verts([_box(a.x, a.y, a.yaw_deg, a.half_length_m, a.half_width_m) for a in group])
            actors.set_facecolors([_actor_colour(a.actor_type) for a in group])
            for artist in infraction_artists:
                artist.remove()
            before = set(ax.collections)
            _draw_infractions(ax, outcome, until_s=sample.time_s)
            infraction_artists = [c for c in ax.collections if c not in before]
            ax.set_title(f"{base_title}\nt = {sample.time_s:.1f} s, {sample.speed_mps:.1f} m/s",
                         fontsize="small")
            figure.canvas.draw()
            frame = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
            writer.append(frame)
    finally:
        writer.close()
    logger.info("wrote %d frames to %s", len(frame_indices), path)
    return path
