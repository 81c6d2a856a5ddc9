"""Towns for a fresh machine, generated with SUMO's ``netgenerate``.

Grid, spider or random networks with two-lane roads, traffic lights,
sidewalks, crossings and a few all-way-stop junctions picked from the seed.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sumo_world.towns.info import TownError, TownInfo, check_name
from sumo_world.towns.patches import allway_stop_patch
from sumo_world.towns.sumo_tools import run_tool, sumo_binary

if TYPE_CHECKING:
    from sumo_world.towns.store import TownStore

__all__ = ["generate_town", "TOWN_KINDS"]

TOWN_KINDS: tuple[str, ...] = ("grid", "spider", "random")
# Share of the inner junctions of a generated town that become all-way stops.
_ALLWAY_STOP_SHARE = 0.25


def generate_town(store: TownStore, name: str, kind: str = "grid", size: int = 4, seed: int = 0, *,
                  block_m: float = 100.0, lanes: int = 2, speed_mps: float = 13.89,
                  allway_stop_share: float = _ALLWAY_STOP_SHARE, overwrite: bool = False) -> TownInfo:
    """Generate a town with ``netgenerate`` (seconds) and store it as ``name``.

    ``kind``: "grid" (``size`` x ``size`` junctions, ``block_m`` apart),
    "spider" (``size`` arms, ``size // 2 + 1`` circles) or "random"
    (``size * 5`` growth iterations). Roads have ``lanes`` lanes per
    direction plus sidewalks; junctions are traffic lights, crossings are
    guessed; a seeded share of the junctions with 3+ roads becomes all-way
    stops, and junctions joining two roads only get right of way.
    """
    check_name(name)
    if kind not in TOWN_KINDS:
        raise TownError(f"unknown town kind {kind!r}; expected one of {', '.join(TOWN_KINDS)}")
    if not 2 <= int(size) <= 30:
        raise TownError(f"town size must be between 2 and 30, got {size}")
    if lanes not in (1, 2, 3):
        raise TownError(f"lanes must be 1, 2 or 3, got {lanes}")
    start = time.perf_counter()
    store.root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=store.root, prefix=f".{name}.") as tmp:
        raw = Path(tmp) / "raw.net.xml"
        command = [str(sumo_binary("netgenerate")), *_shape_options(kind, int(size), block_m),
                   "--default.lanenumber", str(lanes), "--default.speed", str(speed_mps),
                   "--default.junctions.type", "traffic_light",
                   "--sidewalks.guess", "--crossings.guess", "--no-turnarounds", "true",
                   "--seed", str(int(seed)), "--output-file", str(raw)]
        run_tool(command, "netgenerate")
        patch = Path(tmp) / "junctions.nod.xml"
        stops = allway_stop_patch(raw, patch, seed, allway_stop_share)
        final = Path(tmp) / "town.net.xml"
        run_tool([str(sumo_binary("netconvert")), "--sumo-net-file", str(raw), "--node-files", str(patch),
                  "--output-file", str(final)], "netconvert (junction types)")
        meta = {"source": "generated", "kind": kind, "size": int(size), "seed": int(seed),
                "block_m": block_m, "lanes": lanes, "speed_mps": speed_mps, "allway_stops": stops,
                "generate_s": round(time.perf_counter() - start, 3)}
        return store.store_net(name, final, meta, overwrite)


def _shape_options(kind: str, size: int, block_m: float) -> list[str]:
    if kind == "grid":
        return ["--grid", "--grid.number", str(size), "--grid.length", str(block_m)]
    if kind == "spider":
        return ["--spider", "--spider.arm-number", str(max(size, 3)),
                "--spider.circle-number", str(size // 2 + 1), "--spider.space-radius", str(block_m)]
    return ["--rand", "--rand.iterations", str(size * 5), "--rand.min-distance", str(block_m * 0.6),
            "--rand.max-distance", str(block_m * 1.5), "--rand.min-angle", "60"]
