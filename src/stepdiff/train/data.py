"""Training records (pair QA, DiffRank- and DiffMCQ-style items, interleaved, single
video, clip descriptions) and the mixture sampler.

The sampler is a pure function of (seed, micro-batch index), so a resumed run draws
exactly the batches an uninterrupted run would have drawn.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepdiff.data.formats import DiffMCQItem, DiffRankItem, FieldError, read_jsonl
from stepdiff.data.questions import SAME_ANSWERS, difference_question, same_question
from stepdiff.errors import DataFormatError


@dataclass(frozen=True)
class TrainingRecord:
    """One training sample: clip ids in prompt order and its text.

    pair_qa: clips (reference, candidate), question, answer.
    single_video: clips (clip,), question, answer.
    interleaved: clips (c1, c2, ...), narrations (n1, n2, ...), one per clip.
    pair_rank: a DiffRank item of training clips: clips (reference, t1, t2, t3, t4),
    DiffRank's question about its category, answer "YES" with alternative "NO", and the
    targets' similarity ``scores`` to the reference. Each target is one (reference,
    target) row, and the loss ranks the rows' P(YES) by the scores.
    pair_choice: a DiffMCQ item of training clips: clips (r1, c1, ..., r4, c4), DiffMCQ's
    question about its category, the difference caption as answer, and ``scores`` 1 for
    the right pair, 0 for the others. Each pair is one row, and the loss ranks the
    caption's likelihood highest with the right pair.

    descriptions: clips (clip,) and its description as ordered ``fields`` ("cook", "two",
    "white", "onions;", ...), joined by spaces; a free-text description is one field.
    No LLM reads them: the words head learns to spell each field in fixed video-token
    slots (stepdiff.train.describe).

    A QA record may give its answer a probability (``answer_probability``) with the
    ``alternative`` that has the rest, e.g. "YES" at 0.6 and "NO": a soft target for a
    closed-form answer, scored on the answers' first tokens.
    """

    kind: str
    clips: tuple[str, ...]
    question: str = ""
    answer: str = ""
    narrations: tuple[str, ...] = ()
    answer_probability: float | None = None
    alternative: str = ""
    scores: tuple[float, ...] = ()
    fields: tuple[str, ...] = ()
    source: str = field(default="", compare=False)  # "file:line" it was read from

    def option_pairs(self) -> list[tuple[str, str]]:
        """A ranking item's (reference, candidate) rows, in order."""
        if self.kind == "pair_rank":
            return [(self.clips[0], target) for target in self.clips[1:]]
        return list(zip(self.clips[::2], self.clips[1::2], strict=True))


def _text(obj: dict[str, Any], name: str, where: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value.strip():
        raise DataFormatError(f"{where}: field {name!r} must be a non-empty string")
    return value.strip()


def _texts(obj: dict[str, Any], name: str, where: str) -> tuple[str, ...]:
    value = obj.get(name)
    if not isinstance(value, list) or not value:
        raise DataFormatError(f"{where}: field {name!r} must be a non-empty list of strings")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise DataFormatError(f"{where}: field {name!r}[{index}] must be a non-empty string")
    return tuple(item.strip() for item in value)


def _soft_answer(obj: dict[str, Any], where: str) -> dict[str, Any]:
    """The optional soft-target fields of a QA record, checked."""
    if "answer_probability" not in obj and "alternative" not in obj:
        return {}
    probability = obj.get("answer_probability")
    if (
        isinstance(probability, bool)
        or not isinstance(probability, (int, float))
        or not 0 <= probability <= 1
    ):
        raise DataFormatError(
            f"{where}: field 'answer_probability' must be a number from 0 to 1 "
            "(given with 'alternative')"
        )
    alternative = _text(obj, "alternative", where)
    if alternative == _text(obj, "answer", where):
        raise DataFormatError(f"{where}: field 'alternative' repeats the answer")
    return {"answer_probability": float(probability), "alternative": alternative}


def _rank_record(obj: dict[str, Any], where: str) -> TrainingRecord:
    """A DiffRank item (the official format, checked as the benchmark's) as a record."""
    try:
        item = DiffRankItem.from_json(obj)
    except FieldError as error:
        raise DataFormatError(f"{where}: {error}") from None
    yes, no = SAME_ANSWERS
    return TrainingRecord(
        "pair_rank",
        (item.reference, *item.targets),
        same_question(item.category),
        yes,
        alternative=no,
        scores=tuple(float(score) for score in item.scores),
    )


def _choice_record(obj: dict[str, Any], where: str) -> TrainingRecord:
    """A DiffMCQ item (the official format, checked as the benchmark's) as a record."""
    try:
        item = DiffMCQItem.from_json(obj)
    except FieldError as error:
        raise DataFormatError(f"{where}: {error}") from None
    return TrainingRecord(
        "pair_choice",
        tuple(clip for pair in item.options for clip in pair),
        difference_question(item.category),
        item.difference,
        scores=tuple(float(index == item.gold_index) for index in range(len(item.options))),
    )


def _description_record(obj: dict[str, Any], where: str) -> TrainingRecord:
    """``{clip_id, fields: [...]}`` or ``{clip_id, description}`` (datagen's
    descriptions.jsonl: one field)."""
    clip = _text(obj, "clip_id", where)
    if "fields" in obj:
        fields = _texts(obj, "fields", where)
        # A field that starts a new line keeps its newline: it says how the text joins.
        fields = tuple(
            "\n" + text if raw.lstrip(" \t").startswith("\n") else text
            for raw, text in zip(obj["fields"], fields, strict=True)
        )
        return TrainingRecord("descriptions", (clip,), fields=fields)
    return TrainingRecord("descriptions", (clip,), fields=(_text(obj, "description", where),))


def _parse(kind: str, obj: dict[str, Any], where: str) -> TrainingRecord:
    if kind == "descriptions":
        return _description_record(obj, where)
    if kind == "pair_rank":
        return _rank_record(obj, where)
    if kind == "pair_choice":
        return _choice_record(obj, where)
    if kind in ("pair_qa", "single_video"):
        names = ("reference", "candidate") if kind == "pair_qa" else ("clip_id",)
        return TrainingRecord(
            kind,
            tuple(_text(obj, name, where) for name in names),
            _text(obj, "question", where),
            _text(obj, "answer", where),
            **_soft_answer(obj, where),
        )
    clips = _texts(obj, "clips", where)
    narrations = _texts(obj, "narrations", where)
    if len(clips) != len(narrations):
        raise DataFormatError(
            f"{where}: {len(clips)} clips but {len(narrations)} narrations (one per clip)"
        )
    return TrainingRecord(kind, clips, narrations=narrations)


def read_training_records(
    kind: str, paths: Sequence[str | Path], max_items: int | None = None
) -> list[TrainingRecord]:
    """Every record of one kind from its files, checked field by field (file:line errors)."""
    records: list[TrainingRecord] = []
    for path in paths:
        for line, obj in read_jsonl(path):
            where = f"{path}:{line}"
            records.append(dataclasses.replace(_parse(kind, obj, where), source=where))
    if kind == "interleaved":
        lengths = {len(r.clips) for r in records}
        if len(lengths) > 1:
            raise DataFormatError(
                f"{', '.join(map(str, paths))}: interleaved sequences must all have the same "
                f"number of clips (found {sorted(lengths)})"
            )
    if not records:
        raise DataFormatError(f"{', '.join(map(str, paths))}: no {kind} records (empty dataset)")
    return records[:max_items] if max_items else records


class MixtureSampler:
    """Micro-batch index -> (kind, item indices), deterministic in (seed, index).

    Each micro-batch holds one kind (kinds may differ in videos per sample); the kind is
    drawn with the mixture weights. Within a kind, items come from a fresh permutation
    per epoch, so every item is seen once before any is seen twice. ``batch_size``: items
    per micro-batch, for every kind or per kind (a ranking item holds several rows).
    """

    def __init__(
        self,
        sizes: dict[str, int],
        weights: dict[str, float],
        batch_size: int | dict[str, int],
        seed: int,
    ) -> None:
        self.kinds = sorted(k for k in weights if weights[k] > 0 and sizes.get(k, 0) > 0)
        if not self.kinds:
            raise ValueError("no kind has both items and a positive weight")
        self.sizes = sizes
        self.weights = [weights[k] for k in self.kinds]
        self.batch_sizes = (
            batch_size if isinstance(batch_size, dict) else dict.fromkeys(self.kinds, batch_size)
        )
        self.seed = seed
        self._kind_of: list[str] = []  # memo: kind of micro-batch 0, 1, ...
        self._ordinal: list[int] = []  # memo: how many earlier micro-batches had that kind
        self._seen: dict[str, int] = dict.fromkeys(self.kinds, 0)
        self._permutations: dict[tuple[str, int], list[int]] = {}

    def kind(self, index: int) -> str:
        while len(self._kind_of) <= index:
            rng = random.Random(f"{self.seed}:kind:{len(self._kind_of)}")
            kind = rng.choices(self.kinds, weights=self.weights)[0]
            self._kind_of.append(kind)
            self._ordinal.append(self._seen[kind])
            self._seen[kind] += 1
        return self._kind_of[index]

    def _permutation(self, kind: str, epoch: int) -> list[int]:
        key = (kind, epoch)
        if key not in self._permutations:
            order = list(range(self.sizes[kind]))
            random.Random(f"{self.seed}:{kind}:epoch:{epoch}").shuffle(order)
            self._permutations = {k: v for k, v in self._permutations.items() if k[0] != kind}
            self._permutations[key] = order
        return self._permutations[key]

    def batch(self, index: int) -> tuple[str, list[int]]:
        """The kind and item indices of micro-batch ``index``."""
        kind = self.kind(index)
        ordinal = self._ordinal[index]
        size = self.sizes[kind]
        batch_size = self.batch_sizes[kind]
        start = ordinal * batch_size
        items = []
        for position in range(start, start + batch_size):
            items.append(self._permutation(kind, position // size)[position % size])
        return kind, items
