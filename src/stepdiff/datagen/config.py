"""The data-generation pipeline's options: one frozen dataclass that every stage reads
and fingerprints, and whose fields declare the ``stepdiff datagen`` flags.

Light on purpose: the command line builds its options from it when ``stepdiff`` starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from stepdiff.errors import ConfigError
from stepdiff.llm.aliases import DEFAULT_LLM
from stepdiff.options import option

QA_SOURCES = ("auto", "llm", "rubric")
# The writer the pipeline uses when --llm is not given and it is installed: it writes
# comparison QA that parse (docs/datagen.md); SmolLM2-135M's replies mostly do not.
WRITER_LLM = "llamacpp:qwen2.5-coder-1.5b-instruct"


def default_writer() -> str:
    """WRITER_LLM where llama-cpp-python and that model are installed, else the offline
    default LLM."""
    import importlib.util

    from stepdiff.llm.parts import is_installed, part_model

    name = WRITER_LLM.removeprefix("llamacpp:")
    if importlib.util.find_spec("llama_cpp") is not None and is_installed(part_model(name)):
        return WRITER_LLM
    return DEFAULT_LLM


@dataclass(frozen=True)
class DatagenConfig:
    """Every option of the pipeline; the fields made with ``option`` are the flags of each
    ``stepdiff datagen`` stage, with their help. Stages fingerprint only the
    options they depend on, so e.g. changing ``--qa-source`` redoes qa and filter but
    keeps the descriptions."""

    out: Path = option("--out", help="Folder for every stage's files.")
    clips: Path | None = option(
        "--clips",
        default=None,
        help="Clip list JSONL (clip_id, keystep; optional video, split, metadata); "
        "SynthKitchen's clips.jsonl works as is. Later stages default to the one describe used.",
    )
    video_dir: Path | None = option(
        "--video-dir",
        default=None,
        help="Folder of <video_uid>.mp4 (default: videos/ by --clips).",
    )
    split: str | None = option("--split", default=None, help="Keep only clips of this split.")
    llm: str = option(
        "--llm",
        default="",
        help="Text generator: llamacpp:<gguf|alias>, smollm2-135m-instruct, tiny, hf:<id>, "
        "openai:<base_url>@<model>, py:<module>:<factory>, or none (rule-based "
        f"descriptions). Default: {WRITER_LLM} where the llamacpp extra and that model "
        f"are installed, else {DEFAULT_LLM}.",
    )
    qa_source: str = option(
        "--qa-source",
        default="auto",
        help="llm (the paper's way), rubric (SynthKitchen ground truth), or auto "
        "(rubric when every clip has ground truth).",
    )
    asr: str = option(
        "--asr",
        default="transcripts",
        help="Narration: transcripts (.srt/.vtt/.json by the video), whisper, none.",
    )
    tags: bool = option(
        "--tags/--no-tags", default=True, help="ImageNet object tags (EfficientNet-Lite0)."
    )
    captioner: str | None = option(
        "--captioner", default=None, help="Hugging Face image-to-text model id or folder (off)."
    )
    metadata: bool = option(
        "--metadata/--no-metadata", default=True, help="Use the clip list's metadata."
    )
    seed: int = option("--seed", default=0, help="Seed: same seed and inputs, same files.")
    batch_size: int = option("--batch-size", default=8, min=1, help="Prompts per LLM call.")
    # Not on the command line: settings that only library callers and tests change.
    prompt_version: int | None = None  # of the aggregation prompt (None: latest)
    qa_prompt_version: int | None = None
    max_new_tokens: int = 256
    pair_low: float = option(
        "--pair-low", default=0.5, help="Lowest description similarity of a pair."
    )
    pair_high: float = option(
        "--pair-high", default=0.95, help="Highest description similarity of a pair."
    )
    pairs_per_clip: int = option(
        "--pairs-per-clip", default=4, min=1, help="Most pairs any one clip joins."
    )
    embedder: str = "all-minilm-l6-v2"
    # Rubric QA: closed-form "same <category>?" QA (or none).
    same_questions: str = option(
        "--same-questions",
        default="none",
        help='Rubric QA only: also ask closed-form "same <category>? Answer YES or NO." '
        "questions. paraphrase: reworded questions, YES for an identical category; graded: "
        "DiffRank's own question for every category, YES with probability score/5; "
        "threshold: the same questions, YES when the score is at least 3; soft: the same "
        "questions, YES with answer_probability score/5 (a soft training target); none "
        "(default): the rubric's 3 QA per pair.",
    )
    filter: bool = option(
        "--filter/--no-filter", default=True, help="Filter QA (--no-filter: the paper's ablation)."
    )
    min_grounded: float = 0.6
    max_repeats: int = 3
    max_share: float = 0.01

    def __post_init__(self) -> None:
        from stepdiff.datagen.sources import ASR_MODES

        if not self.llm:  # frozen: the one field filled in after construction
            object.__setattr__(self, "llm", default_writer())

        if self.asr not in ASR_MODES:
            raise ConfigError(f"--asr {self.asr!r}: expected one of {', '.join(ASR_MODES)}")
        if self.qa_source not in QA_SOURCES:
            raise ConfigError(
                f"--qa-source {self.qa_source!r}: expected one of {', '.join(QA_SOURCES)}"
            )
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size {self.batch_size}: must be at least 1")
        from stepdiff.datagen.qa import SAME_QUESTION_MODES

        if self.same_questions not in SAME_QUESTION_MODES:
            raise ConfigError(
                f"--same-questions {self.same_questions!r}: expected one of "
                f"{', '.join(SAME_QUESTION_MODES)}"
            )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("out", "clips", "video_dir"):
            data[key] = None if data[key] is None else str(data[key])
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DatagenConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("out", "clips", "video_dir"):
            if values.get(key) is not None:
                values[key] = Path(values[key])
        return cls(**values)
