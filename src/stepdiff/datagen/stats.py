"""The data-generation report: what each stage made, what failed or was dropped and
why, QA per official category, and timings (``stats.json`` + ``stats.md``).

QA questions are put in the six official categories by keywords (first match in the
order of :data:`CATEGORY_KEYWORDS`; "Other" when none matches). Serving and Visuals
come first because their questions mention food ("how the food looks") that would
otherwise read as Ingredients.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from stepdiff.data.categories import CATEGORIES
from stepdiff.data.formats import write_atomic
from stepdiff.datagen.filtering import lemma, normalise, words
from stepdiff.datagen.records import read_records
from stepdiff.datagen.truth_stats import (
    description_truth,
    load_synthkitchen_clips,
    reply_checks,
    truth_stats,
)

OTHER = "Other"
STAGES = ("describe", "pairs", "qa", "filter", "interleaved")

# Single words match by lemma ("served" meets "serve"); "_" joins the words of a phrase.
CATEGORY_KEYWORDS: dict[str, tuple[str, ...]] = {
    "Serving / Presentation": tuple("serve plate garnish presentation present".split()),
    "Visuals": tuple(
        "look appearance appear color colour texture doneness final_state brown golden "
        "visual visually end_result".split()
    ),
    "Tools/Equipment": tuple(
        "tool utensil equipment vessel pan pot bowl wok knife spatula whisk board container "
        "cookware griddle ladle spoon tong fork chopstick cleaver scissor".split()
    ),
    "Ingredients": tuple("ingredient how_much how_many quantity amount food portion".split()),
    "Technique": tuple(
        "technique motion speed fast slow quickly slowly stroke method manner "
        "how_does_the_person how_do_the move".split()
    ),
    "Actions": tuple(
        "action order sequence skip step before after first season add "
        "what_does_the_person_do".split()
    ),
}
assert sorted(CATEGORY_KEYWORDS) == sorted(CATEGORIES)


def classify_question(question: str) -> str:
    """The official category a QA question is about, by keywords; "Other" if none."""
    text = f" {normalise(question)} "
    lemmas = {lemma(w) for w in words(question)}
    for category, keywords in CATEGORY_KEYWORDS.items():
        for keyword in keywords:
            phrase = keyword.replace("_", " ")
            if (" " in phrase and f" {phrase} " in text) or lemma(keyword) in lemmas:
                return category
    return OTHER


def _load(out_dir: Path, name: str) -> list[dict[str, Any]] | None:
    path = out_dir / name
    return read_records(path) if path.is_file() else None


def _descriptions_by_clip(records: list[dict[str, Any]] | None) -> dict[str, str] | None:
    if records is None:
        return None
    return {d["clip_id"]: d["description"] for d in records if d.get("description")}


def _report(out_dir: Path, stage: str) -> dict[str, Any] | None:
    path = out_dir / f"{stage}_report.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _prefix_counts(counts: dict[str, int], prefix: str) -> dict[str, int]:
    return {k.removeprefix(prefix): v for k, v in counts.items() if k.startswith(prefix)}


def _spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "min": round(min(values), 4),
        "mean": round(statistics.fmean(values), 4),
        "max": round(max(values), 4),
    }


def collect_stats(out_dir: str | Path) -> dict[str, Any]:
    """Numbers for every stage whose outputs are in ``out_dir``."""
    out_dir = Path(out_dir)
    stats: dict[str, Any] = {"out_dir": str(out_dir)}
    reports = {stage: _report(out_dir, stage) for stage in STAGES}
    descriptions = _load(out_dir, "descriptions.jsonl")
    if descriptions is not None:
        report = reports["describe"] or {"counts": {}}
        ok = [d for d in descriptions if d.get("description")]
        stats["clips"] = len(descriptions)
        stats["descriptions"] = {
            "total": len(descriptions),
            "ok": len(ok),
            "failed": len(descriptions) - len(ok),
            "failure_reasons": _prefix_counts(report["counts"], "failed: "),
            "source_issues": _prefix_counts(report["counts"], "issue: "),
            "with_narration": sum(bool(d["sources"].get("narration")) for d in descriptions),
            "with_tags": sum(bool(d["sources"].get("tags")) for d in descriptions),
            "with_captions": sum(bool(d["sources"].get("captions")) for d in descriptions),
            "words": _spread([float(len(d["description"].split())) for d in ok]),
            "models": dict(Counter(d["model"] for d in descriptions)),
        }
    pairs = _load(out_dir, "pairs.jsonl")
    if pairs is not None:
        paired = Counter(c for p in pairs for c in (p["reference"], p["candidate"]))
        stats["pairs"] = {
            "total": len(pairs),
            "per_keystep": dict(sorted(Counter(p["keystep"] for p in pairs).items())),
            "similarity": _spread([p["similarity"] for p in pairs]),
            "clips_paired": len(paired),
            "max_pairs_per_clip": max(paired.values(), default=0),
        }
    raw = _load(out_dir, "qa_raw.jsonl")
    if raw is not None:
        errors = Counter(r["error"] for r in raw if r["error"])
        stats["qa_raw"] = {
            "pairs": len(raw),
            "parsed": sum(1 for r in raw if not r["error"]),
            "unparsed": sum(errors.values()),
            "error_reasons": dict(errors.most_common(10)),
            "qa": sum(len(r["qa"]) for r in raw),
            "models": dict(Counter(r["model"] for r in raw)),
            **reply_checks(raw, _descriptions_by_clip(descriptions)),
        }
    qa = _load(out_dir, "qa.jsonl")
    if qa is not None:
        categories = Counter(classify_question(q["question"]) for q in qa)
        stats["qa"] = {
            "total": len(qa),
            "per_category": {c: categories.get(c, 0) for c in (*CATEGORIES, OTHER)},
            "per_keystep": dict(sorted(Counter(q["keystep"] for q in qa).items())),
            "pairs_with_qa": len({q["pair_id"] for q in qa}),
        }
    if reports["filter"] is not None:
        counts = reports["filter"]["counts"]
        seen = counts.get("qa_in", 0)
        kept = counts.get("kept", 0)
        stats["filter"] = {
            "enabled": reports["filter"]["config"].get("filter", True),
            "qa_in": seen,
            "kept": kept,
            "keep_rate": round(kept / seen, 4) if seen else None,
            "dropped": _prefix_counts(counts, "dropped: "),
        }
        dropped = _load(out_dir, "qa_dropped.jsonl")
        if dropped is not None:
            by_category: dict[str, Counter[str]] = {}
            for d in dropped:
                reason = d["reason"].removeprefix("dropped: ")
                by_category.setdefault(classify_question(d["question"]), Counter())[reason] += 1
            stats["filter"]["dropped_per_category"] = {
                c: dict(by_category[c].most_common())
                for c in (*CATEGORIES, OTHER)
                if c in by_category
            }
    clips_path = (reports["describe"] or {}).get("config", {}).get("clips")
    clips = load_synthkitchen_clips(clips_path) if raw is not None else None
    if clips is not None:
        dropped = _load(out_dir, "qa_dropped.jsonl")
        stats["truth"] = truth_stats(raw, qa, clips, classify_question, dropped)  # type: ignore[arg-type]
        if descriptions is not None:
            stats["truth"] |= description_truth(descriptions, clips)
    interleaved = _load(out_dir, "interleaved.jsonl")
    single = _load(out_dir, "single_video.jsonl")
    if interleaved is not None and single is not None:
        stats["interleaved"] = {
            "windows": len(interleaved),
            "videos": len({r["video_uid"] for r in interleaved}),
            "single_video_records": len(single),
            "single_video_by_source": dict(Counter(r["source"] for r in single)),
        }
    stats["timings"] = {
        stage: {
            key: report.get(key)
            for key in ("items", "item_seconds", "setup_seconds", "wall_seconds", "shards")
            if key in report
        }
        for stage, report in reports.items()
        if report is not None
    }
    return stats


def _table(rows: dict[str, Any]) -> list[str]:
    lines = ["| | |", "|---|---:|"]
    lines += [f"| {key} | {value} |" for key, value in rows.items()]
    return lines


def _counts_table(title: str, row_name: str, rows: dict[str, dict[str, int]]) -> list[str]:
    """A table of counts: one row per key of ``rows``, one column per key of its counts."""
    columns = sorted({c for counts in rows.values() for c in counts})
    lines = [f"{title}:", ""]
    lines += [f"| {row_name} | " + " | ".join(columns) + " |"]
    lines += ["|---|" + "---:|" * len(columns)]
    for row, counts in rows.items():
        cells = " | ".join(str(counts.get(c, 0)) for c in columns)
        lines.append(f"| {row} | {cells} |")
    return [*lines, ""]


def stats_markdown(stats: dict[str, Any]) -> str:
    """``stats`` as a short Markdown report."""
    lines = [f"# Data generation report: `{stats['out_dir']}`", ""]
    sections = [
        ("Descriptions", "descriptions"),
        ("Pairs", "pairs"),
        ("QA generation", "qa_raw"),
        ("QA filter", "filter"),
        ("QA kept", "qa"),
        ("QA against the clips' ground truth", "truth"),
        ("Interleaved and single-video data", "interleaved"),
    ]
    for title, key in sections:
        if key not in stats:
            continue
        lines += [f"## {title}", ""]
        flat = {}
        for name, value in stats[key].items():
            if isinstance(value, dict) and any(isinstance(v, dict) for v in value.values()):
                continue  # a table of its own below
            if isinstance(value, dict):
                shown = ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
                flat[name] = shown.replace("|", "/")
            else:
                flat[name] = value
        lines += [*_table(flat), ""]
        if key == "filter" and stats[key].get("dropped_per_category"):
            rows = stats[key]["dropped_per_category"]
            lines += _counts_table("Dropped QA per category", "category", rows)
        if key == "truth" and stats[key].get("dropped_by_reason"):
            rows = stats[key]["dropped_by_reason"]
            lines += _counts_table("Ground truth of the QA each reason dropped", "reason", rows)
    if stats.get("timings"):
        lines += ["## Timings (seconds)", "", "| stage | items | processing | setup | wall |"]
        lines += ["|---|---:|---:|---:|---:|"]
        for stage, t in stats["timings"].items():
            lines.append(
                f"| {stage} | {t.get('items', '')} | {t.get('item_seconds', '')} | "
                f"{t.get('setup_seconds', '')} | {t.get('wall_seconds', '')} |"
            )
        lines.append("")
    return "\n".join(lines)


def write_stats(out_dir: str | Path) -> dict[str, Any]:
    """Write ``stats.json`` and ``stats.md`` into ``out_dir``; the stats."""
    out_dir = Path(out_dir)
    stats = collect_stats(out_dir)
    write_atomic(out_dir / "stats.json", json.dumps(stats, indent=2) + "\n")
    write_atomic(out_dir / "stats.md", stats_markdown(stats))
    return stats
