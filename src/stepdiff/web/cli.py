"""``stepdiff serve``: the coaching web app on a local port."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stepdiff.errors import ConfigError, StepDiffError


def example_videos(folder: Path | None, demo: bool) -> list[Path]:
    """The demo clips (generated once, cached) and the videos directly inside ``folder``."""
    from stepdiff.video.clip import VIDEO_EXTENSIONS

    videos: list[Path] = []
    if demo:
        from stepdiff.demo import make_demo_clips

        videos += [clip.path for clip in make_demo_clips()]
    if folder is not None:
        if not folder.is_dir():
            raise ConfigError(f"--examples {folder}: not a folder")
        videos += sorted(
            path
            for path in folder.iterdir()
            if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS
        )
    return videos


def serve_command(
    host: Annotated[
        str, typer.Option(help="Address to listen on; 0.0.0.0 exposes the app to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 7860,
    max_upload_mb: Annotated[float, typer.Option(help="Largest video upload, in MB.")] = 200,
    examples: Annotated[
        Path | None, typer.Option(help="Folder of videos to offer as examples on the page.")
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo/--no-demo", help="Offer the two generated demo clips.")
    ] = True,
    config: Annotated[
        str | None,
        typer.Option("--config", "-c", help="YAML config file or preset (cpu-default, tiny)."),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option("--model", "-m", help="Folder of a saved StepDiff model (projector, config)."),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key, e.g. --set num_frames=4 (repeatable)."),
    ] = None,
    calibration: Annotated[
        Path | None, typer.Option(help="Severity calibration file for the difference reports.")
    ] = None,
    llamacpp: Annotated[
        bool,
        typer.Option(
            "--llamacpp",
            help="Generate captions and chat answers through llama.cpp (GGUF LLMs; needs the "
            "llamacpp extra): much faster on CPUs.",
        ),
    ] = False,
) -> None:
    """Serve a web page that compares your video of a step with a reference video."""
    from rich.console import Console

    stderr = Console(stderr=True)
    try:
        import uvicorn

        from stepdiff.web.app import create_app
    except ImportError as error:
        stderr.print(
            f"[bold red]error:[/] the web app needs the `web` extra ({error}): "
            "pip install 'stepdiff[web]'",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    from stepdiff.assistant import Assistant

    try:
        if max_upload_mb <= 0:
            raise ConfigError(f"--max-upload-mb must be positive, got {max_upload_mb:g}")
        videos = example_videos(examples, demo)
        with stderr.status("Loading models..."):
            assistant = Assistant.from_options(
                config=config,
                checkpoint=checkpoint,
                overrides=overrides,
                calibration_path=calibration,
            )
            if llamacpp:
                assistant.model.use_llamacpp()
        app = create_app(assistant, max_upload_bytes=int(max_upload_mb * 2**20), examples=videos)
    except StepDiffError as error:
        stderr.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    stderr.print(f"StepDiff coach on http://{host}:{port}/ (Ctrl+C stops it)", highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="warning")
