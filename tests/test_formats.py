"""Official StepDiff formats: typed records, round trips, one-line errors naming file,
line and field, atomic writes, and the real DiffRank release file (when present)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from stepdiff.data import (
    CATEGORIES,
    CaptionPrediction,
    DiffCapItem,
    DiffMCQItem,
    DiffRankItem,
    ScorePrediction,
    read_diffcap,
    read_diffmcq,
    read_diffrank,
    read_predictions,
    write_jsonl,
)
from stepdiff.errors import DataFormatError, StepDiffError

A, B, C, D = (
    "vidA_1_2",
    "vid_with_underscores_3.5_7.25",
    "vidC_0_10",
    "-dSL1P7MUHw_122.79905_141.76286",
)

CAP = {"reference": A, "candidate": B, "category": "Ingredients", "text": ["x instead of y"]}
MCQ = {
    "difference": "The person used a whisk instead of a fork.",
    "category": "Tools/Equipment",
    "options": [[A, B], [B, A], [C, D], [A, D]],
    "answer": [B, A],
}
RANK = {
    "reference": A,
    "targets": [B, C, D, "vidE_5_9"],
    "category": "Visuals",
    "scores": [5, 2, 0, 3],
}


def write_lines(path: Path, *lines: object) -> Path:
    """Write JSONL, one line per object (strings are written verbatim)."""
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    return path


def with_(record: dict, **changes: object) -> dict:
    """A copy of ``record`` with fields changed (value ``...`` removes the field)."""
    out = {**record, **changes}
    return {key: value for key, value in out.items() if value is not ...}


# --- records and round trips -------------------------------------------------------------


def test_categories_are_the_six_official_strings():
    assert CATEGORIES == (
        "Ingredients",
        "Tools/Equipment",
        "Technique",
        "Actions",
        "Visuals",
        "Serving / Presentation",
    )


def test_mcq_gold_index_is_the_answer_position_and_pair_order_matters():
    item = DiffMCQItem.from_json(MCQ)
    assert item.gold_index == 1  # [B, A]; the option [A, B] at 0 is a different pair
    assert DiffMCQItem.from_json(with_(MCQ, answer=[A, B])).gold_index == 0
    assert isinstance(item.options[0], tuple) and isinstance(item.answer, tuple)


def test_round_trip_of_every_record_type(tmp_path):
    cases = [
        (
            read_diffcap,
            [DiffCapItem.from_json(CAP), DiffCapItem.from_json(with_(CAP, text=["a", "b"]))],
        ),
        (read_diffmcq, [DiffMCQItem.from_json(MCQ)]),
        (
            read_diffrank,
            [
                DiffRankItem.from_json(RANK),
                DiffRankItem.from_json(with_(RANK, scores=[0, 0, 0, 1])),
            ],
        ),
    ]
    for reader, records in cases:
        path = write_jsonl(tmp_path / f"{reader.__name__}.jsonl", records)
        assert reader(path) == records
        # The written lines are the official format, field for field.
        assert json.loads(path.read_text().splitlines()[0]) == records[0].to_json()
    preds = [CaptionPrediction("a caption"), CaptionPrediction("")]
    path = write_jsonl(tmp_path / "cap_preds.jsonl", preds)
    assert read_predictions(path, "diffcap", expected_count=2) == preds
    scores = [ScorePrediction((0.1, 2, -3.5, 1e-9))]
    path = write_jsonl(tmp_path / "score_preds.jsonl", scores)
    assert read_predictions(path, "diffrank", expected_count=1) == [
        ScorePrediction((0.1, 2.0, -3.5, 1e-9))
    ]


def test_blank_lines_at_the_end_and_crlf_are_fine(tmp_path):
    path = tmp_path / "rank.jsonl"
    path.write_bytes((json.dumps(RANK) + "\r\n" + json.dumps(RANK) + "\r\n\r\n  \n").encode())
    assert len(read_diffrank(path)) == 2


def test_records_built_in_code_are_validated_too():
    with pytest.raises(DataFormatError, match=r"field 'scores\[1\]': 9 is outside 0\.\.5"):
        DiffRankItem(A, (B, C, D, A), "Visuals", (1, 9, 2, 3))


# --- bad input: one line naming file, line number and field ------------------------------

BAD_GROUND_TRUTH = [
    # (reader, good record, bad record, field, words expected in the message)
    (read_diffcap, CAP, with_(CAP, category=...), "category", "missing"),
    (read_diffcap, CAP, with_(CAP, text="x instead of y"), "text", "expected an array"),
    (read_diffcap, CAP, with_(CAP, text=[]), "text", "at least one"),
    (read_diffcap, CAP, with_(CAP, text=["ok", 3]), "text[1]", "expected a string"),
    (read_diffcap, CAP, with_(CAP, category="Flavour"), "category", "unknown category 'Flavour'"),
    (read_diffcap, CAP, with_(CAP, candidate="no-times-here"), "candidate", "clip id"),
    (read_diffcap, CAP, with_(CAP, reference="vid_9_3"), "reference", "start < end"),
    (
        read_diffmcq,
        MCQ,
        with_(MCQ, options=MCQ["options"][:3]),
        "options",
        "expected 4 entries, got 3",
    ),
    (
        read_diffmcq,
        MCQ,
        with_(MCQ, options=[[A, B, C], *MCQ["options"][1:]]),
        "options[0]",
        "expected 2",
    ),
    (
        read_diffmcq,
        MCQ,
        with_(MCQ, options=[[A, "bad"], *MCQ["options"][1:]]),
        "options[0][1]",
        "clip id",
    ),
    (read_diffmcq, MCQ, with_(MCQ, answer=[D, C]), "answer", "is not among the 4 options"),
    (read_diffmcq, MCQ, with_(MCQ, answer=..., difference=...), "difference", "missing"),
    (read_diffmcq, MCQ, with_(MCQ, difference=7), "difference", "expected a string, got number"),
    (
        read_diffrank,
        RANK,
        with_(RANK, targets=[B, C, D, A, A]),
        "targets",
        "expected 4 entries, got 5",
    ),
    (read_diffrank, RANK, with_(RANK, targets=[B, C, "x_1", A]), "targets[2]", "clip id"),
    (read_diffrank, RANK, with_(RANK, scores=[5, 2, 0]), "scores", "expected 4 entries, got 3"),
    (read_diffrank, RANK, with_(RANK, scores=[5, 2, 6, 3]), "scores[2]", "6 is outside 0..5"),
    (read_diffrank, RANK, with_(RANK, scores=[-1, 2, 0, 3]), "scores[0]", "-1 is outside 0..5"),
    (read_diffrank, RANK, with_(RANK, scores=[5, 2.5, 0, 3]), "scores[1]", "expected an integer"),
    (read_diffrank, RANK, with_(RANK, scores=[5, True, 0, 3]), "scores[1]", "got boolean"),
    (read_diffrank, RANK, with_(RANK, scores="5203"), "scores", "expected an array, got string"),
]


@pytest.mark.parametrize(("reader", "good", "bad", "field", "words"), BAD_GROUND_TRUTH)
def test_bad_ground_truth_names_file_line_and_field(tmp_path, reader, good, bad, field, words):
    path = write_lines(tmp_path / "gt.jsonl", good, good, bad, good)
    with pytest.raises(DataFormatError) as caught:
        reader(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:3: field '{field}': "), message
    assert words in message
    assert "\n" not in message


def test_answer_message_quotes_the_pair(tmp_path):
    path = write_lines(
        tmp_path / "diffmcq.jsonl", *([MCQ] * 16), with_(MCQ, answer=["a_1_2", "b_1_2"])
    )
    with pytest.raises(DataFormatError) as caught:
        read_diffmcq(path)
    assert str(caught.value) == (
        f'{path}:17: field \'answer\': ["a_1_2","b_1_2"] is not among the 4 options'
    )


@pytest.mark.parametrize(
    ("lines", "where", "words"),
    [
        ([RANK, '{"reference": "a_1_2", '], ":2: ", "malformed JSON"),
        ([RANK, "[1, 2, 3]"], ":2: ", "expected a JSON object, got array"),
        ([RANK, "", RANK], ":2: ", "blank line"),
        ([], ": ", "empty"),
        (["", "  "], ": ", "empty"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, lines, where, words):
    path = write_lines(tmp_path / "rank.jsonl", *lines)
    with pytest.raises(DataFormatError) as caught:
        read_diffrank(path)
    message = str(caught.value)
    assert message.startswith(f"{path}{where}") and words in message, message


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(StepDiffError, match="no such file"):
        read_diffrank(tmp_path / "absent.jsonl")


def test_prediction_file_of_the_wrong_length(tmp_path):
    path = write_lines(tmp_path / "preds.jsonl", *([{"scores": [1, 2, 3, 4]}] * 99))
    with pytest.raises(DataFormatError) as caught:
        read_predictions(path, "diffrank", expected_count=100)
    assert str(caught.value) == f"{path}: 99 lines but the ground truth has 100"


@pytest.mark.parametrize(
    ("task", "bad_line", "field", "words"),
    [
        ("diffrank", '{"scores": [0.1, NaN, 0.3, 0.4]}', "scores[1]", "not a finite number"),
        ("diffmcq", '{"scores": [0.1, 0.2, Infinity, 0.4]}', "scores[2]", "not a finite number"),
        ("diffmcq", '{"scores": [0.1, 0.2, 1e400, 0.4]}', "scores[2]", "not a finite number"),
        ("diffmcq", '{"scores": [0.1, 0.2, 0.3]}', "scores", "expected 4 entries, got 3"),
        ("diffmcq", '{"scores": [0.1, "0.2", 0.3, 0.4]}', "scores[1]", "expected a number"),
        ("diffrank", '{"score": [0.1, 0.2, 0.3, 0.4]}', "scores", "missing"),
        ("diffcap", '{"text": "a caption"}', "generated_text", "missing"),
        ("diffcap", '{"generated_text": ["a caption"]}', "generated_text", "expected a string"),
    ],
)
def test_bad_predictions_name_file_line_and_field(tmp_path, task, bad_line, field, words):
    good = '{"generated_text": "ok"}' if task == "diffcap" else '{"scores": [1, 2, 3, 4]}'
    path = write_lines(tmp_path / "preds.jsonl", good, bad_line, good)
    with pytest.raises(DataFormatError) as caught:
        read_predictions(path, task, expected_count=3)
    message = str(caught.value)
    assert message.startswith(f"{path}:2: field '{field}': ") and words in message, message


# --- atomic writes ------------------------------------------------------------------------


def test_interrupted_write_leaves_the_old_file_and_no_temp_files(tmp_path):
    path = write_jsonl(tmp_path / "preds.jsonl", [ScorePrediction((1, 2, 3, 4))])
    before = path.read_bytes()

    def records():
        yield ScorePrediction((4, 3, 2, 1))
        raise KeyboardInterrupt  # e.g. Ctrl-C half-way through a long prediction run

    with pytest.raises(KeyboardInterrupt):
        write_jsonl(path, records())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["preds.jsonl"]


def test_writing_nan_is_refused_without_touching_the_file(tmp_path):
    path = tmp_path / "out" / "preds.jsonl"
    with pytest.raises(DataFormatError, match="record 2 holds NaN"):
        write_jsonl(path, [{"scores": [1, 2, 3, 4]}, {"scores": [float("nan"), 1, 2, 3]}])
    assert not path.exists() and list(path.parent.iterdir()) == []


# --- the real DiffRank release file -------------------------------------------------------


def test_real_diffrank_file_loads_with_the_documented_facts(real_diffrank_path):
    items = read_diffrank(real_diffrank_path)
    assert len(items) == 4080
    assert Counter(item.category for item in items) == {
        "Visuals": 902,
        "Ingredients": 858,
        "Actions": 785,
        "Technique": 774,
        "Tools/Equipment": 720,
        "Serving / Presentation": 41,
    }
    assert sum(len(set(item.scores)) < 4 for item in items) == 3504  # rows with ties
    assert all(len(set(item.scores)) > 1 for item in items)  # no all-equal row
    clips = {item.reference for item in items} | {t for item in items for t in item.targets}
    assert len(clips) == 5946
