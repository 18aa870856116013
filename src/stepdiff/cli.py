"""The ``stepdiff`` command line: thin wrappers over library functions."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from stepdiff.baselines.cli import baselines_app
from stepdiff.datagen.cli import datagen_app
from stepdiff.errors import StepDiffError
from stepdiff.eval.cli import evaluate, score
from stepdiff.synthkitchen.cli import synthkitchen_app
from stepdiff.train.cli import train_command

# Subcommands live beside their library code and import it only when they run, so
# `stepdiff --help` stays fast.
app = typer.Typer(
    help="Compare a candidate video of a procedural step with a reference video.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(synthkitchen_app, name="synthkitchen")
app.add_typer(datagen_app, name="datagen")
app.add_typer(baselines_app, name="baselines")
app.command("score")(score)
app.command("eval")(evaluate)
app.command("train")(train_command)
stderr = Console(stderr=True)

ConfigOption = Annotated[
    str | None,
    typer.Option("--config", "-c", help="YAML config file or preset (cpu-default, tiny)."),
]
CheckpointOption = Annotated[
    Path | None,
    typer.Option("--model", "-m", help="Folder of a saved StepDiff model (projector + config)."),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config key, e.g. --set num_frames=4 (repeatable)."),
]
EncoderOption = Annotated[
    str | None, typer.Option(help="Frame encoder: efficientnet-lite0, tiny, HF id or folder.")
]
LLMOption = Annotated[
    str | None,
    typer.Option("--llm", help="LLM: smollm2-135m-instruct, GGUF file, HF id or folder."),
]
FramesOption = Annotated[int | None, typer.Option("--frames", help="Frames sampled per clip.")]
CacheOption = Annotated[
    bool, typer.Option("--cache/--no-cache", help="Cache frozen features on disk.")
]


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn StepDiff errors into one line on stderr and exit status 1."""
    try:
        yield
    except StepDiffError as error:
        stderr.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _model_from_options(
    config: str | None,
    checkpoint: Path | None,
    overrides: list[str] | None,
    encoder: str | None = None,
    llm: str | None = None,
    frames: int | None = None,
    cache: bool = True,
):
    from stepdiff.encoders.cache import FeatureCache
    from stepdiff.model.build import load_model_from

    flags = list(overrides or [])
    flags += [f"encoder={encoder}"] if encoder else []
    flags += [f"llm={llm}"] if llm else []
    flags += [f"num_frames={frames}"] if frames else []
    with stderr.status("Loading models..."):
        return load_model_from(
            config, checkpoint, flags, feature_cache=FeatureCache() if cache else None
        )


@app.command()
def ask(
    reference: Annotated[
        str, typer.Argument(help="Reference clip: PATH, PATH@START-END or clip id.")
    ],
    candidate: Annotated[str, typer.Argument(help="Candidate clip, same forms as REFERENCE.")],
    question: Annotated[
        list[str], typer.Option("--question", "-q", help="A question (repeatable).")
    ],
    video_dir: Annotated[
        Path | None, typer.Option(help="Folder where clip ids <uid>_<start>_<end> are resolved.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
    max_new_tokens: Annotated[int, typer.Option(help="Longest answer, in tokens.")] = 48,
    config: ConfigOption = None,
    checkpoint: CheckpointOption = None,
    overrides: SetOption = None,
    encoder: EncoderOption = None,
    llm: LLMOption = None,
    frames: FramesOption = None,
    cache: CacheOption = True,
) -> None:
    """Answer questions about the differences between two clips (videos encoded once)."""
    from stepdiff.video.clip import resolve_clip

    with user_errors():
        ref_clip = resolve_clip(reference, video_dir)
        cand_clip = resolve_clip(candidate, video_dir)
        model = _model_from_options(config, checkpoint, overrides, encoder, llm, frames, cache)
        answers = model.ask(ref_clip, cand_clip, question, max_new_tokens=max_new_tokens)
    result = {
        "reference": str(ref_clip),
        "candidate": str(cand_clip),
        "model": {"encoder": model.config.encoder, "llm": model.config.llm},
        "projector_trained": model.projector_trained,
        "answers": [{"question": q, "answer": a} for q, a in zip(question, answers, strict=True)],
    }
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    if not model.projector_trained:
        stderr.print(
            "[yellow]note:[/] the projector is untrained: answers do not yet reflect the videos."
        )
    for item in result["answers"]:
        typer.echo(f"Q: {item['question']}\nA: {item['answer']}\n")


@app.command()
def demo(
    out: Annotated[
        Path | None, typer.Option(help="Folder for the two generated demo clips.")
    ] = None,
    config: ConfigOption = None,
    checkpoint: CheckpointOption = None,
    max_new_tokens: Annotated[int, typer.Option(help="Longest answer, in tokens.")] = 40,
) -> None:
    """Generate two clips that differ visibly and ask the default model about them."""
    from stepdiff.demo import DEMO_QUESTIONS, make_demo_clips

    with user_errors():
        reference, candidate = make_demo_clips(out)
        stderr.print(f"Reference clip: {reference}\nCandidate clip: {candidate}", highlight=False)
        model = _model_from_options(config, checkpoint, overrides=None)
        if model.projector_trained:
            stderr.print(
                "[yellow]note:[/] using the shipped projector, trained briefly on SynthKitchen "
                "(rendered kitchen clips) on a CPU. It is still weak: its answers follow the "
                "style of its training answers more than the videos (see the README)."
            )
        else:
            stderr.print(
                "[yellow]note:[/] this install has no trained projector, so the projector is "
                "untrained (random weights): the pipeline runs end to end, but the answers do "
                "not reflect the videos."
            )
        with stderr.status("Answering..."):
            answers = model.ask(reference, candidate, DEMO_QUESTIONS, max_new_tokens=max_new_tokens)
    for question, answer in zip(DEMO_QUESTIONS, answers, strict=True):
        typer.echo(f"Q: {question}\nA: {answer}\n")


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()


if __name__ == "__main__":
    main()
