"""A polyline with arc length: projection, interpolation, headings and curvature (numpy)."""
from __future__ import annotations

import numpy as np

__all__ = ["RoutePath"]


class RoutePath:
    """The route ahead as a polyline (N >= 2 points, CARLA frame, metres).

    Arc length ``s`` runs from the first point; beyond the last point the path is
    extended straight along its last segment, so queries past the end stay defined.
    """

    def __init__(self, points: np.ndarray) -> None:
        pts = np.asarray(points, dtype=float).reshape(-1, 2)
        if len(pts) >= 2:
            keep = np.concatenate([[True], np.linalg.norm(np.diff(pts, axis=0), axis=1) > 1e-6])
            pts = pts[keep]
        if len(pts) < 2:
            raise ValueError(f"a path needs 2 distinct points, got {len(pts)}")
        self.points = pts
        seg = np.diff(pts, axis=0)
        self.seg_len = np.linalg.norm(seg, axis=1)
        self.seg_dir = seg / self.seg_len[:, None]
        self.s = np.concatenate([[0.0], np.cumsum(self.seg_len)])

    @property
    def length_m(self) -> float:
        """Arc length of the last point."""
        return float(self.s[-1])

    def project(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Arc length and signed lateral offset (positive = right) of points (..., 2)."""
        p = np.asarray(xy, dtype=float)
        flat = p.reshape(-1, 2)
        rel = flat[:, None, :] - self.points[None, :-1, :]                  # (M, S, 2)
        along = np.einsum("msk,sk->ms", rel, self.seg_dir)
        t = np.clip(along, 0.0, self.seg_len[None, :])
        # The last segment extends forward and the first backward: points off the ends project.
        t[:, -1] = np.maximum(along[:, -1], 0.0) if len(self.seg_len) > 1 else along[:, -1]
        if len(self.seg_len) > 1:
            t[:, 0] = np.minimum(along[:, 0], self.seg_len[0])
        foot = self.points[None, :-1, :] + t[..., None] * self.seg_dir[None, :, :]
        dist = np.linalg.norm(flat[:, None, :] - foot, axis=2)
        best = np.argmin(dist, axis=1)
        rows = np.arange(len(flat))
        s = self.s[best] + t[rows, best]
        d = self.seg_dir[best]
        offset = flat - foot[rows, best]
        lateral = offset[:, 0] * -d[:, 1] + offset[:, 1] * d[:, 0]
        return s.reshape(p.shape[:-1]), lateral.reshape(p.shape[:-1])

    def interpolate(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points (..., 2) and unit tangents (..., 2) at arc lengths ``s``."""
        s = np.asarray(s, dtype=float)
        i = np.clip(np.searchsorted(self.s, s, side="right") - 1, 0, len(self.seg_len) - 1)
        t = s - self.s[i]
        return self.points[i] + t[..., None] * self.seg_dir[i], self.seg_dir[i]

    def curvature(self, window_m: float) -> tuple[np.ndarray, np.ndarray]:
        """Arc lengths and unsigned curvature (1/m) over ``window_m`` windows along the path."""
        heading = np.arctan2(self.seg_dir[:, 1], self.seg_dir[:, 0])
        mid = self.s[:-1] + self.seg_len / 2.0
        j = np.searchsorted(mid, mid + window_m)
        j = np.minimum(j, len(mid) - 1)
        dtheta = np.abs((heading[j] - heading + np.pi) % (2.0 * np.pi) - np.pi)
        ds = np.maximum(mid[j] - mid, window_m / 2.0)
        return mid, np.where(j > np.arange(len(mid)), dtheta / ds, 0.0)
