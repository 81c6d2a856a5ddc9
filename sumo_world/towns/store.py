"""Towns: SUMO road networks stored under a name, generated or imported from CARLA.

A town store is a folder holding one sub-folder per town::

    <root>/<name>/<name>.net.xml   the SUMO net
    <root>/<name>/town.json        metadata: source, command, seed, timings, ...
    <root>/<name>/stop_signs.json  the stop signs of an imported CARLA town

:class:`TownStore` reads and writes that folder; generating a town
(:mod:`sumo_world.towns.generate`) and importing a CARLA town
(:mod:`sumo_world.towns.carla_import`) are its methods ``generate``,
``import_opendrive``, ``import_net`` and ``import_file``, written in their own
modules.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from sumo_world.towns import carla_import
from sumo_world.towns.generate import generate_town
from sumo_world.towns.info import TownError, TownInfo, TownNotFoundError, junction_summary, net_offset

__all__ = ["TownStore", "default_towns_dir"]

_META_FILE = "town.json"


def default_towns_dir() -> Path:
    """``$LANGPROP_TOWNS`` or ``./towns``."""
    return Path(os.environ.get("LANGPROP_TOWNS") or "towns")


class TownStore:
    """Towns stored under ``root`` (default ``$LANGPROP_TOWNS`` or ``./towns``)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_towns_dir()

    # Reading ----------------------------------------------------------------------

    def net_path(self, name: str) -> Path:
        """Where the town ``name``'s SUMO net is (or would be) stored."""
        return self.root / name / f"{name}.net.xml"

    def list(self) -> list[TownInfo]:
        """All stored towns, sorted by name."""
        if not self.root.is_dir():
            return []
        towns = []
        for folder in sorted(self.root.iterdir()):
            if folder.name in self:
                towns.append(self._info(folder.name))
        return towns

    def names(self) -> list[str]:
        """Names of the stored towns."""
        return [town.name for town in self.list()]

    def get(self, name: str) -> TownInfo:
        """The stored town ``name``; :class:`TownNotFoundError` says what exists and how to add it."""
        if name in self:
            return self._info(name)
        known = ", ".join(self.names()) or "none"
        raise TownNotFoundError(
            f"town {name!r} not found in {self.root} (known towns: {known}). Create it with "
            f"`langprop town import {name}.xodr --towns-dir {self.root}` (a CARLA town) or "
            f"`langprop town generate {name} --towns-dir {self.root}`")

    def __contains__(self, name: str) -> bool:
        return self.net_path(name).is_file()

    def _info(self, name: str) -> TownInfo:
        folder = self.root / name
        meta: dict[str, Any] = {}
        meta_path = folder / _META_FILE
        if meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise TownError(f"{meta_path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
        return TownInfo(name=name, net_path=self.net_path(name), source=str(meta.get("source", "net")),
                        meta=meta)

    # Writing ----------------------------------------------------------------------

    def store_net(self, name: str, tmp_net: Path, meta: dict[str, Any], overwrite: bool,
                  stop_signs: Path | None = None) -> TownInfo:
        """Move a finished net (and its stop-sign file) into the store as ``name``, with its metadata."""
        folder = self.root / name
        net_path = self.net_path(name)
        if not overwrite and net_path.exists():
            raise TownError(f"town {name!r} already exists in {self.root}; pass overwrite=True "
                            f"(--overwrite) to replace it")
        folder.mkdir(parents=True, exist_ok=True)
        meta = dict(meta)
        meta["name"] = name
        meta["net_offset"] = net_offset(tmp_net)
        meta.update(junction_summary(tmp_net))
        from sumo_world.towns.stop_signs import STOP_SIGNS_FILE

        (folder / STOP_SIGNS_FILE).unlink(missing_ok=True)  # a replaced town keeps no old signs
        if stop_signs is not None:
            shutil.move(str(stop_signs), folder / STOP_SIGNS_FILE)
        shutil.move(str(tmp_net), net_path)
        (folder / _META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
        return self._info(name)

    # Making towns (their own modules) ----------------------------------------------

    generate = generate_town
    import_opendrive = carla_import.import_opendrive
    import_net = carla_import.import_net
    import_file = carla_import.import_file
