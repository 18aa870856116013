"""Bad config values, options and files: one "error:" line on stderr and exit status 1,
never a traceback, a runaway job or a silent acceptance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stepdiff.cli import app
from stepdiff.config import load_config
from stepdiff.errors import ConfigError
from stepdiff.train.config import load_train_config
from stepdiff.video.synthetic import write_synthetic_clip


def one_error_line(args: list[str]) -> str:
    """Run ``stepdiff ARGS``; it must fail with exit 1 and one "error:" line, returned."""
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1 s, 32x32 generated clip (commands resolve their clips before the model)."""
    return write_synthetic_clip(tmp_path_factory.mktemp("clips") / "c.mp4", seconds=1.0, size=32)


# --- model config values (--set) -------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("num_frames=-2", "num_frames must be a positive integer, got -2"),
        ("num_frames=abc", "num_frames must be a positive integer, got 'abc'"),
        ("num_frames=true", "num_frames must be a positive integer, got True"),
        ("projector.width=0", "projector.width must be a positive integer, got 0"),
        ("projector.pool_frames=3", "projector.pool_frames must be true or false, got 3"),
        ("max_length=0", "max_length must be a positive integer, got 0"),
        ("seed=-1", "seed must be an integer from 0 to 2**64 - 1, got -1"),
        ("encoder=5", "encoder must be a string, got 5"),
    ],
)
def test_bad_set_values_are_one_line_errors_naming_the_key(
    override: str, expected: str, clip: Path
) -> None:
    args = ["ask", str(clip), str(clip), "-q", "Q?", "--config", "tiny", "--no-cache"]
    line = one_error_line([*args, "--set", override])
    assert expected in line and "tiny.yaml" in line


def test_valid_overrides_still_load() -> None:
    config = load_config("tiny", ["num_frames=2", "projector.width=32", "seed=0"])
    assert (config.num_frames, config.projector.width, config.seed) == (2, 32, 0)


def test_a_checkpoint_config_with_a_bad_override_is_refused(tmp_path: Path) -> None:
    from stepdiff.model_files import checkpoint_config

    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "stepdiff_config.json").write_text(
        '{"format": 1, "config": {"encoder": "tiny", "llm": "tiny"}}'
    )
    with pytest.raises(ConfigError, match="num_frames must be a positive integer, got 0"):
        checkpoint_config(folder, ["num_frames=0"])


# --- training config values ----------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("optim.betas=[2,3]", "optim.betas[0] must be in [0, 1), got 2"),
        ("optim.betas=[0.9,1.0]", "optim.betas[1] must be in [0, 1), got 1.0"),
        ("optim.betas=0.9", "optim.betas must be two numbers"),
        ("optim.betas=[0.9]", "optim.betas must be two numbers"),
        ("optim.warmup_steps=-1", "optim.warmup_steps must be an integer >= 0, got -1"),
        ("model_overrides=[num_frames=-1]", "num_frames must be a positive integer, got -1"),
        ("model_overrides=num_frames=-1", "num_frames must be a positive integer, got -1"),
        ("model_overrides=[projector.width=0]", "projector.width must be a positive integer"),
        ("model_overrides=5", "model_overrides must be a list of key=value strings, got 5"),
    ],
)
def test_bad_training_values_are_one_line_errors_before_any_work(
    override: str, expected: str, tmp_path: Path
) -> None:
    line = one_error_line(["train", "tiny", override, f"out={tmp_path / 'run'}"])
    assert expected in line and "train/tiny.yaml" in line
    if "model_overrides=[" in override:
        assert "model and model_overrides: " in line
    assert not (tmp_path / "run").exists()


def test_model_overrides_given_as_one_string_are_one_override() -> None:
    config = load_train_config("tiny", ["model_overrides=num_frames=2"])
    assert config.model_overrides == ("num_frames=2",)
    assert load_train_config("tiny", ["optim.betas=[0.8,0.99]"]).optim.betas == (0.8, 0.99)


# --- stepdiff score / eval options ----------------------------------------------------

CLIPS = ["vidA_0_5", "vid_B_1.5_6", "vidC_2_7", "vidD_3_8"]


@pytest.fixture()
def diffrank_files(tmp_path: Path) -> tuple[Path, Path]:
    """A two-row DiffRank ground truth and predictions for it."""
    row = '{"reference": "vidA_0_5", "targets": %s, "category": "Visuals", "scores": %s}\n'
    gt = tmp_path / "gt.jsonl"
    gt.write_text(
        row % (json.dumps(CLIPS), "[0, 1, 2, 3]") + row % (json.dumps(CLIPS), "[1, 2, 3, 4]")
    )
    preds = tmp_path / "preds.jsonl"
    preds.write_text('{"scores": [1, 2, 3, 4]}\n{"scores": [1, 2, 4, 3]}\n')
    return gt, preds


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (
            ["--bootstrap", "99999999999999999999"],
            "bootstrap 99999999999999999999: expected 0 (no intervals) to 100000 resamples",
        ),
        (["--bootstrap", "100001"], "to 100000 resamples"),
        (["--bootstrap", "-1"], "bootstrap -1: expected 0 (no intervals) to 100000"),
        (["--seed", "-1"], "seed -1: expected an integer >= 0"),
    ],
)
def test_score_bounds_the_bootstrap_and_refuses_negative_values(
    option: list[str], expected: str, diffrank_files: tuple[Path, Path]
) -> None:
    gt, preds = diffrank_files
    line = one_error_line(
        ["score", "--task", "diffrank", "--gt", str(gt), "--pred", str(preds), *option]
    )
    assert expected in line


def test_the_largest_bootstrap_still_scores(diffrank_files: tuple[Path, Path]) -> None:
    from stepdiff.eval.score import MAX_BOOTSTRAP, score_files

    gt, preds = diffrank_files
    report = score_files("diffrank", gt, preds, bootstrap=MAX_BOOTSTRAP)
    assert report.bootstrap == MAX_BOOTSTRAP == 100_000
    assert report.metrics[0].ci is not None


def test_eval_refuses_a_huge_bootstrap_before_loading_a_scorer(
    diffrank_files: tuple[Path, Path], tmp_path: Path
) -> None:
    gt, _ = diffrank_files
    args = ["eval", "--task", "diffrank", "--gt", str(gt), "--videos", str(tmp_path)]
    line = one_error_line([*args, "--out", str(tmp_path / "out"), "--bootstrap", "1000000"])
    assert "bootstrap 1000000: expected 0 (no intervals) to 100000 resamples" in line
    assert not (tmp_path / "out").exists()


# --- prediction and ground-truth files ------------------------------------------------


def write_diffmcq(path: Path, rows: int) -> None:
    """``rows`` copies of one DiffMCQ ground-truth item."""
    options = [[CLIPS[i], CLIPS[(i + 1) % len(CLIPS)]] for i in range(len(CLIPS))]
    item = {
        "difference": "a whisk instead of a spoon",
        "category": "Tools/Equipment",
        "options": options,
        "answer": options[0],
    }
    path.write_text((json.dumps(item) + "\n") * rows)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            '{"scores": [%s, 1, 2, 3]}' % ("9" * 5000),
            "preds.jsonl:2: unreadable JSON: an integer of 5000 digits (at most 4300 are read)",
        ),
        (
            '{"scores": %s}' % ("[" * 100_000 + "]" * 100_000),
            "preds.jsonl:2: unreadable JSON: nested too deeply",
        ),
        # Nested just within what the decoder takes: the message shows no nested value.
        ('{"scores": [%s, 1, 2, 3]}' % ("[" * 985 + "]" * 985), "preds.jsonl:2: "),
        # Long but readable: an integer too large for a float is no finite score.
        ('{"scores": [%s, 1, 2, 3]}' % ("9" * 4000), "preds.jsonl:2: field 'scores[0]'"),
    ],
    ids=["5000-digit-integer", "100k-deep-array", "985-deep-array", "4000-digit-integer"],
)
@pytest.mark.parametrize("task", ["diffrank", "diffmcq"])
def test_oversized_json_values_in_predictions_are_one_line_errors(
    line: str, expected: str, task: str, diffrank_files: tuple[Path, Path]
) -> None:
    gt, preds = diffrank_files
    if task == "diffmcq":
        write_diffmcq(gt, rows=2)
    preds.write_text('{"scores": [1, 2, 3, 4]}\n' + line + "\n")
    error = one_error_line(["score", "--task", task, "--gt", str(gt), "--pred", str(preds)])
    assert expected in error and len(error) < 300


def test_an_oversized_integer_in_ground_truth_names_its_line(tmp_path: Path) -> None:
    from stepdiff.data.formats import read_diffrank
    from stepdiff.errors import DataFormatError

    gt = tmp_path / "gt.jsonl"
    gt.write_text('{"scores": [%s]}\n' % ("1" * 4301))
    with pytest.raises(DataFormatError, match=r"gt.jsonl:1: unreadable JSON: an integer of 4301"):
        read_diffrank(gt)


# --- non-finite projector weights -------------------------------------------------------


@pytest.fixture(scope="module")
def nan_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny model whose projector head bias is all NaN (as a diverged run saves)."""
    import torch
    from safetensors.torch import load_file, save_file

    from stepdiff.model import build_model

    folder = tmp_path_factory.mktemp("nan") / "ckpt"
    build_model(load_config("tiny")).save_pretrained(folder)
    weights = load_file(folder / "projector.safetensors")
    weights["head.bias"] = torch.full_like(weights["head.bias"], float("nan"))
    save_file(weights, folder / "projector.safetensors")
    return folder


@pytest.mark.parametrize(
    "command",
    [
        ["report", "--no-captions"],
        ["rank"],
        ["ask", "-q", "Q?"],
    ],
    ids=["report", "rank", "ask"],
)
def test_a_projector_with_nan_weights_is_refused_at_load(
    command: list[str], nan_checkpoint: Path, clip: Path
) -> None:
    clips = [str(clip)] * (3 if command[0] == "rank" else 2)
    line = one_error_line(
        [command[0], *clips, *command[1:], "--model", str(nan_checkpoint), "--no-cache"]
    )
    assert f"{nan_checkpoint / 'projector.safetensors'}: projector weight 'head.bias'" in line
    assert "NaN or infinite" in line


def test_an_infinite_weight_is_refused_when_a_run_starts_from_it(nan_checkpoint: Path) -> None:
    import torch

    from stepdiff.errors import ModelLoadError
    from stepdiff.model import build_model
    from stepdiff.model.build import load_projector_state

    projector = build_model(load_config("tiny")).projector
    state = {k: v.clone() for k, v in projector.state_dict().items()}
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name].view(-1)[0] = float("inf")
    with pytest.raises(ModelLoadError, match=rf"projector weight '{name}' holds 1 NaN"):
        load_projector_state(projector, state, nan_checkpoint)
    assert torch.isfinite(projector.state_dict()[name]).all()  # nothing was loaded


def test_the_assistant_refuses_a_nan_p_same(clip: Path) -> None:
    import torch

    from stepdiff.assistant import Assistant, AssistantError
    from stepdiff.model import build_model
    from stepdiff.video.clip import resolve_clip

    model = build_model(load_config("tiny"))
    with torch.no_grad():
        model.projector.head.bias.fill_(float("nan"))  # built in code: no load check
    ref = resolve_clip(str(clip))
    with pytest.raises(AssistantError, match=r"P\(same\) = nan for 'Visuals'"):
        Assistant(model).report(ref, ref, ["Visuals"], with_captions=False)


# --- training texts longer than max_length ------------------------------------------


@pytest.mark.parametrize(
    ("kind", "row", "part"),
    [
        (
            "pair_qa",
            {"reference": "c_0_1", "candidate": "c_0_0.5", "question": "What differs?"},
            "answer",
        ),
        ("interleaved", {"clips": ["c_0_1", "c_0_0.5"]}, "narrations"),
    ],
)
def test_a_training_text_longer_than_max_length_names_its_file_and_line(
    kind: str, row: dict, part: str, clip: Path, tmp_path: Path
) -> None:
    long_text = " ".join(["whisk"] * 700)  # far beyond the tiny model's max_length 512
    short = {"answer": "a spoon"} if kind == "pair_qa" else {"narrations": ["I stir.", "Done."]}
    long = {"answer": long_text} if kind == "pair_qa" else {"narrations": ["I stir.", long_text]}
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({**row, **short}) + "\n" + json.dumps({**row, **long}) + "\n")
    line = one_error_line(
        [
            "train",
            "tiny",
            f"data.{kind}={data}",
            "data.pair_qa=[]" if kind != "pair_qa" else "data.interleaved=[]",
            f"data.mix={{{kind}: 1.0}}",
            f"data.video_dir={clip.parent}",
            f"out={tmp_path / 'run'}",
            "tensorboard=false",
        ]
    )
    assert f"{data}:2: " in line
    assert f"tokens (prompt, video tokens and {part}) exceed max_length 512" in line
    assert not list((tmp_path / "run").glob("checkpoint*"))


# --- stepdiff synthkitchen build --out ------------------------------------------------


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        ("a-file", "a-file: exists and is not a folder"),
        ("a-file/sub", "a-file/sub: cannot create the folder (Not a directory)"),
    ],
)
def test_synthkitchen_build_refuses_an_out_that_is_a_file(
    out: str, expected: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    line = one_error_line(["synthkitchen", "build", "--out", str(tmp_path / out), "--no-render"])
    assert f"--out {tmp_path / expected}" in line
    assert blocker.read_text() == "not a folder"
