"""The QA filter scored against SynthKitchen's ground truth on one half of a datagen run.

Re-judges the written QA (``qa_raw.jsonl``) of the pairs in one half of a run (a stable
hash of the pair id picks the half, so a filter can be tuned on half 0 and measured on
half 1) and prints the ground-truth verdicts before and after the filter, the filter's
precision and recall on contradicted QA, and the verdicts of the QA each reason dropped.
``--filter-module`` scores another version of ``stepdiff/datagen/filtering.py`` with
the same truth checker, e.g. the one of an earlier commit:

    git show 26892ed:src/stepdiff/datagen/filtering.py > /tmp/filtering_old.py
    .venv/bin/python docs/scripts/filter_halves.py --run runs/dg-300 \
        --clips runs/synthkitchen/clips.jsonl --half 1 --filter-module /tmp/filtering_old.py
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType


def in_half(pair_id: str, half: int) -> bool:
    """Whether ``pair_id`` is in ``half`` (0 or 1): the low bit of its SHA-1."""
    return hashlib.sha1(pair_id.encode()).digest()[-1] % 2 == half


def load_filter(path: Path | None) -> ModuleType:
    if path is None:
        from stepdiff.datagen import filtering

        return filtering
    spec = importlib.util.spec_from_file_location("filtering_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a datagen output folder")
    parser.add_argument("--clips", type=Path, required=True, help="SynthKitchen clips.jsonl")
    parser.add_argument("--half", type=int, choices=(0, 1), required=True)
    parser.add_argument("--filter-module", type=Path, help="another filtering.py to score")
    args = parser.parse_args()

    from stepdiff.datagen.stats import classify_question
    from stepdiff.datagen.truth_stats import load_synthkitchen_clips, truth_stats

    filtering = load_filter(args.filter_module)
    clips = load_synthkitchen_clips(args.clips)
    if clips is None:
        parser.error(f"{args.clips}: not a SynthKitchen clips.jsonl")
    descriptions = {}
    for line in (args.run / "descriptions.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        descriptions[record["clip_id"]] = record["description"] or ""
    raw = [json.loads(line) for line in (args.run / "qa_raw.jsonl").read_text("utf-8").splitlines()]
    raw = [r for r in raw if in_half(r["pair_id"], args.half)]

    pairs = [
        filtering.PairQA(
            r["pair_id"],
            [(qa["question"], qa["answer"]) for qa in r["qa"]],
            descriptions.get(r["reference"], ""),
            descriptions.get(r["candidate"], ""),
        )
        for r in raw
    ]
    verdicts = filtering.judge_dataset(pairs)
    kept, dropped = [], []
    for record in raw:
        for qa, verdict in zip(record["qa"], verdicts[record["pair_id"]], strict=True):
            row = {"pair_id": record["pair_id"], **qa}
            if verdict.keep:
                kept.append(row)
            else:
                dropped.append({**row, "reason": f"dropped: {verdict.reason}"})

    stats = truth_stats(raw, kept, clips, classify_question, dropped)
    before, after = stats["before_filter"], stats["after_filter"]
    on_contradicted = stats["filter_on_contradicted"]
    by_reason = stats.get("dropped_by_reason", {})
    supported_dropped = sum(counts["supported"] for counts in by_reason.values())
    print(f"half {args.half}: {len(raw)} pairs, {before['qa']} QA")
    print("| kept | dropped | contradicted before | contradicted after | precision | recall "
          "| supported dropped |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {after['qa']} | {len(dropped)} | {before['contradicted_rate']:.2%} "
        f"| {after['contradicted_rate']:.2%} | {on_contradicted['precision']} "
        f"| {on_contradicted['recall']} | {supported_dropped} |"
    )
    print()
    print("| reason | supported | contradicted | uncheckable |")
    print("|---|---:|---:|---:|")
    for reason, counts in by_reason.items():
        cells = " | ".join(str(counts[v]) for v in ("supported", "contradicted", "uncheckable"))
        print(f"| {reason} | {cells} |")


if __name__ == "__main__":
    main()
