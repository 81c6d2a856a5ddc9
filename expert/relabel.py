"""Relabel recorded scenes with the expert (the DAgger step)."""
from __future__ import annotations

import logging
import re
from itertools import islice
from pathlib import Path

from tqdm import tqdm

from driving.dataset import SceneDataset, SceneRecord
from expert.config import ExpertConfig
from expert.expert import Expert

__all__ = ["relabel_dataset", "relabelled_run_id"]

log = logging.getLogger(__name__)
_CHUNK_RECORDS = 2000
# "-relabel" is what this module names its runs; "-relabel-<ms>" what earlier versions did
_RELABEL_SUFFIX = re.compile(r"-relabel(-\d+)?$")


def _base_run_id(run_id: str) -> str:
    return _RELABEL_SUFFIX.sub("", run_id)


def relabelled_run_id(run_id: str) -> str:
    """The run id of the relabelled copy of run ``run_id``: ``<run>-relabel`` (one per source run)."""
    return f"{_base_run_id(run_id)[:120]}-relabel"


def relabel_dataset(src: Path, dst: Path | None = None, config: ExpertConfig | None = None,
                    progress: bool = True) -> int:
    """Label every record of dataset ``src`` with the expert; returns the number labelled.

    The relabelled records go to ``dst`` (created when missing) as one run per
    source run, named ``<run>-relabel``; the scene and meta are kept (meta gains
    ``relabelled_from``). With ``dst`` None they go into ``src`` itself, after
    its existing runs, which stay untouched. Idempotent: a rerun replaces the
    ``<run>-relabel`` runs of the earlier one instead of adding more (a rerun
    after a crash too), and the relabelled copies already in ``src`` are not
    relabelled again when their source run is there (in place, never). Runs
    are written in chunks, so memory stays bounded.
    """
    source = SceneDataset(src)
    target = SceneDataset(dst if dst is not None else src)
    expert = Expert(config)
    # Snapshot the index first: appending to src while reading it must not relabel our own output.
    in_place = dst is None or Path(dst).resolve() == Path(src).resolve()
    runs_in_src = {entry["run_id"] for entry in source.chunks()}
    entries = [entry for entry in source.chunks()
               if not _is_relabelled_copy(entry["run_id"], runs_in_src, in_place)]
    by_run: dict[str, list[dict]] = {}
    for entry in entries:
        by_run.setdefault(entry["run_id"], []).append(entry)
    new_ids = {run: relabelled_run_id(run) for run in by_run}
    count = 0
    total = sum(int(e.get("n_records", 0)) for e in entries)
    with tqdm(total=total, desc="relabel", unit="scene", disable=not progress, leave=False) as bar:
        for run, run_entries in by_run.items():
            labelled = (SceneRecord(record.scene, expert.predict(record.scene), {**record.meta, "relabelled_from": run})
                        for entry in run_entries for record in source.read_chunk(entry))
            first = True
            while batch := list(islice(labelled, _CHUNK_RECORDS)):
                # the first chunk drops what an earlier relabelling (or a crashed one) left of this run
                target.append(batch, run_id=new_ids[run], replace=first)
                first = False
                count += len(batch)
                bar.update(len(batch))
    log.info("relabelled %d scenes from %s into %s", count, src, dst or src)
    return count


def _is_relabelled_copy(run_id: str, runs: set[str], in_place: bool) -> bool:
    """Whether ``run_id`` is a relabelled copy this function made that must not be relabelled again."""
    if not _RELABEL_SUFFIX.search(run_id):
        return False
    return in_place or _base_run_id(run_id) in runs
