"""``stepdiff datagen ...``: generate StepDiff training data (paper Sec. 3.2).

Stages: ``describe`` -> ``pairs`` -> ``qa`` -> ``filter``, plus ``interleaved``; ``run``
does all of them and ``stats``; ``merge`` joins finished shards. Every stage reads and
writes JSONL in ``--out`` and can be sharded (``--shard I --num-shards N``), resumed
after a crash (rerun the same command), or run as Ray tasks (``--ray``) or local
processes (``--workers N``).

Heavy imports happen inside the commands, so ``stepdiff --help`` stays quick.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from stepdiff.console import stderr, user_errors
from stepdiff.datagen.config import DatagenConfig
from stepdiff.options import cli_parameter, expand_options, option

datagen_app = typer.Typer(
    help="Generate training data: step descriptions, pairs, QA, filtering, interleaved data.",
    no_args_is_help=True,
)
_out = Console(soft_wrap=True)

Out = cli_parameter(DatagenConfig, "out").annotation  # the flag every command shares


@dataclass(frozen=True)
class RunOptions:
    """How a stage runs: which shard, where, and whether finished work is redone."""

    shard: int | None = option(
        "--shard", default=None, help="Run only this shard (0-based); see --num-shards."
    )
    num_shards: int = option(
        "--num-shards", default=1, min=1, help="Split each stage's items into N shards."
    )
    ray: bool = option("--ray", default=False, help="Run the shards as Ray tasks (local Ray).")
    ray_address: str | None = option(
        "--ray-address", default=None, help="Run the shards on this Ray cluster."
    )
    workers: int = option(
        "--workers",
        default=1,
        min=1,
        help="Run the shards as N processes on this machine, each with cores/N threads "
        "(without --num-shards: 4 shards per process).",
    )
    force: bool = option(
        "--force", default=False, help="Redo stages already done (with other options)."
    )


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


def _run(name: str, config: DatagenConfig, run: RunOptions) -> None:
    from stepdiff.datagen.pipeline import run_pipeline, run_stage

    with user_errors(), _Bars() as bars:
        settings = {**asdict(run), "progress": bars}
        if name == "run":
            outcomes = run_pipeline(config, **settings)
        else:
            outcomes = [run_stage(name, config, **settings)]
    for outcome in outcomes:
        if outcome.done:
            _summary(outcome.stage, outcome.report)
        else:
            waiting = ", ".join(str(i) for i in outcome.pending_shards)
            _out.print(
                f"{outcome.stage}: shard {run.shard} of {run.num_shards} done; waiting for shards "
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

    @expand_options()
    def command(config: DatagenConfig, run: RunOptions) -> None:
        _run(name, config, run)
        if name == "run":
            _print_stats(config.out)

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
