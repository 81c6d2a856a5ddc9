"""Training metrics: a JSON-lines log and a training-curve plot."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Iterable

from langprop_core.files import atomic_write_bytes, atomic_write_text

__all__ = ["MetricsLog", "read_metrics", "plot_training_curve"]


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
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in history if r.get("kind") == "train"]
    val = [r for r in history if r.get("kind") == "val"]
    fig, ax = plt.subplots(figsize=(7, 4))
    try:
        if train:
            steps = [r["step"] for r in train]
            ax.plot(steps, [r["best_priority"] for r in train], label="best priority")
            ax.plot(steps, [r["best_batch_score"] for r in train], label="best batch score", alpha=0.7)
            ax.plot(steps, [r["mean_batch_score"] for r in train], label="population mean", alpha=0.5)
        if val:
            ax.plot([r["step"] for r in val], [r["best_val_score"] for r in val], "o-",
                    label="validation (best script)")
        ax.set_xlabel("training batch")
        ax.set_ylabel("score")
        ax.set_title(title or "LangProp training")
        ax.grid(alpha=0.3)
        if train or val:
            ax.legend(loc="lower right")
        fig.tight_layout()
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=100)
    finally:
        plt.close(fig)
    path = Path(path)
    atomic_write_bytes(path, png.getvalue())
    return path
