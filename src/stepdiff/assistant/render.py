"""Human-readable tables of reports and rankings (rich), for the command line."""

from __future__ import annotations

from rich.table import Table

from stepdiff.assistant.calibration import MAX_SEVERITY
from stepdiff.assistant.results import DifferenceReport, Moment, RankResult


def severity_bar(severity: int, width: int = MAX_SEVERITY) -> str:
    """E.g. 3 -> '■■■□□'."""
    filled = max(0, min(width, severity))
    return "■" * filled + "□" * (width - filled)


def moment_text(moment: Moment) -> str:
    """E.g. 'ref 3.2s ↔ cand 4.0s'."""
    return f"ref {moment.reference_time:.1f}s ↔ cand {moment.candidate_time:.1f}s"


def report_table(report: DifferenceReport) -> Table:
    """One row per category: severity bar, p_same, caption, moments."""
    scale = "calibrated" if report.calibrated else "uncalibrated"
    table = Table(title=f"Differences (severity 1-5, {scale})", title_justify="left")
    table.add_column("Category", no_wrap=True)
    table.add_column("Severity", no_wrap=True)
    table.add_column("P(same)", justify="right")
    table.add_column("Difference")
    table.add_column("Where", no_wrap=True)
    previous = None
    for item in report.categories:
        where = "\n".join(moment_text(moment) for moment in item.moments) or "-"
        table.add_row(
            item.category,
            f"{severity_bar(item.severity)} {item.severity}",
            f"{item.p_same:.2f}",
            item.caption or "-",
            # The moments come from frame features and are usually the same for every
            # category: printed once, they do not drown the captions.
            "same as above" if item.moments and item.moments == previous else where,
        )
        previous = item.moments
    return table


def rank_table(result: RankResult) -> Table:
    """Candidates closest first (by mean p_same), with each category's p_same."""
    categories = result.categories or list(result.candidates[0].p_same)
    table = Table(title="Candidates, closest to the reference first", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("Candidate", overflow="fold")
    table.add_column("Mean P(same)", justify="right")
    for name in categories:
        # The first word keeps six categories within a terminal's width.
        table.add_column(name.split("/")[0].split(" ")[0], justify="right")
    for place, index in enumerate(result.overall, start=1):
        cand = result.candidates[index]
        table.add_row(
            str(place),
            cand.candidate,
            f"{cand.overall:.3f}",
            *(f"{cand.p_same[name]:.3f}" for name in categories),
        )
    return table
