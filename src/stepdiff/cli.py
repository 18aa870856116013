"""The ``stepdiff`` command line: thin wrappers over library functions."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from stepdiff.baselines.cli import baselines_app
from stepdiff.calibration_options import BESIDE_THE_MODEL, CalibrationOptions
from stepdiff.console import stderr, user_errors
from stepdiff.datagen.cli import datagen_app
from stepdiff.eval.cli import evaluate, score
from stepdiff.model_options import SHIPPED_MODEL, ModelOptions
from stepdiff.options import expand_options
from stepdiff.synthkitchen.cli import synthkitchen_app
from stepdiff.train.cli import train_command
from stepdiff.web.cli import serve_command

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
app.command("serve")(serve_command)

# Model options are one group (ModelOptions), expanded into each command's flags.
VideoDirOption = Annotated[
    Path | None, typer.Option(help="Folder where clip ids <uid>_<start>_<end> are resolved.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
ReferenceArgument = Annotated[
    str, typer.Argument(help="Reference clip: PATH, PATH@START-END or clip id.")
]
CandidateArgument = Annotated[str, typer.Argument(help="Candidate clip, same forms as REFERENCE.")]


def _load(model: ModelOptions, *, llm: bool = True):
    with stderr.status("Loading models..."):
        return model.load(llm=llm)


@app.command()
@expand_options()
def ask(
    reference: ReferenceArgument,
    candidate: CandidateArgument,
    question: Annotated[
        list[str], typer.Option("--question", "-q", help="A question (repeatable).")
    ],
    video_dir: VideoDirOption = None,
    as_json: JsonOption = False,
    max_new_tokens: Annotated[int, typer.Option(help="Longest answer, in tokens.")] = 48,
    model_options: ModelOptions = SHIPPED_MODEL,
) -> None:
    """Answer questions about the differences between two clips (videos encoded once)."""
    from stepdiff.video.clip import resolve_clip

    with user_errors():
        ref_clip = resolve_clip(reference, video_dir)
        cand_clip = resolve_clip(candidate, video_dir)
        model = _load(model_options)
        answers = model.ask(ref_clip, cand_clip, question, max_new_tokens)
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


CategoryOption = Annotated[
    list[str] | None,
    typer.Option(
        "--category",
        help="A difference category (repeatable; default: all six), e.g. 'Tools/Equipment'.",
    ),
]


def _assistant(model_options: ModelOptions, calibration: CalibrationOptions):
    """An Assistant on the model these options name, with its severity calibration."""
    from stepdiff.assistant import Assistant
    from stepdiff.assistant.calibration import find_calibration

    # Read the calibration first: a bad file should fail before the slow model load.
    found = find_calibration(model_options, calibration.path)
    return Assistant(_load(model_options), found)


def _model_notes(assistant, calibrated: bool = True) -> None:
    if not assistant.model.projector_trained:
        stderr.print(
            "[yellow]note:[/] the projector is untrained: answers do not yet reflect the videos."
        )
    if not calibrated:
        stderr.print(
            "[yellow]note:[/] no severity calibration for this model: severities are equal-"
            "width bins of P(same) (see `stepdiff calibrate`)."
        )


@app.command()
@expand_options()
def report(
    reference: ReferenceArgument,
    candidate: CandidateArgument,
    category: CategoryOption = None,
    captions: Annotated[
        bool, typer.Option("--captions/--no-captions", help="Generate difference captions.")
    ] = True,
    moments: Annotated[
        int, typer.Option("--moments", min=0, help="Most-different moments per category.")
    ] = 3,
    as_json: JsonOption = False,
    video_dir: VideoDirOption = None,
    max_new_tokens: Annotated[int, typer.Option(help="Longest caption, in tokens.")] = 40,
    model_options: ModelOptions = SHIPPED_MODEL,
    calibration: CalibrationOptions = BESIDE_THE_MODEL,
) -> None:
    """Per category: how much the candidate differs (severity 1-5), how, and where."""
    from rich.console import Console

    from stepdiff.assistant import check_categories
    from stepdiff.assistant.render import report_table
    from stepdiff.video.clip import resolve_clip

    with user_errors():
        categories = check_categories(category)
        ref_clip = resolve_clip(reference, video_dir)
        cand_clip = resolve_clip(candidate, video_dir)
        assistant = _assistant(model_options, calibration)
        with stderr.status("Comparing..."):
            result = assistant.report(
                ref_clip,
                cand_clip,
                categories,
                with_captions=captions,
                max_new_tokens=max_new_tokens,
                num_moments=moments,
            )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    _model_notes(assistant, result.calibrated)
    typer.echo(f"Reference: {result.reference}\nCandidate: {result.candidate}")
    Console().print(report_table(result))


@app.command()
@expand_options()
def rank(
    reference: ReferenceArgument,
    candidates: Annotated[
        list[str] | None, typer.Argument(help="Two or more candidate clips.", show_default=False)
    ] = None,
    category: CategoryOption = None,
    as_json: JsonOption = False,
    video_dir: VideoDirOption = None,
    model_options: ModelOptions = SHIPPED_MODEL,
) -> None:
    """Order candidate clips by how closely they match the reference (P(same), per
    category and on average)."""
    from rich.console import Console

    from stepdiff.assistant import Assistant, AssistantError, check_categories
    from stepdiff.assistant.render import rank_table
    from stepdiff.video.clip import resolve_clip

    with user_errors():
        categories = check_categories(category)
        if len(candidates or []) < 2:
            raise AssistantError(
                f"rank needs at least 2 candidate clips, got {len(candidates or [])}"
            )
        ref_clip = resolve_clip(reference, video_dir)
        cand_clips = [resolve_clip(spec, video_dir) for spec in candidates or []]
        # Ranking needs no severity scale, so no calibration is read.
        model = _load(model_options)
        assistant = Assistant(model)
        with stderr.status("Ranking..."):
            result = assistant.rank(ref_clip, cand_clips, categories)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    _model_notes(assistant)
    typer.echo(f"Reference: {result.reference}")
    Console().print(rank_table(result))


@app.command()
@expand_options(model_options=("config", "checkpoint", "overrides", "cache", "llamacpp"))
def calibrate(
    data: Annotated[
        Path,
        typer.Option(help="Benchmark folder with diffrank_<split>.jsonl and videos/."),
    ],
    split: Annotated[
        str, typer.Option(help="Dev split whose DiffRank rows to fit on: heldout or test.")
    ] = "heldout",
    out: Annotated[
        Path | None,
        typer.Option(
            help="Calibration JSON to write (default: severity_calibration.json beside "
            "--model, else in the current folder)."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="DiffRank rows per batch.")] = 8,
    from_eval: Annotated[
        Path | None,
        typer.Option(
            help="A `stepdiff eval --task diffrank --scorer stepdiff` folder of this model on "
            "the split's rows: its predictions are the P(same), not computed again."
        ),
    ] = None,
    model_options: ModelOptions = SHIPPED_MODEL,
) -> None:
    """Fit the 1-5 severity scale to human DiffRank scores on a dev split."""
    from stepdiff.assistant.calibration import CALIBRATION_FILE
    from stepdiff.assistant.dev_fit import calibrate_on_split, diffrank_files
    from stepdiff.eval.registry import ScorerOptions
    from stepdiff.eval.runner import scorer_settings

    with user_errors():
        diffrank_files(data, split)  # fail before loading models
        target = out or ((model_options.checkpoint or Path(".")) / CALIBRATION_FILE)
        # From an eval run, only the projector matters (its fingerprint): no LLM loads.
        model = _load(model_options, llm=from_eval is None)
        calibration = calibrate_on_split(
            model,
            data,
            split,
            model_name=model_options.name(),
            batch_size=batch_size,
            eval_run=from_eval,
            eval_settings=scorer_settings("stepdiff", ScorerOptions(model=model_options)),
        )
        calibration.save(target)
    tau = calibration.diagnostics.get("kendall_tau_p_same_vs_score")
    stderr.print(
        f"Fitted on {calibration.rows} rows ({calibration.points} points), Kendall tau of "
        f"p_same vs human score {tau if tau is None else f'{tau:.3f}'}; wrote {target}",
        highlight=False,
        soft_wrap=True,
    )
    for band in calibration.bands():
        typer.echo(
            f"severity {band['severity']}: p_same {band['p_same_from']:.3f}-{band['p_same_to']:.3f}"
        )


@app.command()
@expand_options(model_options=("config", "checkpoint"))
def demo(
    out: Annotated[
        Path | None, typer.Option(help="Folder for the two generated demo clips.")
    ] = None,
    model_options: ModelOptions = SHIPPED_MODEL,
    max_new_tokens: Annotated[int, typer.Option(help="Longest answer, in tokens.")] = 40,
) -> None:
    """Generate two clips that differ visibly and ask the default model about them."""
    from stepdiff.demo import DEMO_QUESTIONS, make_demo_clips

    with user_errors():
        reference, candidate = make_demo_clips(out)
        stderr.print(f"Reference clip: {reference}\nCandidate clip: {candidate}", highlight=False)
        model = _load(model_options)
        if model.projector_trained:
            stderr.print(
                "[yellow]note:[/] the shipped model spells what each clip shows (tool, "
                "ingredient, vessel, motion...) in its video tokens for the frozen LLM to "
                "compare. It has seen only SynthKitchen's rendered kitchen, and its yes/no "
                "scores do not yet rank attempts well (see docs/results.md)."
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
