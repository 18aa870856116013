"""Reports of a :class:`~stepdiff.eval.score.ScoreReport`: a markdown table, a JSON
summary and a per-category bar chart of the main metric (like the paper's Fig. 7).

Files are written atomically, so an interrupted run never leaves a truncated report.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

from stepdiff.data.formats import write_atomic
from stepdiff.errors import StepDiffError
from stepdiff.eval.score import CategoryResult, MetricResult, PairedResult, ScoreReport

TASK_TITLES = {"diffcap": "DiffCap", "diffmcq": "DiffMCQ", "diffrank": "DiffRank"}
REPORT_FILES = {"json": "report.json", "markdown": "report.md", "chart": "per_category.png"}


def _number(value: float) -> str:
    return "NaN" if math.isnan(value) else f"{value:.4f}"


def _interval(metric: MetricResult | PairedResult) -> str:
    if metric.ci is None:
        return "–"
    low, high = metric.ci
    return f"[{_number(low)}, {_number(high)}]"


def _source(metric: MetricResult) -> str:
    return f"official (`{metric.official_key}`)" if metric.official else "extra"


def _percent(confidence: float) -> str:
    return f"{100 * confidence:g}%"


def markdown_table(report: ScoreReport) -> str:
    """The report as markdown: overall metrics (official ones first, labelled), counts,
    a per-category table, the bootstrap settings and notes."""
    title = TASK_TITLES[report.task.value]
    ci_head = f"{_percent(report.confidence)} CI"
    lines = [
        f"## StepDiff {title}: {report.count:,} items",
        "",
        f"| Metric | Value | {ci_head} | Source |",
        "|---|---:|---|---|",
    ]
    ordered = sorted(report.metrics, key=lambda m: not m.official)  # stable: official first
    for metric in ordered:
        lines.append(
            f"| {metric.name} | {_number(metric.value)} | {_interval(metric)} | {_source(metric)} |"
        )
    if report.counts:
        counts = ", ".join(f"{name}: {count}" for name, count in report.counts.items())
        lines += ["", f"Counts: {counts}."]
    lines += _paired_tables(report)
    lines += ["", *_category_table(report), "", *_footer(report)]
    return "\n".join(lines) + "\n"


def _paired_tables(report: ScoreReport) -> list[str]:
    """One table per other prediction file: this file's metrics minus that file's."""
    lines: list[str] = []
    for against in dict.fromkeys(result.against for result in report.paired):
        lines += [
            "",
            f"### Minus `{against}` (paired: the same resampled items for both)",
            "",
            f"| Metric | Difference | {_percent(report.confidence)} CI | Resamples not better |",
            "|---|---:|---|---:|",
        ]
        for result in report.paired:
            if result.against == against:
                share = "–" if result.not_better is None else f"{result.not_better:.3f}"
                difference = _number(result.difference)
                lines.append(f"| {result.name} | {difference} | {_interval(result)} | {share} |")
    return lines


def _category_table(report: ScoreReport) -> list[str]:
    names = [m.name for m in report.metrics]
    count_names = list(report.counts)
    header = ["Category", "n", *names, *count_names]
    lines = [
        f"### Per category (value [{_percent(report.confidence)} CI])",
        "",
        "| " + " | ".join(header) + " |",
        "|---|---:|" + "---|" * len(names) + "---:|" * len(count_names),
    ]
    for category in report.per_category:
        cells = [category.category, str(category.count)]
        for name in names:
            metric = category.metric(name)
            ci = "" if metric.ci is None else f" {_interval(metric)}"
            cells.append(f"{_number(metric.value)}{ci}")
        cells += [str(category.counts.get(name, 0)) for name in count_names]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _footer(report: ScoreReport) -> list[str]:
    if report.bootstrap > 0:
        method = (
            f"Confidence intervals: percentile bootstrap, {report.bootstrap} resamples of "
            f"the items (with replacement), seed {report.seed}; per category, the "
            "category's items are resampled."
        )
    else:
        method = "No confidence intervals (bootstrap disabled)."
    return [method, "", *(f"- {note}" for note in report.notes)]


def report_json(report: ScoreReport) -> str:
    """The report as indented, strictly valid JSON (NaN written as null)."""
    return json.dumps(report.to_json(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def category_chart_png(report: ScoreReport, metric: str | None = None) -> bytes:
    """A PNG bar chart of ``metric`` (default: the report's main metric) per category,
    with bootstrap intervals as error bars and the overall value as a dashed line."""
    from matplotlib.figure import Figure  # heavy; only for charts (Agg, no display)

    name = metric or report.main_metric
    categories = report.per_category
    values = [c.metric(name).value for c in categories]
    labels = [f"{c.category}\n(n={c.count:,})" for c in categories]
    figure = Figure(figsize=(1.6 * max(len(categories), 3) + 1.5, 4.2), layout="constrained")
    axes = figure.add_subplot()
    positions = list(range(len(categories)))
    axes.bar(positions, values, color="#4C72B0", yerr=_error_bars(categories, name), capsize=4)
    overall = report.metric(name).value
    if math.isfinite(overall):
        axes.axhline(overall, color="#555555", linestyle="--", linewidth=1)
        axes.plot([], [], color="#555555", linestyle="--", label=f"all items: {overall:.3f}")
        axes.legend(loc="best", fontsize=8)
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_xticks(positions, labels, fontsize=8)
    axes.set_ylabel(name)
    axes.set_title(f"StepDiff {TASK_TITLES[report.task.value]}: {name} per category")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


def _error_bars(categories: Sequence[CategoryResult], name: str) -> list[list[float]] | None:
    """Asymmetric error bars (2, k) from the categories' intervals, or None if absent."""
    below, above = [], []
    for category in categories:
        metric = category.metric(name)
        if metric.ci is None or not all(map(math.isfinite, (metric.value, *metric.ci))):
            below.append(0.0)
            above.append(0.0)
            continue
        # Percentile intervals need not contain the value; never draw negative bars.
        below.append(max(metric.value - metric.ci[0], 0.0))
        above.append(max(metric.ci[1] - metric.value, 0.0))
    return [below, above] if any(below) or any(above) else None


def write_report(report: ScoreReport, out_dir: str | Path) -> dict[str, Path]:
    """Write report.json, report.md and per_category.png into ``out_dir`` (created if
    needed), each atomically. Returns the paths by kind."""
    out = Path(out_dir)
    paths = {kind: out / filename for kind, filename in REPORT_FILES.items()}
    contents = {  # rendered first, so a failing chart leaves no partial set of files
        "json": report_json(report),
        "markdown": markdown_table(report),
        "chart": category_chart_png(report),
    }
    try:
        for kind, data in contents.items():
            write_atomic(paths[kind], data)
    except OSError as error:
        raise StepDiffError(f"{out}: cannot write the report ({error.strerror or error})") from None
    return paths
