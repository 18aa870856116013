"""``stepdiff baselines ...``: train the baselines that need training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stepdiff.console import stderr, user_errors

baselines_app = typer.Typer(help="Baselines that need training.", no_args_is_help=True)


@baselines_app.command("train-vlembed")
def train_vlembed(
    data: Annotated[Path, typer.Option(help="A built SynthKitchen benchmark folder.")],
    out: Annotated[Path, typer.Option(help="Folder for the alignment head.")],
    encoder: Annotated[str, typer.Option(help="Frozen frame encoder.")] = "efficientnet-lite0",
    frames: Annotated[int, typer.Option(help="Frames per clip.")] = 8,
    epochs: Annotated[int, typer.Option(min=1, help="Full-batch training epochs.")] = 300,
) -> None:
    """Align frozen frame features with MiniLM text embeddings (use as vlembed-aligned:OUT)."""
    from stepdiff.baselines.train_vlembed import train_aligned_space
    from stepdiff.encoders.cache import FeatureCache

    with user_errors(), stderr.status("Training the VLEmbed alignment head..."):
        folder = train_aligned_space(
            data, out, encoder=encoder, num_frames=frames, epochs=epochs, cache=FeatureCache()
        )
    typer.echo(
        f"Saved the alignment head to {folder}; evaluate with --scorer vlembed-aligned:{folder}"
    )
