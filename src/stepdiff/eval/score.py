"""Score predictions on a StepDiff benchmark file: the official numbers, then extras.

``score_files`` reads and validates a ground-truth file and a prediction file and
returns a :class:`ScoreReport`: the official script's results (exactly), every metric
with a percentile-bootstrap confidence interval, and a per-category breakdown. Given
other prediction files for the same items, it also reports each metric's difference
from theirs with a paired bootstrap interval: both files are scored on the same
resampled items, so the interval of the difference is much narrower than two separate
intervals suggest when the two systems find the same items easy or hard.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from stepdiff.data.categories import Task, category_order
from stepdiff.data.formats import (
    CaptionPrediction,
    DiffCapItem,
    DiffMCQItem,
    DiffRankItem,
    ScorePrediction,
    read_ground_truth,
    read_predictions,
)
from stepdiff.errors import ConfigError
from stepdiff.eval import metrics as M
from stepdiff.eval.metrics import WeightedStatistic

DEFAULT_BOOTSTRAP = 1000
# Resamples beyond this do not move a 95% interval's printed digits, while the work
# grows with them: 10**20 resamples ran for minutes and took 24 GB before being killed.
MAX_BOOTSTRAP = 100_000
DEFAULT_SEED = 0
DEFAULT_CONFIDENCE = 0.95

# The metric each task's per-category chart shows (a NaN-safe one for DiffRank, since a
# single constant prediction row turns the official mean into NaN).
MAIN_METRIC = {
    Task.DIFFCAP: "CIDEr-D",
    Task.DIFFMCQ: "accuracy",
    Task.DIFFRANK: "Kendall tau-b (NaN-safe)",
}

# Judges generated DiffCap captions against what is known of each item's clips:
# (items, captions) -> metric name -> per-item values in [0, 1], reported as means.
CaptionJudge = Callable[[Sequence[DiffCapItem], Sequence[str]], dict[str, np.ndarray]]


@dataclass(frozen=True)
class MetricResult:
    """One metric's value and bootstrap interval (None when not computed or undefined)."""

    name: str
    value: float
    ci: tuple[float, float] | None = None
    official_key: str | None = None  # its key in the official script's results dict

    @property
    def official(self) -> bool:
        return self.official_key is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": _finite_or_none(self.value),
            "ci": None if self.ci is None else [_finite_or_none(v) for v in self.ci],
            "official": self.official,
            "official_key": self.official_key,
        }


@dataclass(frozen=True)
class CategoryResult:
    """All metrics restricted to the items of one category."""

    category: str
    count: int
    metrics: tuple[MetricResult, ...]
    counts: dict[str, int] = field(default_factory=dict)

    def metric(self, name: str) -> MetricResult:
        return _find(self.metrics, name)

    def to_json(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "count": self.count,
            "counts": dict(self.counts),
            "metrics": [m.to_json() for m in self.metrics],
        }


@dataclass(frozen=True)
class PairedResult:
    """One metric of this prediction file minus the same metric of another one.

    ``ci`` is the paired percentile-bootstrap interval of the difference (the same
    resampled items for both files); ``not_better`` is the share of resamples in which
    the difference is zero or below (every metric here is higher-is-better), a one-sided
    bootstrap p-value for "this file scores higher".
    """

    against: str
    name: str
    difference: float
    ci: tuple[float, float] | None = None
    not_better: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "against": self.against,
            "name": self.name,
            "difference": _finite_or_none(self.difference),
            "ci": None if self.ci is None else [_finite_or_none(v) for v in self.ci],
            "share_of_resamples_not_better": self.not_better,
        }


@dataclass(frozen=True)
class ScoreReport:
    """The result of scoring one prediction file against one ground-truth file."""

    task: Task
    count: int
    official: dict[str, float]  # exactly the official script's printed results
    metrics: tuple[MetricResult, ...]  # official ones first, then extras
    per_category: tuple[CategoryResult, ...]
    counts: dict[str, int]
    main_metric: str
    bootstrap: int
    seed: int
    confidence: float
    notes: tuple[str, ...] = ()
    gt_path: str | None = None
    pred_path: str | None = None
    paired: tuple[PairedResult, ...] = ()  # differences from other prediction files

    def metric(self, name: str) -> MetricResult:
        """The overall metric called ``name`` (e.g. "BLEU-1", "accuracy")."""
        return _find(self.metrics, name)

    def paired_result(self, against: str, name: str) -> PairedResult:
        """The difference in metric ``name`` from the predictions called ``against``."""
        for result in self.paired:
            if result.against == against and result.name == name:
                return result
        raise KeyError(f"no paired {name!r} against {against!r}")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; NaN and infinities become null (JSON has no NaN)."""
        return {
            "task": self.task.value,
            "ground_truth": self.gt_path,
            "predictions": self.pred_path,
            "count": self.count,
            "official": {k: _finite_or_none(v) for k, v in self.official.items()},
            "metrics": [m.to_json() for m in self.metrics],
            "counts": dict(self.counts),
            "per_category": [c.to_json() for c in self.per_category],
            "main_metric": self.main_metric,
            "bootstrap": {
                "resamples": self.bootstrap,
                "seed": self.seed,
                "confidence": self.confidence,
                "method": "percentile, resampling items with replacement",
            },
            "notes": list(self.notes),
            "paired": [p.to_json() for p in self.paired],
        }


def _find(metrics: Sequence[MetricResult], name: str) -> MetricResult:
    for metric in metrics:
        if metric.name == name:
            return metric
    raise KeyError(f"no metric {name!r} (have {', '.join(m.name for m in metrics)})")


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


# --- per-task preparation: official numbers, statistics, counts, notes -----------------


@dataclass(frozen=True)
class _Prepared:
    official: dict[str, float]
    statistics: list[WeightedStatistic]
    exact: dict[str, float]  # overall values taken verbatim from the official scorers
    flags: dict[str, np.ndarray]  # per-item booleans counted overall and per category
    notes: tuple[str, ...]


def _prepare_diffcap(
    items: Sequence[DiffCapItem], preds: Sequence[Any], judge: CaptionJudge | None = None
) -> _Prepared:
    captions = [p.generated_text for p in preds]
    scores = M.caption_scores([i.text for i in items], captions)
    official = scores.official
    exact = {
        "BLEU-1": official["BLEU"],
        "CIDEr-D": official["CIDEr"],
        "ROUGE-L": official["ROUGE-L"],
        "BLEU-4": scores.bleu[3],
    }
    empty = np.array([not p.generated_text.strip() for p in preds])
    notes = (
        "Official DiffCap numbers: pycocoevalcap on raw whitespace-split strings (no PTB "
        "tokeniser); 'BLEU' is corpus BLEU-1; CIDEr-D as returned (not x100).",
        "Confidence intervals resample per-item scores: BLEU from per-item n-gram "
        "statistics re-aggregated into corpus BLEU, CIDEr-D and ROUGE-L as means of "
        "per-item scores. Per-category CIDEr-D is the mean of per-item CIDEr-D with the "
        "IDF of the full set (the official script run on one category alone would "
        "compute IDF on that category).",
    )
    statistics = scores.statistics()
    if judge is not None:
        judged = judge(items, captions)
        statistics += [M.mean_statistic(name, values) for name, values in judged.items()]
        notes += (
            f"{', '.join(judged)}: shares of captions that name the true differing "
            "attribute values of the pair (checked against the clips' ground truth).",
        )
    return _Prepared(official, statistics, exact, {"empty_predictions": empty}, notes)


def _prepare_diffmcq(items: Sequence[DiffMCQItem], preds: Sequence[Any]) -> _Prepared:
    scores = np.array([p.scores for p in preds], dtype=np.float64)  # (n, 4)
    gold = np.array([i.gold_index for i in items])
    official = {"accuracy": M.mcq_accuracy(scores, gold)}
    notes = (
        "Official DiffMCQ accuracy: argmax of the 4 scores (first on ties) vs the gold "
        "option; chance is 0.25.",
    )
    flags = {"tied_top_score": M.tied_top_rows(scores)}
    return _Prepared(official, M.mcq_statistics(scores, gold), dict(official), flags, notes)


def _prepare_diffrank(items: Sequence[DiffRankItem], preds: Sequence[Any]) -> _Prepared:
    predicted = np.array([p.scores for p in preds], dtype=np.float64)  # (n, 4)
    target = np.array([i.scores for i in items], dtype=np.float64)  # (n, 4)
    taus = M.kendall_tau_b_rows(predicted, target)
    official = {"ktau": M.official_mean_tau(taus)}
    nan_rows = np.isnan(taus)
    notes = [
        "Official DiffRank figure: scipy.stats.kendalltau (tau-b) per row, np.mean over "
        "rows; a row of equal scores (predicted or annotated) gives NaN and makes that mean "
        "NaN.",
    ]
    if nan_rows.any():
        notes.append(
            f"{int(nan_rows.sum())} of {len(taus)} rows have a NaN tau (constant scores): "
            "the official mean is NaN; the NaN-safe mean ignores those rows. Break ties "
            "in your scores."
        )
    return _Prepared(
        official,
        M.rank_statistics(taus),
        {"Kendall tau-b": official["ktau"]},
        {"nan_rows": nan_rows},
        tuple(notes),
    )


_PREPARE = {
    Task.DIFFCAP: _prepare_diffcap,
    Task.DIFFMCQ: _prepare_diffmcq,
    Task.DIFFRANK: _prepare_diffrank,
}


# --- assembling the report -------------------------------------------------------------


def _result(
    statistic: WeightedStatistic,
    subset: np.ndarray | None,
    bootstrap: int,
    seed: int,
    confidence: float,
    exact: float | None = None,
) -> MetricResult:
    value = statistic.value(subset) if exact is None else float(exact)
    ci = None
    # A NaN point estimate (official DiffRank mean with a NaN row) has no interval.
    if bootstrap > 0 and math.isfinite(value):
        distribution = statistic.bootstrap(bootstrap, seed, subset)
        ci = M.percentile_interval(distribution, confidence)
    return MetricResult(statistic.name, value, ci, statistic.official_key)


def _difference_statistic(mine: WeightedStatistic, theirs: WeightedStatistic) -> WeightedStatistic:
    """``mine - theirs`` as one statistic over side-by-side item rows, so a resample
    weights the same items in both."""
    width = mine.items.shape[1]
    items = np.concatenate([mine.items, theirs.items], axis=1)  # (n, d_mine + d_theirs)

    def combine(totals: np.ndarray) -> np.ndarray:  # (b, d_mine + d_theirs) -> (b,)
        return mine.combine(totals[:, :width]) - theirs.combine(totals[:, width:])

    return WeightedStatistic(mine.name, items, combine)


def _paired_results(
    against: str,
    mine: _Prepared,
    theirs: _Prepared,
    bootstrap: int,
    seed: int,
    confidence: float,
) -> list[PairedResult]:
    results = []
    for own, other in zip(mine.statistics, theirs.statistics, strict=True):
        own_value = mine.exact.get(own.name, own.value())
        other_value = theirs.exact.get(other.name, other.value())
        difference = float(own_value - other_value)
        ci = not_better = None
        if bootstrap > 0 and math.isfinite(difference):
            distribution = _difference_statistic(own, other).bootstrap(bootstrap, seed)
            ci = M.percentile_interval(distribution, confidence)
            if not np.isnan(distribution).any():
                not_better = float(np.mean(distribution <= 0.0))
        results.append(PairedResult(against, own.name, difference, ci, not_better))
    return results


def score_records(
    task: Task | str,
    items: Sequence[Any],
    predictions: Sequence[Any],
    *,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
    confidence: float = DEFAULT_CONFIDENCE,
    against: Sequence[tuple[str, Sequence[Any]]] = (),
    caption_judge: CaptionJudge | None = None,
) -> ScoreReport:
    """Score in-memory ground-truth items against predictions (same order, same length).

    ``bootstrap`` resamples (0 = no intervals) with a fixed ``seed`` make the intervals
    reproducible; each category is resampled within itself. ``against`` holds (name,
    predictions) of other systems on the same items: the report then has every metric's
    difference from each of them, with paired intervals. ``caption_judge`` adds DiffCap
    metrics that check the captions against the truth (e.g. SynthKitchen's facts).
    """
    task = Task(task)
    check_resampling(bootstrap, seed)
    if not items:
        raise ValueError("nothing to score: no items")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence} must lie strictly between 0 and 1")
    for candidate in (predictions, *(other for _, other in against)):
        _check_predictions(task, items, candidate)

    def prepare(preds: Sequence[Any]) -> _Prepared:
        if task is Task.DIFFCAP:
            return _prepare_diffcap(items, preds, caption_judge)
        return _PREPARE[task](items, preds)

    prepared = prepare(predictions)
    paired = [
        result
        for name, other in against
        for result in _paired_results(name, prepared, prepare(other), bootstrap, seed, confidence)
    ]
    overall = tuple(
        _result(s, None, bootstrap, seed, confidence, prepared.exact.get(s.name))
        for s in prepared.statistics
    )
    categories = np.array([item.category for item in items])
    per_category = []
    for category in category_order(set(categories.tolist())):
        subset = np.flatnonzero(categories == category)
        per_category.append(
            CategoryResult(
                category,
                len(subset),
                tuple(_result(s, subset, bootstrap, seed, confidence) for s in prepared.statistics),
                {name: int(flag[subset].sum()) for name, flag in prepared.flags.items()},
            )
        )
    return ScoreReport(
        task=task,
        count=len(items),
        official=prepared.official,
        metrics=overall,
        per_category=tuple(per_category),
        counts={name: int(flag.sum()) for name, flag in prepared.flags.items()},
        main_metric=MAIN_METRIC[task],
        bootstrap=bootstrap,
        seed=seed,
        confidence=confidence,
        notes=prepared.notes,
        paired=tuple(paired),
    )


def check_resampling(bootstrap: int, seed: int) -> None:
    """Refuse a resample count outside 0..MAX_BOOTSTRAP and a negative seed (numpy's
    generator takes none), before any file is read."""
    if not 0 <= bootstrap <= MAX_BOOTSTRAP:
        raise ConfigError(
            f"bootstrap {bootstrap}: expected 0 (no intervals) to {MAX_BOOTSTRAP} resamples"
        )
    if seed < 0:
        raise ConfigError(f"seed {seed}: expected an integer >= 0")


def _check_predictions(task: Task, items: Sequence[Any], predictions: Sequence[Any]) -> None:
    if len(items) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(items)} items")
    expected = CaptionPrediction if task is Task.DIFFCAP else ScorePrediction
    if not all(isinstance(p, expected) for p in predictions):
        raise TypeError(f"{task.value} predictions must be {expected.__name__} records")


def score_files(
    task: Task | str,
    gt_path: str | Path,
    pred_path: str | Path,
    *,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
    confidence: float = DEFAULT_CONFIDENCE,
    against: Sequence[str | Path] = (),
) -> ScoreReport:
    """Read, validate and score a prediction file against an official ground-truth file,
    and beside it every prediction file in ``against`` (paired differences).

    Raises :class:`~stepdiff.errors.DataFormatError` (one line: file, line, field) for
    any malformed input, including a prediction file whose length differs from the
    ground truth's, and :class:`~stepdiff.errors.ConfigError` for a ``bootstrap`` or
    ``seed`` out of range (see ``check_resampling``). The DiffCap file of a SynthKitchen
    build (``clips.jsonl`` beside it) also gets the truth-checked caption metrics of
    :mod:`stepdiff.synthkitchen.truth`.
    """
    from stepdiff.synthkitchen.truth import caption_judge_beside

    task = Task(task)
    check_resampling(bootstrap, seed)
    items = read_ground_truth(gt_path, task)
    predictions = read_predictions(pred_path, task, expected_count=len(items))
    others = [
        (str(path), read_predictions(path, task, expected_count=len(items))) for path in against
    ]
    report = score_records(
        task,
        items,
        predictions,
        bootstrap=bootstrap,
        seed=seed,
        confidence=confidence,
        against=others,
        caption_judge=caption_judge_beside(gt_path) if task is Task.DIFFCAP else None,
    )
    # Reports name their inputs, so a saved report.json says what it measured.
    return replace(report, gt_path=str(gt_path), pred_path=str(pred_path))
