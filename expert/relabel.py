"""Relabel recorded scenes with the expert (the DAgger step)."""
from __future__ import annotations

import logging
import re
import time
from itertools import islice
from pathlib import Path

from tqdm import tqdm

from driving.dataset import SceneDataset, SceneRecord
from expert.config import ExpertConfig
from expert.expert import Expert

__all__ = ["relabel_dataset"]

log = logging.getLogger(__name__)
_CHUNK_RECORDS = 2000


def _relabelled_run_id(run_id: str) -> str:
    base = re.sub(r"-relabel-\d+$", "", run_id)
    return f"{base}-relabel-{time.time_ns() // 1_000_000}"[:128]


def relabel_dataset(src: Path, dst: Path | None = None, config: ExpertConfig | None = None,
                    progress: bool = True) -> int:
    """Label every record of dataset ``src`` with the expert; returns the number labelled.

    The relabelled records are *appended* to ``dst`` (created when missing) as new
    runs, one per source run, named ``<run>-relabel-<ms>``; the scene and meta are
    kept (meta gains ``relabelled_from``). With ``dst`` None they are appended to
    ``src`` itself, after its existing runs, which stay untouched: nothing is ever
    overwritten. Runs are written in chunks, so memory stays bounded.
    """
    source = SceneDataset(src)
    target = SceneDataset(dst if dst is not None else src)
    expert = Expert(config)
    # Snapshot the index first: appending to src while reading it must not relabel our own output.
    entries = source.chunks()
    by_run: dict[str, list[dict]] = {}
    for entry in entries:
        by_run.setdefault(entry["run_id"], []).append(entry)
    new_ids = {run: _relabelled_run_id(run) for run in by_run}
    count = 0
    total = sum(int(e.get("n_records", 0)) for e in entries)
    with tqdm(total=total, desc="relabel", unit="scene", disable=not progress, leave=False) as bar:
        for run, run_entries in by_run.items():
            labelled = (SceneRecord(record.scene, expert.predict(record.scene), {**record.meta, "relabelled_from": run})
                        for entry in run_entries for record in source.read_chunk(entry))
            while batch := list(islice(labelled, _CHUNK_RECORDS)):
                target.append(batch, run_id=new_ids[run])
                count += len(batch)
                bar.update(len(batch))
    log.info("relabelled %d scenes from %s into %s", count, src, dst or src)
    return count
