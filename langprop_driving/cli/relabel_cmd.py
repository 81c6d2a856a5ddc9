"""``langprop relabel``: label recorded scenes with the expert (DAgger)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from langprop_driving.cli.options import progress_enabled, progress_option

__all__ = ["relabel"]


@click.command("relabel")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "dst", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Dataset to write the relabelled runs to (created if missing). Default: SRC itself, as "
                   "runs <run>-relabel beside the others; a rerun replaces them, never doubles them.")
@click.option("--expert-config", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="JSON file of ExpertConfig overrides, e.g. {\"cruise_speed_mps\": 7.0}.")
@progress_option
def relabel(src: Path, dst: Path | None, expert_config: Path | None, no_progress: bool) -> None:
    """Label every scene of the dataset SRC with the privileged expert (run it again: same dataset)."""
    from driving.dataset import DatasetError
    from expert.config import ExpertConfig
    from expert.relabel import relabel_dataset

    if not (src / "index.json").is_file():
        raise click.BadParameter(f"{src} is not a scene dataset (no index.json)", param_hint="SRC")
    config = None
    if expert_config is not None:
        try:
            config = ExpertConfig.from_dict(json.loads(expert_config.read_text()))
        except (ValueError, TypeError) as exc:
            raise click.BadParameter(f"{expert_config}: {exc}", param_hint="--expert-config") from exc
    try:
        count = relabel_dataset(src, dst, config=config, progress=progress_enabled(no_progress))
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"relabelled {count} scenes from {src} into {dst or src}")
