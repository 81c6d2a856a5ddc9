"""CARLA towns imported into a town store, from their OpenDRIVE file or a SUMO net of them.

OpenDRIVE goes through ``netconvert --offset.disable-normalization`` so that
SUMO coordinates are CARLA's with y negated (see
:mod:`sumo_world.roads.transform`); a SUMO net of the town is stored with
sidewalks and crossings guessed when it has none (the offset kept). Either way
nested junctions are joined and stop signs placed
(:mod:`sumo_world.towns.patches`).
"""
from __future__ import annotations

import shutil
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sumo_world.towns.info import TownError, TownInfo, check_name, junction_summary, net_offset
from sumo_world.towns.patches import carla_signal_plans, join_nested, stop_sign_junctions
from sumo_world.towns.sumo_tools import run_tool, sumo_binary

if TYPE_CHECKING:
    from sumo_world.towns.store import TownStore

__all__ = ["import_opendrive", "import_net", "import_file"]

# netconvert options that add sidewalks to roads that allow pedestrians, and crossings at junctions.
_GUESS_SIDEWALKS = ("--sidewalks.guess", "--crossings.guess")
# ... and the crossings alone, for a pass over a net that has its sidewalks (joined junctions lose theirs).
_GUESS_CROSSINGS = ("--crossings.guess",)


def _source(store: TownStore, path: str | Path, what: str, name: str | None) -> tuple[Path, str]:
    """The file to import (TownError naming it when absent) and the town's name; makes the store's folder."""
    path = Path(path)
    if not path.is_file():
        raise TownError(f"{what} not found: {path}")
    store.root.mkdir(parents=True, exist_ok=True)
    return path, check_name(name or path.name.split(".")[0])


def import_opendrive(store: TownStore, xodr: str | Path, name: str | None = None, *, sidewalks: bool = True,
                     stop_signs: str | Path | None = None, overwrite: bool = False,
                     carla_signals: bool = False) -> TownInfo:
    """Import a CARLA town from its OpenDRIVE file, keeping CARLA's coordinates.

    ``name`` defaults to the file's stem (``Town01.xodr`` -> ``Town01``).
    ``sidewalks`` adds guessed sidewalks and crossings for pedestrians.
    Stop signs come from ``stop_signs`` (a JSON export of a CARLA server's
    ``traffic.stop`` actors) when given, else from the file's type-206
    signals (see :mod:`sumo_world.towns.stop_signs`). ``carla_signals`` puts the lights on CARLA's
    timing (:mod:`sumo_world.towns.signal_plans`); by default they keep netconvert's plans, which
    move SUMO's traffic better (issue 25: with CARLA's timing Town06's traffic stood 38 %
    instead of 26 % and the expert's Town06 routes blocked twice).
    """
    start = time.perf_counter()
    xodr, name = _source(store, xodr, "OpenDRIVE file", name)
    with tempfile.TemporaryDirectory(dir=store.root, prefix=f".{name}.") as tmp:
        out = Path(tmp) / "town.net.xml"
        # No --opendrive.internal-shapes: it makes junction lanes follow the OpenDRIVE connecting
        # roads, which leaves 2-5 m gaps between ramp and junction lanes in Town04's cloverleaf
        # junctions (1-2 m in Town06). SUMO's own junction shapes join every lane end; they are
        # about 1 m less faithful to CARLA's curves on Town01, and routes stay on the road.
        command = [str(sumo_binary("netconvert")), "--opendrive-files", str(xodr),
                   "--offset.disable-normalization", "--output-file", str(out)]
        if sidewalks:
            command += [*_GUESS_SIDEWALKS]
        run_tool(command, f"netconvert of {xodr}")
        meta = {"source": "opendrive", "source_file": str(xodr.resolve()),
                "sidewalks": "guessed" if sidewalks else "none"}
        out = join_nested(out, meta, _GUESS_CROSSINGS if sidewalks else ())
        out, signs_file = stop_sign_junctions(out, Path(tmp), meta, stop_signs, xodr)
        if carla_signals:
            out = carla_signal_plans(out, meta)
        meta["import_s"] = round(time.perf_counter() - start, 3)
        return store.store_net(name, out, meta, overwrite, signs_file)


def import_net(store: TownStore, net_xml: str | Path, name: str | None = None, *, sidewalks: bool = True,
               stop_signs: str | Path | None = None, overwrite: bool = False,
               carla_signals: bool = False) -> TownInfo:
    """Store an existing SUMO net (e.g. a CARLA town converted elsewhere) under ``name``.

    A net without sidewalks (the CARLA nets other projects publish have
    none) gets guessed sidewalks and crossings from ``netconvert`` when
    ``sidewalks`` is set, with the net's offset kept, so that its
    coordinates still map onto CARLA's; the metadata says ``"sidewalks":
    "guessed"``. A net that has sidewalks is stored as it is. Stop signs
    come from ``stop_signs`` (a CARLA export, see :func:`import_opendrive`).
    """
    start = time.perf_counter()
    net_xml, name = _source(store, net_xml, "SUMO net", name)
    with tempfile.TemporaryDirectory(dir=store.root, prefix=f".{name}.") as tmp:
        copy = Path(tmp) / "town.net.xml"
        shutil.copyfile(net_xml, copy)
        try:
            offset = net_offset(copy)
            had_sidewalks = junction_summary(copy)["sidewalk_lanes"] > 0
        except ET.ParseError as exc:
            raise TownError(f"{net_xml}: not a readable SUMO net: {exc}") from exc
        meta: dict[str, Any] = {"source": "net", "source_file": str(net_xml.resolve()),
                                "sidewalks": "net" if had_sidewalks else "none"}
        copy = join_nested(copy, meta, _GUESS_CROSSINGS if had_sidewalks else ())
        if sidewalks and not had_sidewalks:
            guessed = Path(tmp) / "guessed.net.xml"
            command = [str(sumo_binary("netconvert")), "--sumo-net-file", str(copy),
                       "--offset.disable-normalization", *_GUESS_SIDEWALKS, "--output-file", str(guessed)]
            run_tool(command, f"netconvert (guessing sidewalks) of {net_xml}")
            if net_offset(guessed) != offset:
                raise TownError(f"netconvert changed the offset of {net_xml} ({offset} -> "
                                f"{net_offset(guessed)}); the town would not map onto CARLA's coordinates")
            copy = guessed
            meta["sidewalks"] = "guessed"
        copy, signs_file = stop_sign_junctions(copy, Path(tmp), meta, stop_signs, None)
        if carla_signals:
            copy = carla_signal_plans(copy, meta)
        meta["import_s"] = round(time.perf_counter() - start, 3)
        return store.store_net(name, copy, meta, overwrite, signs_file)


def import_file(store: TownStore, path: str | Path, name: str | None = None, *, sidewalks: bool = True,
                stop_signs: str | Path | None = None, overwrite: bool = False,
                carla_signals: bool = False) -> TownInfo:
    """Import ``.xodr`` (OpenDRIVE) or ``.net.xml`` (SUMO) by its suffix."""
    path = Path(path)
    if path.suffix.lower() == ".xodr":
        return import_opendrive(store, path, name, sidewalks=sidewalks, stop_signs=stop_signs,
                                overwrite=overwrite, carla_signals=carla_signals)
    if path.name.lower().endswith(".net.xml"):
        return import_net(store, path, name, sidewalks=sidewalks, stop_signs=stop_signs, overwrite=overwrite,
                          carla_signals=carla_signals)
    raise TownError(f"cannot import {path}: expected an OpenDRIVE .xodr or a SUMO .net.xml file")
