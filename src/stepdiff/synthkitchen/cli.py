"""``stepdiff synthkitchen ...``: build a SynthKitchen benchmark, show a clip's ground truth.

Heavy imports (PyAV, numpy, the builder) happen inside the commands, so that loading
the ``stepdiff`` command line stays quick.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from stepdiff.console import print_error, stderr

synthkitchen_app = typer.Typer(
    help="SynthKitchen: a synthetic step-difference benchmark with full ground truth.",
    no_args_is_help=True,
)
_out = Console(soft_wrap=True)


def _fail(message: str) -> typer.Exit:
    print_error(message)
    return typer.Exit(1)


@synthkitchen_app.command()
def build(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the benchmark into.")],
    size: Annotated[
        str,
        typer.Option(help="small (~90 clips), medium (300 training clips) or large (900 clips)."),
    ] = "small",
    seed: Annotated[int, typer.Option(help="Seed: same seed, same files.")] = 0,
    render: Annotated[
        bool, typer.Option("--render/--no-render", help="Render the videos (mp4 + transcripts).")
    ] = True,
    workers: Annotated[
        int | None, typer.Option(help="Processes rendering videos (default: up to 2).")
    ] = None,
) -> None:
    """Sample clips, render their videos and write DiffCap, DiffMCQ and DiffRank files."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from stepdiff.synthkitchen.builder import SIZES, build_benchmark

    if size not in SIZES:
        raise _fail(f"--size {size!r}: expected one of {', '.join(SIZES)}")
    _make_out_dir(out)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    ) as bar:
        task = bar.add_task("Rendering videos", total=None)

        def progress(done: int, total: int, uid: str) -> None:
            bar.update(task, completed=done, total=total)

        summary = build_benchmark(
            out, size=size, seed=seed, render=render, workers=workers, progress=progress
        )
    _print_summary(summary)


def _make_out_dir(out: Path) -> None:
    """Create the benchmark folder, or fail with one line before any clip is sampled."""
    if out.exists() and not out.is_dir():
        raise _fail(f"--out {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # e.g. a file where a parent folder should be, no permission
        raise _fail(f"--out {out}: cannot create the folder ({error.strerror})") from None


def _print_summary(summary) -> None:  # BuildSummary; imported lazily
    from rich.table import Table

    data = summary.to_dict()
    table = Table(title=f"SynthKitchen {summary.size}, seed {summary.seed}: {summary.out_dir}")
    table.add_column("split")
    table.add_column("videos", justify="right")
    table.add_column("clips", justify="right")
    for task in data["rows"]:
        table.add_column(task, justify="right")
    for split, clips in summary.clips.items():
        cells = [str(data["rows"][task].get(split, {}).get("total", "-")) for task in data["rows"]]
        table.add_row(split, str(summary.videos[split]), str(clips), *cells)
    _out.print(table)
    _out.print(f"train pairs: {summary.train_pairs}", highlight=False)
    if summary.rendered:
        _out.print(
            f"videos: {summary.videos_rendered} rendered, {summary.videos_reused} reused "
            f"(audio: {'yes' if summary.audio else 'no, espeak-ng not found'})",
            highlight=False,
        )
    _out.print(f"built in {summary.seconds:.1f} s", highlight=False)


@synthkitchen_app.command()
def show(
    clip_id: Annotated[str, typer.Argument(help="Clip id <video_uid>_<start>_<end>.")],
    data: Annotated[Path, typer.Option("--data", help="Folder of a built benchmark.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Print a clip's ground truth: attributes by category, video file, narration."""
    from stepdiff.synthkitchen.builder import load_clips
    from stepdiff.synthkitchen.render import transcript_path
    from stepdiff.synthkitchen.world import CATEGORY_ATTRIBUTES

    if not (data / "clips.jsonl").is_file():
        raise _fail(f"{data}: no clips.jsonl here (build one with `stepdiff synthkitchen build`)")
    spec = load_clips(data).get(clip_id)
    if spec is None:
        raise _fail(f"clip {clip_id!r} is not in {data / 'clips.jsonl'}")
    transcript = transcript_path(data / "videos", spec.video_uid)
    sentences = []
    if transcript.is_file():
        sentences = [
            s for s in json.loads(transcript.read_text())["sentences"] if s["clip_id"] == clip_id
        ]
    video = data / "videos" / f"{spec.video_uid}.mp4"
    if as_json:
        payload = {**spec.to_dict(), "video": str(video), "narration": sentences}
        typer.echo(json.dumps(payload, indent=2))
        return
    values = spec.to_dict()
    values["order"] = " -> ".join(spec.actions)
    _out.print(f"[bold]{clip_id}[/]  {spec.keystep}, split {spec.split}", highlight=False)
    _out.print(
        f"video: {video}  segment {spec.start:g}-{spec.end:g} s"
        + ("" if video.is_file() else "  (not rendered)"),
        highlight=False,
    )
    for category, attributes in CATEGORY_ATTRIBUTES.items():
        shown = ", ".join(f"{a}={values[a]}" for a in attributes)
        _out.print(f"  {category}: {shown}", highlight=False)
    for sentence in sentences:
        _out.print(f"  [{sentence['start']:6.2f}] {sentence['text']}", highlight=False)
