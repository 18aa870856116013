"""Pairing clips for difference QA (paper Sec. 3.2): same keystep, distinct source
videos, descriptions similar but not identical.

Similarity is the cosine of MiniLM sentence embeddings of the two step descriptions.
The band [low, high] keeps pairs an LLM can compare meaningfully:

- below ``low`` (default 0.5) the descriptions share little beyond the keystep, and the
  generated "differences" become a list of everything (unrelated pairs);
- above ``high`` (default 0.95) the descriptions are near paraphrases, and the LLM
  invents differences to have something to say (trivial pairs).

On SynthKitchen's descriptions, which share one sentence template, similarities run
0.6-0.99; on free-form LLM descriptions of real videos they run lower, so both ends of
the band are options.

Each clip joins at most ``per_clip`` pairs, so that a few generic clips do not dominate
the data. Selection is greedy over a seeded random order of clips, each taking random
in-band partners with spare capacity: deterministic for a seed, O(N) memory per keystep
(one similarity row at a time), and independent of the order of the input file.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stepdiff.datagen.records import PairRecord, make_pair_id
from stepdiff.errors import ConfigError

DEFAULT_LOW, DEFAULT_HIGH, DEFAULT_PER_CLIP = 0.5, 0.95, 4


@dataclass(frozen=True)
class PairSettings:
    """The similarity band, the per-clip cap and the seed."""

    low: float = DEFAULT_LOW
    high: float = DEFAULT_HIGH
    per_clip: int = DEFAULT_PER_CLIP
    seed: int = 0

    def __post_init__(self) -> None:
        if not -1.0 <= self.low <= self.high <= 1.0:
            raise ConfigError(
                f"similarity band [{self.low}, {self.high}]: need -1 <= low <= high <= 1"
            )
        if self.per_clip < 1:
            raise ConfigError(f"pairs per clip {self.per_clip}: must be at least 1")


@dataclass(frozen=True)
class DescribedClip:
    """What pairing needs of a described clip."""

    clip_id: str
    video_uid: str
    keystep: str


def select_pairs(
    clips: Sequence[DescribedClip], embeddings: np.ndarray, settings: PairSettings
) -> list[PairRecord]:
    """Pairs among ``clips`` (all of one keystep) whose unit-norm ``embeddings`` (N, E)
    have a cosine similarity inside the band; sorted by pair id.

    Every clip is in at most ``settings.per_clip`` pairs; the two clips of a pair come
    from different videos; which one is the reference is drawn at random.
    """
    if len({c.keystep for c in clips}) > 1:
        raise ValueError("select_pairs pairs clips of one keystep at a time")
    if len(clips) != len(embeddings):
        raise ValueError(f"{len(clips)} clips but {len(embeddings)} embeddings")
    if len(clips) < 2:
        return []
    keystep = clips[0].keystep
    rng = random.Random(f"stepdiff-pairs:{settings.seed}:{keystep}")
    # Sort first, so the result does not depend on the order clips were listed in.
    index = sorted(range(len(clips)), key=lambda i: clips[i].clip_id)
    clips = [clips[i] for i in index]
    vectors = np.asarray(embeddings, dtype=np.float32)[index]  # (N, E)
    videos = np.array([c.video_uid for c in clips])
    used = np.zeros(len(clips), dtype=np.int64)  # pairs each clip is in
    chosen: set[tuple[int, int]] = set()
    pairs = []
    order = list(range(len(clips)))
    rng.shuffle(order)
    for a in order:
        if used[a] >= settings.per_clip:
            continue
        similarity = np.round((vectors @ vectors[a]).astype(np.float64), 4)  # (N,) as stored
        eligible = (
            (similarity >= settings.low)
            & (similarity <= settings.high)
            & (videos != videos[a])
            & (used < settings.per_clip)
        )
        partners = [
            int(b) for b in np.flatnonzero(eligible) if (min(a, b), max(a, b)) not in chosen
        ]
        rng.shuffle(partners)
        for b in partners:
            if used[a] >= settings.per_clip:
                break
            chosen.add((min(a, b), max(a, b)))
            used[a] += 1
            used[b] += 1
            reference, candidate = (a, b) if rng.random() < 0.5 else (b, a)
            ref_id, cand_id = clips[reference].clip_id, clips[candidate].clip_id
            pairs.append(
                PairRecord(
                    pair_id=make_pair_id(ref_id, cand_id),
                    reference=ref_id,
                    candidate=cand_id,
                    keystep=keystep,
                    similarity=round(float(similarity[b]), 4),
                )
            )
    return sorted(pairs, key=lambda p: p.pair_id)
