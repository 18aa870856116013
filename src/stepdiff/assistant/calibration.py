"""Severity 1-5 from P(YES) to "do these videos show the same <category>?".

Why isotonic regression of the human score (and not quantile thresholds): DiffRank
annotators give each (reference, target, category) a similarity score 0..5. The fitted
map is the expected human score given the model's p_same, constrained only to rise with
p_same (pool-adjacent-violators, PAV), starting from ten equal-count groups of p_same so
that no knot rests on a handful of annotations. When p_same predicts the annotators well,
the map spreads over the whole scale; when it does not, the map stays flat near the mean
score and every severity comes out middling. Quantile thresholds would instead force the human score
distribution onto whatever p_same does, and so show confident-looking 1s and 5s even for a
model whose p_same carries no information. A weak model should look weak.

Severity from the expected similarity s (0..5, 5 = most similar): the scale is flipped and
squeezed linearly onto 1..5 and rounded half up, severity = floor(5.5 - 0.8 s), so the
human scores 0, 1, 2, 3, 4, 5 map to severities 5, 4, 3, 3, 2, 1 (symmetric about the
middle; 1 = no or minor difference, 5 = major difference).

Without a calibration, p_same is cut into five equal-width bins: [0, 0.2) -> 5, ...,
[0.8, 1] -> 1 (reports then say ``calibrated: false``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stepdiff.assistant.errors import CalibrationError
from stepdiff.data.categories import MAX_RANK_SCORE, MIN_RANK_SCORE
from stepdiff.data.formats import write_atomic

if TYPE_CHECKING:
    from stepdiff.model_options import ModelOptions

CALIBRATION_FILE = "severity_calibration.json"
CALIBRATION_FORMAT = 1
CALIBRATION_KIND = "isotonic-similarity"
MIN_SEVERITY, MAX_SEVERITY = 1, 5
SEVERITY_RULE = "severity = clamp(floor(5.5 - 0.8 * similarity), 1, 5)"


def similarity_to_severity(similarity: float) -> int:
    """Expected human similarity 0..5 -> severity 5..1 (see the module docstring)."""
    return int(min(MAX_SEVERITY, max(MIN_SEVERITY, math.floor(5.5 - 0.8 * similarity))))


def uncalibrated_severity(p_same: float) -> int:
    """Five equal-width bins of p_same: [0, 0.2) -> 5, ..., [0.8, 1] -> 1."""
    return MAX_SEVERITY - min(int(math.floor(max(p_same, 0.0) * 5)), 4)


DEFAULT_BINS = 10
"""Equal-count groups of p_same that isotonic regression starts from (see ``pav_fit``)."""


def _start_groups(xs: np.ndarray, groups: int | None) -> list[int]:
    """Start indices of the initial blocks of sorted ``xs``: one per distinct value, or
    ``groups`` runs of nearly equal size whose borders never split equal values."""
    if groups is None or groups >= len(xs):
        return np.unique(xs, return_index=True)[1].tolist()
    starts = [0]
    for border in np.linspace(0, len(xs), groups + 1)[1:-1].round().astype(int):
        # Move the border past values equal to the one before it: equal p_same, one block.
        while border < len(xs) and xs[border] == xs[border - 1]:
            border += 1
        if starts[-1] < border < len(xs):
            starts.append(int(border))
    return starts


def pav_fit(
    x: Sequence[float], y: Sequence[float], *, groups: int | None = None
) -> tuple[list[float], list[float]]:
    """Nondecreasing least-squares fit of y on x (pool adjacent violators).

    Returns knots (xs strictly ascending, ys nondecreasing): every pooled block
    contributes its smallest and largest x (one knot if they coincide), both at the
    block's mean y; between knots the map is linear, beyond them constant (as
    scikit-learn's IsotonicRegression with out_of_bounds="clip").
    E.g. x = [0.1, 0.2, 0.3, 0.4], y = [1, 3, 2, 4] -> blocks {1}, {3, 2}, {4} ->
    knots ([0.1, 0.2, 0.3, 0.4], [1, 2.5, 2.5, 4]).

    Points with equal x always start in one block. With ``groups``, the points sorted by
    x start in that many equal-count blocks instead of one each: plain PAV overfits the
    tails, where a lone extreme point stays a block of its own (on the shipped model,
    whose p_same has Kendall tau -0.005 with the human scores, one point at the lowest
    p_same made a knot at score 1.0 and spread the map over two severities).
    """
    if len(x) != len(y) or not len(x):
        raise CalibrationError(f"need as many p_same values as scores (>0), got {len(x)}/{len(y)}")
    order = np.argsort(np.asarray(x, dtype=float), kind="stable")
    xs = np.asarray(x, dtype=float)[order]
    ys = np.asarray(y, dtype=float)[order]
    starts = _start_groups(xs, groups)
    ends = [*starts[1:], len(xs)]
    # Each block: [weight, sum of y, first x, last x]; merge while means decrease.
    blocks: list[list[float]] = []
    for begin, stop in zip(starts, ends, strict=True):
        blocks.append([float(stop - begin), float(ys[begin:stop].sum()), xs[begin], xs[stop - 1]])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][0] > blocks[-1][1] / blocks[-1][0]:
            weight, total_y, _, last = blocks.pop()
            blocks[-1][0] += weight
            blocks[-1][1] += total_y
            blocks[-1][3] = last
    knots_x: list[float] = []
    knots_y: list[float] = []
    for weight, total_y, first, last in blocks:
        for point in (first, last) if last > first else (first,):
            knots_x.append(float(point))
            knots_y.append(total_y / weight)
    return knots_x, knots_y


def _kendall_tau(x: Sequence[float], y: Sequence[float]) -> float | None:
    from scipy.stats import kendalltau

    tau = kendalltau(x, y).statistic if len(x) > 1 else math.nan
    return None if math.isnan(tau) else float(tau)


@dataclass(frozen=True)
class SeverityCalibration:
    """A monotone map p_same -> expected human similarity (0..5) -> severity (1..5).

    ``p_same``/``similarity`` are the knots of :func:`pav_fit`. ``fingerprint`` names the
    projector weights the map was fitted for (see ``projector_fingerprint``); None skips
    the check (hand-made maps).
    """

    p_same: tuple[float, ...]
    similarity: tuple[float, ...]
    model: str = ""
    fingerprint: str | None = None
    split: str | None = None
    rows: int = 0
    points: int = 0
    diagnostics: dict[str, Any] = field(default_factory=dict, compare=False)
    source: str | None = field(default=None, compare=False)  # file it was loaded from

    def __post_init__(self) -> None:
        problem = _check_knots(self.p_same, self.similarity)
        if problem:
            raise CalibrationError(f"{self.source or 'calibration'}: {problem}")

    # ----- fitting --------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        p_same: Sequence[float],
        scores: Sequence[float],
        *,
        model: str = "",
        fingerprint: str | None = None,
        split: str | None = None,
        rows: int = 0,
        bins: int | None = DEFAULT_BINS,
    ) -> SeverityCalibration:
        """Fit on (p_same, human score 0..5) points, e.g. every target of DiffRank rows;
        ``bins`` equal-count groups of p_same start the isotonic fit (see ``pav_fit``)."""
        for value in scores:
            if not MIN_RANK_SCORE <= value <= MAX_RANK_SCORE:
                raise CalibrationError(f"human score {value} outside 0..5")
        for value in p_same:
            if not 0.0 <= value <= 1.0:
                raise CalibrationError(f"p_same {value} outside 0..1")
        knots_x, knots_y = pav_fit(p_same, scores, groups=bins)
        diagnostics = {
            "kendall_tau_p_same_vs_score": _kendall_tau(p_same, scores),
            "mean_score": float(np.mean(scores)),
            "bins": bins,
            "p_same_range": [float(min(p_same)), float(max(p_same))],
        }
        return cls(
            tuple(knots_x),
            tuple(knots_y),
            model=model,
            fingerprint=fingerprint,
            split=split,
            rows=rows,
            points=len(scores),
            diagnostics=diagnostics,
        )

    # ----- applying -------------------------------------------------------------------
    def similarity_at(self, p_same: float) -> float:
        """Expected human similarity score 0..5 for this p_same."""
        return float(np.interp(p_same, self.p_same, self.similarity))

    def severity(self, p_same: float) -> int:
        """Severity 1 (no/minor difference) .. 5 (major difference)."""
        return similarity_to_severity(self.similarity_at(p_same))

    def bands(self) -> list[dict[str, float | int]]:
        """The map as p_same intervals of one severity each, ascending, covering [0, 1]."""
        cuts = {0.0, 1.0, *self.p_same}
        boundaries = [(5.5 - k) / 0.8 for k in range(MIN_SEVERITY + 1, MAX_SEVERITY + 1)]
        knots = list(zip(self.p_same, self.similarity, strict=True))
        for (x0, y0), (x1, y1) in zip(knots, knots[1:], strict=False):
            for level in boundaries:
                if y0 < level < y1:  # the linear piece crosses a severity boundary
                    cuts.add(x0 + (level - y0) * (x1 - x0) / (y1 - y0))
        points = sorted(c for c in cuts if 0.0 <= c <= 1.0)
        bands: list[dict[str, float | int]] = []
        for low, high in zip(points, points[1:], strict=False):
            severity = self.severity((low + high) / 2)
            if bands and bands[-1]["severity"] == severity:
                bands[-1]["p_same_to"] = high
            else:
                bands.append({"severity": severity, "p_same_from": low, "p_same_to": high})
        return bands

    # ----- files ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CALIBRATION_FORMAT,
            "kind": CALIBRATION_KIND,
            "model": self.model,
            "projector_fingerprint": self.fingerprint,
            "split": self.split,
            "rows": self.rows,
            "points": self.points,
            "map": {"p_same": list(self.p_same), "similarity": list(self.similarity)},
            "severity_rule": SEVERITY_RULE,
            # Derived from the map, for readers of the file; ignored when loading.
            "severity_bands": [
                {k: round(v, 4) if isinstance(v, float) else v for k, v in band.items()}
                for band in self.bands()
            ],
            "diagnostics": self.diagnostics,
        }

    def save(self, path: str | Path) -> Path:
        """Write the JSON atomically (temp file + rename): never half written."""
        return write_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> SeverityCalibration:
        """Read a calibration file; any problem is one CalibrationError line naming it."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CalibrationError(f"{path}: calibration file not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            reason = " ".join(str(error).split())
            raise CalibrationError(f"{path}: unreadable calibration file ({reason})") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "calibration") -> SeverityCalibration:
        if not isinstance(data, dict):
            raise CalibrationError(f"{source}: not a severity calibration (expected an object)")
        if data.get("format") != CALIBRATION_FORMAT or data.get("kind") != CALIBRATION_KIND:
            raise CalibrationError(
                f"{source}: not a severity calibration of format {CALIBRATION_FORMAT} "
                f"(format {data.get('format')!r}, kind {data.get('kind')!r})"
            )
        knots = data.get("map")
        if not isinstance(knots, dict):
            raise CalibrationError(f"{source}: field 'map' must be an object")
        fingerprint = data.get("projector_fingerprint")
        try:
            return cls(
                tuple(_numbers(knots.get("p_same"), "map.p_same", source)),
                tuple(_numbers(knots.get("similarity"), "map.similarity", source)),
                model=str(data.get("model", "")),
                fingerprint=None if fingerprint is None else str(fingerprint),
                split=data.get("split"),
                rows=int(data.get("rows", 0)),
                points=int(data.get("points", 0)),
                diagnostics=dict(data.get("diagnostics") or {}),
                source=source,
            )
        except (TypeError, ValueError) as error:
            raise CalibrationError(f"{source}: malformed calibration ({error})") from None


def find_calibration(model: ModelOptions, path: Path | None = None) -> SeverityCalibration | None:
    """The calibration at ``path``, else the one stored beside the model folder that
    ``model`` loads (``severity_calibration.json``), else None."""
    if path is not None:
        return SeverityCalibration.load(path)
    folder = model.folder()
    if folder is not None and (folder / CALIBRATION_FILE).is_file():
        return SeverityCalibration.load(folder / CALIBRATION_FILE)
    return None


def _numbers(value: Any, name: str, source: str) -> list[float]:
    if not isinstance(value, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        raise CalibrationError(f"{source}: field {name!r} must be an array of numbers")
    return [float(v) for v in value]


def _check_knots(xs: Sequence[float], ys: Sequence[float]) -> str | None:
    """Why these knots are no valid map, or None."""
    if len(xs) != len(ys) or not xs:
        return f"map needs as many p_same as similarity knots (>0), got {len(xs)}/{len(ys)}"
    if not all(math.isfinite(v) for v in (*xs, *ys)):
        return "map holds a NaN or infinite value"
    if any(b <= a for a, b in zip(xs, xs[1:], strict=False)) or not 0 <= xs[0] <= xs[-1] <= 1:
        return "map p_same knots must rise strictly within 0..1"
    if any(b < a for a, b in zip(ys, ys[1:], strict=False)):
        return "map similarity must not decrease as p_same rises"
    if not MIN_RANK_SCORE <= ys[0] <= ys[-1] <= MAX_RANK_SCORE:
        return "map similarity must lie within 0..5"
    return None
