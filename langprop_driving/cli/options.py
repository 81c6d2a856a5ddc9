"""Options that several ``langprop`` commands share: one definition each, so names, defaults and help agree.

Defaults come from the config classes (``WorldConfig``), not from here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from sumo_world.traffic import PRESETS

__all__ = ["TRAFFIC_CHOICES", "towns_dir_option", "traffic_option", "seed_option", "workers_option",
           "backend_options", "ray_options_of", "apply", "scenarios_option"]

TRAFFIC_CHOICES = PRESETS  # sumo_world.traffic owns the preset names

towns_dir_option = click.option(
    "--towns-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Folder of stored towns (default: $LANGPROP_TOWNS or ./towns).")


scenarios_option = click.option(
    "--scenarios", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
    help="Leaderboard-1.0 scenario file (the leaderboard's --scenarios, e.g. "
         "all_towns_traffic_scenarios_public.json): run the scenarios it gives each route.")


def traffic_option(default: str) -> Callable:
    return click.option("--traffic", type=click.Choice(TRAFFIC_CHOICES), default=default, show_default=True,
                        help="Background traffic: a density, or leaderboard 1.0's per-town vehicles (no walkers).")


def seed_option(default: int = 0, what: str = "traffic and agents") -> Callable:
    return click.option("--seed", type=int, default=default, show_default=True, help=f"Seed of the {what}.")


def workers_option(default: int) -> Callable:
    return click.option("--workers", type=click.IntRange(1), default=default, show_default=True,
                        help="Routes run in parallel (local processes, or the CPUs of a local Ray cluster).")


def backend_options(fn: Callable) -> Callable:
    """``--backend``, ``--ray-address`` and ``--ray-resource`` (one route per Ray task)."""
    options = [
        click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help="Where routes run: local processes, or one Ray task per route (pip install ray)."),
        click.option("--ray-address", default=None,
                     help="Ray cluster address (default: $RAY_ADDRESS, else a new local cluster)."),
        click.option("--ray-resource", "ray_resources", multiple=True, metavar="NAME=AMOUNT",
                     help="A custom resource each route's task needs, e.g. carla_server=1 (repeatable)."),
    ]
    return apply(options, fn)


def ray_options_of(kw: dict[str, Any]) -> tuple[tuple[str, float], ...]:
    """The parsed ``--ray-resource`` values; a bad one is a usage error naming it."""
    from langprop_driving.pipeline.parallel import parse_resources

    try:
        return parse_resources(kw.get("ray_resources") or ())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ray-resource") from None


def apply(options: list[Callable], fn: Callable) -> Callable:
    """Decorate ``fn`` with ``options`` in the order listed (the first shows first in --help)."""
    for option in reversed(options):
        fn = option(fn)
    return fn
