"""``stepdiff datagen ...``: generate StepDiff training data (paper Sec. 3.2).

Stages: ``describe`` -> ``pairs`` -> ``qa`` -> ``filter``, plus ``interleaved``; ``run``
does all of them and ``stats``; ``merge`` joins finished shards. Every stage reads and
writes JSONL in ``--out`` and can be sharded (``--shard I --num-shards N``), resumed
after a crash (rerun the same command), or run as Ray tasks (``--ray``).

Heavy imports happen inside the commands, so ``stepdiff --help`` stays quick.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from stepdiff.console import stderr, user_errors

datagen_app = typer.Typer(
    help="Generate training data: step descriptions, pairs, QA, filtering, interleaved data.",
    no_args_is_help=True,
)
_out = Console(soft_wrap=True)

Out = Annotated[Path, typer.Option("--out", help="Folder for every stage's files.")]
Clips = Annotated[
    Path | None,
    typer.Option(
        "--clips",
        help="Clip list JSONL (clip_id, keystep; optional video, split, metadata); "
        "SynthKitchen's clips.jsonl works as is. Later stages default to the one describe used.",
    ),
]
VideoDir = Annotated[
    Path | None,
    typer.Option("--video-dir", help="Folder of <video_uid>.mp4 (default: videos/ by --clips)."),
]
Split = Annotated[str | None, typer.Option("--split", help="Keep only clips of this split.")]
LLM = Annotated[
    str,
    typer.Option(
        "--llm",
        help="Text generator: smollm2-135m-instruct, tiny, hf:<id>, llamacpp:<gguf>, "
        "openai:<base_url>@<model>, py:<module>:<factory>, or none (rule-based descriptions).",
    ),
]
QASource = Annotated[
    str,
    typer.Option(
        "--qa-source",
        help="llm (the paper's way), rubric (SynthKitchen ground truth), or auto "
        "(rubric when every clip has ground truth).",
    ),
]
ASR = Annotated[
    str,
    typer.Option(
        "--asr", help="Narration: transcripts (.srt/.vtt/.json by the video), whisper, none."
    ),
]
Tags = Annotated[
    bool, typer.Option("--tags/--no-tags", help="ImageNet object tags (EfficientNet-Lite0).")
]
Captioner = Annotated[
    str | None,
    typer.Option("--captioner", help="Hugging Face image-to-text model id or folder (off)."),
]
Metadata = Annotated[
    bool, typer.Option("--metadata/--no-metadata", help="Use the clip list's metadata.")
]
ShardOpt = Annotated[
    int | None, typer.Option("--shard", help="Run only this shard (0-based); see --num-shards.")
]
NumShards = Annotated[
    int, typer.Option("--num-shards", min=1, help="Split each stage's items into N shards.")
]
Seed = Annotated[int, typer.Option("--seed", help="Seed: same seed and inputs, same files.")]
Ray = Annotated[bool, typer.Option("--ray", help="Run the shards as Ray tasks (local Ray).")]
RayAddress = Annotated[
    str | None, typer.Option("--ray-address", help="Run the shards on this Ray cluster.")
]
Force = Annotated[
    bool, typer.Option("--force", help="Redo stages already done (with other options).")
]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Prompts per LLM call.")]
PairLow = Annotated[
    float, typer.Option("--pair-low", help="Lowest description similarity of a pair.")
]
PairHigh = Annotated[
    float, typer.Option("--pair-high", help="Highest description similarity of a pair.")
]
PerClip = Annotated[
    int, typer.Option("--pairs-per-clip", min=1, help="Most pairs any one clip joins.")
]
SameQuestions = Annotated[
    str,
    typer.Option(
        "--same-questions",
        help='Rubric QA only: also ask closed-form "same <category>? Answer YES or NO." '
        "questions. paraphrase: reworded questions, YES for an identical category; graded: "
        "DiffRank's own question for every category, YES with probability score/5; "
        "threshold: the same questions, YES when the score is at least 3; soft: the same "
        "questions, YES with answer_probability score/5 (a soft training target); none "
        "(default): the rubric's 3 QA per pair.",
    ),
]
Filter = Annotated[
    bool,
    typer.Option("--filter/--no-filter", help="Filter QA (--no-filter: the paper's ablation)."),
]


def _config(**options: Any) -> Any:
    from stepdiff.datagen.stages import DatagenConfig

    return DatagenConfig(**options)


class _Bars:
    """A rich progress bar per stage, on stderr."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=stderr,
            transient=False,
        )

    def __enter__(self) -> _Bars:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, stage: str) -> Any:
        tasks: list[Any] = []

        def update(done: int, total: int) -> None:
            # The bar appears with the first update: once the stage has read its input,
            # so a bad input file shows its error alone.
            if not tasks:
                tasks.append(self.progress.add_task(f"{stage:<12}", total=total))
            self.progress.update(tasks[0], completed=done, total=total)

        return update


def _run(
    names: tuple[str, ...],
    config: Any,
    shard: int | None,
    num_shards: int,
    force: bool,
    ray: bool,
    ray_address: str | None,
) -> None:
    from stepdiff.datagen.pipeline import run_pipeline, run_stage

    with user_errors(), _Bars() as bars:
        if names == ("run",):
            outcomes = run_pipeline(
                config,
                shard=shard,
                num_shards=num_shards,
                force=force,
                ray=ray,
                ray_address=ray_address,
                progress=bars,
            )
        else:
            outcomes = [
                run_stage(
                    name,
                    config,
                    shard=shard,
                    num_shards=num_shards,
                    force=force,
                    ray=ray,
                    ray_address=ray_address,
                    progress=bars,
                )
                for name in names
            ]
    for outcome in outcomes:
        if outcome.done:
            _summary(outcome.stage, outcome.report)
        else:
            waiting = ", ".join(str(i) for i in outcome.pending_shards)
            _out.print(
                f"{outcome.stage}: shard {shard} of {num_shards} done; waiting for shards "
                f"{waiting}. Rerun the same command once they finish to merge and go on.",
                highlight=False,
            )


def _summary(stage: str, report: dict[str, Any] | None) -> None:
    if report is None:
        return
    records = ", ".join(f"{n} {name}" for name, n in report["records"].items())
    counts = ", ".join(f"{k} {v}" for k, v in report["counts"].items())
    _out.print(
        f"[bold]{stage}[/]: {report['items']} items -> {records} "
        f"({report.get('wall_seconds', 0):.1f} s)" + (f"\n  {counts}" if counts else ""),
        highlight=False,
    )


def _stage_command(name: str, doc: str) -> None:
    """Register ``stepdiff datagen NAME`` with the options every stage shares."""

    def command(
        out: Out,
        clips: Clips = None,
        video_dir: VideoDir = None,
        split: Split = None,
        llm: LLM = "smollm2-135m-instruct",
        qa_source: QASource = "auto",
        asr: ASR = "transcripts",
        tags: Tags = True,
        captioner: Captioner = None,
        metadata: Metadata = True,
        seed: Seed = 0,
        batch_size: BatchSize = 8,
        pair_low: PairLow = 0.5,
        pair_high: PairHigh = 0.95,
        pairs_per_clip: PerClip = 4,
        same_questions: SameQuestions = "none",
        filter: Filter = True,
        shard: ShardOpt = None,
        num_shards: NumShards = 1,
        ray: Ray = False,
        ray_address: RayAddress = None,
        force: Force = False,
    ) -> None:

        with user_errors():
            config = _config(
                out=out,
                clips=clips,
                video_dir=video_dir,
                split=split,
                llm=llm,
                qa_source=qa_source,
                asr=asr,
                tags=tags,
                captioner=captioner,
                metadata=metadata,
                seed=seed,
                batch_size=batch_size,
                pair_low=pair_low,
                pair_high=pair_high,
                pairs_per_clip=pairs_per_clip,
                same_questions=same_questions,
                filter=filter,
            )
        _run((name,), config, shard, num_shards, force, ray, ray_address)
        if name == "run":
            _print_stats(out)

    command.__doc__ = doc
    datagen_app.command(name)(command)


_stage_command("describe", "Describe each clip from its sources -> descriptions.jsonl.")
_stage_command("pairs", "Pair similar clips of a keystep from distinct videos -> pairs.jsonl.")
_stage_command("qa", "Write 3 QA pairs per pair (LLM or rubric) -> qa_raw.jsonl.")
_stage_command("filter", "Drop malformed/duplicate/single-video/ungrounded QA -> qa.jsonl.")
_stage_command("interleaved", "Interleaved clip+narration and single-video data.")
_stage_command("run", "Run every stage in order, then write stats.json and stats.md.")


@datagen_app.command()
def stats(out: Out) -> None:
    """Write stats.json and stats.md from the files in --out."""
    _print_stats(out)


def _print_stats(out: Path) -> None:
    from stepdiff.datagen.stats import write_stats

    with user_errors():
        numbers = write_stats(out)
    parts = []
    if "descriptions" in numbers:
        d = numbers["descriptions"]
        parts.append(f"descriptions {d['ok']}/{d['total']}")
    if "pairs" in numbers:
        parts.append(f"pairs {numbers['pairs']['total']}")
    if "filter" in numbers:
        f = numbers["filter"]
        parts.append(f"QA kept {f['kept']}/{f['qa_in']}")
    if "interleaved" in numbers:
        parts.append(f"interleaved {numbers['interleaved']['windows']}")
    _out.print(
        f"stats: {', '.join(parts) or 'no stage output yet'} -> {out / 'stats.md'}",
        highlight=False,
    )


@datagen_app.command()
def merge(
    stage: Annotated[str, typer.Argument(help="describe, pairs, qa, filter or interleaved.")],
    out: Out,
    num_shards: Annotated[
        int | None, typer.Option("--num-shards", min=1, help="Shard count (if several ran).")
    ] = None,
) -> None:
    """Join the finished shards of STAGE into its final files."""
    from stepdiff.datagen.pipeline import merge_stage

    with user_errors():
        report = merge_stage(stage, out, num_shards)
    _summary(stage, report)
