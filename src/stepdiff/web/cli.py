"""``stepdiff serve``: the coaching web app on a local port."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from stepdiff.calibration_options import BESIDE_THE_MODEL, CalibrationOptions
from stepdiff.console import print_error, stderr, user_errors
from stepdiff.errors import ConfigError
from stepdiff.model_options import SHIPPED_MODEL, ModelOptions
from stepdiff.options import expand_options

if TYPE_CHECKING:
    from stepdiff.web.clips import UploadQuota

MB = 2**20


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


def check_port(port: int) -> None:
    """ConfigError unless ``port`` is a TCP port one can listen on (1-65535)."""
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port must be between 1 and 65535, got {port}")


def megabytes(value: float, flag: str) -> int:
    """``value`` MB as a whole number of bytes (at least 1); ConfigError naming ``flag``."""
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{flag} must be a positive number of MB, got {value:g}")
    size = int(value * MB)
    if size < 1:
        raise ConfigError(f"{flag} {value:g} is less than one byte")
    return size


def upload_quota(
    max_uploads: int, max_total_mb: float, ttl_minutes: float, max_upload_bytes: int
) -> UploadQuota:
    """The uploads quota from the ``serve`` flags; ConfigError naming a bad one."""
    from stepdiff.web.clips import UploadQuota

    if max_uploads < 1:
        raise ConfigError(f"--max-uploads must be at least 1, got {max_uploads}")
    total = megabytes(max_total_mb, "--max-total-mb")
    if total < max_upload_bytes:
        raise ConfigError(
            f"--max-total-mb {max_total_mb:g} is smaller than one upload (--max-upload-mb)"
        )
    if not (math.isfinite(ttl_minutes) and ttl_minutes > 0):
        raise ConfigError(f"--upload-ttl-minutes must be a positive number, got {ttl_minutes:g}")
    return UploadQuota(max_uploads=max_uploads, max_total_bytes=total, ttl_s=ttl_minutes * 60)


def check_exposure(host: str, expose: bool) -> bool:
    """Whether ``host`` reaches beyond this machine; ConfigError if so without --expose."""
    from stepdiff.web.guard import is_loopback

    if is_loopback(host):
        return False
    if not expose:
        raise ConfigError(
            f"--host {host} lets other machines reach the app (anyone who can reach the "
            "port can upload videos and run the model); add --expose to mean it"
        )
    return True


def exposure_notice(host: str, port: int, max_upload_bytes: int, quota: UploadQuota) -> str:
    """What ``--expose`` opens, said once at start-up."""
    return (
        f"Exposed on {host}, port {port}: anyone who can reach it can upload videos (each up "
        f"to {max_upload_bytes / MB:g} MB; {quota.max_uploads} kept, "
        f"{quota.max_total_bytes / MB:g} MB in all) and run the model on this machine. "
        "There is no login."
    )


@expand_options(model=("config", "checkpoint", "overrides", "llamacpp"))
def serve_command(
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on. Anything but a loopback address (127.0.0.1, "
            "localhost, ::1) reaches other machines and needs --expose."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (1-65535).")] = 7860,
    expose: Annotated[
        bool,
        typer.Option(
            "--expose",
            help="Allow a --host that other machines reach: anyone who can reach the port "
            "can then upload videos and run the model (there is no login).",
        ),
    ] = False,
    max_upload_mb: Annotated[float, typer.Option(help="Largest video upload, in MB.")] = 200,
    max_uploads: Annotated[
        int,
        typer.Option(
            help="Most uploads kept at once; past it the least recently used are deleted."
        ),
    ] = 20,
    max_total_mb: Annotated[
        float,
        typer.Option(
            help="Most MB of uploads kept at once; past it the least recently used are deleted."
        ),
    ] = 2048,
    upload_ttl_minutes: Annotated[
        float, typer.Option(help="Uploads unused for this many minutes are deleted.")
    ] = 60,
    examples: Annotated[
        Path | None, typer.Option(help="Folder of videos to offer as examples on the page.")
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo/--no-demo", help="Offer the two generated demo clips.")
    ] = True,
    model: ModelOptions = SHIPPED_MODEL,
    calibration: CalibrationOptions = BESIDE_THE_MODEL,
) -> None:
    """Serve a web page that compares your video of a step with a reference video.

    Uploads live in a folder of their own under the StepDiff cache (web-uploads), deleted
    when the server stops; folders left by a killed server are deleted at the next start.
    """
    try:
        import uvicorn

        from stepdiff.web.app import create_app
    except ImportError as error:
        print_error(f"the web app needs the `web` extra ({error}): pip install 'stepdiff[web]'")
        raise typer.Exit(1) from None
    from stepdiff.assistant import Assistant

    with user_errors():
        # Every flag is checked before the (slow) model load.
        check_port(port)
        exposed = check_exposure(host, expose)
        max_upload_bytes = megabytes(max_upload_mb, "--max-upload-mb")
        quota = upload_quota(max_uploads, max_total_mb, upload_ttl_minutes, max_upload_bytes)
        videos = example_videos(examples, demo)
        with stderr.status("Loading models..."):
            # Features are not cached: uploads are seen once.
            assistant = Assistant.load(dataclasses.replace(model, cache=False), calibration.path)
        app = create_app(
            assistant,
            max_upload_bytes=max_upload_bytes,
            quota=quota,
            examples=videos,
            host=host,
        )
    if exposed:
        notice = exposure_notice(host, port, max_upload_bytes, quota)
        stderr.print(notice, highlight=False, soft_wrap=True)
    stderr.print(f"StepDiff coach on http://{host}:{port}/ (Ctrl+C stops it)", highlight=False)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        # The app's shutdown deletes the uploads too, but uvicorn may stop before starting
        # it (a port in use); deleting twice does nothing.
        app.state.store.close()
