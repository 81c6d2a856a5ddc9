"""Towns: SUMO road networks stored under a name, generated or imported from CARLA.

A town store is a folder holding one sub-folder per town::

    <root>/<name>/<name>.net.xml   the SUMO net
    <root>/<name>/town.json        metadata: source, command, seed, timings, ...

Generated towns come from SUMO's ``netgenerate`` (grid, spider or random
networks with two-lane roads, traffic lights, sidewalks, crossings and a few
all-way-stop junctions picked from the seed). CARLA towns are imported from
their OpenDRIVE file with ``netconvert --offset.disable-normalization`` so
that SUMO coordinates are CARLA's with y negated (see
:mod:`sumo_world.roads.transform`), or stored from a SUMO net of the town, with
sidewalks and crossings guessed when it has none (the offset kept).
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sumo_world.roads.transform import CarlaSumoTransform

__all__ = [
    "TownInfo", "TownStore", "TownError", "TownNotFoundError", "TOWN_KINDS",
    "sumo_home", "sumo_binary", "sumo_env", "default_towns_dir",
]

TOWN_KINDS: tuple[str, ...] = ("grid", "spider", "random")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_META_FILE = "town.json"
# Share of the inner junctions of a generated town that become all-way stops.
_ALLWAY_STOP_SHARE = 0.25
# netconvert options that add sidewalks to roads that allow pedestrians, and crossings at junctions.
_GUESS_SIDEWALKS = ("--sidewalks.guess", "--crossings.guess")
# ... and the crossings alone, for a pass over a net that has its sidewalks (joined junctions lose theirs).
_GUESS_CROSSINGS = ("--crossings.guess",)


class TownError(RuntimeError):
    """A town cannot be generated, imported or read."""


class TownNotFoundError(TownError, KeyError):
    """No town of that name in the store."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class TownInfo:
    """A stored town: its name, SUMO net, where it came from and its metadata."""

    name: str
    net_path: Path
    source: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def transform(self) -> CarlaSumoTransform:
        """CARLA <-> SUMO transform of this town (from the stored net offset)."""
        off = self.meta.get("net_offset") or [0.0, 0.0]
        return CarlaSumoTransform(float(off[0]), float(off[1]))


def sumo_home() -> Path:
    """SUMO_HOME of the installed ``eclipse-sumo`` wheel (or the environment's)."""
    try:
        import sumo

        return Path(sumo.SUMO_HOME)
    except ImportError:
        env = os.environ.get("SUMO_HOME")
        if env:
            return Path(env)
        raise TownError("SUMO is not installed: `pip install eclipse-sumo` (or set SUMO_HOME)") from None


def sumo_binary(name: str) -> Path:
    """Path of a SUMO program (``netgenerate``, ``netconvert``, ``sumo``...)."""
    for candidate in (sumo_home() / "bin" / name, sumo_home() / "bin" / f"{name}.exe"):
        if candidate.is_file():
            return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise TownError(f"SUMO program {name!r} not found under {sumo_home() / 'bin'}")


def sumo_env() -> dict[str, str]:
    """Environment for SUMO subprocesses (SUMO_HOME set, so XML validation is configured)."""
    env = dict(os.environ)
    env["SUMO_HOME"] = str(sumo_home())
    return env


def default_towns_dir() -> Path:
    """``$LANGPROP_TOWNS`` or ``./towns``."""
    return Path(os.environ.get("LANGPROP_TOWNS") or "towns")


def _run(command: list[str], what: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=sumo_env())
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()[-2000:]
        raise TownError(f"{what} failed (exit {proc.returncode}): {' '.join(command)}\n{detail}")
    return time.perf_counter() - start


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name or ""):
        raise TownError(f"invalid town name {name!r}: use letters, digits, '_', '-', '.'")
    return name


def _net_offset(net_path: Path) -> list[float]:
    # Only the <location> element is needed; stop parsing there (nets can be large).
    for _, element in ET.iterparse(net_path, events=("start",)):
        if element.tag == "location":
            x, y = (element.get("netOffset") or "0,0").split(",")
            return [float(x), float(y)]
    return [0.0, 0.0]


def _junction_summary(net_path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    crossings = 0
    sidewalks = 0
    for _, element in ET.iterparse(net_path, events=("end",)):
        if element.tag == "junction" and element.get("type") != "internal":
            kind = element.get("type", "?")
            counts[kind] = counts.get(kind, 0) + 1
        elif element.tag == "edge" and element.get("function") == "crossing":
            crossings += 1
        elif element.tag == "lane" and element.get("allow") == "pedestrian":
            sidewalks += 1
    return {"junctions": counts, "crossings": crossings, "sidewalk_lanes": sidewalks}


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

    def _finish(self, name: str, tmp_net: Path, meta: dict[str, Any], overwrite: bool,
                stop_signs: Path | None = None) -> TownInfo:
        folder = self.root / name
        net_path = self.net_path(name)
        if not overwrite and net_path.exists():
            raise TownError(f"town {name!r} already exists in {self.root}; pass overwrite=True "
                            f"(--overwrite) to replace it")
        folder.mkdir(parents=True, exist_ok=True)
        meta = dict(meta)
        meta["name"] = name
        meta["net_offset"] = _net_offset(tmp_net)
        meta.update(_junction_summary(tmp_net))
        from sumo_world.towns.stop_signs import STOP_SIGNS_FILE

        (folder / STOP_SIGNS_FILE).unlink(missing_ok=True)  # a replaced town keeps no old signs
        if stop_signs is not None:
            shutil.move(str(stop_signs), folder / STOP_SIGNS_FILE)
        shutil.move(str(tmp_net), net_path)
        (folder / _META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
        return self._info(name)

    def generate(self, name: str, kind: str = "grid", size: int = 4, seed: int = 0, *,
                 block_m: float = 100.0, lanes: int = 2, speed_mps: float = 13.89,
                 allway_stop_share: float = _ALLWAY_STOP_SHARE, overwrite: bool = False) -> TownInfo:
        """Generate a town with ``netgenerate`` (seconds).

        ``kind``: "grid" (``size`` x ``size`` junctions, ``block_m`` apart),
        "spider" (``size`` arms, ``size // 2 + 1`` circles) or "random"
        (``size * 5`` growth iterations). Roads have ``lanes`` lanes per
        direction plus sidewalks; junctions are traffic lights, crossings are
        guessed; a seeded share of the junctions with 3+ roads becomes all-way
        stops, and junctions joining two roads only get right of way.
        """
        _check_name(name)
        if kind not in TOWN_KINDS:
            raise TownError(f"unknown town kind {kind!r}; expected one of {', '.join(TOWN_KINDS)}")
        if not 2 <= int(size) <= 30:
            raise TownError(f"town size must be between 2 and 30, got {size}")
        if lanes not in (1, 2, 3):
            raise TownError(f"lanes must be 1, 2 or 3, got {lanes}")
        start = time.perf_counter()
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.root, prefix=f".{name}.") as tmp:
            raw = Path(tmp) / "raw.net.xml"
            command = [str(sumo_binary("netgenerate")), *self._shape_options(kind, int(size), block_m),
                       "--default.lanenumber", str(lanes), "--default.speed", str(speed_mps),
                       "--default.junctions.type", "traffic_light",
                       "--sidewalks.guess", "--crossings.guess", "--no-turnarounds", "true",
                       "--seed", str(int(seed)), "--output-file", str(raw)]
            _run(command, "netgenerate")
            patch = Path(tmp) / "junctions.nod.xml"
            stops = self._write_junction_patch(raw, patch, seed, allway_stop_share)
            final = Path(tmp) / "town.net.xml"
            _run([str(sumo_binary("netconvert")), "--sumo-net-file", str(raw), "--node-files", str(patch),
                  "--output-file", str(final)], "netconvert (junction types)")
            meta = {"source": "generated", "kind": kind, "size": int(size), "seed": int(seed),
                    "block_m": block_m, "lanes": lanes, "speed_mps": speed_mps, "allway_stops": stops,
                    "generate_s": round(time.perf_counter() - start, 3)}
            return self._finish(name, final, meta, overwrite)

    @staticmethod
    def _shape_options(kind: str, size: int, block_m: float) -> list[str]:
        if kind == "grid":
            return ["--grid", "--grid.number", str(size), "--grid.length", str(block_m)]
        if kind == "spider":
            return ["--spider", "--spider.arm-number", str(max(size, 3)),
                    "--spider.circle-number", str(size // 2 + 1), "--spider.space-radius", str(block_m)]
        return ["--rand", "--rand.iterations", str(size * 5), "--rand.min-distance", str(block_m * 0.6),
                "--rand.max-distance", str(block_m * 1.5), "--rand.min-angle", "60"]

    @staticmethod
    def _write_junction_patch(raw: Path, patch: Path, seed: int, share: float) -> list[str]:
        """Pick all-way stops and plain junctions; write a netconvert node patch; returns the stop ids."""
        degree: dict[str, set[str]] = {}
        for _, element in ET.iterparse(raw, events=("end",)):
            if element.tag == "edge" and not element.get("function"):
                for end in ("from", "to"):
                    node = element.get(end)
                    if node:
                        other = element.get("to" if end == "from" else "from")
                        degree.setdefault(node, set()).add(other or "")
        inner = sorted(node for node, neighbours in degree.items() if len(neighbours) >= 3)
        plain = sorted(node for node, neighbours in degree.items() if len(neighbours) < 3)
        # Deterministic from the seed alone (string seeds hash stably in random.Random).
        rng = random.Random(f"allway-stop-{seed}")
        n_stops = max(1, round(len(inner) * share)) if inner and share > 0 else 0
        stops = sorted(rng.sample(inner, n_stops)) if n_stops else []
        root = ET.Element("nodes")
        for node in stops:
            ET.SubElement(root, "node", id=node, type="allway_stop")
        for node in plain:
            ET.SubElement(root, "node", id=node, type="priority")
        ET.ElementTree(root).write(patch, encoding="utf-8", xml_declaration=True)
        return stops

    def _source(self, path: str | Path, what: str, name: str | None) -> tuple[Path, str]:
        """The file to import (TownError naming it when absent), the town's name, and the store made."""
        path = Path(path)
        if not path.is_file():
            raise TownError(f"{what} not found: {path}")
        self.root.mkdir(parents=True, exist_ok=True)
        return path, _check_name(name or path.name.split(".")[0])

    def import_opendrive(self, xodr: str | Path, name: str | None = None, *, sidewalks: bool = True,
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
        xodr, name = self._source(xodr, "OpenDRIVE file", name)
        with tempfile.TemporaryDirectory(dir=self.root, prefix=f".{name}.") as tmp:
            out = Path(tmp) / "town.net.xml"
            # No --opendrive.internal-shapes: it makes junction lanes follow the OpenDRIVE connecting
            # roads, which leaves 2-5 m gaps between ramp and junction lanes in Town04's cloverleaf
            # junctions (1-2 m in Town06). SUMO's own junction shapes join every lane end; they are
            # about 1 m less faithful to CARLA's curves on Town01, and routes stay on the road.
            command = [str(sumo_binary("netconvert")), "--opendrive-files", str(xodr),
                       "--offset.disable-normalization", "--output-file", str(out)]
            if sidewalks:
                command += [*_GUESS_SIDEWALKS]
            _run(command, f"netconvert of {xodr}")
            meta = {"source": "opendrive", "source_file": str(xodr.resolve()),
                    "sidewalks": "guessed" if sidewalks else "none"}
            out = self._join_nested(out, meta, _GUESS_CROSSINGS if sidewalks else ())
            out, signs_file = self._add_stop_signs(out, Path(tmp), meta, stop_signs, xodr)
            if carla_signals:
                out = self._carla_signal_plans(out, meta)
            meta["import_s"] = round(time.perf_counter() - start, 3)
            return self._finish(name, out, meta, overwrite, signs_file)

    def import_net(self, net_xml: str | Path, name: str | None = None, *, sidewalks: bool = True,
                   stop_signs: str | Path | None = None, overwrite: bool = False,
                   carla_signals: bool = False) -> TownInfo:
        """Store an existing SUMO net (e.g. a CARLA town converted elsewhere) under ``name``.

        A net without sidewalks (the CARLA nets other projects publish have
        none) gets guessed sidewalks and crossings from ``netconvert`` when
        ``sidewalks`` is set, with the net's offset kept, so that its
        coordinates still map onto CARLA's; the metadata says ``"sidewalks":
        "guessed"``. A net that has sidewalks is stored as it is. Stop signs
        come from ``stop_signs`` (a CARLA export, see :meth:`import_opendrive`).
        """
        start = time.perf_counter()
        net_xml, name = self._source(net_xml, "SUMO net", name)
        with tempfile.TemporaryDirectory(dir=self.root, prefix=f".{name}.") as tmp:
            copy = Path(tmp) / "town.net.xml"
            shutil.copyfile(net_xml, copy)
            try:
                offset = _net_offset(copy)
                had_sidewalks = _junction_summary(copy)["sidewalk_lanes"] > 0
            except ET.ParseError as exc:
                raise TownError(f"{net_xml}: not a readable SUMO net: {exc}") from exc
            meta: dict[str, Any] = {"source": "net", "source_file": str(net_xml.resolve()),
                                    "sidewalks": "net" if had_sidewalks else "none"}
            copy = self._join_nested(copy, meta, _GUESS_CROSSINGS if had_sidewalks else ())
            if sidewalks and not had_sidewalks:
                guessed = Path(tmp) / "guessed.net.xml"
                command = [str(sumo_binary("netconvert")), "--sumo-net-file", str(copy),
                           "--offset.disable-normalization", *_GUESS_SIDEWALKS, "--output-file", str(guessed)]
                _run(command, f"netconvert (guessing sidewalks) of {net_xml}")
                if _net_offset(guessed) != offset:
                    raise TownError(f"netconvert changed the offset of {net_xml} ({offset} -> "
                                    f"{_net_offset(guessed)}); the town would not map onto CARLA's coordinates")
                copy = guessed
                meta["sidewalks"] = "guessed"
            copy, signs_file = self._add_stop_signs(copy, Path(tmp), meta, stop_signs, None)
            if carla_signals:
                copy = self._carla_signal_plans(copy, meta)
            meta["import_s"] = round(time.perf_counter() - start, 3)
            return self._finish(name, copy, meta, overwrite, signs_file)

    @staticmethod
    def _carla_signal_plans(net: Path, meta: dict[str, Any]) -> Path:
        """``net`` with its lights on CARLA's timing (see :mod:`sumo_world.towns.signal_plans`)."""
        from sumo_world.towns.signal_plans import CARLA_TIMING, apply_carla_plans

        out = net.with_name(f"signals.{net.name}")
        count = apply_carla_plans(net, out)
        meta["signal_plans"] = {"kind": "carla", "lights": count, "green_s": CARLA_TIMING.green_s,
                                "yellow_s": CARLA_TIMING.yellow_s, "all_red_s": CARLA_TIMING.all_red_s}
        return out

    @staticmethod
    def _join_nested(net: Path, meta: dict[str, Any], options: tuple[str, ...]) -> Path:
        """``net`` with junctions nested in a neighbour joined (see :mod:`sumo_world.towns.junction_join`)."""
        from sumo_world.towns.junction_join import join_nested_junctions

        joined = net.with_name(f"joined.{net.name}")
        groups = join_nested_junctions(net, joined, str(sumo_binary("netconvert")), _run, options)
        meta["joined_junctions"] = groups
        return joined if groups else net

    @staticmethod
    def _add_stop_signs(net: Path, tmp: Path, meta: dict[str, Any], export: str | Path | None,
                        xodr: Path | None) -> tuple[Path, Path | None]:
        """Read the stop signs, place them on the net's lanes, make their junctions stop junctions.

        Returns the (patched) net and the stop-sign file to store; records in
        ``meta["stop_signs"]`` how many were found, where from, and how many
        govern a lane (a town with none says so in ``meta["stop_signs_note"]``).
        """
        from sumo_world.roads.network import RoadNetwork
        from sumo_world.towns.stop_signs import (StopSignError, assign_lanes, from_export, from_opendrive,
                                           junction_types, minor_edges, save_stop_signs)

        try:
            if export is not None:
                signs, source = from_export(export), str(Path(export).resolve())
            elif xodr is not None:
                signs, source = from_opendrive(xodr), "opendrive type-206 signals"
            else:
                signs, source = [], "none"
        except StopSignError as exc:
            raise TownError(str(exc)) from exc
        if not signs:
            meta["stop_signs"] = {"count": 0, "governing": 0, "source": source}
            where = "its OpenDRIVE file has no type-206 signals" if xodr is not None else "a SUMO net holds none"
            meta["stop_signs_note"] = (f"no stop signs: {where}; export the level's traffic.stop actors from a "
                                       f"running CARLA with scripts/export_carla_stops.py and import again with "
                                       f"--stop-signs FILE")
            return net, None
        placed = assign_lanes(RoadNetwork(net), signs)
        governing = [sign for sign in placed if sign.lanes]
        meta["stop_signs"] = {"count": len(placed), "governing": len(governing), "source": source}
        network = RoadNetwork(net)
        types = junction_types(network, governing)
        if types:
            patch = tmp / "stop_junctions.nod.xml"
            root = ET.Element("nodes")
            for node_id, kind in sorted(types.items()):
                ET.SubElement(root, "node", id=node_id, type=kind)
            ET.ElementTree(root).write(patch, encoding="utf-8", xml_declaration=True)
            edges = tmp / "stop_approaches.edg.xml"
            root = ET.Element("edges")
            lowest = min((edge.getPriority() for edge in network.driving_edges()), default=1)
            for edge_id in minor_edges(network, governing, types):
                ET.SubElement(root, "edge", id=edge_id, priority=str(lowest - 1))
            ET.ElementTree(root).write(edges, encoding="utf-8", xml_declaration=True)
            patched = tmp / "stops.net.xml"
            # SUMO's own traffic stops at these junctions too (its stop links on the signed approaches).
            _run([str(sumo_binary("netconvert")), "--sumo-net-file", str(net), "--node-files", str(patch),
                  "--edge-files", str(edges), "--offset.disable-normalization", "--output-file", str(patched)],
                 "netconvert (stop junctions)")
            net = patched
        return net, save_stop_signs(tmp / "stop_signs.json", placed, source)

    def import_file(self, path: str | Path, name: str | None = None, *, sidewalks: bool = True,
                    stop_signs: str | Path | None = None, overwrite: bool = False,
                    carla_signals: bool = False) -> TownInfo:
        """Import ``.xodr`` (OpenDRIVE) or ``.net.xml`` (SUMO) by its suffix."""
        path = Path(path)
        if path.suffix.lower() == ".xodr":
            return self.import_opendrive(path, name, sidewalks=sidewalks, stop_signs=stop_signs,
                                         overwrite=overwrite, carla_signals=carla_signals)
        if path.name.lower().endswith(".net.xml"):
            return self.import_net(path, name, sidewalks=sidewalks, stop_signs=stop_signs, overwrite=overwrite,
                                   carla_signals=carla_signals)
        raise TownError(f"cannot import {path}: expected an OpenDRIVE .xodr or a SUMO .net.xml file")
