"""``stepdiff train CONFIG [key=value ...]``: projector instruction tuning."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from stepdiff.console import stderr, user_errors


def train_command(
    config: Annotated[
        str, typer.Argument(help="Training YAML file or preset (tiny, synthkitchen-cpu).")
    ],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Overrides such as optim.lr=3e-4 max_steps=200 out=runs/x."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Build the model graph on the meta device (no weights, no data) and report "
            "sizes and memory; validates paper-scale configs on any machine.",
        ),
    ] = False,
) -> None:
    """Train the projector (frozen encoder and LLM); resumes when OUT holds this run.

    Run with `accelerate launch -m stepdiff.cli train ...` for several GPUs or nodes.
    """
    from stepdiff.train.config import load_train_config

    with user_errors():
        train_config = load_train_config(config, overrides or [])
        if dry_run:
            from stepdiff.config import load_config
            from stepdiff.train.dryrun import dry_run as run_dry

            model_config = load_config(train_config.model, list(train_config.model_overrides))
            report = run_dry(model_config, batch_size=train_config.batch_size)
            typer.echo(report.format())
            return
        from stepdiff.train.trainer import train

        result = train(train_config)
    stderr.print(f"Trained model: {result.model_dir}", highlight=False)
    if result.dev:
        typer.echo(json.dumps(result.dev))
