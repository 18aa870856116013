"""The pipeline's stages (paper Sec. 3.2) on top of the sharded runner
(:mod:`.pipeline` runs them).

=============  =========================  ============================  ==============
stage          reads                      writes                        item (shard key)
=============  =========================  ============================  ==============
describe       the clip list              descriptions.jsonl            clip id
pairs          descriptions               pairs.jsonl                   keystep
qa             pairs, descriptions        qa_raw.jsonl                  pair id
filter         qa_raw, descriptions,      qa.jsonl, qa_dropped.jsonl    pair id
               pairs
interleaved    descriptions (+ clips)     interleaved.jsonl,            video uid
                                          single_video.jsonl
=============  =========================  ============================  ==============

Each stage also writes ``<stage>_report.json`` (counts, reasons, examples, timings);
``stats`` sums them up. Models load in ``setup``, which the runner calls only when some
item is left, so rerunning a finished pipeline loads nothing.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stepdiff.datagen.config import DatagenConfig
from stepdiff.datagen.records import (
    ClipEntry,
    DescriptionRecord,
    PairRecord,
    QARecord,
    default_video_dir,
    read_clip_list,
    read_records,
)
from stepdiff.datagen.runner import (
    ItemResult,
)
from stepdiff.digests import file_digest
from stepdiff.errors import ConfigError

STAGE_NAMES = ("describe", "pairs", "qa", "filter", "interleaved")
TEMPLATE_PROMPT_ID, TEMPLATE_MODEL = "template", "none"


def resolve_generator(spec: str) -> Any:
    """A text generator from ``--llm``: ``none`` -> None (rule-based text instead);
    ``py:module:factory`` -> ``factory()`` from your own code (any object with
    ``name`` and ``generate``; tests use it for scripted generators); anything else
    -> :func:`stepdiff.llm.textgen.build_text_generator`."""
    if spec == "none":
        return None
    if spec.startswith("py:"):
        module_name, _, attribute = spec[3:].rpartition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError, ValueError) as error:
            raise ConfigError(f"--llm {spec!r}: cannot import ({error})") from None
        return factory()
    from stepdiff.llm.textgen import build_text_generator

    return build_text_generator(spec)


def _short(reason: str, limit: int = 60, mask: bool = True) -> str:
    """An error message as a report key: first clause, numbers masked (``mask``), so
    replies that fail the same way count together."""
    head = re.split(r"[:(]", reason, maxsplit=1)[0].strip() or reason
    return (re.sub(r"\d+", "N", head) if mask else head)[:limit]


# --- the base stage --------------------------------------------------------------------


class _Stage:
    """Shared plumbing: options and input digests for the fingerprint, config JSON."""

    name = ""
    outputs: tuple[str, ...] = ()
    options: tuple[str, ...] = ()  # DatagenConfig fields the outputs depend on
    batch_size = 1

    def __init__(self, config: DatagenConfig) -> None:
        self.config = config
        self.out = Path(config.out)
        self._fingerprint: dict[str, Any] | None = None

    def input_files(self) -> dict[str, Path]:
        return {}

    def fingerprint(self) -> dict[str, Any]:
        if self._fingerprint is None:
            inputs = {}
            for name, path in self.input_files().items():
                if not path.is_file():
                    raise ConfigError(
                        f"{self.name}: needs {path} (run the stage that writes it first)"
                    )
                inputs[name] = file_digest(path)
            options = {k: _jsonable(getattr(self.config, k)) for k in self.options}
            self._fingerprint = {"options": options, "inputs": inputs}
        return self._fingerprint

    def config_json(self) -> dict[str, Any]:
        return self.config.to_json()

    def setup(self) -> None:
        pass

    def _path(self, name: str) -> Path:
        return self.out / name


def _jsonable(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def clips_path(config: DatagenConfig) -> Path | None:
    """``--clips``, or the clip list the describe stage recorded in its report."""
    if config.clips is not None:
        return Path(config.clips)
    report = Path(config.out) / "describe_report.json"
    if report.is_file():
        recorded = json.loads(report.read_text(encoding="utf-8"))["config"].get("clips")
        return Path(recorded) if recorded else None
    return None


def _descriptions(path: Path) -> list[dict[str, Any]]:
    return read_records(path, ("clip_id", "video_uid", "keystep", "description", "sources"))


# --- 1. describe -----------------------------------------------------------------------


class DescribeStage(_Stage):
    """Clip list -> ``descriptions.jsonl``: sources per clip, aggregated by the LLM (or
    :func:`~stepdiff.datagen.aggregate.template_description` with ``--llm none``)."""

    name = "describe"
    outputs = ("descriptions",)
    options = ("split", "asr", "tags", "captioner", "metadata", "llm", "prompt_version", "seed")

    def __init__(self, config: DatagenConfig) -> None:
        super().__init__(config)
        clips = clips_path(config)  # --clips, or the list an earlier run recorded
        if clips is None:
            raise ConfigError("describe: needs --clips FILE (a JSONL with clip_id and keystep)")
        self.clips = clips
        self.video_dir = Path(config.video_dir or default_video_dir(self.clips))
        self.batch_size = config.batch_size
        self._items: list[tuple[str, Any]] | None = None

    def input_files(self) -> dict[str, Path]:
        return {"clips": self.clips}

    def config_json(self) -> dict[str, Any]:
        return {**super().config_json(), "clips": str(self.clips)}

    def items(self) -> list[tuple[str, Any]]:
        if self._items is None:
            entries = read_clip_list(self.clips, self.config.split)
            self._items = [(entry.clip_id, entry) for entry in entries]
        return self._items

    def record_key(self, output: str, record: dict[str, Any]) -> str:
        return record["clip_id"]

    def setup(self) -> None:
        from stepdiff.datagen.sources import FrameCaptioner, SourceSet

        tagger = transcriber = None
        if self.config.tags:
            from stepdiff.encoders.tags import ObjectTagger

            tagger = ObjectTagger()
        if self.config.asr == "whisper":
            from stepdiff.datagen.asr import WhisperTranscriber

            transcriber = WhisperTranscriber()
        captioner = None
        if self.config.captioner:
            captioner = FrameCaptioner(self.config.captioner)
            captioner.load()  # fails here, once, rather than on every clip
        self.sources = SourceSet(
            self.video_dir,
            tagger=tagger,
            captioner=captioner,
            asr=self.config.asr,
            transcriber=transcriber,
            metadata=self.config.metadata,
        )
        self.generator = resolve_generator(self.config.llm)

    def process(self, batch: list[tuple[str, Any]]) -> list[ItemResult]:
        from stepdiff.datagen.aggregate import (
            StepSources,
            aggregate_descriptions,
            template_description,
        )

        entries: list[ClipEntry] = [entry for _, entry in batch]
        evidence = [self.sources.collect(entry) for entry in entries]
        sources = [
            StepSources(e.clip_id, e.keystep, ev.tags, ev.captions, ev.narration, ev.metadata)
            for e, ev in zip(entries, evidence, strict=True)
        ]
        if self.generator is None:
            texts = [(template_description(s), None) for s in sources]
            prompt_id, model = TEMPLATE_PROMPT_ID, TEMPLATE_MODEL
        else:
            results = aggregate_descriptions(
                sources,
                self.generator,
                prompt_version=self.config.prompt_version,
                seed=self.config.seed,
                batch_size=len(sources),
            )
            texts = [(r.description, r.error) for r in results]
            prompt_id, model = results[0].prompt_id, results[0].model
        out = []
        for entry, ev, (text, error) in zip(entries, evidence, texts, strict=True):
            record = DescriptionRecord(
                clip_id=entry.clip_id,
                video_uid=entry.video_uid,
                keystep=entry.keystep,
                description=text,
                sources=ev.to_json(),
                prompt_id=prompt_id,
                model=model,
                seed=self.config.seed,
                error=error,
            )
            counts = {f"issue: {_short(issue, mask=False)}": 1 for issue in ev.issues}
            examples = [
                {
                    "reason": f"issue: {_short(issue, mask=False)}",
                    "clip_id": entry.clip_id,
                    "detail": issue,
                }
                for issue in ev.issues
            ]
            if error is None:
                counts["described"] = 1
            else:
                counts[f"failed: {_short(error)}"] = 1
                examples.append(
                    {"reason": f"failed: {_short(error)}", "clip_id": entry.clip_id, "error": error}
                )
            out.append(
                ItemResult(entry.clip_id, {"descriptions": [record.to_json()]}, counts, examples)
            )
        return out


# --- 2. pairs ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _text_embedder(spec: str) -> Any:
    """One frozen sentence embedder per process (runs in one process, such as Ray
    workers or tests, reuse it instead of reloading it)."""
    from stepdiff.text_embed import TextEmbedder

    return TextEmbedder(spec)


class PairsStage(_Stage):
    """``descriptions.jsonl`` -> ``pairs.jsonl``, one item per keystep."""

    name = "pairs"
    outputs = ("pairs",)
    options = ("pair_low", "pair_high", "pairs_per_clip", "seed", "embedder")

    def input_files(self) -> dict[str, Path]:
        return {"descriptions": self._path("descriptions.jsonl")}

    def items(self) -> list[tuple[str, Any]]:
        by_keystep: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in _descriptions(self._path("descriptions.jsonl")):
            by_keystep[record["keystep"]].append(record)
        return list(by_keystep.items())

    def record_key(self, output: str, record: dict[str, Any]) -> str:
        return record["keystep"]

    def setup(self) -> None:
        self.embedder = _text_embedder(self.config.embedder)

    def process(self, batch: list[tuple[str, Any]]) -> list[ItemResult]:
        from stepdiff.datagen.pairs import DescribedClip, PairSettings, select_pairs

        settings = PairSettings(
            self.config.pair_low,
            self.config.pair_high,
            self.config.pairs_per_clip,
            self.config.seed,
        )
        results = []
        for keystep, records in batch:
            described = [r for r in records if r["description"]]
            clips = [DescribedClip(r["clip_id"], r["video_uid"], keystep) for r in described]
            embeddings = self.embedder([r["description"] for r in described]).numpy()  # (N, E)
            pairs = select_pairs(clips, embeddings, settings)
            counts = {
                "clips": len(described),
                "skipped_no_description": len(records) - len(described),
                "pairs": len(pairs),
            }
            results.append(ItemResult(keystep, {"pairs": [p.to_json() for p in pairs]}, counts))
        return results


# --- 3. qa -----------------------------------------------------------------------------


def _load_specs(config: DatagenConfig) -> dict[str, Any]:
    """SynthKitchen ground truth of the clip list, by clip id (empty if it has none)."""
    path = clips_path(config)
    if path is None or not path.is_file():
        return {}
    return {e.clip_id: e.spec for e in read_clip_list(path) if e.spec is not None}


class QAStage(_Stage):
    """``pairs.jsonl`` -> ``qa_raw.jsonl``: LLM-written QA, or rubric QA from ground
    truth (``--qa-source auto`` picks rubric when every clip has ground truth)."""

    name = "qa"
    outputs = ("qa_raw",)

    def __init__(self, config: DatagenConfig) -> None:
        super().__init__(config)
        self.source = config.qa_source
        self._specs: dict[str, Any] | None = None
        if self.source == "auto":
            self.source = "rubric" if self._has_ground_truth() else "llm"
        if config.same_questions != "none" and self.source != "rubric":
            raise ConfigError(
                "--same-questions needs rubric QA (SynthKitchen ground truth): "
                f"--qa-source is {self.source!r}"
            )
        self.options: tuple[str, ...] = (
            ("seed",)
            if self.source == "rubric"
            else ("llm", "qa_prompt_version", "seed", "max_new_tokens")
        )
        if config.same_questions != "none":  # only then, so other runs keep their fingerprint
            self.options += ("same_questions",)
        self.batch_size = 64 if self.source == "rubric" else config.batch_size
        self._items: list[tuple[str, Any]] | None = None

    def specs(self) -> dict[str, Any]:
        if self._specs is None:
            self._specs = _load_specs(self.config)
        return self._specs

    def _has_ground_truth(self) -> bool:
        path = self._path("descriptions.jsonl")
        if not path.is_file():
            return False
        specs = self.specs()
        return bool(specs) and all(d["clip_id"] in specs for d in _descriptions(path))

    def fingerprint(self) -> dict[str, Any]:
        fingerprint = super().fingerprint()
        fingerprint["options"]["qa_source"] = self.source
        if self.source == "llm":
            # The prompt the version resolves to: a new default version (the latest) must
            # not resume replies written with the old one.
            from stepdiff.datagen.prompting import load_prompt
            from stepdiff.datagen.qa import QA_PROMPT

            fingerprint["options"]["prompt"] = load_prompt(
                QA_PROMPT, self.config.qa_prompt_version
            ).id
        return fingerprint

    def input_files(self) -> dict[str, Path]:
        files = {
            "pairs": self._path("pairs.jsonl"),
            "descriptions": self._path("descriptions.jsonl"),
        }
        path = clips_path(self.config)
        if self.source == "rubric" and path is not None:
            files["clips"] = path
        return files

    def items(self) -> list[tuple[str, Any]]:
        if self._items is None:
            required = ("pair_id", "reference", "candidate", "keystep", "similarity")
            pairs = read_records(self._path("pairs.jsonl"), required)
            self._items = [(p["pair_id"], PairRecord(**{k: p[k] for k in required})) for p in pairs]
        return self._items

    def record_key(self, output: str, record: dict[str, Any]) -> str:
        return record["pair_id"]

    def setup(self) -> None:
        if self.source == "rubric":
            specs = self.specs()
            missing = [
                c for _, p in self.items() for c in (p.reference, p.candidate) if c not in specs
            ]
            if missing:
                raise ConfigError(
                    f"--qa-source rubric needs SynthKitchen ground truth, and clip {missing[0]!r} "
                    "has none in the clip list (give --clips with SynthKitchen's clips.jsonl)"
                )
        else:
            self.generator = resolve_generator(self.config.llm)
            if self.generator is None:
                raise ConfigError("--qa-source llm needs an LLM: --llm none cannot write QA")
            self.descriptions = {
                d["clip_id"]: d["description"]
                for d in _descriptions(self._path("descriptions.jsonl"))
            }

    def process(self, batch: list[tuple[str, Any]]) -> list[ItemResult]:
        from stepdiff.datagen.qa import PairText, generate_llm_qa, rubric_record

        pairs: list[PairRecord] = [pair for _, pair in batch]
        if self.source == "rubric":
            specs = self.specs()
            records = [
                rubric_record(
                    p,
                    specs[p.reference],
                    specs[p.candidate],
                    self.config.seed,
                    same_questions=self.config.same_questions,
                )
                for p in pairs
            ]
        else:
            texts = [
                PairText(p, self.descriptions[p.reference], self.descriptions[p.candidate])
                for p in pairs
            ]
            records = generate_llm_qa(
                texts,
                self.generator,
                prompt_version=self.config.qa_prompt_version,
                seed=self.config.seed,
                max_new_tokens=self.config.max_new_tokens,
            )
        results = []
        for record in records:
            counts = {"qa": len(record.qa)}
            examples = []
            if record.error:
                reason = f"failed: {_short(record.error)}"
                counts[reason] = 1
                examples.append(
                    {
                        "reason": reason,
                        "pair_id": record.pair_id,
                        "error": record.error,
                        "raw": record.raw[:500],
                    }
                )
            else:
                counts["parsed"] = 1
            results.append(
                ItemResult(record.pair_id, {"qa_raw": [record.to_json()]}, counts, examples)
            )
        return results


# --- 4. filter -------------------------------------------------------------------------


class FilterStage(_Stage):
    """``qa_raw.jsonl`` -> ``qa.jsonl`` (one QA a line), ``qa_dropped.jsonl`` (each
    dropped QA with its reason) and ``filter_report.json``."""

    name = "filter"
    outputs = ("qa", "qa_dropped")
    options = ("filter", "min_grounded", "max_repeats", "max_share")
    batch_size = 256

    def input_files(self) -> dict[str, Path]:
        return {
            "qa_raw": self._path("qa_raw.jsonl"),
            "descriptions": self._path("descriptions.jsonl"),
            "pairs": self._path("pairs.jsonl"),
        }

    def items(self) -> list[tuple[str, Any]]:
        required = ("pair_id", "reference", "candidate", "qa", "prompt_id", "model", "seed")
        raw = read_records(self._path("qa_raw.jsonl"), required)
        return [(r["pair_id"], r) for r in raw]

    def record_key(self, output: str, record: dict[str, Any]) -> str:
        return record["pair_id"]

    def setup(self) -> None:
        from stepdiff.datagen.filtering import FilterSettings, PairQA, judge_dataset

        descriptions = {
            d["clip_id"]: d["description"] or ""
            for d in _descriptions(self._path("descriptions.jsonl"))
        }
        self.keysteps = {
            p["pair_id"]: p["keystep"]
            for p in read_records(self._path("pairs.jsonl"), ("pair_id", "keystep"))
        }
        settings = FilterSettings(
            enabled=self.config.filter,
            min_grounded=self.config.min_grounded,
            max_repeats=self.config.max_repeats,
            max_share=self.config.max_share,
        )
        pairs = [
            PairQA(
                r["pair_id"],
                [(qa["question"], qa["answer"]) for qa in r["qa"]],
                descriptions.get(r["reference"], ""),
                descriptions.get(r["candidate"], ""),
            )
            for _, r in self.items()
        ]
        # The whole dataset, even in one shard: "duplicate of an earlier pair" needs it.
        self.verdicts = judge_dataset(pairs, settings)

    def process(self, batch: list[tuple[str, Any]]) -> list[ItemResult]:
        results = []
        for pair_id, raw in batch:
            kept, dropped, examples = [], [], []
            counts = {"qa_in": len(raw["qa"]), "kept": 0}
            for index, (qa, verdict) in enumerate(
                zip(raw["qa"], self.verdicts[pair_id], strict=True)
            ):
                if not verdict.keep:
                    reason = f"dropped: {verdict.reason}"
                    counts[reason] = counts.get(reason, 0) + 1
                    example = {"reason": reason, "detail": verdict.detail, "pair_id": pair_id}
                    examples.append({**example, **qa})
                    dropped.append({"qa_id": f"{pair_id}#{index}", **example, **qa})
                    continue
                counts["kept"] += 1
                kept.append(
                    QARecord(
                        qa_id=f"{pair_id}#{index}",
                        pair_id=pair_id,
                        reference=raw["reference"],
                        candidate=raw["candidate"],
                        question=qa["question"],
                        answer=qa["answer"],
                        keystep=self.keysteps.get(pair_id, ""),
                        source_clips=[raw["reference"], raw["candidate"]],
                        prompt_id=raw["prompt_id"],
                        model=raw["model"],
                        seed=raw["seed"],
                        answer_probability=qa.get("answer_probability"),
                        alternative=qa.get("alternative"),
                    ).to_json()
                )
            results.append(
                ItemResult(pair_id, {"qa": kept, "qa_dropped": dropped}, counts, examples)
            )
        return results


# --- 5. interleaved --------------------------------------------------------------------


class InterleavedStage(_Stage):
    """``descriptions.jsonl`` -> ``interleaved.jsonl`` and ``single_video.jsonl``."""

    name = "interleaved"
    outputs = ("interleaved", "single_video")
    batch_size = 64

    def input_files(self) -> dict[str, Path]:
        files = {"descriptions": self._path("descriptions.jsonl")}
        path = clips_path(self.config)
        if path is not None and path.is_file():
            files["clips"] = path
        return files

    def items(self) -> list[tuple[str, Any]]:
        by_video: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in _descriptions(self._path("descriptions.jsonl")):
            by_video[record["video_uid"]].append(record)
        return list(by_video.items())

    def record_key(self, output: str, record: dict[str, Any]) -> str:
        return record["video_uid"]

    def setup(self) -> None:
        self.specs = _load_specs(self.config)

    def process(self, batch: list[tuple[str, Any]]) -> list[ItemResult]:
        from stepdiff.datagen.interleaved import (
            interleaved_windows,
            single_video_records,
            time_order,
        )

        results = []
        for video_uid, records in batch:
            by_clip = {r["clip_id"]: r for r in records}
            narrations = {c: r["sources"].get("narration", "") for c, r in by_clip.items()}
            windows = interleaved_windows(video_uid, narrations)
            single = [
                s.to_json()
                for c in time_order(list(by_clip))
                for s in single_video_records(by_clip[c], self.specs.get(c))
            ]
            counts = {
                "clips": len(records),
                "clips_with_narration": sum(bool(n) for n in narrations.values()),
                "windows": len(windows),
            }
            outputs = {"interleaved": [w.to_json() for w in windows], "single_video": single}
            results.append(ItemResult(video_uid, outputs, counts))
        return results


STAGES: dict[str, Callable[[DatagenConfig], _Stage]] = {
    "describe": DescribeStage,
    "pairs": PairsStage,
    "qa": QAStage,
    "filter": FilterStage,
    "interleaved": InterleavedStage,
}


def build_stage(name: str, config: DatagenConfig) -> _Stage:
    if name not in STAGES:
        raise ConfigError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    return STAGES[name](config)
