"""Build a SynthKitchen benchmark: videos, clip ground truth, DiffCap/DiffMCQ/DiffRank.

Splits
------
Clips are grouped in *source videos* (2-3 keysteps of a recipe each) and whole videos
are assigned to splits, so ``train`` and the benchmark splits never share a video:

- ``train``: training clips (``train_pairs.jsonl``, and DiffRank and DiffMCQ items of
  training clips in ``diffrank_train.jsonl`` and ``diffmcq_train.jsonl``, for ranking
  losses); no DiffCap file.
- ``test``: the in-distribution benchmark, from videos disjoint from train.
- ``heldout``: compositional generalisation. Every heldout clip uses a (tool,
  ingredient) combination of its keystep from
  :func:`~stepdiff.synthkitchen.world.heldout_combinations`; train and test clips never
  do. Each tool and ingredient alone is still seen in train.

Files written in ``out_dir`` (each atomically; a rebuild re-renders only videos whose
clips changed)::

    videos/<uid>.mp4, videos/<uid>.json   source videos and their narration transcripts
    clips.jsonl                           every ClipSpec, with its split
    diffcap_<split>.jsonl                 {"reference","candidate","category","text"}
    diffmcq_<split>.jsonl                 {"difference","category","options","answer"}
    diffrank_<split>.jsonl                {"reference","targets","category","scores"}
    train_pairs.jsonl                     train clip pairs with per-category GT
    diffrank_train.jsonl                  DiffRank items of train clips (training data)
    diffmcq_train.jsonl                   DiffMCQ items of train clips (training data)
    descriptions_<split>.jsonl            {"clip_id","fields"}: each clip's structured
                                          description (train: training data; all splits)
    summary.json                          counts per split/task/category, seed, size

for <split> in (test, heldout). The JSONL files are byte-identical for the same seed
and size, whether or not videos are rendered.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import random
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepdiff.data.categories import NUM_CHOICES
from stepdiff.data.formats import write_atomic
from stepdiff.synthkitchen.descriptions import description_rows
from stepdiff.synthkitchen.differences import CategoryComparison, compare, similarity_scores
from stepdiff.synthkitchen.render import (
    DEFAULT_FPS,
    DEFAULT_SIZE,
    RENDER_VERSION,
    espeak_available,
    is_current,
    layout_video,
    render_video,
)
from stepdiff.synthkitchen.world import (
    CATEGORIES,
    RECIPE_ORDER,
    ClipSpec,
    heldout_combinations,
    keystep_schedule,
    sample_clip,
    sample_prototypes,
)

BENCHMARK_SPLITS = ("test", "heldout")
TASKS = ("diffcap", "diffmcq", "diffrank")
ProgressCallback = Callable[[int, int, str], None]
"""Called as progress(done, total, video_uid) after each video is rendered or reused."""


@dataclass(frozen=True)
class BuildSize:
    """How much to build. Videos per split, clips per video and per-task row caps."""

    train_videos: int
    test_videos: int
    heldout_videos: int
    clips_per_video: int = 3
    prototypes_per_keystep: int = 3
    rows_per_category: int = 12  # DiffCap and DiffMCQ rows per (split, category)
    rank_groups_tried: int = 32  # target groups tried per DiffRank reference
    train_pairs_per_clip: int = 4
    train_rank_groups: int = 4  # target groups per training DiffRank reference
    train_choice_per_category: int = 24  # training DiffMCQ items per category


SIZES: dict[str, BuildSize] = {
    # 90 clips.
    "small": BuildSize(train_videos=10, test_videos=10, heldout_videos=10),
    # Training-sized train split (300 clips), evaluation splits small enough for a CPU.
    "medium": BuildSize(
        train_videos=100,
        test_videos=20,
        heldout_videos=20,
        rows_per_category=24,
        train_pairs_per_clip=6,
        train_choice_per_category=2000,
    ),
    # 10x the clips.
    "large": BuildSize(
        train_videos=100,
        test_videos=100,
        heldout_videos=100,
        rows_per_category=120,
        train_pairs_per_clip=6,
        train_choice_per_category=2000,
    ),
}


@dataclass
class BuildSummary:
    """What :func:`build_benchmark` wrote (``summary.json`` holds :meth:`to_dict`)."""

    out_dir: Path
    size: str
    seed: int
    videos: dict[str, int]
    clips: dict[str, int]
    rows: dict[str, dict[str, dict[str, int]]]  # task -> split -> category -> rows
    train_pairs: int
    rendered: bool
    audio: bool
    videos_rendered: int = 0  # freshly rendered in this build
    videos_reused: int = 0  # already up to date from an earlier build
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The deterministic part (no timings or resume counts): summary.json."""
        return {
            "generator": "synthkitchen",
            "size": self.size,
            "seed": self.seed,
            "render_version": RENDER_VERSION,
            "rendered": self.rendered,
            "audio": self.audio,
            "videos": self.videos,
            "clips": self.clips,
            "rows": {
                task: {
                    split: {**by_category, "total": sum(by_category.values())}
                    for split, by_category in by_split.items()
                }
                for task, by_split in self.rows.items()
            },
            "train_pairs": self.train_pairs,
            "heldout_combinations": {
                k: sorted(map(list, heldout_combinations(k))) for k in RECIPE_ORDER
            },
            "files": self.files,
        }


# --- sampling the clips ------------------------------------------------------------------


def sample_clips(size: BuildSize, seed: int) -> list[ClipSpec]:
    """Every clip of a build, placed on its video's timeline, sorted by clip id.

    Video uids are shuffled across splits so that a uid does not reveal its split.
    """
    rng = random.Random(f"synthkitchen:{seed}:clips")
    prototypes = sample_prototypes(rng, size.prototypes_per_keystep)
    counts = {"train": size.train_videos, "test": size.test_videos, "heldout": size.heldout_videos}
    numbers = list(range(sum(counts.values())))
    rng.shuffle(numbers)
    clips: list[ClipSpec] = []
    for split, count in counts.items():
        for keysteps in keystep_schedule(count, size.clips_per_video, offset=len(clips)):
            uid = f"sk_v{numbers.pop():04d}"
            video = [
                sample_clip(
                    rng,
                    rng.choice(prototypes[keystep]),
                    video_uid=uid,
                    split=split,
                    seed=rng.getrandbits(31),
                )
                for keystep in keysteps
            ]
            clips.extend(layout_video(video)[0])
    return sorted(clips, key=lambda c: (c.video_uid, c.start))


# --- benchmark rows ----------------------------------------------------------------------


class _Pairs:
    """Ordered (reference, candidate) pairs of one split: same keystep, other video;
    comparisons are computed once, on demand."""

    def __init__(self, clips: Sequence[ClipSpec]) -> None:
        self.by_keystep: dict[str, list[ClipSpec]] = defaultdict(list)
        for clip in clips:
            self.by_keystep[clip.keystep].append(clip)
        self.pairs = [
            (r, c)
            for keystep in RECIPE_ORDER
            for r, c in itertools.permutations(self.by_keystep[keystep], 2)
            if r.video_uid != c.video_uid
        ]
        self._cache: dict[tuple[str, str], dict[str, CategoryComparison]] = {}
        self._scores: dict[tuple[str, str], dict[str, int]] = {}
        self._by_step: dict[str, list[tuple[ClipSpec, ClipSpec]]] = {}

    def compare(self, r: ClipSpec, c: ClipSpec) -> dict[str, CategoryComparison]:
        """Scores and worded differences (slow: only for pairs that make rows)."""
        key = (r.clip_id, c.clip_id)
        if key not in self._cache:
            self._cache[key] = compare(r, c)
        return self._cache[key]

    def scores(self, r: ClipSpec, c: ClipSpec) -> dict[str, int]:
        """Per-category scores only (fast: for filtering and ranking)."""
        key = (r.clip_id, c.clip_id)
        if key not in self._scores:
            self._scores[key] = similarity_scores(r, c)
        return self._scores[key]

    def same_keystep(self, keystep: str) -> list[tuple[ClipSpec, ClipSpec]]:
        if keystep not in self._by_step:
            self._by_step[keystep] = [p for p in self.pairs if p[0].keystep == keystep]
        return self._by_step[keystep]

    def with_difference(self, category: str) -> list[tuple[ClipSpec, ClipSpec]]:
        return [(r, c) for r, c in self.pairs if self.scores(r, c)[category] < 5]


def diffcap_rows(pairs: _Pairs, rng: random.Random, per_category: int) -> list[dict[str, Any]]:
    """DiffCap rows: pairs that differ in the category, with every reference caption."""
    rows = []
    for category in CATEGORIES:
        candidates = pairs.with_difference(category)
        for r, c in rng.sample(candidates, min(per_category, len(candidates))):
            texts = pairs.compare(r, c)[category].texts()
            rows.append(
                {
                    "reference": r.clip_id,
                    "candidate": c.clip_id,
                    "category": category,
                    "text": texts,
                }
            )
    return rows


def _shares_objects(a: tuple[ClipSpec, ClipSpec], b: tuple[ClipSpec, ClipSpec]) -> bool:
    """Whether two pairs involve a common tool or ingredient ("similar objects")."""
    tools = {a[0].tool, a[1].tool} & {b[0].tool, b[1].tool}
    ingredients = {a[0].ingredient, a[1].ingredient} & {b[0].ingredient, b[1].ingredient}
    return bool(tools or ingredients)


def _probe_order(rng: random.Random, n: int, probes: int = 64) -> Iterator[int]:
    """Indices into n items: random probes first, then (only if still asked for more)
    every index in a random order, so that large splits need not be shuffled per row."""
    for _ in range(probes):
        yield rng.randrange(n)
    yield from rng.sample(range(n), n)


def _mcq_negatives(
    pairs: _Pairs, gold: tuple[ClipSpec, ClipSpec], category: str, rng: random.Random
) -> list[tuple[ClipSpec, ClipSpec]] | None:
    """Three pairs of the same keystep sharing a tool or ingredient with ``gold`` for
    which the gold difference does not hold; pairs that also differ in ``category`` are
    preferred (harder). The reversed gold pair is used half the time: it shows the same
    two videos, so only the direction of the difference tells it apart."""
    difference = pairs.compare(*gold)[category].main
    assert difference is not None
    r, c = gold
    chosen: list[tuple[ClipSpec, ClipSpec]] = []
    if rng.random() < 0.5 and not difference.holds(c, r):
        chosen.append((c, r))
    same_step = pairs.same_keystep(r.keystep)
    easy: list[tuple[ClipSpec, ClipSpec]] = []
    # Random probes first (cheap on large splits), then every pair in a random order.
    for index in _probe_order(rng, len(same_step)):
        if len(chosen) == 3:
            break
        pair = same_step[index]
        if pair == gold or pair in chosen or pair in easy or not _shares_objects(pair, gold):
            continue
        if difference.holds(*pair):
            continue
        if pairs.scores(*pair)[category] < 5:
            chosen.append(pair)
        elif len(easy) < 3:
            easy.append(pair)
    chosen.extend(easy[: 3 - len(chosen)])
    return chosen if len(chosen) == 3 else None


def diffmcq_rows(pairs: _Pairs, rng: random.Random, per_category: int) -> list[dict[str, Any]]:
    """DiffMCQ rows: a difference caption, four (reference, candidate) options, answer."""
    rows = []
    for category in CATEGORIES:
        candidates = pairs.with_difference(category)
        rng.shuffle(candidates)
        made = 0
        for gold in candidates:
            if made == per_category:
                break
            negatives = _mcq_negatives(pairs, gold, category, rng)
            if negatives is None:
                continue
            difference = pairs.compare(*gold)[category].main
            assert difference is not None
            options = [gold, *negatives]
            rng.shuffle(options)
            rows.append(
                {
                    "difference": rng.choice(difference.captions),
                    "category": category,
                    "options": [[a.clip_id, b.clip_id] for a, b in options],
                    "answer": [gold[0].clip_id, gold[1].clip_id],
                }
            )
            made += 1
    return rows


def clear_ranking(scores: Sequence[int]) -> bool:
    """At most one tie among four scores (three or four distinct values)."""
    return len(set(scores)) >= len(scores) - 1


def diffrank_rows(pairs: _Pairs, rng: random.Random, groups_tried: int) -> list[dict[str, Any]]:
    """DiffRank rows. For each reference, the group of four targets (same keystep, other
    videos) with the most categories ranked clearly wins (ties: more all-distinct
    categories, then the first tried); one row per clearly ranked category."""
    rows = []
    for keystep in RECIPE_ORDER:
        clips = pairs.by_keystep[keystep]
        for reference in clips:
            pool = [c for c in clips if c.video_uid != reference.video_uid]
            if len(pool) < 4:
                continue
            if len(pool) <= 8:  # few enough to try every group
                groups = [list(g) for g in itertools.combinations(pool, 4)]
                rng.shuffle(groups)
            else:
                groups = [rng.sample(pool, 4) for _ in range(groups_tried)]
            best, best_key = None, (0, 0)
            for group in groups:
                scores = {
                    cat: [pairs.scores(reference, t)[cat] for t in group] for cat in CATEGORIES
                }
                key = (
                    sum(clear_ranking(s) for s in scores.values()),
                    sum(len(set(s)) == 4 for s in scores.values()),
                )
                if key > best_key:
                    best, best_key = (group, scores), key
            if best is None:
                continue
            group, scores = best
            for category in CATEGORIES:
                if clear_ranking(scores[category]):
                    rows.append(
                        {
                            "reference": reference.clip_id,
                            "targets": [t.clip_id for t in group],
                            "category": category,
                            "scores": scores[category],
                        }
                    )
    return rows


def train_pair_rows(clips: Sequence[ClipSpec], rng: random.Random, per_clip: int) -> list[dict]:
    """Pairs of train clips (same keystep, other video, not identical) with every
    category's score and differences: ground truth for training on pair QA."""
    pairs = _Pairs(clips)
    rows = []
    for keystep in RECIPE_ORDER:
        for reference in pairs.by_keystep[keystep]:
            pool = [
                c
                for c in pairs.by_keystep[keystep]
                if c.video_uid != reference.video_uid
                and min(pairs.scores(reference, c).values()) < 5
            ]
            for candidate in rng.sample(pool, min(per_clip, len(pool))):
                comparison = pairs.compare(reference, candidate)
                rows.append(
                    {
                        "reference": reference.clip_id,
                        "candidate": candidate.clip_id,
                        "keystep": keystep,
                        "scores": {cat: comparison[cat].score for cat in CATEGORIES},
                        "differences": {
                            cat: [d.to_dict() for d in comparison[cat].differences]
                            for cat in CATEGORIES
                        },
                    }
                )
    return rows


def train_rank_rows(
    pairs: _Pairs, rng: random.Random, groups_per_reference: int
) -> list[dict[str, Any]]:
    """DiffRank items of train clips, in the benchmark's format, for a ranking loss: per
    reference, ``groups_per_reference`` random groups of four targets (same keystep,
    other videos), one row per category whose scores are not all equal. Unlike the
    benchmark's rows, ties are kept: training needs only some order, and choosing the
    best-ranked group would skew which targets are seen."""
    rows = []
    for keystep in RECIPE_ORDER:
        group_clips = pairs.by_keystep[keystep]
        for reference in group_clips:
            pool = [c for c in group_clips if c.video_uid != reference.video_uid]
            if len(pool) < NUM_CHOICES:
                continue
            for _ in range(groups_per_reference):
                group = rng.sample(pool, NUM_CHOICES)
                for category in CATEGORIES:
                    scores = [pairs.scores(reference, t)[category] for t in group]
                    if len(set(scores)) > 1:
                        rows.append(
                            {
                                "reference": reference.clip_id,
                                "targets": [t.clip_id for t in group],
                                "category": category,
                                "scores": scores,
                            }
                        )
    return rows


# --- writing -----------------------------------------------------------------------------


def _jsonl(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _count(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    counts = {category: 0 for category in CATEGORIES}
    for row in rows:
        counts[row["category"]] += 1
    return counts


def _videos(clips: Sequence[ClipSpec]) -> dict[str, list[ClipSpec]]:
    videos: dict[str, list[ClipSpec]] = defaultdict(list)
    for clip in clips:
        videos[clip.video_uid].append(clip)
    return dict(sorted(videos.items()))


def _render_one(args: tuple[str, list[dict[str, Any]], int, int, bool]) -> str:
    video_dir, clip_dicts, fps, size, audio = args
    clips = [ClipSpec.from_dict(d) for d in clip_dicts]
    render_video(video_dir, clips, fps=fps, size=size, audio=audio)
    return clips[0].video_uid


_OWN_FILE = re.compile(r"^(sk_v\d+)\.(?:mp4|json)$")  # our videos and transcripts


def render_videos(
    video_dir: Path,
    clips: Sequence[ClipSpec],
    *,
    fps: int = DEFAULT_FPS,
    size: int = DEFAULT_SIZE,
    audio: bool = False,
    workers: int = 1,
    progress: ProgressCallback | None = None,
) -> tuple[int, int]:
    """Render every video of ``clips`` that is not already up to date in ``video_dir``;
    remove SynthKitchen files of videos no longer in the build. Returns (rendered,
    reused)."""
    video_dir.mkdir(parents=True, exist_ok=True)
    videos = _videos(clips)
    for path in video_dir.iterdir():
        match = _OWN_FILE.match(path.name)
        # Temp files of an interrupted build, and videos this build no longer has.
        if path.name.startswith(".sk_v") or (match and match.group(1) not in videos):
            path.unlink()
    todo = [
        uid
        for uid, v in videos.items()
        if not is_current(video_dir, v, fps=fps, size=size, audio=audio)
    ]
    done = len(videos) - len(todo)
    total = len(videos)
    if progress:
        progress(done, total, "")
    jobs = [(str(video_dir), [c.to_dict() for c in videos[uid]], fps, size, audio) for uid in todo]
    if workers > 1 and len(jobs) > 1:
        # "spawn": the parent may run threads (rich's progress refresher), and forking a
        # threaded process can deadlock the child.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            for uid in pool.map(_render_one, jobs):
                done += 1
                if progress:
                    progress(done, total, uid)
    else:
        for job in jobs:
            uid = _render_one(job)
            done += 1
            if progress:
                progress(done, total, uid)
    return len(todo), total - len(todo)


def build_benchmark(
    out_dir: str | Path,
    size: str | BuildSize = "small",
    seed: int = 0,
    render: bool = True,
    *,
    audio: bool | None = None,
    fps: int = DEFAULT_FPS,
    frame_size: int = DEFAULT_SIZE,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> BuildSummary:
    """Sample, (optionally) render and write a SynthKitchen benchmark in ``out_dir``.

    ``size`` is "small", "large" or a :class:`BuildSize`. ``audio=None`` adds spoken
    narration iff espeak-ng is on PATH. ``workers`` renders videos in parallel processes
    (default: up to 2). Re-running on the same ``out_dir`` reuses videos whose clips,
    frame rate, frame size and audio setting are unchanged.
    """
    started = time.perf_counter()
    size_name = size if isinstance(size, str) else "custom"
    if isinstance(size, str):
        if size not in SIZES:
            raise ValueError(f"size {size!r}: expected one of {', '.join(SIZES)}")
        size = SIZES[size]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    audio = (espeak_available() if audio is None else audio) and render
    clips = sample_clips(size, seed)
    by_split = {
        split: [c for c in clips if c.split == split] for split in ("train", *BENCHMARK_SPLITS)
    }

    files: dict[str, str] = {"clips.jsonl": _jsonl(c.to_dict() for c in clips)}
    rows: dict[str, dict[str, dict[str, int]]] = {task: {} for task in TASKS}
    for split in BENCHMARK_SPLITS:
        pairs = _Pairs(by_split[split])
        made = {
            "diffcap": diffcap_rows(
                pairs, random.Random(f"{seed}:{split}:diffcap"), size.rows_per_category
            ),
            "diffmcq": diffmcq_rows(
                pairs, random.Random(f"{seed}:{split}:diffmcq"), size.rows_per_category
            ),
            "diffrank": diffrank_rows(
                pairs, random.Random(f"{seed}:{split}:diffrank"), size.rank_groups_tried
            ),
        }
        for task, task_rows in made.items():
            files[f"{task}_{split}.jsonl"] = _jsonl(task_rows)
            rows[task][split] = _count(task_rows)
    train_rows = train_pair_rows(
        by_split["train"], random.Random(f"{seed}:train_pairs"), size.train_pairs_per_clip
    )
    files["train_pairs.jsonl"] = _jsonl(train_rows)
    # One set of training pairs for both item files: its scores are computed once.
    train_pairs = _Pairs(by_split["train"])
    train_rank = train_rank_rows(
        train_pairs, random.Random(f"{seed}:train:diffrank"), size.train_rank_groups
    )
    files["diffrank_train.jsonl"] = _jsonl(train_rank)
    rows["diffrank"]["train"] = _count(train_rank)
    train_choice = diffmcq_rows(
        train_pairs, random.Random(f"{seed}:train:diffmcq"), size.train_choice_per_category
    )
    files["diffmcq_train.jsonl"] = _jsonl(train_choice)
    rows["diffmcq"]["train"] = _count(train_choice)
    for split, split_clips in by_split.items():
        files[f"descriptions_{split}.jsonl"] = _jsonl(description_rows(split_clips))

    rendered = reused = 0
    if render:
        rendered, reused = render_videos(
            out_dir / "videos",
            clips,
            fps=fps,
            size=frame_size,
            audio=audio,
            workers=workers if workers is not None else min(2, os.cpu_count() or 1),
            progress=progress,
        )
    summary = BuildSummary(
        out_dir=out_dir,
        size=size_name,
        seed=seed,
        videos={s: len({c.video_uid for c in v}) for s, v in by_split.items()},
        clips={s: len(v) for s, v in by_split.items()},
        rows=rows,
        train_pairs=len(train_rows),
        rendered=render,
        audio=audio,
        videos_rendered=rendered,
        videos_reused=reused,
        files=sorted(files) + ["summary.json"],
    )
    files["summary.json"] = json.dumps(summary.to_dict(), indent=2) + "\n"
    for name, text in files.items():
        write_atomic(out_dir / name, text)
    summary.seconds = time.perf_counter() - started
    return summary


def load_clips(data_dir: str | Path) -> dict[str, ClipSpec]:
    """The clips of a built benchmark (``clips.jsonl``), by clip id."""
    path = Path(data_dir) / "clips.jsonl"
    clips = {}
    with path.open() as handle:
        for line in handle:
            if line.strip():
                spec = ClipSpec.from_dict(json.loads(line))
                clips[spec.clip_id] = spec
    return clips
