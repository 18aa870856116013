"""Metrics on hand-computed cases, parity with the official script's computations, the
bootstrap, and scoring the real DiffRank file (when present)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import kendalltau

from stepdiff.data import (
    CaptionPrediction,
    DiffCapItem,
    DiffMCQItem,
    DiffRankItem,
    ScorePrediction,
    read_diffrank,
)
from stepdiff.eval import metrics as M
from stepdiff.eval.score import score_records

CLIPS = ("vidA_0_5", "vidB_1_6", "vidC_2_7", "vidD_3_8")
BETA2 = 1.2**2  # pycocoevalcap's ROUGE-L beta


def official_diffcap(refs: list[list[str]], hyps: list[str]) -> dict[str, float]:
    """The official script's ``evaluate_diffcap``, verbatim in substance."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    hypothesis = {str(i): [h] for i, h in enumerate(hyps)}
    reference = {str(i): r for i, r in enumerate(refs)}
    return {
        "BLEU": Bleu().compute_score(reference, hypothesis)[0][0],
        "CIDEr": Cider().compute_score(reference, hypothesis)[0],
        "ROUGE-L": Rouge().compute_score(reference, hypothesis)[0],
    }


def rank_items(scores: list[list[int]], category: str = "Visuals") -> list[DiffRankItem]:
    return [DiffRankItem(CLIPS[0], CLIPS, category, tuple(s)) for s in scores]


def preds(rows) -> list[ScorePrediction]:
    return [ScorePrediction(tuple(row)) for row in rows]


# --- DiffMCQ -------------------------------------------------------------------------------


def mcq_item(gold: int, category: str = "Technique") -> DiffMCQItem:
    options = tuple((CLIPS[i], CLIPS[(i + 1) % 4]) for i in range(4))
    return DiffMCQItem("a difference", category, options, options[gold])


def test_mcq_accuracy_by_hand_with_a_tie_going_to_the_first_option():
    items = [mcq_item(1), mcq_item(1), mcq_item(3)]
    scores = [[0.1, 0.9, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    # argmax: 1 (right), 0 (tie -> first, wrong), 3 (right) => 2/3
    report = score_records("diffmcq", items, preds(scores), bootstrap=0)
    assert report.official == {"accuracy": pytest.approx(2 / 3, abs=1e-15)}
    assert report.metric("accuracy").value == report.official["accuracy"]
    assert report.counts == {"tied_top_score": 1}


def test_mcq_accuracy_per_category():
    items = [mcq_item(0, "Technique"), mcq_item(0, "Technique"), mcq_item(2, "Actions")]
    scores = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]
    report = score_records("diffmcq", items, preds(scores), bootstrap=0)
    by_category = {c.category: c.metric("accuracy").value for c in report.per_category}
    assert by_category == {"Technique": 0.5, "Actions": 1.0}
    assert [c.category for c in report.per_category] == ["Technique", "Actions"]  # official order


# --- DiffRank ------------------------------------------------------------------------------

TAU_CASES = [
    # (predicted, annotated, tau-b by hand)
    ([1, 2, 3, 4], [0, 1, 2, 3], 1.0),  # same order
    ([4, 3, 2, 1], [0, 1, 2, 3], -1.0),  # reversed
    ([1, 2, 4, 3], [1, 2, 3, 4], 4 / 6),  # one swap: 5 concordant, 1 discordant of 6 pairs
    # GT tie (targets 0 and 1): that pair counts in neither; S = 5 concordant,
    # tau-b = 5 / sqrt(6 * (6 - 1)).
    ([0.1, 0.2, 0.4, 0.3], [0, 0, 3, 2], 5 / math.sqrt(30)),
    # Ties on both sides (the same pair): S = 4 - 1 = 3, tau-b = 3 / sqrt(5 * 5).
    ([1, 1, 2, 3], [0, 0, 3, 2], 3 / 5),
    # Ties on different pairs: pred tie (2,3), GT tie (0,1); S = 4 concordant,
    # tau-b = 4 / sqrt(5 * 5).
    ([1, 2, 3, 3], [0, 0, 2, 5], 4 / 5),
]


@pytest.mark.parametrize(("predicted", "annotated", "expected"), TAU_CASES)
def test_kendall_tau_b_by_hand_and_equal_to_scipy(predicted, annotated, expected):
    tau = M.kendall_tau_b_rows(np.array([predicted]), np.array([annotated]))[0]
    assert tau == pytest.approx(expected, abs=1e-12)
    assert tau == kendalltau(predicted, annotated).statistic  # bit for bit


def test_kendall_tau_of_a_constant_row_is_nan_like_scipy():
    tau = M.kendall_tau_b_rows(np.array([[2.0, 2, 2, 2]]), np.array([[0, 0, 3, 2]]))[0]
    assert math.isnan(tau) and math.isnan(kendalltau([2, 2, 2, 2], [0, 0, 3, 2]).statistic)


def test_vectorised_tau_matches_scipy_bit_for_bit_with_many_ties():
    rng = np.random.default_rng(7)
    predicted = rng.integers(0, 3, size=(300, 4)).astype(float)  # plenty of ties and NaN rows
    predicted[:100] = rng.random((100, 4))
    annotated = rng.integers(0, 6, size=(300, 4))
    ours = M.kendall_tau_b_rows(predicted, annotated)
    official = M.scipy_kendall_tau_rows(predicted, annotated)
    assert np.isnan(ours).any()
    np.testing.assert_array_equal(ours, official)  # NaN positions included


def test_nan_row_makes_the_official_mean_nan_and_the_nan_safe_mean_skips_it():
    items = rank_items([[0, 1, 2, 3], [1, 2, 3, 4], [0, 0, 3, 2]])
    rows = [[1, 2, 3, 4], [1, 2, 4, 3], [7, 7, 7, 7]]  # taus 1, 4/6, NaN
    report = score_records("diffrank", items, preds(rows), bootstrap=100)
    assert math.isnan(report.official["ktau"])
    official = report.metric("Kendall tau-b")
    assert math.isnan(official.value) and official.ci is None and official.official
    safe = report.metric("Kendall tau-b (NaN-safe)")
    assert safe.value == pytest.approx((1 + 4 / 6) / 2) and not safe.official
    assert report.counts == {"nan_rows": 1}
    assert any("1 of 3 rows" in note for note in report.notes)
    assert report.to_json()["official"] == {"ktau": None}  # strict JSON has no NaN


# --- DiffCap -------------------------------------------------------------------------------


def caption_items(refs: list[list[str]], categories: list[str] | None = None):
    categories = categories or ["Ingredients"] * len(refs)
    return [
        DiffCapItem(CLIPS[0], CLIPS[1], cat, tuple(r))
        for r, cat in zip(refs, categories, strict=True)
    ]


def test_bleu1_by_hand_clipping_brevity_and_corpus_aggregation():
    refs = [["the cat sat on mat"], ["the cat sat on mat", "the cat"]]
    hyps = ["the the cat", "the the cat"]
    scores = M.caption_scores(refs, hyps)
    # Item 1: "the" clipped to 1, "cat" 1 -> 2/3; hyp 3 words vs ref 5 -> BP = exp(1 - 5/3).
    assert scores.bleu_items[0, 0] == pytest.approx(2 / 3 * math.exp(1 - 5 / 3), rel=1e-8)
    # Item 2: closest reference length to 3 is 2 ("the cat"): no brevity penalty.
    assert scores.bleu_items[1, 0] == pytest.approx(2 / 3, rel=1e-8)
    # Corpus BLEU-1 (the official "BLEU"): (2+2)/(3+3), BP = exp(1 - (5+2)/(3+3)),
    # not the mean of the two sentence scores.
    corpus = 4 / 6 * math.exp(1 - 7 / 6)
    assert scores.official["BLEU"] == pytest.approx(corpus, rel=1e-8)
    assert scores.official["BLEU"] == official_diffcap(refs, hyps)["BLEU"]


def test_rouge_l_by_hand():
    refs = [["the cat on mat"]]
    hyps = ["the cat sat on the mat"]
    # LCS = "the cat on mat" = 4; P = 4/6, R = 4/4; F = (1+b^2) P R / (R + b^2 P).
    p, r = 4 / 6, 1.0
    expected = (1 + BETA2) * p * r / (r + BETA2 * p)
    scores = M.caption_scores(refs, hyps)
    assert scores.official["ROUGE-L"] == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.8299319727891157, rel=1e-12)


CAPTION_REFS = [
    ["the person chopped small red chili as opposed to long red chili", "diced the chili"],
    ["a whisk was used instead of a fork", "the person whisked the eggs with a whisk"],
    ["the onions were fried until golden instead of lightly browned"],
    ["the dough was rolled by hand rather than with a rolling pin", "rolled by hand"],
    ["they used brown sugar instead of white sugar"],
    ["the plate was garnished with parsley instead of basil"],
]
CAPTION_HYPS = [
    "the person chopped long red chili",
    "a fork was used instead of a whisk",
    "",
    "the dough was rolled with a pin",
    "white sugar instead of brown sugar  ",  # odd spacing: scorers split it their own way
    "garnished with basil",
]
CAPTION_CATEGORIES = [
    "Ingredients",
    "Tools/Equipment",
    "Technique",
    "Technique",
    "Ingredients",
    "Serving / Presentation",
]


def test_diffcap_official_numbers_equal_the_official_script_exactly(capsys):
    items = caption_items(CAPTION_REFS, CAPTION_CATEGORIES)
    predictions = [CaptionPrediction(h) for h in CAPTION_HYPS]
    report = score_records("diffcap", items, predictions, bootstrap=0)
    expected = official_diffcap(CAPTION_REFS, CAPTION_HYPS)
    assert report.official == expected  # exact floats, not approx
    assert report.metric("BLEU-1").value == expected["BLEU"]
    assert report.metric("CIDEr-D").value == expected["CIDEr"]
    assert report.metric("ROUGE-L").value == expected["ROUGE-L"]
    assert [m.name for m in report.metrics if m.official] == ["BLEU-1", "CIDEr-D", "ROUGE-L"]
    assert report.counts == {"empty_predictions": 1}


def test_bleu_from_statistics_reproduces_pycocoevalcap_on_any_subset():
    from pycocoevalcap.bleu.bleu import Bleu

    scores = M.caption_scores(CAPTION_REFS, CAPTION_HYPS)
    np.testing.assert_allclose(
        M.bleu_from_totals(scores.bleu_stats.sum(axis=0)), scores.bleu, rtol=1e-12
    )
    subset = [0, 3, 4]  # what the official script gives on these items alone
    gts = {str(i): CAPTION_REFS[j] for i, j in enumerate(subset)}
    res = {str(i): [CAPTION_HYPS[j]] for i, j in enumerate(subset)}
    expected, _ = Bleu(4).compute_score(gts, res, verbose=0)
    for order in (1, 4):
        statistic = M.bleu_statistic(f"BLEU-{order}", scores.bleu_stats, order)
        assert statistic.value(np.array(subset)) == pytest.approx(expected[order - 1], rel=1e-12)


def test_diffcap_per_category_uses_per_item_means_for_cider_and_rouge():
    items = caption_items(CAPTION_REFS, CAPTION_CATEGORIES)
    predictions = [CaptionPrediction(h) for h in CAPTION_HYPS]
    report = score_records("diffcap", items, predictions, bootstrap=0)
    scores = M.caption_scores(CAPTION_REFS, CAPTION_HYPS)
    technique = next(c for c in report.per_category if c.category == "Technique")
    assert technique.count == 2
    assert technique.metric("ROUGE-L").value == pytest.approx(scores.rouge_items[[2, 3]].mean())
    assert technique.metric("CIDEr-D").value == pytest.approx(scores.cider_items[[2, 3]].mean())
    assert technique.counts == {"empty_predictions": 1}


# --- bootstrap -----------------------------------------------------------------------------


def test_bootstrap_ci_contains_the_estimate_and_is_deterministic_for_a_seed():
    rng = np.random.default_rng(0)
    annotated = np.array([rng.permutation(6)[:4] for _ in range(200)])  # no constant row
    predicted = annotated + rng.normal(0, 2, size=(200, 4))
    items = rank_items(annotated.tolist())
    first = score_records("diffrank", items, preds(predicted), bootstrap=300, seed=5)
    again = score_records("diffrank", items, preds(predicted), bootstrap=300, seed=5)
    other = score_records("diffrank", items, preds(predicted), bootstrap=300, seed=6)
    metric = first.metric("Kendall tau-b")
    low, high = metric.ci
    assert low < metric.value < high
    assert 0.005 < high - low < 0.3
    assert again.metric("Kendall tau-b").ci == metric.ci
    assert other.metric("Kendall tau-b").ci != metric.ci
    # Without NaN rows, the official and NaN-safe means and intervals coincide.
    assert first.metric("Kendall tau-b (NaN-safe)").ci == pytest.approx(metric.ci)


def test_bootstrap_of_a_mean_matches_resampling_items_directly():
    values = np.arange(10, dtype=float)
    statistic = M.mean_statistic("mean", values)
    distribution = statistic.bootstrap(50, seed=3)
    rng = np.random.default_rng(3)
    direct = values[rng.integers(0, 10, size=(50, 10))].mean(axis=1)
    np.testing.assert_allclose(distribution, direct)


# --- paired differences ---------------------------------------------------------------------


def test_paired_mcq_difference_resamples_the_same_items_for_both_files():
    items = [mcq_item(0) for _ in range(8)]
    right, wrong = [1, 0, 0, 0], [0, 1, 0, 0]
    mine = preds([right] * 6 + [wrong] * 2)  # accuracy 6/8
    theirs = preds([right, wrong, right, wrong, right, right, wrong, wrong])  # 4/8
    report = score_records(
        "diffmcq", items, mine, bootstrap=400, seed=2, against=[("theirs", theirs)]
    )
    paired = report.paired_result("theirs", "accuracy")
    assert paired.difference == pytest.approx(6 / 8 - 4 / 8)
    # By hand: the difference on a resample is the mean of per-item differences over the
    # same drawn items, (0, 1, 0, 1, 0, 0, 0, 0)[drawn].mean().
    per_item = np.array([0, 1, 0, 1, 0, 0, 0, 0], dtype=float)
    rng = np.random.default_rng(2)
    direct = per_item[rng.integers(0, 8, size=(400, 8))].mean(axis=1)
    assert paired.ci == pytest.approx(M.percentile_interval(direct))
    assert paired.not_better == pytest.approx(np.mean(direct <= 0))
    # Mine is right wherever theirs is, so no resample can favour theirs.
    assert paired.ci[0] >= 0.0


def test_paired_difference_from_itself_is_exactly_zero():
    rng = np.random.default_rng(0)
    annotated = np.array([rng.permutation(6)[:4] for _ in range(50)])
    predicted = preds(annotated + rng.normal(0, 2, size=(50, 4)))
    items = rank_items(annotated.tolist())
    report = score_records(
        "diffrank", items, predicted, bootstrap=100, against=[("same", predicted)]
    )
    for result in report.paired:
        assert (result.difference, result.ci, result.not_better) == (0.0, (0.0, 0.0), 1.0)
    assert [r.name for r in report.paired] == [m.name for m in report.metrics]


def test_paired_caption_difference_uses_the_official_numbers():
    items = caption_items(CAPTION_REFS * 2)
    mine = [CaptionPrediction(h) for h in CAPTION_HYPS * 2]
    theirs = [CaptionPrediction("the") for _ in mine]
    report = score_records("diffcap", items, mine, bootstrap=50, against=[("t", theirs)])
    other = score_records("diffcap", items, theirs, bootstrap=0)
    for metric in report.metrics:
        expected = metric.value - other.metric(metric.name).value
        assert report.paired_result("t", metric.name).difference == pytest.approx(expected)


def test_paired_predictions_of_the_wrong_length_are_refused():
    with pytest.raises(ValueError, match="1 predictions for 2 items"):
        score_records(
            "diffmcq",
            [mcq_item(0), mcq_item(1)],
            preds([[1, 0, 0, 0], [0, 1, 0, 0]]),
            against=[("short", preds([[1, 0, 0, 0]]))],
        )


def test_caption_intervals_contain_the_official_numbers():
    items = caption_items(CAPTION_REFS * 3)
    predictions = [CaptionPrediction(h) for h in CAPTION_HYPS * 3]
    report = score_records("diffcap", items, predictions, bootstrap=200, seed=1)
    for metric in report.metrics:
        low, high = metric.ci
        assert low <= metric.value <= high, metric


def test_no_bootstrap_means_no_intervals():
    report = score_records("diffmcq", [mcq_item(0)], preds([[1, 0, 0, 0]]), bootstrap=0)
    assert report.metric("accuracy").ci is None


# --- the real DiffRank file ----------------------------------------------------------------


@pytest.fixture(scope="module")
def real_items(real_diffrank_path) -> list[DiffRankItem]:
    return read_diffrank(real_diffrank_path)


def test_random_predictions_on_the_real_file_give_tau_near_zero(real_items):
    rng = np.random.default_rng(0)
    report = score_records(
        "diffrank", real_items, preds(rng.random((len(real_items), 4))), bootstrap=200
    )
    assert abs(report.official["ktau"]) < 0.05
    low, high = report.metric("Kendall tau-b").ci
    assert low < 0 < high


def test_ground_truth_with_tie_breaking_noise_gives_tau_near_one(real_items):
    annotated = np.array([item.scores for item in real_items], dtype=float)
    # Deterministic noise far below the score step breaks ties without reordering.
    noise = 1e-3 * (np.arange(annotated.size).reshape(annotated.shape) % 7)
    report = score_records("diffrank", real_items, preds(annotated + noise), bootstrap=0)
    # A tied annotated pair counts in neither direction, so a tie-free prediction tops
    # out below 1 on rows with ties (3,504 of 4,080): the best possible is ~0.925.
    assert 0.9 < report.official["ktau"] < 0.93
    assert report.counts == {"nan_rows": 0}


def test_vectorised_tau_equals_the_official_scipy_loop_on_real_rows(real_items):
    annotated = np.array([item.scores for item in real_items[:600]])
    predicted = np.random.default_rng(1).integers(0, 4, size=annotated.shape)  # with ties
    np.testing.assert_array_equal(
        M.kendall_tau_b_rows(predicted, annotated), M.scipy_kendall_tau_rows(predicted, annotated)
    )
