"""``langprop results FILE...``: summary tables (and a chart) of leaderboard results JSON files."""
from __future__ import annotations

from pathlib import Path

import click

__all__ = ["results"]


@click.command("results")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--chart", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a PNG bar chart of the scores per route (of all files together).")
def results(files: tuple[Path, ...], chart: Path | None) -> None:
    """Print a per-route summary table of one or more leaderboard results FILES (1.0 or 2.0 format).

    With several files, a comparison line per file follows the tables.
    """
    from sumo_world.scoring.results import ResultsFileError, load_results
    from sumo_world.scoring.summary import format_comparison_table, format_summary_table, render_scores_chart

    per_file: dict[str, list[dict]] = {}
    for path in files:
        try:
            document = load_results(path)
        except ResultsFileError as exc:
            raise click.ClickException(str(exc)) from exc
        records = document["_checkpoint"]["records"]
        progress = document["_checkpoint"]["progress"]
        done = f"{progress[0]}/{progress[1]} routes" if progress else f"{len(records)} routes"
        status = document.get("entry_status") or "unknown status"
        click.echo(f"== {path} ({done}, {status})")
        click.echo(format_summary_table(records))
        click.echo("")
        per_file[str(path)] = records
    if len(files) > 1:
        click.echo(format_comparison_table(per_file))
    if chart is not None:
        all_records = [record for records in per_file.values() for record in records]
        if not all_records:
            raise click.ClickException("no route records to chart")
        written = render_scores_chart(all_records, chart, title=", ".join(Path(f).name for f in files))
        click.echo(f"chart written to {written}")
