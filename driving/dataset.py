"""A streaming, appendable dataset of scenes with their labels.

Layout of a dataset directory (version 1)::

    root/
      index.json                 # {"format": "langprop-scenes", "version": 1, "chunks": [...]}
      chunks/<run_id>-<n>-<uid>.jsonl.gz
                                 # one JSON object per line:
                                 # {"scene": <scene_to_jsonable>, "label": <DrivingLabel dict>|null,
                                 #  "meta": {...}}

Each :meth:`SceneDataset.append` writes one new chunk (a gzip file written to a
temporary name and renamed into place) and then rewrites ``index.json`` the same
way, under a file lock, so parallel writers and a crash between the two steps
never lose or overwrite earlier data: a chunk not yet in the index is ignored.
Records stream chunk by chunk in index order, so a dataset larger than memory
can feed the trainer.

``meta`` of a record holds (all optional): ``route_id``, ``run_id``, ``time_s``,
``action`` ({``target_speed_mps``, ``steering_deg``}: what the car was told to do),
``controller`` (``"expert"`` or ``"policy"``), ``infraction_within_s`` (seconds
until the rollout's next infraction, or None), ``infraction_kind``.
"""
from __future__ import annotations

import fcntl
import gzip
import json
import re
import time
import uuid
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from langprop_common.files import atomic_write_bytes
from driving.labels import DrivingLabel
from driving.scene import scene_from_jsonable, scene_to_jsonable

__all__ = ["DatasetError", "SceneRecord", "SceneDataset", "DatasetView", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "langprop-scenes"
FORMAT_VERSION = 1
INDEX_FILE = "index.json"
CHUNK_DIR = "chunks"
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class DatasetError(RuntimeError):
    """A dataset directory is unreadable or a request to it is invalid; the message names the file."""


@dataclass
class SceneRecord:
    """One scene, the expert's label for it (None before labelling), and where it came from."""

    scene: dict[str, Any]
    label: DrivingLabel | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_jsonable(self) -> dict[str, Any]:
        """The JSON-safe form written as one line of a chunk."""
        return {
            "scene": scene_to_jsonable(self.scene),
            "label": self.label.to_dict() if self.label is not None else None,
            "meta": self.meta,
        }

    @classmethod
    def from_jsonable(cls, data: dict[str, Any]) -> "SceneRecord":
        """Inverse of :meth:`to_jsonable`."""
        label = data.get("label")
        return cls(
            scene=scene_from_jsonable(data["scene"]),
            label=DrivingLabel.from_dict(label) if label is not None else None,
            meta=dict(data.get("meta") or {}),
        )


def _json_default(value: Any) -> Any:
    # meta written by simulators often carries numpy scalars and arrays.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class SceneDataset:
    """A directory of gzip JSON-lines chunks with an index; see the module docstring.

    Creating one on a missing directory makes it (empty). Iterating streams
    :class:`SceneRecord` objects in the order they were appended.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise DatasetError(f"{self.root}: exists and is not a directory")
        # Refuse a folder with other content; a writer that has only made its lock or chunk
        # folder so far (another process, mid-append) is fine.
        ours = (INDEX_FILE, CHUNK_DIR, ".lock")
        if self.root.is_dir() and not any((self.root / name).exists() for name in ours) \
                and any(self.root.iterdir()):
            raise DatasetError(f"{self.root}: not a scene dataset (no {INDEX_FILE}) and not empty")

    # -- index -------------------------------------------------------------------
    @property
    def index_path(self) -> Path:
        """The dataset's ``index.json``."""
        return self.root / INDEX_FILE

    def _read_index(self) -> dict[str, Any]:
        if not self.index_path.exists():
            return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "chunks": []}
        try:
            index = json.loads(self.index_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(f"{self.index_path}: unreadable index: {exc}") from exc
        if not isinstance(index, dict) or index.get("format") != FORMAT_NAME:
            raise DatasetError(f"{self.index_path}: not a {FORMAT_NAME} index")
        if int(index.get("version", 0)) > FORMAT_VERSION:
            raise DatasetError(
                f"{self.index_path}: format version {index.get('version')} is newer than this "
                f"package reads ({FORMAT_VERSION}); upgrade langprop-driver"
            )
        if not isinstance(index.get("chunks"), list):
            raise DatasetError(f"{self.index_path}: 'chunks' is not a list")
        return index

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def chunks(self) -> list[dict[str, Any]]:
        """The index entries: ``{"file", "run_id", "n_records", "created_unix"}``, in order."""
        return list(self._read_index()["chunks"])

    # -- writing -----------------------------------------------------------------
    def append(self, records: Iterable[SceneRecord], run_id: str, replace: bool = False) -> Path:
        """Write ``records`` as a new chunk of run ``run_id``; returns the chunk's path.

        Appending to an existing run id adds another chunk to it; with
        ``replace`` the run's earlier chunks are dropped in the same index
        write (a rerun of a route, or a half-written one, is then recorded once).
        ``meta["run_id"]`` of each record is set to ``run_id``.
        """
        if not isinstance(run_id, str) or not _RUN_ID_RE.match(run_id):
            raise DatasetError(
                f"{self.root}: invalid run_id {run_id!r} (letters, digits, '.', '_', '-'; at most 128)"
            )
        lines = []
        for i, record in enumerate(records):
            if not isinstance(record, SceneRecord):
                raise DatasetError(f"{self.root}: record {i} is a {type(record).__name__}, not a SceneRecord")
            data = record.to_jsonable()
            data["meta"] = {**data["meta"], "run_id": run_id}
            try:
                lines.append(json.dumps(data, default=_json_default, allow_nan=False))
            except (TypeError, ValueError) as exc:
                raise DatasetError(f"{self.root}: record {i} of run {run_id!r} is not JSON-safe: {exc}") from exc
        payload = gzip.compress(("\n".join(lines) + "\n").encode() if lines else b"", mtime=0)

        with self._locked():
            chunk_dir = self.root / CHUNK_DIR
            chunk_dir.mkdir(parents=True, exist_ok=True)
            index = self._read_index()
            stale = [c for c in index["chunks"] if c.get("run_id") == run_id] if replace else []
            index["chunks"] = [c for c in index["chunks"] if c not in stale]
            n = sum(1 for c in index["chunks"] if c.get("run_id") == run_id)
            name = f"{run_id}-{n:05d}-{uuid.uuid4().hex[:8]}.jsonl.gz"
            path = chunk_dir / name
            atomic_write_bytes(path, payload)
            index["chunks"].append({
                "file": f"{CHUNK_DIR}/{name}", "run_id": run_id, "n_records": len(lines),
                "created_unix": round(time.time(), 3),
            })
            atomic_write_bytes(self.index_path, (json.dumps(index, indent=1) + "\n").encode())
            for entry in stale:  # after the index no longer names them
                (self.root / entry["file"]).unlink(missing_ok=True)
        return path

    # -- reading -----------------------------------------------------------------
    def read_chunk(self, entry: dict[str, Any]) -> Iterator[SceneRecord]:
        """Stream the records of one index entry (from :meth:`chunks`)."""
        path = self.root / entry["file"]
        line_no = 0
        try:
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                for line_no, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        yield SceneRecord.from_jsonable(json.loads(line))
                    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                        raise DatasetError(f"{path}: line {line_no}: corrupt record: {exc}") from exc
        except FileNotFoundError as exc:
            raise DatasetError(f"{path}: chunk listed in {self.index_path} is missing") from exc
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"{path}: corrupt chunk (after line {line_no}): {exc}") from exc

    def __iter__(self) -> Iterator[SceneRecord]:
        for entry in self.chunks():
            yield from self.read_chunk(entry)

    def __len__(self) -> int:
        return sum(int(c.get("n_records", 0)) for c in self.chunks())

    def runs(self) -> list[str]:
        """Run ids, in the order they were first appended."""
        return list(dict.fromkeys(c["run_id"] for c in self.chunks()))

    def filter(self, run_ids: Iterable[str] | None = None, route_ids: Iterable[str] | None = None,
               controller: str | None = None, labelled: bool | None = None,
               predicate: Callable[[SceneRecord], bool] | None = None) -> "DatasetView":
        """A re-iterable view of the records that match every given condition."""
        return DatasetView(
            self,
            run_ids=frozenset(run_ids) if run_ids is not None else None,
            route_ids=frozenset(route_ids) if route_ids is not None else None,
            controller=controller, labelled=labelled, predicate=predicate,
        )

    def __repr__(self) -> str:
        return f"SceneDataset({str(self.root)!r})"


@dataclass
class DatasetView:
    """A filtered view of a :class:`SceneDataset`; iterable as often as needed."""

    dataset: SceneDataset
    run_ids: frozenset[str] | None = None
    route_ids: frozenset[str] | None = None
    controller: str | None = None
    labelled: bool | None = None
    predicate: Callable[[SceneRecord], bool] | None = None

    def _record_filtered(self) -> bool:
        return any(x is not None for x in (self.route_ids, self.controller, self.labelled, self.predicate))

    def _entries(self) -> list[dict[str, Any]]:
        entries = self.dataset.chunks()
        if self.run_ids is not None:
            entries = [e for e in entries if e["run_id"] in self.run_ids]
        return entries

    def _keep(self, record: SceneRecord) -> bool:
        meta = record.meta
        if self.route_ids is not None and meta.get("route_id") not in self.route_ids:
            return False
        if self.controller is not None and meta.get("controller") != self.controller:
            return False
        if self.labelled is not None and (record.label is not None) != self.labelled:
            return False
        return self.predicate is None or bool(self.predicate(record))

    def __iter__(self) -> Iterator[SceneRecord]:
        for entry in self._entries():
            for record in self.dataset.read_chunk(entry):
                if self._keep(record):
                    yield record

    def __len__(self) -> int:
        if not self._record_filtered():
            return sum(int(e.get("n_records", 0)) for e in self._entries())
        return sum(1 for _ in self)
