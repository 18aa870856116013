"""Run any PairScorer over an official benchmark file: predictions, then scores.

Predictions are appended to ``predictions.jsonl.partial`` batch by batch (flushed and
fsynced), so an interrupted run resumes after the last complete batch; the finished file
is renamed to ``predictions.jsonl`` in one step, so it is never half written.

A run holds an exclusive lock on its output folder, and ``run.json`` there records
everything that changes the predictions (task, ground truth, videos, scorer and its
options, with digests of the files they name): a resume with anything else is refused,
so one predictions file never mixes two runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from stepdiff.data.categories import Task
from stepdiff.data.formats import read_ground_truth, write_atomic
from stepdiff.data.questions import difference_question, same_question
from stepdiff.digests import file_digest
from stepdiff.errors import ClipSpecError, DataFormatError, StepDiffError
from stepdiff.eval.scorers import PairScorer
from stepdiff.locking import lock_folder
from stepdiff.video.clip import ClipId, ClipRef, find_video, parse_clip_id

if TYPE_CHECKING:
    from stepdiff.eval.registry import ScorerOptions

PREDICTIONS = "predictions.jsonl"
RUN_INFO = "run.json"
# Files of a named folder up to this size enter its digest by content; larger ones (a
# Hugging Face folder's frozen weights) by name and size, so a run start stays quick.
DIGEST_MAX_BYTES = 64 << 20


# ----- clip ids -> video files -------------------------------------------------------------
def parse_folder_clip_id(clip_id: str) -> ClipId:
    """A clip id whose video uid is a plain file name, so that it can only name a video
    inside the video folder (not ``../x`` or ``/abs/x``)."""
    parsed = parse_clip_id(clip_id)
    uid = parsed.video_uid
    if uid in (".", "..") or any(char in uid for char in "/\\\0"):
        raise ClipSpecError(
            f"clip id {clip_id!r}: video uid {uid!r} must be a file name inside the video "
            "folder (no '/', '\\' or '..')"
        )
    return parsed


class ClipResolver:
    """Clip id -> ClipRef in a video folder, each id resolved once; only videos inside
    the folder (see :func:`parse_folder_clip_id`)."""

    def __init__(self, video_dir: Path) -> None:
        self.video_dir = Path(video_dir)
        self._known: dict[str, ClipRef] = {}

    def __call__(self, clip_id: str) -> ClipRef:
        if clip_id not in self._known:
            parsed = parse_folder_clip_id(clip_id)
            path = find_video(self.video_dir, parsed.video_uid)
            self._known[clip_id] = ClipRef(path, parsed.start, parsed.end, clip_id=clip_id)
        return self._known[clip_id]


def item_clip_ids(task: Task, item: Any) -> list[tuple[str, str]]:
    """(field, clip id) of every clip a ground-truth item of ``task`` names."""
    if task is Task.DIFFMCQ:
        return [
            (f"options[{i}][{j}]", clip_id)
            for i, pair in enumerate(item.options)
            for j, clip_id in enumerate(pair)
        ]
    if task is Task.DIFFRANK:
        return [("reference", item.reference)] + [
            (f"targets[{i}]", target) for i, target in enumerate(item.targets)
        ]
    return [("reference", item.reference), ("candidate", item.candidate)]


def check_clip_ids(gt_path: Path, task: Task, items: Sequence[Any]) -> None:
    """Refuse, before any compute, a clip id that would read a video outside the folder."""
    # read_jsonl allows blank lines only after the last record: item i is on line i + 1.
    for line, item in enumerate(items, start=1):
        for name, clip_id in item_clip_ids(task, item):
            try:
                parse_folder_clip_id(clip_id)
            except ClipSpecError as error:
                raise DataFormatError(f"{gt_path}:{line}: field {name!r}: {error}") from None


def predict(task: Task, items: Sequence[Any], scorer: PairScorer, clip: ClipResolver) -> list[dict]:
    """Prediction records (official format) for a batch of ground-truth items."""
    if task is Task.DIFFCAP:
        texts = scorer.generate(
            [clip(item.reference) for item in items],
            [clip(item.candidate) for item in items],
            [difference_question(item.category) for item in items],
        )
        return [{"generated_text": text} for text in texts]
    if task is Task.DIFFMCQ:
        # All 4 options of every item in one call: the same question and caption, scored
        # against each (reference, candidate) pair.
        options = [(item, pair) for item in items for pair in item.options]
        flat = scorer.loglik(
            [clip(pair[0]) for _, pair in options],
            [clip(pair[1]) for _, pair in options],
            [difference_question(item.category) for item, _ in options],
            [item.difference for item, _ in options],
        )
    else:
        targets = [(item, target) for item in items for target in item.targets]
        flat = scorer.p_yes(
            [clip(item.reference) for item, _ in targets],
            [clip(target) for _, target in targets],
            [same_question(item.category) for item, _ in targets],
        )
    return [{"scores": [float(s) for s in flat[i * 4 : i * 4 + 4]]} for i in range(len(items))]


def _complete_lines(path: Path) -> int:
    """Number of complete lines in ``path``; a torn last line (crash mid-write) is cut."""
    if not path.is_file():
        return 0
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep != len(data):
        with path.open("r+b") as handle:
            handle.truncate(keep)
    return data[:keep].count(b"\n")


def _folder_digest(folder: Path) -> str:
    """A short digest of the files directly in ``folder`` (names, sizes, small contents)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        size = path.stat().st_size
        content = file_digest(path) if size <= DIGEST_MAX_BYTES else ""
        digest.update(f"{path.name}\0{size}\0{content}\0".encode())
    return digest.hexdigest()[:16]


def located(value: str | Path | None) -> Any:
    """An option that names a file or folder -> its absolute path and a content digest
    (the same path with other contents gives other predictions); other values as given."""
    if value is None or not Path(value).exists():
        return None if value is None else str(value)
    path = Path(value).resolve()
    digest = _folder_digest(path) if path.is_dir() else file_digest(path)
    return {"path": str(path), "sha256": digest}


def _differing_keys(previous: Mapping[str, Any], info: Mapping[str, Any]) -> list[str]:
    return sorted(key for key in {*previous, *info} if previous.get(key) != info.get(key))


def _check_run_info(out_dir: Path, info: dict[str, Any]) -> None:
    """Write ``run.json``, or check that the one there describes this same run."""
    path = out_dir / RUN_INFO
    if not path.is_file():
        write_atomic(path, json.dumps(info, indent=2))
        return
    try:
        previous = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataFormatError(f"{path}: unreadable ({error}); use another --out") from None
    if not isinstance(previous, dict):
        raise DataFormatError(f"{path}: expected a JSON object; use another --out")
    differing = _differing_keys(previous, info)
    if differing:
        raise StepDiffError(
            f"{path}: this folder holds a run of {previous.get('scorer')} with another "
            f"{', '.join(differing)}; use another --out, or the same options to resume"
        )


def scorer_settings(name: str, options: ScorerOptions) -> dict[str, Any]:
    """What makes the predictions of the scorer ``name`` built with ``options``: the
    ``settings`` of :func:`claim_run`. Not here: the feature cache (cached features are
    the computed ones) and the batch size (predictions do not depend on it)."""
    pool = json.dumps(options.caption_pool).encode()
    return {
        "scorer": name,
        # vclm:<folder>, vlembed-aligned:<folder>, ...: the folder's contents count too.
        "scorer_files": located(name.partition(":")[2]) if ":" in name else None,
        "config": located(options.model.config),
        "model": located(options.model.checkpoint),
        "overrides": options.model.config_overrides(),
        "seed": options.seed,
        "clips": located(options.clips),
        "caption_pool": hashlib.sha256(pool).hexdigest()[:16] if options.caption_pool else None,
        "max_new_tokens": options.max_new_tokens,
        # Only when set, so that runs made before the option keep their settings.
        **({"llamacpp": True} if options.model.llamacpp else {}),
    }


@dataclass
class EvalRun:
    """A claimed output folder and the ground truth its predictions answer."""

    task: Task
    items: list[Any]
    video_dir: Path
    out_dir: Path

    def predict(
        self, scorer: PairScorer, *, batch_size: int = 8, show_progress: bool = True
    ) -> Path:
        """Write ``predictions.jsonl`` for every ground-truth item, resuming a partial file."""
        final = self.out_dir / PREDICTIONS
        if final.is_file():
            return final
        partial = self.out_dir / f"{PREDICTIONS}.partial"
        done = _complete_lines(partial)
        clip = ClipResolver(self.video_dir)
        columns = (
            *Progress.get_default_columns()[:1],
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        items = self.items
        with Progress(*columns, disable=not show_progress) as progress, partial.open("a") as handle:
            bar = progress.add_task(
                f"{scorer.name} on {self.task.value}", total=len(items), completed=done
            )
            for start in range(done, len(items), batch_size):
                batch = items[start : start + batch_size]
                records = predict(self.task, batch, scorer, clip)
                handle.write("".join(json.dumps(record) + "\n" for record in records))
                handle.flush()
                os.fsync(handle.fileno())
                progress.advance(bar, len(batch))
        os.replace(partial, final)
        return final


@contextlib.contextmanager
def claim_run(
    task: Task | str,
    gt_path: str | Path,
    video_dir: str | Path,
    out_dir: str | Path,
    settings: Mapping[str, Any],
) -> Iterator[EvalRun]:
    """Check the ground truth, lock ``out_dir`` and check (or write) its ``run.json``.

    ``settings``: the scorer and every option of it that changes predictions; with the
    task, ground truth and videos they must equal those of any run the folder holds.
    """
    task = Task(task)
    gt_path = Path(gt_path)
    items = read_ground_truth(gt_path, task)
    check_clip_ids(gt_path, task, items)
    out_dir = Path(out_dir)
    info = {
        "task": task.value,
        "gt": located(gt_path),
        # Only the folder: hashing every video at each start would cost minutes.
        "videos": str(Path(video_dir).resolve()),
        **settings,
    }
    info = json.loads(json.dumps(info))  # tuples -> lists, as read back from the file
    with lock_folder(out_dir):
        _check_run_info(out_dir, info)
        yield EvalRun(task, items, Path(video_dir), out_dir)


def run_predictions(
    task: Task | str,
    gt_path: str | Path,
    video_dir: str | Path,
    scorer: PairScorer,
    out_dir: str | Path,
    *,
    settings: Mapping[str, Any] | None = None,
    batch_size: int = 8,
    show_progress: bool = True,
) -> Path:
    """Write ``out_dir/predictions.jsonl`` for every ground-truth line; resumes a partial
    run (``settings``: see :func:`claim_run`; by default the scorer's name)."""
    with claim_run(task, gt_path, video_dir, out_dir, settings or {"scorer": scorer.name}) as run:
        return run.predict(scorer, batch_size=batch_size, show_progress=show_progress)
