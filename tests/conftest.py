"""Shared pytest fixtures.

Test media is generated, never committed: session-scoped fixtures write it once per
test run into pytest's temporary directory.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from stepdiff.video.synthetic import write_synthetic_clip

# --- generated video clips -------------------------------------------------------------


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide directory for generated media files."""
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def synthetic_clip_path(media_dir: Path) -> Path:
    """4 s, 24 fps, 128x128 H.264 mp4 of the default scene (96 frames).

    Frame i is shown at i / 24 s and carries i as its frame index code
    (``decode_frame_index_code``); a keyframe every 24 frames.
    """
    return write_synthetic_clip(
        media_dir / "synthetic.mp4", seconds=4.0, fps=24, size=128, frame_index_code=True
    )


@pytest.fixture(scope="session")
def long_clip_path(media_dir: Path) -> Path:
    """20 s, 24 fps, 128x128 H.264 mp4 (480 frames) with frame index codes and a
    keyframe every 48 frames (2 s): ten GOPs to seek between."""
    return write_synthetic_clip(
        media_dir / "long.mp4",
        seconds=20.0,
        fps=24,
        size=128,
        frame_index_code=True,
        keyframe_interval=48,
    )


# --- a small rendered SynthKitchen benchmark ------------------------------------------


@pytest.fixture(scope="session")
def small_synthkitchen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small SynthKitchen build (90 clips in 30 silent videos, every benchmark file);
    read-only for tests (copy it before changing anything). About 5 s to render."""
    from stepdiff.synthkitchen.builder import build_benchmark

    out = tmp_path_factory.mktemp("synthkitchen_small")
    build_benchmark(out, "small", seed=0, render=True, audio=False, workers=1)
    return out


# --- the official DiffRank release file (read from beside the repository) ---------------

REAL_DIFFRANK = (
    Path(__file__).resolve().parents[2] / "shared/data/stepdiff_release/diffrank_dataset.jsonl"
)


@pytest.fixture(scope="session")
def real_diffrank_path() -> Path:
    """The released DiffRank file; tests using it skip when it is not beside the repo."""
    if not REAL_DIFFRANK.is_file():
        pytest.skip("real DiffRank file not available")
    return REAL_DIFFRANK


@pytest.fixture
def python_stdout() -> Callable[[str], str]:
    """Runs Python source in a fresh interpreter (what a command imports, and its
    ``sys.stdout``, start clean there) and returns its stripped stdout; a failure shows
    its stderr."""

    def run(source: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", source], capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    return run
