"""Training metrics: a JSON-lines log, a training-curve plot, and how well one score ranks like another."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any, Iterable, Iterator

from langprop_common.files import atomic_write_bytes, atomic_write_text

__all__ = ["MetricsLog", "read_metrics", "plot_training_curve", "plot_behaviours", "ranks", "spearman",
           "plot_score_pairs"]


class MetricsLog:
    """``metrics.jsonl``: one JSON object per line, appended as training goes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        """Add one record as a line."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")

    def rewrite(self, records: Iterable[dict[str, Any]]) -> None:
        """Replace the log (on resume: the checkpoint's history is the truth)."""
        atomic_write_text(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics log; a bad line raises naming the file and line."""
    records = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from None
    return records


def plot_training_curve(history: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Best priority and batch mean score per step, and validation per epoch, as a PNG."""
    train = [r for r in history if r.get("kind") == "train"]
    val = [r for r in history if r.get("kind") == "val"]
    with _batch_axes(path, "score", title or "LangProp training") as ax:
        if train:
            steps = [r["step"] for r in train]
            ax.plot(steps, [r["best_priority"] for r in train], label="best priority")
            ax.plot(steps, [r["best_batch_score"] for r in train], label="best batch score", alpha=0.7)
            ax.plot(steps, [r["mean_batch_score"] for r in train], label="population mean", alpha=0.5)
        if val:
            ax.plot([r["step"] for r in val], [r["best_val_score"] for r in val], "o-",
                    label="validation (best script)")
        if train or val:
            ax.legend(loc="lower right")
    return Path(path)


def plot_behaviours(history: list[dict[str, Any]], path: Path, title: str = "") -> Path | None:
    """Distinct behaviours, occupied niches and scripts per island after every batch (the batch records'
    ``behaviours``), as a PNG; None when no record has them."""
    rows = [r for r in history if r.get("kind") == "train" and isinstance(r.get("behaviours"), dict)]
    if not rows:
        return None
    with _batch_axes(path, "count", title or "behaviours on the probe set") as ax:
        steps = [r["step"] for r in rows]
        ax.plot(steps, [r["behaviours"]["distinct"] for r in rows], label="distinct behaviours")
        ax.plot(steps, [r["behaviours"]["n_niches"] for r in rows], label="occupied niches")
        for island in sorted({i for r in rows for i in r["behaviours"].get("islands", {})}):
            ax.plot(steps, [r["behaviours"]["islands"].get(island, 0) for r in rows], "--", alpha=0.6,
                    label=f"island {island} scripts")
        ax.legend(loc="upper left")
    return Path(path)


@contextlib.contextmanager
def _batch_axes(path: Path, ylabel: str, title: str) -> Iterator[Any]:
    """Axes over training batches for the caller to draw on; written to ``path`` as a PNG when it is done."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    try:
        yield ax
        ax.set_xlabel("training batch")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    except BaseException:
        plt.close(fig)
        raise
    _write_png(plt, fig, path)


def _write_png(plt: Any, fig: Any, path: Path) -> None:
    """Lay out, render and close ``fig``, then write it atomically to ``path``."""
    try:
        fig.tight_layout()
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=100)
    finally:
        plt.close(fig)
    atomic_write_bytes(Path(path), png.getvalue())


def ranks(values: list[float]) -> list[float]:
    """1-based ranks, ties sharing the mean of their ranks (as Spearman's correlation needs)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return out


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Spearman's rank correlation of paired scores (Pearson's on tie-averaged ranks).

    None when it is undefined: fewer than two pairs, or either side constant.
    """
    if len(xs) != len(ys):
        raise ValueError(f"spearman: {len(xs)} x values but {len(ys)} y values")
    if len(xs) < 2:
        return None
    rx, ry = ranks(list(xs)), ranks(list(ys))
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return None
    return sxy / (sxx * syy) ** 0.5


def plot_score_pairs(points: list[tuple[float, float, str]], path: Path, xlabel: str, ylabel: str,
                     title: str = "") -> Path:
    """A scatter of (x, y, label) points as a PNG (e.g. objective against driving score)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    try:
        for x, y, label in points:
            ax.scatter([x], [y], color="tab:blue")
            ax.annotate(label, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    except BaseException:
        plt.close(fig)
        raise
    _write_png(plt, fig, path)
    return Path(path)
