"""Readable summaries of leaderboard-format route records: terminal tables and a chart.

Input everywhere is the list of route records of a results file
(``ResultsFile.records()`` or ``load_results(path)["_checkpoint"]["records"]``);
leaderboard 1.0 and 2.0 records both work. The table functions are pure.
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Mapping, Sequence

from driving.penalties import INFRACTION_TYPES

__all__ = [
    "INFRACTION_SHORT_NAMES", "format_summary_table", "format_comparison_table",
    "mean_scores", "infraction_counts", "render_scores_chart",
]

# Column headers for the infraction kinds, in INFRACTION_TYPES order.
INFRACTION_SHORT_NAMES: dict[str, str] = {
    "collisions_layout": "col_lay",
    "collisions_pedestrian": "col_ped",
    "collisions_vehicle": "col_veh",
    "outside_route_lanes": "off_lane",
    "red_light": "red",
    "route_dev": "dev",
    "route_timeout": "timeout",
    "stop_infraction": "stop",
    "vehicle_blocked": "blocked",
}
_LEGEND = ("DS = driving score (%), RC = route completion (%), penalty = infraction penalty (0-1); "
           "infraction columns count events; off_lane% = share of the route driven outside its lanes")
_SCENARIO_LEGEND = "; scen = scenarios run (triggered/matched), scen_inf = infractions inside them"


def scenario_cells(records: Sequence[Mapping[str, Any]]) -> tuple[str, str] | None:
    """("triggered/matched", infractions inside scenarios) over ``records``; None when none ran scenarios
    (their records' meta has no ``scenarios``: the embedded world's list, which leaderboard tools ignore)."""
    lists = [(record.get("meta") or {}).get("scenarios") for record in records]
    if all(entries is None for entries in lists):
        return None
    entries = [entry for entries in lists for entry in (entries or [])]
    started = sum(1 for entry in entries if entry.get("started_at_s") is not None)
    infractions = sum(len(entry.get("infractions") or []) for entry in entries)
    return f"{started}/{len(entries)}", str(infractions)


def _infraction_kinds(records: Sequence[Mapping[str, Any]]) -> list[str]:
    # Leaderboard 2.0 records carry extra kinds; show them after ours.
    kinds = list(INFRACTION_TYPES)
    for record in records:
        for kind in (record.get("infractions") or {}):
            if kind not in kinds:
                kinds.append(kind)
    return kinds


def infraction_counts(record: Mapping[str, Any]) -> dict[str, int]:
    """Number of events per infraction kind in one route record."""
    return {kind: len(messages) for kind, messages in (record.get("infractions") or {}).items()}


def mean_scores(records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Mean driving score, route completion and penalty over ``records`` (nan when empty)."""
    if not records:
        return {"score_composed": float("nan"), "score_route": float("nan"), "score_penalty": float("nan")}
    return {key: statistics.fmean(float(record["scores"][key]) for record in records)
            for key in ("score_composed", "score_route", "score_penalty")}


def _outside_lanes_percent(record: Mapping[str, Any]) -> float | None:
    value = (record.get("meta") or {}).get("outside_route_lanes_percent")
    return None if value is None else float(value)


def _score_cells(scores: Mapping[str, Any]) -> list[str]:
    """DS, RC and penalty as the tables print them (a record's ``scores`` or :func:`mean_scores`)."""
    return [f"{float(scores['score_composed']):.2f}", f"{float(scores['score_route']):.2f}",
            f"{float(scores['score_penalty']):.3f}"]


def _infraction_totals(records: Sequence[Mapping[str, Any]], kinds: list[str]) -> dict[str, int]:
    """Events per kind over ``records`` (``kinds`` from :func:`_infraction_kinds` of them, or more)."""
    totals = dict.fromkeys(kinds, 0)
    for record in records:
        for kind, count in infraction_counts(record).items():
            totals[kind] += count
    return totals


def _render(header: list[str], rows: list[list[str]], footer: list[list[str]], numeric_from: int) -> str:
    table = [header, *rows, *footer]
    widths = [max(len(row[col]) for row in table) for col in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [cell.ljust(width) if col < numeric_from else cell.rjust(width)
                 for col, (cell, width) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * width for width in widths)
    out = [line(header), rule, *(line(row) for row in rows)]
    if footer:
        out.append(rule)
        out.extend(line(row) for row in footer)
    return "\n".join(out)


def format_summary_table(records: Sequence[Mapping[str, Any]]) -> str:
    """Per-route table (id, status, DS, RC, penalty, off-lane %, infraction counts), then the mean row.

    The mean row averages the scores over the listed routes and totals the
    infraction counts.
    """
    if not records:
        return "(no route records)"
    kinds = _infraction_kinds(records)
    with_scenarios = scenario_cells(records) is not None
    header = ["route", "status", "DS", "RC", "penalty", "off_lane%",
              *(INFRACTION_SHORT_NAMES.get(kind, kind) for kind in kinds),
              *(["scen", "scen_inf"] if with_scenarios else [])]
    rows = []
    off_lane_values = []
    for record in sorted(records, key=lambda r: int(r.get("index", 0))):
        counts = infraction_counts(record)
        off_lane = _outside_lanes_percent(record)
        if off_lane is not None:
            off_lane_values.append(off_lane)
        rows.append([
            str(record.get("route_id", "?")),
            str(record.get("status", "?")),
            *_score_cells(record["scores"]),
            "-" if off_lane is None else f"{off_lane:.1f}",
            *(str(counts.get(kind, 0)) for kind in kinds),
            *(scenario_cells([record]) or ("-", "-") if with_scenarios else ()),
        ])
    totals = _infraction_totals(records, kinds)
    footer = [[
        f"mean ({len(records)} route{'s' if len(records) != 1 else ''})",
        f"{sum(1 for r in records if r.get('status') in ('Completed', 'Perfect'))} completed",
        *_score_cells(mean_scores(records)),
        f"{statistics.fmean(off_lane_values):.1f}" if off_lane_values else "-",
        *(str(totals[kind]) for kind in kinds),
        *(scenario_cells(records) if with_scenarios else ()),
    ]]
    return _render(header, rows, footer, numeric_from=2) + "\n" + _LEGEND + (_SCENARIO_LEGEND if with_scenarios else "")


def format_comparison_table(rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """One line per agent (label -> its route records): routes, mean DS, RC, penalty, infraction totals."""
    if not rows:
        return "(nothing to compare)"
    all_records = [record for records in rows.values() for record in records]
    kinds = _infraction_kinds(all_records)
    with_scenarios = scenario_cells(all_records) is not None
    header = ["agent", "routes", "DS", "RC", "penalty",
              *(INFRACTION_SHORT_NAMES.get(kind, kind) for kind in kinds),
              *(["scen", "scen_inf"] if with_scenarios else [])]
    table_rows = []
    for label, records in rows.items():
        totals = _infraction_totals(records, kinds)
        table_rows.append([
            str(label),
            str(len(records)),
            *_score_cells(mean_scores(records)),
            *(str(totals[kind]) for kind in kinds),
            *((scenario_cells(records) or ("-", "-")) if with_scenarios else ()),
        ])
    return (_render(header, table_rows, [], numeric_from=1) + "\n" + _LEGEND.split("; off_lane%")[0]
            + (_SCENARIO_LEGEND if with_scenarios else ""))


def render_scores_chart(records: Sequence[Mapping[str, Any]], path: str | Path,
                        title: str | None = None, dpi: int = 100) -> Path:
    """Bar chart per route: driving score and route completion (%), and infraction counts; writes a PNG."""
    import matplotlib
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not records:
        raise ValueError("no route records to plot")
    records = sorted(records, key=lambda r: int(r.get("index", 0)))
    names = [str(record.get("route_id", "?")) for record in records]
    x = np.arange(len(records))
    width = 0.4
    kinds = _infraction_kinds(records)
    counts = np.array([[infraction_counts(record).get(kind, 0) for kind in kinds] for record in records])

    # A bare Figure (no pyplot): no global backend switch, nothing left open.
    fig = Figure(figsize=(max(6.0, 0.6 * len(records) + 3.0), 7.0))
    FigureCanvasAgg(fig)
    ax_scores, ax_infr = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    ax_scores.bar(x - width / 2, [float(r["scores"]["score_composed"]) for r in records], width,
                  label="driving score")
    ax_scores.bar(x + width / 2, [float(r["scores"]["score_route"]) for r in records], width,
                  label="route completion")
    ax_scores.set_ylim(0, 105)
    ax_scores.set_ylabel("%")
    ax_scores.legend(loc="upper right", fontsize="small")
    ax_scores.grid(axis="y", alpha=0.3)
    ax_scores.set_title(title or "Scores per route")

    bottom = np.zeros(len(records))
    cmap = matplotlib.colormaps["tab10"]
    for col, kind in enumerate(kinds):
        if counts[:, col].sum() == 0:
            continue
        ax_infr.bar(x, counts[:, col], 0.6, bottom=bottom, label=kind, color=cmap(col % 10))
        bottom += counts[:, col]
    ax_infr.set_ylabel("infractions")
    if bottom.any():
        ax_infr.legend(loc="upper right", fontsize="x-small", ncol=2)
    else:
        ax_infr.text(0.5, 0.5, "no infractions", transform=ax_infr.transAxes, ha="center", va="center")
    ax_infr.set_xticks(x)
    ax_infr.set_xticklabels(names, rotation=45, ha="right", fontsize="small")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
