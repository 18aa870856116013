"""The coaching assistant: difference reports, rankings and free questions about clips.

Every call encodes each clip once (through the model's feature cache) and asks the LLM
in as few batched calls as possible: one P(YES) batch for all categories of a pair (all
candidates x categories when ranking), one generation batch for the captions.

Shapes: K candidates, C categories, T time steps, P tokens per step, D encoder width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from stepdiff.assistant.calibration import (
    SeverityCalibration,
    find_calibration,
    uncalibrated_severity,
)
from stepdiff.assistant.categories import check_categories
from stepdiff.assistant.errors import AssistantError, CalibrationError
from stepdiff.assistant.fingerprint import projector_fingerprint
from stepdiff.assistant.moments import most_different, step_to_frame
from stepdiff.assistant.results import (
    CategoryDifference,
    DifferenceReport,
    Moment,
    RankedCandidate,
    RankResult,
)
from stepdiff.data.questions import difference_question, same_question
from stepdiff.model.stepdiff import StepDiffModel
from stepdiff.model_options import SHIPPED_MODEL, ModelOptions
from stepdiff.video.clip import ClipRef


class Assistant:
    """Compares a user's clip of a step with a reference clip, using a StepDiff model.

    ``calibration`` maps p_same to the 1-5 severity; without one, equal-width bins are
    used and reports say ``calibrated=False``. A calibration fitted for other projector
    weights is refused. ``batch_size`` bounds the rows of one LLM call (memory).
    """

    def __init__(
        self,
        model: StepDiffModel,
        calibration: SeverityCalibration | None = None,
        *,
        batch_size: int = 48,
    ) -> None:
        if calibration is not None and calibration.fingerprint is not None:
            fingerprint = projector_fingerprint(model)
            if calibration.fingerprint != fingerprint:
                raise CalibrationError(
                    f"{calibration.source or 'calibration'}: fitted for model "
                    f"{calibration.model!r} (projector {calibration.fingerprint}), not for "
                    f"this one (projector {fingerprint}); run `stepdiff calibrate` for it"
                )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.calibration = calibration
        self.batch_size = batch_size
        self._times: dict[str, list[float]] = {}  # feature-cache key -> sampled frame times

    @classmethod
    def load(
        cls,
        model: ModelOptions = SHIPPED_MODEL,
        calibration: Path | None = None,
    ) -> Assistant:
        """The model that ``model`` names (the shipped one by default), with the
        calibration at ``calibration`` or else the one stored beside the model."""
        # Read the calibration first: a bad file fails before the slow model load.
        found = find_calibration(model, calibration)
        return cls(model.load(), found)

    @property
    def calibrated(self) -> bool:
        return self.calibration is not None

    def severity(self, p_same: float) -> int:
        """1 (no/minor difference) .. 5 (major difference)."""
        if self.calibration is None:
            return uncalibrated_severity(p_same)
        return self.calibration.severity(p_same)

    # ----- frames -----------------------------------------------------------------------
    def frames(self, clip: ClipRef) -> tuple[list[float], list[np.ndarray]]:
        """The frames the model sees: their times (s, in the video file's timeline) and
        RGB uint8 (H, W, 3) pixels, scaled down while decoding to at most
        ``MAX_RESIZE_INPUT_PIXELS`` (they become thumbnails: an 8K frame need not exist)."""
        from stepdiff.video import transforms
        from stepdiff.video.decode import read_clip_frames

        sampled = read_clip_frames(
            clip,
            num_frames=self.model.featurizer.num_frames,
            fit_pixels=transforms.MAX_RESIZE_INPUT_PIXELS,
        )
        self._times[self.model.featurizer.key(clip)] = list(sampled.timestamps)
        return list(sampled.timestamps), list(sampled.frames)

    def frame_times(self, clip: ClipRef) -> list[float]:
        """Times (s) of the clip's sampled frames (decoded once per clip and file version)."""
        key = self.model.featurizer.key(clip)
        if key not in self._times:
            self.frames(clip)
        return self._times[key]

    # ----- batched model calls --------------------------------------------------------
    def _p_same(
        self, reference: torch.Tensor, candidate: torch.Tensor, categories: Sequence[str]
    ) -> list[float]:
        """P(YES) to "same <category>?" per row; reference/candidate (N, T, P, D)."""
        questions = [same_question(category) for category in categories]
        out: list[float] = []
        for start in range(0, len(questions), self.batch_size):
            rows = slice(start, start + self.batch_size)
            out += self.model.p_yes(reference[rows], candidate[rows], questions[rows]).tolist()
        for category, p in zip(categories, out, strict=True):
            # A NaN has no severity and no rank; it comes from non-finite features or
            # weights that loading did not catch (e.g. a model built in code).
            if not math.isfinite(p):
                raise AssistantError(
                    f"the model gave P(same) = {p} for {category!r}: its features or "
                    "weights are not finite"
                )
        return out

    def _captions(
        self,
        reference: torch.Tensor,
        candidate: torch.Tensor,
        categories: Sequence[str],
        max_new_tokens: int,
    ) -> list[str]:
        """Generated difference captions per row; reference/candidate (N, T, P, D)."""
        questions = [difference_question(category) for category in categories]
        out: list[str] = []
        for start in range(0, len(questions), self.batch_size):
            rows = slice(start, start + self.batch_size)
            out += self.model.generate(
                reference[rows], candidate[rows], questions[rows], max_new_tokens=max_new_tokens
            )
        return out

    # ----- public calls -----------------------------------------------------------------
    def report(
        self,
        reference: ClipRef,
        candidate: ClipRef,
        categories: Sequence[str] | None = None,
        *,
        with_captions: bool = True,
        max_new_tokens: int = 40,
        num_moments: int = 3,
    ) -> DifferenceReport:
        """Per category: a caption, p_same, severity and the most different moments."""
        names = check_categories(categories)
        if num_moments < 0:
            raise AssistantError(f"num_moments must be >= 0, got {num_moments}")
        features = self.model.clip_features([reference, candidate])  # (2, T, P, D)
        count = len(names)
        ref = features[0:1].expand(count, *features.shape[1:])  # (C, T, P, D)
        cand = features[1:2].expand(count, *features.shape[1:])  # (C, T, P, D)
        p_same = self._p_same(ref, cand, names)
        captions = (
            self._captions(ref, cand, names, max_new_tokens) if with_captions else [""] * count
        )
        ref_times, cand_times = self.frame_times(reference), self.frame_times(candidate)
        moments = self._moments(features[0], features[1], ref_times, cand_times, num_moments)
        return DifferenceReport(
            reference=str(reference),
            candidate=str(candidate),
            reference_times=list(ref_times),
            candidate_times=list(cand_times),
            calibrated=self.calibrated,
            categories=[
                CategoryDifference(
                    category=name,
                    caption=caption,
                    p_same=p,
                    severity=self.severity(p),
                    moments=list(moments),
                )
                for name, caption, p in zip(names, captions, p_same, strict=True)
            ],
            projector_trained=self.model.projector_trained,
        )

    def _moments(
        self,
        reference: torch.Tensor,
        candidate: torch.Tensor,
        ref_times: list[float],
        cand_times: list[float],
        count: int,
    ) -> list[Moment]:
        """Most different aligned frames; reference/candidate (T, P, D) frozen features."""
        if count == 0:
            return []
        moments = []
        for pair in most_different(reference, candidate, count):
            ref_frame = step_to_frame(pair.reference_step, reference.shape[0], len(ref_times))
            cand_frame = step_to_frame(pair.candidate_step, candidate.shape[0], len(cand_times))
            moments.append(
                Moment(
                    reference_time=ref_times[ref_frame],
                    candidate_time=cand_times[cand_frame],
                    reference_frame=ref_frame,
                    candidate_frame=cand_frame,
                    distance=pair.distance,
                )
            )
        return moments

    def rank(
        self,
        reference: ClipRef,
        candidates: Sequence[ClipRef],
        categories: Sequence[str] | None = None,
    ) -> RankResult:
        """Order candidates by P(YES) to "same <category>?" against the reference (higher
        = closer), per category and by the mean over categories; ties keep input order."""
        names = check_categories(categories)
        candidates = list(candidates)
        if len(candidates) < 2:
            raise AssistantError(f"ranking needs at least 2 candidates, got {len(candidates)}")
        features = self.model.clip_features([reference, *candidates])  # (1+K, T, P, D)
        num_cands, count = len(candidates), len(names)
        ref = features[0:1].expand(num_cands * count, *features.shape[1:])  # (K*C, T, P, D)
        cand = features[1:].repeat_interleave(count, dim=0)  # (K*C, T, P, D), candidate-major
        flat = self._p_same(ref, cand, names * num_cands)
        table = np.asarray(flat, dtype=np.float64).reshape(num_cands, count)  # (K, C)
        overall = table.mean(axis=1)  # (K,)

        def closest_first(scores: np.ndarray) -> list[int]:
            return sorted(range(num_cands), key=lambda k: (-scores[k], k))

        return RankResult(
            reference=str(reference),
            per_category={name: closest_first(table[:, c]) for c, name in enumerate(names)},
            overall=closest_first(overall),
            candidates=[
                RankedCandidate(
                    candidate=str(clip),
                    p_same={name: float(table[k, c]) for c, name in enumerate(names)},
                    overall=float(overall[k]),
                )
                for k, clip in enumerate(candidates)
            ],
            categories=names,
        )

    def ask(
        self,
        reference: ClipRef,
        candidate: ClipRef,
        questions: Sequence[str],
        max_new_tokens: int = 48,
    ) -> list[str]:
        """Free answers to any questions about the pair (each video encoded once)."""
        return self.model.ask(reference, candidate, list(questions), max_new_tokens)
