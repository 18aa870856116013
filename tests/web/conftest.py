"""Fixtures for the web app's tests: generated clips, the tiny real assistant, fakes."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from stepdiff.assistant.results import (
    CategoryDifference,
    DifferenceReport,
    Moment,
    RankedCandidate,
    RankResult,
)
from stepdiff.video.clip import ClipRef
from stepdiff.video.decode import read_clip_frames
from stepdiff.video.synthetic import SceneSpec, write_synthetic_clip


@pytest.fixture(autouse=True)
def uploads_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> Path:
    """A cache folder of each test's own, so uploads folders never land in the user's."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("STEPDIFF_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def candidate_clip_path(media_dir: Path) -> Path:
    """3 s, 24 fps, 128x128 H.264 mp4 of a whisk beating orange food in a red pot."""
    scene = SceneSpec(
        vessel="pot",
        vessel_color=(170, 40, 40),
        tool="whisk",
        tool_color=(190, 190, 200),
        food_color=(235, 130, 40),
        motion="back_and_forth",
    )
    return write_synthetic_clip(
        media_dir / "web_candidate.mp4", scene, seconds=3.0, fps=24, size=128
    )


@pytest.fixture(scope="session")
def not_a_video(media_dir: Path) -> Path:
    """A text file with a video's name: only decoding can tell."""
    path = media_dir / "notes.mp4"
    path.write_text("stir the onions for five minutes\n" * 50)
    return path


@pytest.fixture(scope="session")
def tiny_assistant():
    """The real Assistant on the tiny random-initialised model (builds in a second)."""
    from stepdiff.assistant import Assistant
    from stepdiff.model.build import load_model_from

    return Assistant(load_model_from("tiny"))


class FakeAssistant:
    """The Assistant's interface without a model: answers at once, or after ``delay``.

    Records how many calls run at the same time, so tests can check that the app never
    enters the model twice at once.
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.started = threading.Event()  # set when a model call begins
        self.release = threading.Event()  # a slow call waits for this (or its delay)
        self.active = 0
        self.max_active = 0
        self._count_lock = threading.Lock()

    def _model_call(self) -> None:
        with self._count_lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        self.started.set()
        try:
            if self.delay:
                self.release.wait(self.delay)
            else:
                time.sleep(0.01)
        finally:
            with self._count_lock:
                self.active -= 1

    def frames(self, clip: ClipRef) -> tuple[list[float], list]:
        sampled = read_clip_frames(clip, 4)
        return sampled.timestamps, list(sampled.frames)

    def report(self, reference: ClipRef, candidate: ClipRef, categories=None) -> DifferenceReport:
        self._model_call()
        names = categories or ["Ingredients", "Tools/Equipment"]
        moment = Moment(0.5, 1.5, 1, 2, 0.25)
        return DifferenceReport(
            reference=str(reference),
            candidate=str(candidate),
            reference_times=self.frames(reference)[0],
            candidate_times=self.frames(candidate)[0],
            calibrated=False,
            categories=[
                CategoryDifference(name, f"caption {i}", 0.5, i + 1, [moment])
                for i, name in enumerate(names)
            ],
        )

    def rank(self, reference: ClipRef, candidates: Sequence[ClipRef], categories=None):
        self._model_call()
        scored = [RankedCandidate(str(c), {"Ingredients": 0.5}, 0.5) for c in candidates]
        order = list(range(len(candidates)))
        return RankResult(str(reference), {"Ingredients": order}, order, scored)

    def ask(self, reference: ClipRef, candidate: ClipRef, questions: Sequence[str]) -> list[str]:
        self._model_call()
        return [f"fake answer to {q}" for q in questions]


@pytest.fixture()
def fake_assistant() -> type[FakeAssistant]:
    """The FakeAssistant class, for tests that need the interface without a model."""
    return FakeAssistant
