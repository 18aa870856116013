"""Every scorer on every SynthKitchen task and benchmark split, as one markdown table.

    .venv/bin/stepdiff synthkitchen build --out runs/sk-small --size small
    .venv/bin/stepdiff baselines train-vlembed --data runs/sk-small --out runs/sk-small/vlembed
    .venv/bin/python benchmarks/synthkitchen_table.py --data runs/sk-small --out runs/sk-small/eval

Cells show the main metric with its 95% bootstrap interval: DiffCap CIDEr-D (official
BLEU-1 beside it), DiffMCQ accuracy, DiffRank NaN-safe Kendall tau-b (official mean in
brackets when it differs). Runs are resumable: finished predictions are reused.

``--versus NAME`` adds a second table: NAME's main metric minus every other scorer's on
the same items, with paired bootstrap intervals (NAME's predictions are read from the
same ``--out`` folder, so they may come from an earlier run).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stepdiff.eval.registry import ScorerOptions, build_scorer
from stepdiff.eval.report import write_report
from stepdiff.eval.runner import run_predictions
from stepdiff.eval.score import score_files
from stepdiff.model_options import ModelOptions

TASKS = ("diffcap", "diffmcq", "diffrank")
MAIN = {"diffcap": "CIDEr-D", "diffmcq": "accuracy", "diffrank": "Kendall tau-b (NaN-safe)"}


def cell(report, task: str) -> str:
    metric = report.metric(MAIN[task])
    text = f"{metric.value:.3f}"
    if metric.ci is not None:
        text += f" [{metric.ci[0]:.2f}, {metric.ci[1]:.2f}]"
    if task == "diffcap":
        text += f" / B1 {report.metric('BLEU-1').value:.3f}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--splits", nargs="+", default=["test", "heldout"])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument(
        "--scorers",
        nargs="+",
        default=[
            "random",
            "blind-llm",
            "single-video",
            "socratic",
            "socratic-oracle",
            "vlembed-aligned",
            "stepdiff",
        ],
    )
    parser.add_argument("--config", default="cpu-default")
    parser.add_argument("--model", type=Path, default=None, help="trained StepDiff checkpoint")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--versus", default=None, help="scorer to compare the others with")
    args = parser.parse_args()

    # VLEmbed answers DiffCap by retrieval, from the training pairs' captions (no leakage).
    train_captions = [
        caption
        for pair in map(json.loads, (args.data / "train_pairs.jsonl").read_text().splitlines())
        for differences in pair["differences"].values()
        for difference in differences
        for caption in difference["captions"]
    ]
    rows = []
    for name in args.scorers:
        options = ScorerOptions(
            model=ModelOptions(config=None if args.model else args.config, checkpoint=args.model),
            clips=args.data / "clips.jsonl",
            caption_pool=train_captions,
        )
        spec = f"vlembed-aligned:{args.data / 'vlembed'}" if name == "vlembed-aligned" else name
        scorer = build_scorer(spec, options)
        name = name.split(":", 1)[0]  # vclm:<folder> -> vclm
        for split in args.splits:
            cells = []
            for task in args.tasks:
                gt = args.data / f"{task}_{split}.jsonl"
                out = args.out / f"{name}-{task}-{split}"
                predictions = run_predictions(task, gt, args.data / "videos", scorer, out)
                report = score_files(task, gt, predictions, bootstrap=args.bootstrap)
                write_report(report, out)
                cells.append(cell(report, task))
            rows.append(f"| {name} | {split} | " + " | ".join(cells) + " |")
            print(rows[-1], flush=True)
    header = (
        "| scorer | split | "
        + " | ".join(
            {
                "diffcap": "DiffCap CIDEr-D / BLEU-1",
                "diffmcq": "DiffMCQ accuracy",
                "diffrank": "DiffRank tau",
            }[t]
            for t in args.tasks
        )
        + " |"
    )
    print("\n" + header + "\n|" + "---|" * (len(args.tasks) + 2) + "\n" + "\n".join(rows))
    if args.versus:
        others = [name.split(":", 1)[0] for name in args.scorers]
        print_paired_table(args, [name for name in others if name != args.versus])


def print_paired_table(args: argparse.Namespace, others: list[str]) -> None:
    """VERSUS minus each other scorer, per split and task, on the same resampled items
    (VERSUS's file is read and resampled once per split and task, beside all others)."""
    print(f"\n| {args.versus} minus | split | task | difference [95% paired CI] | not better |")
    print("|---|---|---|---|---|")
    rows = {}
    for split in args.splits:
        for task in args.tasks:
            gt = args.data / f"{task}_{split}.jsonl"
            files = {
                name: str(args.out / f"{name}-{task}-{split}" / "predictions.jsonl")
                for name in [args.versus, *others]
            }
            mine = files.pop(args.versus)
            report = score_files(
                task, gt, mine, bootstrap=args.bootstrap, against=list(files.values())
            )
            for name, theirs in files.items():
                paired = report.paired_result(theirs, MAIN[task])
                low, high = paired.ci if paired.ci else (float("nan"), float("nan"))
                share = "-" if paired.not_better is None else f"{paired.not_better:.3f}"
                rows[name, split, task] = (
                    f"| {name} | {split} | {task} | {paired.difference:+.3f} "
                    f"[{low:+.2f}, {high:+.2f}] | {share} |"
                )
    print("\n".join(rows[key] for key in sorted(rows, key=lambda k: others.index(k[0]))))


if __name__ == "__main__":
    main()
