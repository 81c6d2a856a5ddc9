"""The few OpenDRIVE facts the embedded world reads itself: road reference lines and signals.

``netconvert`` turns an OpenDRIVE file's roads and lanes into a SUMO net but
drops its signals (stop signs are type-206 signals). This module places a
signal where CARLA does: on its road's reference line at ``s``, offset ``t``
to the left, in CARLA's frame (OpenDRIVE's y negated). It evaluates the plan
view's geometries (line, arc, spiral, poly3, paramPoly3) at ``s``.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from driving.geometry import wrap_angle_deg

__all__ = ["OpenDriveError", "Signal", "read_signals", "reference_pose"]

_SPIRAL_STEPS = 256
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy 2 renamed it


class OpenDriveError(ValueError):
    """An OpenDRIVE file cannot be read (the message names the file and the problem)."""


@dataclass(frozen=True)
class Signal:
    """One ``<signal>`` of a road, placed in CARLA's frame.

    ``yaw_deg`` is the signal's CARLA yaw as ``carla.Landmark`` reports it:
    the road's heading at ``s`` turned by the signal's ``hOffset``. For
    CARLA's stop signs it is the heading of the traffic they stop.
    """

    signal_id: str
    signal_type: str
    name: str
    road: str
    s: float
    t: float
    orientation: str
    x: float
    y: float
    z_offset: float
    yaw_deg: float


def _f(element: ET.Element, name: str, default: float = 0.0) -> float:
    value = element.get(name)
    return float(value) if value not in (None, "") else default


def _pose_on_geometry(geometry: ET.Element, ds: float) -> tuple[float, float, float]:
    """(x, y, heading) in OpenDRIVE's frame at ``ds`` metres into one plan-view geometry."""
    x0, y0, h0 = _f(geometry, "x"), _f(geometry, "y"), _f(geometry, "hdg")
    length = _f(geometry, "length")
    shape = next(iter(geometry), None)
    kind = shape.tag if shape is not None else "line"
    if kind == "arc" and abs(_f(shape, "curvature")) > 1e-12:
        k = _f(shape, "curvature")
        return (x0 + (math.sin(h0 + k * ds) - math.sin(h0)) / k,
                y0 - (math.cos(h0 + k * ds) - math.cos(h0)) / k, h0 + k * ds)
    if kind == "spiral":
        k0, k1 = _f(shape, "curvStart"), _f(shape, "curvEnd")
        u = np.linspace(0.0, ds, _SPIRAL_STEPS)
        heading = h0 + k0 * u + (k1 - k0) / (2.0 * max(length, 1e-9)) * u * u
        return (x0 + float(_trapezoid(np.cos(heading), u)), y0 + float(_trapezoid(np.sin(heading), u)),
                float(heading[-1]))
    if kind in ("poly3", "paramPoly3"):
        p = np.linspace(0.0, 1.0, _SPIRAL_STEPS)
        if kind == "poly3":
            a, b, c, d = (_f(shape, n) for n in "abcd")
            span = np.linspace(0.0, length, _SPIRAL_STEPS)  # u runs about as far as the arc length
            u, v = span, a + b * span + c * span ** 2 + d * span ** 3
        else:
            top = length if shape.get("pRange", "normalized") == "arcLength" else 1.0
            q = p * top
            u = _f(shape, "aU") + _f(shape, "bU") * q + _f(shape, "cU") * q ** 2 + _f(shape, "dU") * q ** 3
            v = _f(shape, "aV") + _f(shape, "bV") * q + _f(shape, "cV") * q ** 2 + _f(shape, "dV") * q ** 3
        arc = np.r_[0.0, np.cumsum(np.hypot(np.diff(u), np.diff(v)))]
        lu, lv = float(np.interp(ds, arc, u)), float(np.interp(ds, arc, v))
        i = int(np.clip(np.searchsorted(arc, ds), 1, len(arc) - 1))
        local_heading = math.atan2(v[i] - v[i - 1], u[i] - u[i - 1])
        cos_h, sin_h = math.cos(h0), math.sin(h0)
        return x0 + lu * cos_h - lv * sin_h, y0 + lu * sin_h + lv * cos_h, h0 + local_heading
    return x0 + ds * math.cos(h0), y0 + ds * math.sin(h0), h0


def reference_pose(road: ET.Element, s: float) -> tuple[float, float, float]:
    """(x, y, heading) in OpenDRIVE's frame of a road's reference line at ``s``."""
    geometries = sorted(road.iter("geometry"), key=lambda g: _f(g, "s"))
    if not geometries:
        raise OpenDriveError(f"road {road.get('id')} has no plan-view geometry")
    current = geometries[0]
    for geometry in geometries:
        if _f(geometry, "s") <= s + 1e-9:
            current = geometry
    ds = min(max(s - _f(current, "s"), 0.0), _f(current, "length"))
    return _pose_on_geometry(current, ds)


def read_signals(xodr: str | Path, signal_type: str | None = None) -> list[Signal]:
    """The ``<signal>`` elements of every road (of ``signal_type`` when given), in CARLA's frame."""
    xodr = Path(xodr)
    try:
        root = ET.parse(xodr).getroot()
    except (ET.ParseError, OSError) as exc:
        raise OpenDriveError(f"{xodr}: not a readable OpenDRIVE file: {exc}") from exc
    signals = []
    for road in root.iter("road"):
        for signal in road.iter("signal"):
            if signal_type is not None and signal.get("type") != signal_type:
                continue
            s, t = _f(signal, "s"), _f(signal, "t")
            x, y, heading = reference_pose(road, s)
            # t is to the left of the reference line (OpenDRIVE is right-handed).
            x, y = x - t * math.sin(heading), y + t * math.cos(heading)
            orientation = signal.get("orientation", "+")
            # CARLA's y, and so its yaw, is OpenDRIVE's negated; hOffset turns the sign about its post.
            yaw = wrap_angle_deg(-math.degrees(heading + _f(signal, "hOffset")))
            signals.append(Signal(signal_id=str(signal.get("id", "")), signal_type=str(signal.get("type", "")),
                                  name=str(signal.get("name", "")), road=str(road.get("id", "")), s=s, t=t,
                                  orientation=orientation, x=x, y=-y, z_offset=_f(signal, "zOffset"),
                                  yaw_deg=yaw))
    return signals
